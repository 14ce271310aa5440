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

    def loaded(self) -> bool:
        """Past its load: serving, failed, or gone."""
        return self.process.poll() is not None or any(e.get("event") in ("serving", "load_failed") for e in self.events)

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
    return _finish_load_failure(start_worker(kind, model, store, log_dir, wait_serving=False, extra_args=extra_args))


def _finish_load_failure(worker: Worker) -> tuple[dict, int, Worker]:
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


def allow_tmp(basetemp: Path) -> tuple[str, ...]:
    """The worker's --allow-root for the session's temporary directory (the tests' image roots)."""
    return ("--allow-root", str(basetemp))


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



# -- workers started ahead of their tests ------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """What start_worker needs to start one worker (the store and log directory are the session's)."""

    kind: str
    model_json: str
    extra_args: tuple[str, ...] = ()

    @staticmethod
    def of(kind: str, model: dict, extra_args: tuple[str, ...] = ()) -> "WorkerSpec":
        return WorkerSpec(kind, json.dumps(model, sort_keys=True), tuple(extra_args))


@dataclass(frozen=True)
class CommandSpec:
    """A process to start ahead (a build a test waits for): its argv and the variables added to worker_env()."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def start(self) -> subprocess.Popen:
        env = worker_env() | dict(self.env)
        return subprocess.Popen(list(self.argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)


def _busy(started) -> bool:
    """A prestarted worker still loading, or a prestarted command still running."""
    return started.poll() is None if isinstance(started, subprocess.Popen) else not started.loaded()


def prestart(specs):
    """Marks a fixture whose workers Prestarter may start ahead of it: `specs(param, basetemp)`
    names them (param: the fixture's parameter, if it has one; basetemp: the session's temporary
    directory) in the order the fixture takes them."""

    def mark(fixture_function):
        fixture_function.prestart_specs = specs
        return fixture_function

    return mark


class Prestarter:
    """Starts the session's workers ahead of the tests that take them, in the order they will.

    A test that waits for its worker's load (seconds of torch import and model load) leaves the
    second core idle, and most of the suite's time is such loads: one thread starts the next
    workers while earlier tests run, at most `loading` of them loading at once and at most
    `ahead` waiting unclaimed (each holds a few hundred MB). take() returns the prestarted
    worker once it serves, or starts one there and then if none was planned.
    """

    def __init__(self, store: Path, log_dir: Path, *, loading: int = 2, ahead: int = 3) -> None:
        self.store, self.log_dir, self.loading, self.ahead = store, log_dir, loading, ahead
        self._plan: list[WorkerSpec] = []
        # Per spec: started workers not yet taken, in start order (a spec may be planned twice).
        self._ready: dict[WorkerSpec, list[Worker]] = {}
        self._taken: dict[WorkerSpec, int] = {}
        self._errors: dict[WorkerSpec, list[BaseException]] = {}
        self._starting: WorkerSpec | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def plan(self, specs: list[WorkerSpec]) -> None:
        self._plan = list(specs)
        if self._plan:
            self._thread = threading.Thread(target=self._run, name="prestarter", daemon=True)
            self._thread.start()

    def _loading_now(self) -> int:
        return sum(1 for ws in self._ready.values() for w in ws if _busy(w))

    def _waiting_now(self) -> int:
        return sum(len(ws) for ws in self._ready.values())

    def _run(self) -> None:
        seen: dict[WorkerSpec, int] = {}
        for spec in self._plan:
            n = seen[spec] = seen.get(spec, 0) + 1
            with self._cond:
                while not self._closed and (self._loading_now() >= self.loading or self._waiting_now() >= self.ahead):
                    self._cond.wait(timeout=0.2)
                # Taken already (its test could not wait and started it itself): skip it.
                if self._closed or self._taken.get(spec, 0) >= n:
                    continue
                self._starting = spec
            try:
                worker = self._start(spec)
            except BaseException as e:  # noqa: BLE001 - raised by take()
                with self._cond:
                    self._errors.setdefault(spec, []).append(e)
                    self._starting = None
                    self._cond.notify_all()
                continue
            with self._cond:
                self._starting = None
                if self._closed:
                    _stop(worker)
                    continue
                self._ready.setdefault(spec, []).append(worker)
                self._cond.notify_all()

    def take(self, spec: WorkerSpec) -> Worker:
        """The next worker of `spec`, serving: the prestarted one, else one started now."""
        worker = self._claim(spec)
        try:
            worker.wait_event("serving", SERVING_TIMEOUT_S)
        except BaseException:
            worker.terminate(timeout=5)
            raise
        return worker

    def process(self, spec: CommandSpec) -> subprocess.Popen:
        """The process of `spec`: the prestarted one (maybe finished by now), else one started now."""
        return self._claim(spec)

    def _start(self, spec):
        if isinstance(spec, CommandSpec):
            return spec.start()
        return start_worker(spec.kind, json.loads(spec.model_json), self.store, self.log_dir, wait_serving=False, extra_args=spec.extra_args)

    def load_failure(self, spec: WorkerSpec) -> tuple[dict, int, Worker]:
        """expect_load_failure of the next worker of `spec` (prestarted, else started now)."""
        return _finish_load_failure(self._claim(spec))

    def _claim(self, spec: WorkerSpec) -> Worker:
        """The next prestarted worker of `spec`, or one started now (listening, maybe loading)."""
        with self._cond:
            self._taken[spec] = self._taken.get(spec, 0) + 1
            while self._starting == spec:  # its start is under way: wait for "listening"
                self._cond.wait(timeout=0.2)
            worker = self._ready[spec].pop(0) if self._ready.get(spec) else None
            error = self._errors[spec].pop(0) if worker is None and self._errors.get(spec) else None
            self._cond.notify_all()
        if error is not None:
            raise error
        if worker is None:
            worker = self._start(spec)
        return worker

    def close(self) -> None:
        """Stops the thread and every prestarted worker that no test took."""
        with self._cond:
            self._closed = True
            left = [w for ws in self._ready.values() for w in ws]
            self._ready.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=LISTENING_TIMEOUT_S)
        for w in left:
            _stop(w)


def _stop(started) -> None:
    if isinstance(started, subprocess.Popen):
        started.kill()
        started.communicate()
    else:
        started.terminate(timeout=5)
