"""Tiny models, the content-addressed store, model specs and CLI errors (no workers)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from pds_dpo_workers.errors import ArtifactError, InvalidModelSpec
from pds_dpo_workers.models import tiny
from pds_dpo_workers.models.spec import list_files, parse_spec
from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.store import Store, sha256_bytes
from worker_harness import PYTHON, CommandSpec, prestart, worker_env

# -- tiny models ------------------------------------------------------------------------------

BUILD = textwrap.dedent(
    """
    import json, sys
    from pds_dpo_workers.models import tiny
    print(json.dumps({name: tiny.ensure_tiny(sys.argv[1], name, 0) for name in sorted(tiny.BUILDERS)}))
    """
)


def builds(basetemp) -> list[CommandSpec]:
    # Roots of their own under the session's temporary directory (the builds start before this module's tests).
    return [
        CommandSpec(
            (PYTHON, "-c", BUILD, str(basetemp / f"tiny-root-{hash_seed}")),
            # Each its own tiny cache (not the session's), under its root.
            (("PYTHONHASHSEED", hash_seed), ("OMP_NUM_THREADS", "1"), (tiny.TINY_CACHE_ENV, str(basetemp / f"tiny-root-{hash_seed}" / "models" / "tiny"))),
        )
        for hash_seed in ("1", "2")
    ]


@pytest.fixture(scope="module")
@prestart(lambda param, basetemp: builds(basetemp))
def two_builds(prestarter, tmp_path_factory):
    """Every tiny model built into two cache roots, by two processes with different hash seeds.

    Separate processes (started ahead by the prestarter, side by side) so that nothing
    in-process (a seeded RNG, a warm cache) can hide a build that depends on hash order or on
    the machine's state.
    """
    procs = [prestarter.process(spec) for spec in builds(tmp_path_factory.getbasetemp())]
    dirs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        dirs.append(json.loads(out.strip().splitlines()[-1]))
    return dirs


@pytest.mark.parametrize("name", sorted(tiny.BUILDERS))
def test_tiny_build_is_reproducible(two_builds, name):
    a, b = (d[name] for d in two_builds)
    assert a != b  # two different cache roots
    files_a = [(f.path, f.sha256, f.bytes) for f in list_files(a)]
    files_b = [(f.path, f.sha256, f.bytes) for f in list_files(b)]
    # Weights as safetensors, or as a torch.save checkpoint where the real model ships one
    # (ImageReward.pt; torch.save is byte-reproducible: fixed zip times, a content-derived id).
    assert any(p.endswith((".safetensors", ".pt")) for p, _, _ in files_a), files_a
    assert files_a == files_b


def test_ensure_tiny_reuses_the_cached_build(two_builds, monkeypatch):
    directory = two_builds[0]["clip-scorer"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(directory)))
    monkeypatch.setenv(tiny.TINY_CACHE_ENV, os.path.dirname(directory))
    before = os.stat(directory).st_mtime_ns
    assert tiny.ensure_tiny(root, "clip-scorer", 0) == directory
    assert os.stat(directory).st_mtime_ns == before
    # No half-built temporary directories are left behind.
    assert not [n for n in os.listdir(os.path.dirname(directory)) if n.startswith(".build-")]


def test_ensure_tiny_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv(tiny.TINY_CACHE_ENV, str(tmp_path / "models" / "tiny"))
    with pytest.raises(InvalidModelSpec, match="nope"):
        tiny.ensure_tiny(str(tmp_path), "nope", 0)
    assert not (tmp_path / "models").exists()  # failed before building anything


# -- the store --------------------------------------------------------------------------------


def test_store_put_and_read_ref_round_trip(tmp_path):
    store = Store(str(tmp_path))
    data = b"\x89PNG fake image bytes"
    ref = store.put(data, "image/png")
    digest = sha256_bytes(data)
    assert ref.uri == f"cas://sha256/{digest}"
    assert (ref.sha256, ref.bytes, ref.media_type) == (digest, len(data), "image/png")
    assert (tmp_path / "cas" / "sha256" / digest[:2] / digest).read_bytes() == data
    assert store.read_ref(ref) == data
    # Same bytes, same place; no temporary files left in the shard directory.
    assert store.put(data, "image/png") == ref
    assert os.listdir(tmp_path / "cas" / "sha256" / digest[:2]) == [digest]


def test_store_read_ref_detects_changed_bytes(tmp_path):
    store = Store(str(tmp_path))
    ref = store.put(b"original", "application/octet-stream")
    path = store.path_of(ref.sha256)
    with open(path, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(ArtifactError, match="sha256"):
        store.read_ref(ref)


def test_store_read_ref_missing_and_foreign_uris(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(ArtifactError, match="not in the store"):
        store.read_ref(common_pb2.ArtifactRef(uri="cas://sha256/" + "0" * 64))
    with pytest.raises(ArtifactError, match="unsupported"):
        store.read_ref(common_pb2.ArtifactRef(uri="file:///etc/passwd"))


# -- model specs ------------------------------------------------------------------------------


def test_parse_spec_valid():
    spec = parse_spec('{"source":"MODEL_SOURCE_TINY","id":"sd","seed":"5","options":{"type":"clip"}}')
    assert (spec.source, spec.id, spec.seed, dict(spec.options)) == (common_pb2.MODEL_SOURCE_TINY, "sd", 5, {"type": "clip"})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param('{"id":"sd"}', id="no-source"),
        pytest.param('{"source":"MODEL_SOURCE_TINY"}', id="tiny-without-id"),
        pytest.param('{"source":"MODEL_SOURCE_PATH"}', id="path-without-path"),
        pytest.param('{"source":"MODEL_SOURCE_NOPE","id":"sd"}', id="unknown-source"),
        pytest.param('{"source":"MODEL_SOURCE_TINY","id":"sd","colour":"red"}', id="unknown-field"),
    ],
)
def test_parse_spec_errors(text):
    with pytest.raises(InvalidModelSpec):
        parse_spec(text)


# -- CLI usage errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, model, expect",
    [
        pytest.param("nope", '{"source":"MODEL_SOURCE_TINY","id":"sd"}', "nope", id="unknown-kind"),
        pytest.param("image-generator", "not json", "model spec", id="model-not-json"),
    ],
)
def test_cli_usage_error_exits_2_with_one_line(tmp_path, kind, model, expect):
    proc = subprocess.run(
        [PYTHON, "-m", "pds_dpo_workers", "serve", "--kind", kind, "--model", model, "--store", str(tmp_path), "--port", "0", "--cpu-threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=worker_env() | {tiny.TINY_CACHE_ENV: str(tmp_path / "models" / "tiny")},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("pds_dpo_workers: ") and expect in lines[0], lines[0]
    assert proc.stdout == ""  # never announced "listening"
    assert not (tmp_path / "models").exists()  # nothing was built


def test_tiny_models_are_built_once_per_machine_unless_a_cache_is_named(tmp_path, monkeypatch):
    # The variable (tests, containers: the store) first; else the user's cache, as the hub's holds real weights.
    monkeypatch.setenv(tiny.TINY_CACHE_ENV, str(tmp_path / "named"))
    assert tiny.tiny_dir("/store", "llava", 3) == str(tmp_path / "named" / f"llava-seed3-v{tiny.BUILDER_VERSION}")
    monkeypatch.delenv(tiny.TINY_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tiny.tiny_root("/store") == str(tmp_path / "xdg" / "pds-dpo" / "tiny")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tiny.tiny_root("/store") == str(tmp_path / "home" / ".cache" / "pds-dpo" / "tiny")
    # No home to cache in: the store.
    monkeypatch.delenv("HOME")
    monkeypatch.setattr(tiny.os.path, "expanduser", lambda p: p)
    assert tiny.tiny_root("/store") == "/store/models/tiny"
