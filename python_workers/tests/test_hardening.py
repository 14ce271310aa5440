"""What a worker refuses from an attacker or a careless caller.

Paths in requests stay inside the store and the roots the worker was started with
(--allow-root), symlinks resolved, refused before anything touches them and without
saying whether they exist; artifact references are checked (digest, regular file, size,
cap) before and while they are read; a worker will not serve plaintext on a non-loopback
address without --insecure, nor start without the token an explicit --token-env names.

Most checks run in-process; the names the hardening added are looked up as each test runs,
so on the code before it each test fails on its own. One real DPO-trainer worker (the module's) shows the wire side:
the status codes and messages a caller gets, the bearer token, the --insecure warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from pds_dpo_workers import cli, errors, store as store_mod
from pds_dpo_workers.errors import ArtifactError, InvalidRequest
from pds_dpo_workers.kinds import KINDS
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.models.spec import parse_spec
from pds_dpo_workers.proto import common_pb2, dpo_trainer_pb2 as tpb, dpo_trainer_pb2_grpc as tpb_grpc, evaluator_pb2 as epb
from pds_dpo_workers.proto import worker_pb2, worker_pb2_grpc
from pds_dpo_workers.store import Store, read_blob, sha256_bytes
from worker_harness import PYTHON, RESPONDER_MODEL, SCORER_MODEL, png_bytes, start_worker, worker_env

OUTSIDE = "is outside the store and the worker's allowed roots"


@pytest.fixture
def layout(tmp_path):
    """tmp/store (the store), tmp/allowed (an --allow-root), tmp/outside (neither)."""
    for d in ("store", "allowed", "outside"):
        (tmp_path / d).mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(png_bytes(seed=9))
    (tmp_path / "allowed" / "ok.png").write_bytes(png_bytes(seed=1))
    # A symlink inside an allowed root that leads out of it.
    os.symlink(tmp_path / "outside", tmp_path / "allowed" / "escape")
    return tmp_path


def ctx_for(layout: Path, kind_model: dict = RESPONDER_MODEL) -> WorkerContext:
    return WorkerContext(
        spec=parse_spec(json.dumps(kind_model)),
        store=Store(str(layout / "store")),
        cache_root=str(layout / "store"),
        device="cpu",
        allowed_roots=(str(layout / "allowed"),),
    )


# -- 1. paths in requests are confined ---------------------------------------------------------------


def test_confine_path_keeps_paths_in_the_roots_and_resolves_them(layout):
    roots = (str(layout / "store"), str(layout / "allowed"))
    assert store_mod.confine_path(str(layout / "allowed" / "ok.png"), roots, "x") == os.path.realpath(layout / "allowed" / "ok.png")
    # Not yet existing (a checkpoint directory to be made) is fine inside a root.
    assert store_mod.confine_path(str(layout / "store" / "runs" / "r1" / "ckpt"), roots, "x").endswith("/store/runs/r1/ckpt")
    assert store_mod.confine_path(str(layout / "allowed"), roots, "x") == os.path.realpath(layout / "allowed")


@pytest.mark.parametrize(
    "rel",
    [
        "outside/secret.png",  # plainly outside
        "outside/no-such-file.png",  # outside and missing: the same answer
        "allowed/../outside/secret.png",  # .. out of a root
        "allowed/escape/secret.png",  # a symlink out of a root
        "allowed/escape/no-such-file.png",
        "allowed-twin/x.png",  # a sibling whose name starts like the root's
        "store/../outside",
    ],
)
def test_confine_path_refuses_what_lies_outside_without_saying_whether_it_exists(layout, rel):
    (layout / "allowed-twin").mkdir(exist_ok=True)
    roots = (str(layout / "store"), str(layout / "allowed"))
    path = str(layout / rel)
    with pytest.raises(errors.PathNotAllowed) as e:
        store_mod.confine_path(path, roots, "image_root")
    assert str(e.value) == f"image_root: path {path} {OUTSIDE}"
    assert e.value.status == grpc.StatusCode.INVALID_ARGUMENT and isinstance(e.value, InvalidRequest)


def test_a_path_with_a_nul_byte_is_an_invalid_request(layout):
    with pytest.raises(InvalidRequest, match="is not a path"):
        store_mod.confine_path(str(layout / "store") + "/a\0b", (str(layout / "store"),), "checkpoint_dir")


def test_without_allowed_roots_only_the_store_is_open(layout):
    ctx = WorkerContext(spec=parse_spec(json.dumps(RESPONDER_MODEL)), store=Store(str(layout / "store")), cache_root="/x", device="cpu")
    ctx.confine(str(layout / "store" / "runs"), "x")
    with pytest.raises(errors.PathNotAllowed):
        ctx.confine(str(layout / "allowed" / "ok.png"), "x")
    no_store = WorkerContext(spec=ctx.spec, store=None, cache_root="/x", device="cpu")
    with pytest.raises(errors.PathNotAllowed):
        no_store.confine(str(layout / "store" / "runs"), "x")


def with_fields(req: tpb.TrainRequest, fields: dict) -> tpb.TrainRequest:
    """The request with some fields replaced (a Blob is copied in: protobuf message fields cannot be assigned)."""
    for k, v in fields.items():
        if isinstance(v, common_pb2.Blob):
            getattr(req, k).CopyFrom(v)
        else:
            setattr(req, k, v)
    return req


def train_request(layout: Path, **fields) -> tpb.TrainRequest:
    req = tpb.TrainRequest(
        image_root=str(layout / "allowed"),
        lora=tpb.LoraConfig(r=2, alpha=4),
        dpo=tpb.DpoConfig(beta=0.1),
        optim=tpb.OptimConfig(learning_rate=1e-3, max_steps=1),
        checkpoint_dir=str(layout / "store" / "runs" / "r" / "ckpt"),
    )
    return with_fields(req, fields)


@pytest.mark.parametrize(
    "field, rel",
    [
        ("checkpoint_dir", "outside/ckpt"),
        ("checkpoint_dir", "allowed/escape/ckpt"),
        ("image_root", "outside"),
        ("deepspeed_config", "outside/ds.json"),
    ],
)
def test_the_trainer_refuses_request_paths_outside_before_touching_them(layout, field, rel):
    (layout / "outside" / "ds.json").write_text('{"zero_optimization": {"stage": 2}}')
    trainer = KINDS["dpo-trainer"].create(ctx_for(layout))
    path = str(layout / rel)
    with pytest.raises(errors.PathNotAllowed) as e:
        trainer.check(train_request(layout, **{field: path}))
    assert str(e.value) == f"{field}: path {path} {OUTSIDE}"
    assert not (layout / "outside" / "ckpt").exists()
    # The same request with the path inside passes the check.
    trainer.check(train_request(layout))


def test_the_trainer_refuses_dataset_images_outside_before_training(layout):
    ctx = ctx_for(layout)
    trainer = KINDS["dpo-trainer"].create(ctx)  # never loaded: the refusal comes first
    for image in (str(layout / "outside" / "secret.png"), "escape/secret.png", "../outside/secret.png"):
        pair = {"images": ["ok.png", image], "prompt": [], "chosen": [], "rejected": []}
        ref = ctx.store.put((json.dumps(pair) + "\n").encode(), "application/jsonl")
        req = train_request(layout, dataset=common_pb2.Blob(ref=ref))
        with pytest.raises(errors.PathNotAllowed, match=f"^dataset pair 1: image: path .* {OUTSIDE}$"):
            trainer._run(req, lambda r: None, threading.Event())


def test_the_evaluator_refuses_roots_adapters_and_images_outside(layout):
    from pds_dpo_workers.benchmarks import pope

    ctx = ctx_for(layout)
    evaluator = KINDS["evaluator"].create(ctx)  # never loaded
    outside = str(layout / "outside")
    for field in ("image_root", "adapter_dir"):
        with pytest.raises(errors.PathNotAllowed, match=f"^{field}: path {outside} {OUTSIDE}$"):
            evaluator.check(epb.EvaluateRequest(benchmark="pope", **{field: outside}))
    evaluator.check(epb.EvaluateRequest(benchmark="pope", image_root=str(layout / "allowed"), adapter_dir=str(layout / "store" / "a")))
    # The adapter is confined in the call itself too (tests and callers may skip check()).
    questions = ctx.store.put(b'{"question_id": 1, "image": "ok.png", "text": "cat?", "label": "yes"}\n', "application/jsonl")
    req = epb.EvaluateRequest(benchmark="pope", questions=common_pb2.Blob(ref=questions), image_root=str(layout / "allowed"), adapter_dir=outside)
    with pytest.raises(errors.PathNotAllowed):
        evaluator._run(req, lambda r: None, threading.Event())
    # A question's image: absolute, through a symlink, or up and out of the image root.
    for image in (str(layout / "outside" / "secret.png"), "escape/secret.png", "../outside/secret.png"):
        suite = pope.Suite((json.dumps({"question_id": 7, "image": image, "text": "cat?", "label": "yes"}) + "\n").encode(), {})
        req = epb.EvaluateRequest(benchmark="pope", image_root=str(layout / "allowed"))
        with pytest.raises(errors.PathNotAllowed, match=f"^question 7: image: path .* {OUTSIDE}$"):
            evaluator._answer(req, suite, None, lambda r: None, threading.Event())


def test_pope_questions_that_are_not_rows_are_invalid_requests():
    from pds_dpo_workers.benchmarks import pope

    for data, message in [
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope\n", "line 1: not JSON"),
        (b"[1, 2]", "line 1: not a JSON object"),
        (b'{"question_id": 1, "image": 5, "text": "t", "label": "no"}\n', "field 'image' must be a string"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            pope.Suite(data, {})


# -- 2. artifact references --------------------------------------------------------------------------


def _refuse(*a, **k):
    raise AssertionError(f"touched the disk: {a}")


@pytest.mark.parametrize(
    "uri",
    [
        "cas://sha256/../../../../etc/passwd",
        "cas://sha256/" + "A" * 64,  # upper case
        "cas://sha256/" + "0" * 63,
        "cas://sha256/" + "0" * 64 + "\n",
        "cas://sha256/" + "0" * 64 + "/../x",
    ],
)
def test_a_malformed_digest_is_refused_before_any_file_access(tmp_path, uri):
    store = Store(str(tmp_path / "store"))
    with pytest.raises(ArtifactError, match="64 lowercase hex digits"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "open", _refuse)
            mp.setattr(os, "stat", _refuse)
            mp.setattr("builtins.open", _refuse)
            store.read_ref(common_pb2.ArtifactRef(uri=uri))


def test_the_sha256_field_must_be_a_digest_and_agree_with_the_uri(tmp_path):
    store = Store(str(tmp_path / "store"))
    ref = store.put(b"data", "text/plain")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", _refuse)
        mp.setattr(os, "stat", _refuse)
        with pytest.raises(ArtifactError, match="is not 64 lowercase hex digits"):
            store.read_ref(common_pb2.ArtifactRef(uri=ref.uri, sha256="../../etc/passwd"))
        with pytest.raises(ArtifactError, match="names another digest"):
            store.read_ref(common_pb2.ArtifactRef(uri=ref.uri, sha256="1" * 64))
    assert store.read_ref(ref) == b"data"


def test_a_fifo_in_the_store_is_refused_not_read(tmp_path):
    store = Store(str(tmp_path / "store"))
    digest = sha256_bytes(b"whatever")
    path = store.path_of(digest)
    os.makedirs(os.path.dirname(path))
    os.mkfifo(path)
    outcome: list = []

    def read():
        try:
            store.read_ref(common_pb2.ArtifactRef(uri=store_mod.URI_PREFIX + digest, sha256=digest, bytes=8))
        except ArtifactError as e:
            outcome.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # opened the FIFO and blocks: unblock it, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("read_ref blocked on a FIFO")
    assert len(outcome) == 1 and "is not a regular file" in str(outcome[0])


def test_the_size_is_compared_with_the_declared_bytes(tmp_path):
    store = Store(str(tmp_path / "store"))
    ref = store.put(b"0123456789", "text/plain")
    for declared in (9, 11):
        bad = common_pb2.ArtifactRef(uri=ref.uri, sha256=ref.sha256, bytes=declared)
        with pytest.raises(ArtifactError, match=rf"is 10 bytes in the store, not the {declared} its reference declares"):
            store.read_ref(bad)
    with pytest.raises(ArtifactError, match="negative"):
        store.read_ref(common_pb2.ArtifactRef(uri=ref.uri, bytes=-1))
    # 0: not declared, the file's own size goes.
    assert store.read_ref(common_pb2.ArtifactRef(uri=ref.uri)) == b"0123456789"


def test_blobs_are_capped_and_hashed_in_chunks(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "store"))
    data = bytes(range(256)) * 4
    ref = store.put(data, "application/octet-stream")
    monkeypatch.setattr(store_mod, "_CHUNK", 7)  # many chunks: still the same bytes and hash
    assert store.read_ref(ref) == data
    monkeypatch.setattr(store_mod, "MAX_BLOB_BYTES", 1000)
    with pytest.raises(ArtifactError, match="a blob may hold at most 1000"):
        store.read_ref(ref)  # declared 1024
    with pytest.raises(ArtifactError, match="a blob may hold at most 1000"):
        store.read_ref(common_pb2.ArtifactRef(uri=ref.uri))  # the file's size
    with pytest.raises(ArtifactError, match="an inline blob of 1024 bytes; a blob may hold at most 1000"):
        read_blob(store, common_pb2.Blob(inline=data))
    assert read_blob(store, common_pb2.Blob(inline=data[:1000])) == data[:1000]
    assert store_mod.MAX_BLOB_BYTES == 1000 and isinstance(store_mod.MAX_BLOB_BYTES, int)


def test_a_store_entry_that_links_out_of_the_store_is_refused(tmp_path):
    store = Store(str(tmp_path / "store"))
    secret = b"the contents of a file outside the store"
    (tmp_path / "secret").write_bytes(secret)
    digest = sha256_bytes(secret)
    os.makedirs(os.path.dirname(store.path_of(digest)))
    os.symlink(tmp_path / "secret", store.path_of(digest))
    with pytest.raises(errors.PathNotAllowed, match=OUTSIDE):
        store.read_ref(common_pb2.ArtifactRef(uri=store_mod.URI_PREFIX + digest, sha256=digest))


def test_path_of_refuses_what_is_not_a_digest(tmp_path):
    with pytest.raises(ArtifactError):
        Store(str(tmp_path)).path_of("../../etc/passwd")


# -- 3. non-loopback plaintext, 4. the token variable: the command line ------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host):
    assert cli.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.1.2.3", "192.168.0.1", "worker.example", ""])
def test_non_loopback_hosts(host):
    assert not cli.is_loopback(host)


MODEL = json.dumps(SCORER_MODEL)


def serve_args(*extra: str):
    return cli._parser().parse_args(["serve", "--kind", "image-scorer", "--model", MODEL, *extra])


def test_serve_checks_allow_tls_a_socket_or_insecure_off_loopback(monkeypatch, tmp_path):
    monkeypatch.delenv("PDS_DPO_WORKER_TOKEN", raising=False)
    for extra in (
        (),
        ("--host", "0.0.0.0", "--insecure"),
        ("--host", "0.0.0.0", "--tls-cert", "c.pem", "--tls-key", "k.pem"),
        ("--host", "0.0.0.0", "--socket", str(tmp_path / "s.sock")),
    ):
        assert cli._serve_checks(serve_args(*extra)) == (None, ())
    with pytest.raises(cli._ServeUsageError, match=r"^--host 0\.0\.0\.0 is not a loopback address: serve TLS there \(--tls-cert and --tls-key\) or pass --insecure"):
        cli._serve_checks(serve_args("--host", "0.0.0.0"))


def test_the_default_token_variable_may_be_unset_an_explicit_one_may_not(monkeypatch):
    monkeypatch.delenv("PDS_DPO_WORKER_TOKEN", raising=False)
    monkeypatch.delenv("PDS_DPO_RUN_TOKEN", raising=False)
    # Hand-started: no --token-env, the default variable unset: no token, as before.
    assert cli._serve_checks(serve_args())[0] is None
    monkeypatch.setenv("PDS_DPO_WORKER_TOKEN", "t1")
    assert cli._serve_checks(serve_args())[0] == "t1"
    # Named explicitly (even the default's name): it must be set, and not empty.
    with pytest.raises(cli._ServeUsageError, match=r"^--token-env PDS_DPO_RUN_TOKEN: the variable is not set$"):
        cli._serve_checks(serve_args("--token-env", "PDS_DPO_RUN_TOKEN"))
    monkeypatch.setenv("PDS_DPO_RUN_TOKEN", "")
    with pytest.raises(cli._ServeUsageError, match=r"^--token-env PDS_DPO_RUN_TOKEN: the variable is empty$"):
        cli._serve_checks(serve_args("--token-env", "PDS_DPO_RUN_TOKEN"))
    monkeypatch.setenv("PDS_DPO_RUN_TOKEN", "t2")
    assert cli._serve_checks(serve_args("--token-env", "PDS_DPO_RUN_TOKEN"))[0] == "t2"
    monkeypatch.delenv("PDS_DPO_WORKER_TOKEN")
    with pytest.raises(cli._ServeUsageError, match=r"^--token-env PDS_DPO_WORKER_TOKEN: the variable is not set$"):
        cli._serve_checks(serve_args("--token-env", "PDS_DPO_WORKER_TOKEN"))


def test_allowed_roots_are_resolved_directories(tmp_path, monkeypatch):
    monkeypatch.delenv("PDS_DPO_WORKER_TOKEN", raising=False)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    roots = cli._serve_checks(serve_args("--allow-root", str(tmp_path / "link"), "--allow-root", str(tmp_path)))[1]
    assert roots == (os.path.realpath(tmp_path / "real"), os.path.realpath(tmp_path))
    with pytest.raises(cli._ServeUsageError, match=r"^--allow-root \S+/missing: not a directory$"):
        cli._serve_checks(serve_args("--allow-root", str(tmp_path / "missing")))


def run_serve(tmp_path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`serve` as the orchestrator starts it; a refusal must come before anything loads.
    (Before these checks existed it would serve: the timeout ends that.)"""
    cmd = [PYTHON, "-m", "pds_dpo_workers", "serve", "--kind", "image-scorer", "--model", MODEL, "--store", str(tmp_path), "--port", "0", *extra]
    full = worker_env()
    full.pop("PDS_DPO_WORKER_TOKEN", None)
    full.pop("PDS_DPO_RUN_TOKEN", None)
    full.update(env or {})
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=full, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the worker did not refuse to start: {e.stdout!r}")


