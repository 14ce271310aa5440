"""Process lifecycle: a load that never finishes, and the death of the parent process."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pds_dpo_workers.proto import worker_pb2, worker_pb2_grpc
from worker_harness import PYTHON, SCORER_MODEL, start_worker, worker_env


def test_hung_load_never_serves_and_sigterm_still_exits_0(store_dir, tmp_path):
    # Reading model_index.json blocks forever: a FIFO with no writer, like a hung mount.
    model_dir = tmp_path / "hung-model"
    model_dir.mkdir()
    os.mkfifo(model_dir / "model_index.json")
    model = {"source": "MODEL_SOURCE_PATH", "id": "hung", "path": str(model_dir)}
    worker = start_worker("image-generator", model, store_dir, tmp_path, wait_serving=False)
    writer = None
    try:
        # Proof that the load really reached the FIFO: a non-blocking open for writing
        # fails (ENXIO) until a reader has it open. The write end then stays open and
        # silent, so the worker's read keeps blocking until it is gone.
        deadline = time.monotonic() + 60
        while writer is None:
            try:
                writer = os.open(model_dir / "model_index.json", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline, f"the load never opened the FIFO\n{worker.log_tail()}"
                assert worker.process.poll() is None, worker.log_tail()
                time.sleep(0.1)
        health = health_pb2_grpc.HealthStub(worker.channel)
        describe = worker_pb2_grpc.WorkerServiceStub(worker.channel)
        # Watch it for a while: it must stay alive and NOT_SERVING the whole time.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for service in ("", "pdsdpo.v1.ImageGeneratorService"):
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING, service
            with pytest.raises(grpc.RpcError) as err:
                describe.Describe(worker_pb2.DescribeRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert worker.process.poll() is None, worker.log_tail()
            time.sleep(0.5)
        # Listening, and no more than the load's steps ("loading" lines) since.
        assert [e.get("event") for e in worker.events if e.get("event") != "loading"] == ["listening"]

        t0 = time.monotonic()
        worker.process.terminate()
        rc = worker.process.wait(timeout=10)
        assert time.monotonic() - t0 < 10
    finally:
        worker.terminate(timeout=5)
        if writer is not None:
            os.close(writer)
    assert rc == 0, worker.log_tail()


def test_exits_when_the_parent_dies(store_dir, tmp_path):
    parent = subprocess.Popen(["sleep", "1000"])
    try:
        worker = start_worker("image-scorer", SCORER_MODEL, store_dir, tmp_path, parent_pid=parent.pid)
        try:
            # Still serving while the parent lives (the watch is not a timer).
            time.sleep(1.5)
            assert worker.process.poll() is None, worker.log_tail()
            parent.kill()
            # Reap it: a zombie still answers kill(pid, 0) and would look alive.
            parent.wait(timeout=5)
            rc = worker.process.wait(timeout=10)
        finally:
            worker.terminate(timeout=5)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert rc == 0, worker.log_tail()
    assert "parent process" in worker.log_path.read_text()


def _nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_the_load_runs_at_the_lower_priority_and_calls_at_the_normal_one():
    from pds_dpo_workers.proto import common_pb2
    from pds_dpo_workers.server import ServeOptions, _load_and_describe

    seen: dict[str, int] = {}

    class Kind:
        def load(self):
            seen["load"] = _nice_of(threading.get_native_id())
            child = threading.Thread(target=lambda: seen.__setitem__("child", _nice_of(threading.get_native_id())))
            child.start()
            child.join()
            return common_pb2.LoadedModel(model_class="K")

    opts = ServeOptions(prepare=lambda: seen.__setitem__("prepare", _nice_of(threading.get_native_id())), load_nice=3)
    loader = threading.Thread(target=lambda: seen.__setitem__("model", _load_and_describe(Kind(), opts).model_class))
    loader.start()
    loader.join()
    base = _nice_of(threading.get_native_id())
    # prepare (torch's import) and the load, and threads the load starts, at +3; this thread not.
    assert seen == {"prepare": base + 3, "load": base + 3, "child": base + 3, "model": "K"}


def _thread_name(pid: int, tid: str) -> str:
    # A thread may end between the listing and the read (the load thread, just after SERVING).
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_a_worker_with_its_own_group_stays_in_our_session_and_serves_at_normal_priority(store_dir, tmp_path):
    worker = start_worker("image-scorer", SCORER_MODEL, store_dir, tmp_path, extra_args=("--nice", "7", "--own-process-group"))
    try:
        pid = worker.process.pid
        assert os.getpgid(pid) == pid
        assert os.getsid(pid) == os.getsid(0)
        # Loaded: the thread that serves calls (and starts each batch's thread) and gRPC's own
        # threads run at our priority. (Threads the libraries started during the load keep +7.)
        base = _nice_of(threading.get_native_id())
        assert _nice_of(pid) == base
        grpc_threads = [t for t in os.listdir(f"/proc/{pid}/task") if _thread_name(pid, t).startswith(("grpc", "event_engine"))]
        assert grpc_threads
        for tid in grpc_threads:
            assert _nice_of(int(tid)) == base, tid
    finally:
        worker.terminate(timeout=5)


def test_nice_out_of_range_is_one_usage_error(tmp_path):
    r = subprocess.run(
        [PYTHON, "-m", "pds_dpo_workers", "serve", "--kind", "image-scorer", "--model", "{}", "--nice", "25"],
        capture_output=True, text=True, env=worker_env(), timeout=60,
    )
    assert r.returncode == 2
    assert "--nice" in r.stderr and "Traceback" not in r.stderr
