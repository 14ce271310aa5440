"""The warm worker host (host.py): forked workers are separate workers, and none outlives the host.

One host serves every test here (its imports are the cost): two scorers forked with different
tokens in their environment, one whose model cannot load; then one is killed, then the host.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time

import grpc
import pytest

from pds_dpo_workers.proto import worker_pb2, worker_pb2_grpc
from worker_harness import PYTHON, SCORER_MODEL, worker_env

TIMEOUT_S = 180.0


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class HostProcess:
    def __init__(self, log_dir) -> None:
        self.log_dir = log_dir
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "pds_dpo_workers", "host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log_dir / "host.log", "wb"),
            env=worker_env(),
        )
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            self.events.put(json.loads(raw))
        self.events.put(None)

    def start(self, wid: str, store, model: dict, env: dict[str, str]) -> None:
        argv = ["serve", "--kind", "image-scorer", "--model", json.dumps(model), "--store", str(store), "--port", "0",
                "--cpu-threads", "1", "--own-process-group", "--token-env", "PDS_DPO_RUN_TOKEN"]  # fmt: skip
        req = {"id": wid, "kind": "image-scorer", "argv": argv, "env": env, "log": str(self.log_dir / f"{wid}.log")}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()

    def until(self, done, timeout: float = TIMEOUT_S) -> list[dict]:
        """Events up to (and including) the first for which done(event) holds."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events: {seen}"
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            assert event is not None, f"the host's stdout closed; events: {seen}"
            seen.append(event)
            if done(event):
                return seen


def _line(event: dict) -> dict:
    return json.loads(event["line"]) if "line" in event else {}


def _describe(address: str, token: str):
    with grpc.insecure_channel(address) as channel:
        return worker_pb2_grpc.WorkerServiceStub(channel).Describe(worker_pb2.DescribeRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=30)


@pytest.fixture(scope="module")
def host(store_dir, tmp_path_factory):
    h = HostProcess(tmp_path_factory.mktemp("host"))
    yield h
    if h.proc.poll() is None:
        h.proc.kill()
        h.proc.wait()


@pytest.fixture(scope="module")
def workers(host, store_dir):
    """Two serving scorers ("a", "b": id -> pid and address) and the exit of one that failed to load."""
    host.start("a", store_dir, SCORER_MODEL, {"PDS_DPO_RUN_TOKEN": "token-a"})
    host.start("b", store_dir, SCORER_MODEL, {"PDS_DPO_RUN_TOKEN": "token-b"})
    host.start("broken", store_dir, {"source": "MODEL_SOURCE_TINY", "id": "no-such-model"}, {"PDS_DPO_RUN_TOKEN": "token-c"})
    pids, addresses, serving, broken = {}, {}, set(), []

    def done(e: dict) -> bool:
        if e.get("event") == "started":
            pids[e["id"]] = e["pid"]
        if _line(e).get("event") == "listening":
            addresses[e["id"]] = _line(e)["address"]
        if _line(e).get("event") == "serving":
            serving.add(e["id"])
        if e.get("id") == "broken":
            broken.append(e)
        return serving == {"a", "b"} and broken[-1:] and broken[-1].get("event") == "exit"

    host.until(done)
    return pids, addresses, broken


def test_forked_workers_are_processes_of_their_own_with_their_own_environment(host, workers):
    pids, addresses, _ = workers
    assert len(set(pids.values())) == 3 and host.proc.pid not in pids.values()
    for wid in ("a", "b"):
        pid = pids[wid]
        # Its own process group (what the orchestrator signals), a child of the host, named for ps.
        assert os.getpgid(pid) == pid
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == host.proc.pid
        with open(f"/proc/{pid}/comm") as f:
            assert f.read().strip() == "pds-dpo-worker"
        assert _describe(addresses[wid], f"token-{wid}").info.pid == pid
    # Each one reads its own token from its own environment: the other's is refused.
    with pytest.raises(grpc.RpcError) as err:
        _describe(addresses["a"], "token-b")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_worker_that_cannot_load_says_why_and_exits_3(workers, tmp_path):
    _, _, broken = workers
    failed = [_line(e) for e in broken if _line(e).get("event") == "load_failed"]
    assert len(failed) == 1 and "unknown tiny model 'no-such-model'" in failed[0]["message"]
    assert broken[-1]["event"] == "exit" and broken[-1]["code"] == 3 and broken[-1]["signal"] is None
    assert broken[-1]["cpu_s"] >= 0


def test_a_killed_worker_is_reported_and_the_others_keep_serving(host, workers):
    pids, addresses, _ = workers
    os.killpg(pids["a"], signal.SIGKILL)
    exits = host.until(lambda e: e.get("event") == "exit" and e.get("id") == "a", timeout=30)
    assert exits[-1]["signal"] == "SIGKILL" and exits[-1]["code"] is None
    assert _describe(addresses["b"], "token-b").info.pid == pids["b"]


def test_a_killed_host_takes_its_workers_with_it(host, workers):
    pids, _, _ = workers
    assert _alive(pids["b"])
    host.proc.kill()
    host.proc.wait()
    deadline = time.monotonic() + 20
    while _alive(pids["b"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pids["b"])


def test_waiting_requests_start_by_stage_and_an_unshared_costly_import_is_the_workers_own(tmp_path):
    # In-process, with the imports and forks recorded instead of done: the order is the point.
    from pds_dpo_workers import host as host_module

    h = host_module.Host(out=open(os.devnull, "w"))
    done: list[str] = []

    def preload_at(kind, nice, names=host_module.COMMON):
        # The common imports, recorded when some are new (what the host imports only once).
        if kind is None and not set(names) <= h.imported:
            done.append(f"preload {' '.join(n for n in names if n not in h.imported)[:30]}")
            h.imported.update(names)

    h.preload_at = preload_at  # type: ignore[method-assign]
    h.start = lambda req, early=False: (  # type: ignore[method-assign]
        done.append(req["id"] + (" (imports its own)" if early else "")),
        None if early else h.imported.update(host_module.PRELOAD[req["kind"]]),
    )
    r, w = os.pipe()
    # id: kind, --nice (the stage: 0 the first)
    kinds = {"sd": ("image-generator", 0), "pick": ("image-scorer", 0), "dpo": ("dpo-trainer", 19), "a": ("responder", 10), "rm": ("response-scorer", 10), "pope": ("evaluator", 19)}
    lines = [json.dumps({"id": i, "kind": k, "argv": ["serve", "--nice", str(n)], "log": str(tmp_path / i)}).encode() + b"\n" for i, (k, n) in kinds.items()]
    os.write(w, b"".join(lines))
    os.set_blocking(r, False)
    h._receive(r)
    h._serve()
    # torch first; then by stage. The first stage's generator needs diffusers' pipelines, which
    # no other request needs: it is forked at once and imports the rest itself, while the host
    # imports the common rest (in start, not recorded here) and starts the scorer. The last
    # stage shares peft: the host imports it for the evaluator (the cheaper); the trainer's trl
    # is then its own.
    assert done == ["preload torch", "sd (imports its own)", "pick", "a", "rm", "pope", "dpo (imports its own)"]
    os.close(w)
    os.close(r)