@pytest.mark.parametrize(
    "extra, line",
    [
        (("--host", "0.0.0.0"), "pds_dpo_workers: --host 0.0.0.0 is not a loopback address: serve TLS there (--tls-cert and --tls-key) or pass --insecure to serve plaintext anyway"),
        (("--token-env", "PDS_DPO_RUN_TOKEN"), "pds_dpo_workers: --token-env PDS_DPO_RUN_TOKEN: the variable is not set"),
        (("--allow-root", "/no/such/dir"), "pds_dpo_workers: --allow-root /no/such/dir: not a directory"),
    ],
)
def test_serve_refuses_to_start_with_one_line_and_exit_2(tmp_path, extra, line):
    r = run_serve(tmp_path, *extra)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", line + "\n")


# -- the wire: one real trainer worker, on 0.0.0.0 with --insecure and a per-run token ------------------


TOKEN = "per-run-token-for-the-hardening-tests"


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening")
    for d in ("allowed", "outside"):
        (base / d).mkdir()
    (base / "allowed" / "ok.png").write_bytes(png_bytes(seed=1))
    (base / "outside" / "secret.png").write_bytes(png_bytes(seed=2))
    os.symlink(base / "outside", base / "allowed" / "escape")
    return base


@pytest.fixture(scope="module")
def trainer(store_dir, log_dir, roots):
    before = os.environ.get("PDS_DPO_RUN_TOKEN")
    os.environ["PDS_DPO_RUN_TOKEN"] = TOKEN  # worker_env() copies os.environ at the start
    try:
        w = start_worker(
            "dpo-trainer", RESPONDER_MODEL, store_dir, log_dir,
            extra_args=("--host", "0.0.0.0", "--insecure", "--token-env", "PDS_DPO_RUN_TOKEN", "--allow-root", str(roots / "allowed")),
        )  # fmt: skip
    finally:
        if before is None:
            os.environ.pop("PDS_DPO_RUN_TOKEN", None)
        else:
            os.environ["PDS_DPO_RUN_TOKEN"] = before
    w.address = f"127.0.0.1:{w.listening['port']}"
    yield w
    assert w.terminate() == 0, w.log_tail()


