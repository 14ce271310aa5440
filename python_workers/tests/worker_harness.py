"""Start real worker processes and talk to them over real gRPC.

Shared by conftest.py (fixtures) and the tests that need a dedicated worker of their own.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

# python_workers/tests/worker_harness.py -> the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

GENERATOR_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "sd"}
SCORER_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "clip-scorer"}
RESPONDER_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "llava"}
# Its generation config suppresses every token but end-of-sequence: it always answers "".
MUTE_RESPONDER_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "llava-mute"}
REWARD_SCORER_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "reward", "options": {"type": "sequence-classification"}}
JUDGE_SCORER_MODEL = {"source": "MODEL_SOURCE_TINY", "id": "llava", "options": {"type": "vlm-judge"}}

# Generous: 2 shared cores, and the first worker of a session also builds its tiny model.
LISTENING_TIMEOUT_S = 60.0
SERVING_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
# Match the worker's own 64 MiB limit so inline batches of PNGs fit.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerStartError(AssertionError):
    pass


@dataclass
class Worker:
    kind: str
    process: subprocess.Popen
    store: Path
    log_path: Path
    address: str = ""
    listening: dict = field(default_factory=dict)
    # Every stdout line, parsed as JSON when it is JSON (else {"raw": line}).
    events: list = field(default_factory=list)
    _lines: queue.Queue = field(default_factory=queue.Queue)
    _channel: grpc.Channel | None = None
    _pump_thread: threading.Thread | None = None

    # -- stdout protocol -------------------------------------------------------------------

    def _pump(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"raw": line}
            self.events.append(event)
            self._lines.put(event)
        self._lines.put(None)  # EOF

    def wait_event(self, name: str, timeout: float) -> dict:
        """The next stdout event named `name`; fails on timeout, EOF or load_failed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerStartError(f"{self.kind}: no {name!r} event within {timeout:.0f}s\n{self.log_tail()}")
            try:
                event = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                rc = self.process.wait(timeout=5)
                raise WorkerStartError(f"{self.kind}: stdout closed (exit {rc}) before {name!r}\n{self.log_tail()}")
            if event.get("event") == name:
                return event
            if event.get("event") == "load_failed" and name != "load_failed":
                raise WorkerStartError(f"{self.kind}: load_failed {event}\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "--- worker stderr (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- gRPC ---------------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        return self._channel

    # -- shutdown -----------------------------------------------------------------------------

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then wait; returns the exit code, or None if it had to be killed."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            # The process is gone, so its stdout is at EOF: let the reader finish first.
            if self._pump_thread is not None:
                self._pump_thread.join(timeout=5)
            if self.process.stdout and (self._pump_thread is None or not self._pump_thread.is_alive()):
                self.process.stdout.close()


def start_worker(
    kind: str,
    model: dict,
    store: Path,
    log_dir: Path,
    *,
    parent_pid: int | None = None,
    wait_serving: bool = True,
    extra_args: tuple[str, ...] = (),
) -> Worker:
    """Start `python -m pds_dpo_workers serve`, wait for "listening" (and "serving")."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{kind}-{time.monotonic_ns()}.log"
    cmd = [
        PYTHON, "-m", "pds_dpo_workers", "serve",
        "--kind", kind,
        "--model", json.dumps(model),
        "--store", str(store),
        "--port", "0",
        "--cpu-threads", "1",
        *extra_args,
    ]  # fmt: skip
    if parent_pid is not None:
        cmd += ["--parent-pid", str(parent_pid)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=worker_env())
    worker = Worker(kind=kind, process=proc, store=store, log_path=log_path)
    worker._pump_thread = threading.Thread(target=worker._pump, name=f"stdout-{kind}", daemon=True)
    worker._pump_thread.start()
    try:
        worker.listening = worker.wait_event("listening", LISTENING_TIMEOUT_S)
        worker.address = worker.listening["address"]
        if wait_serving:
            worker.wait_event("serving", SERVING_TIMEOUT_S)
    except BaseException:
        worker.terminate(timeout=5)
        raise
    return worker


def expect_load_failure(kind: str, model: dict, store: Path, log_dir: Path, *, extra_args: tuple[str, ...] = ()) -> tuple[dict, int, Worker]:
    """Start a worker whose load must fail: (its load_failed event, its exit code, the worker).

    The worker must announce "listening", then "load_failed" (never "serving"), and exit; it may
    tell its load's steps ("loading") between them.
    """
    worker = start_worker(kind, model, store, log_dir, wait_serving=False, extra_args=extra_args)
    try:
        event = worker.wait_event("load_failed", SERVING_TIMEOUT_S)
        rc = worker.process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        worker.terminate(timeout=5)
    # The reader thread has seen EOF by now, so `events` is the whole stdout ("loading" lines
    # tell the load's steps).
    assert [e.get("event") for e in worker.events if e.get("event") != "loading"] == ["listening", "load_failed"], worker.events
    return event, rc, worker


def png_bytes(seed: int = 0, size: int = 48) -> bytes:
    """A deterministic random RGB PNG."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def pairs_dataset(root: Path, n: int = 4, seed: int = 0) -> bytes:
    """n preference pairs in the export's format (pairs.jsonl), their images written under root."""
    (root / "images").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        (root / "images" / f"p{i}.png").write_bytes(png_bytes(seed=seed + i))
        lines.append(
            json.dumps(
                {
                    "id": f"p{i}",
                    "images": [f"images/p{i}.png"],
                    "prompt": [{"role": "user", "content": "What is in the picture?"}],
                    "chosen": [{"role": "assistant", "content": "a cat on a table"}],
                    "rejected": [{"role": "assistant", "content": "a red car at night"}],
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def allow_tmp(tmp_path_factory) -> tuple[str, ...]:
    """The worker's --allow-root for the session's temporary directory (the tests' image roots)."""
    return ("--allow-root", str(tmp_path_factory.getbasetemp()))


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (zombies have none)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found