AUTH = (("authorization", f"Bearer {TOKEN}"),)


def test_insecure_serves_off_loopback_with_a_warning(trainer):
    assert trainer.listening["address"].startswith("0.0.0.0:")
    log = trainer.log_path.read_text()
    assert "WARNING" in log and "--insecure: serving plaintext gRPC on 0.0.0.0" in log, trainer.log_tail()


def test_every_call_but_health_needs_the_token(trainer):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    assert health_pb2_grpc.HealthStub(trainer.channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    stub = worker_pb2_grpc.WorkerServiceStub(trainer.channel)
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
        with pytest.raises(grpc.RpcError) as e:
            stub.Describe(worker_pb2.DescribeRequest(), metadata=metadata, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        list(tpb_grpc.DpoTrainerServiceStub(trainer.channel).Train(tpb.TrainRequest(), timeout=10))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stub.Describe(worker_pb2.DescribeRequest(), metadata=AUTH, timeout=10).info.pid == trainer.process.pid


def wire_request(store: Store, roots: Path, images: list[str], **fields) -> tpb.TrainRequest:
    pair = {"images": images, "prompt": [{"role": "user", "content": "?"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}
    req = tpb.TrainRequest(
        dataset=common_pb2.Blob(ref=store.put((json.dumps(pair) + "\n").encode(), "application/jsonl")),
        image_root=str(roots / "allowed"),
        lora=tpb.LoraConfig(r=2, alpha=4),
        dpo=tpb.DpoConfig(beta=0.1),
        optim=tpb.OptimConfig(learning_rate=1e-3, max_steps=1),
        checkpoint_dir=str(roots / "allowed" / "ckpt"),
    )
    return with_fields(req, fields)


def refused(trainer, req) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        list(tpb_grpc.DpoTrainerServiceStub(trainer.channel).Train(req, metadata=AUTH, timeout=60))
    return e.value


def test_the_worker_answers_a_path_outside_with_invalid_argument(trainer, store_dir, roots):
    store = Store(str(store_dir))
    secret = str(roots / "outside" / "secret.png")
    for field, path in (("checkpoint_dir", str(roots / "outside" / "ckpt")), ("image_root", str(roots / "outside")), ("deepspeed_config", secret)):
        e = refused(trainer, wire_request(store, roots, ["ok.png"], **{field: path}))
        assert (e.code(), e.details()) == (grpc.StatusCode.INVALID_ARGUMENT, f"{field}: path {path} {OUTSIDE}")
    for image in (secret, "escape/secret.png", "escape/missing.png"):
        e = refused(trainer, wire_request(store, roots, ["ok.png", image]))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.details().startswith("dataset pair 1: image: path ") and e.details().endswith(OUTSIDE)
    assert not (roots / "outside" / "ckpt").exists() and not (roots / "allowed" / "ckpt").exists()


def test_the_worker_refuses_a_traversing_artifact_uri(trainer, store_dir, roots):
    store = Store(str(store_dir))
    ref = common_pb2.ArtifactRef(uri="cas://sha256/../../../../etc/passwd")
    e = refused(trainer, wire_request(store, roots, ["ok.png"], dataset=common_pb2.Blob(ref=ref)))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "the digest must be 64 lowercase hex digits" in e.details(), e.details()
