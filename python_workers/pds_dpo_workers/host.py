"""The warm worker host: imports the heavy libraries once and forks one worker per model.

`python -m pds_dpo_workers host` reads one JSON request per line on stdin:

    {"id": "sd", "kind": "image-generator", "argv": ["serve", ...], "env": {...}, "log": "/run/logs/sd.log"}

For each, it imports what that kind loads (PRELOAD; once for every later worker; a worker
whose costly imports no other waiting one shares imports them itself: HEAVY), then forks
a child that becomes `pds_dpo_workers serve` with that argv: its own process and process
group, its stderr appended to `log`, `env` set in its environment. A child is the same
worker a spawned one is: it loads its model, serves, and exits on SIGTERM or when its parent
pid dies. The host answers on stdout, one JSON line per event:

    {"id": "sd", "event": "started", "pid": 1234}
    {"id": "sd", "line": "<a line the worker wrote on its stdout>"}
    {"id": "sd", "event": "exit", "code": 0, "signal": null}

Why forking is safe here: the host runs no torch op (no OpenMP pool exists to be copied),
never touches CUDA, starts no thread and no gRPC object, and configures no logging; its
environment is the one each worker would have got, but for the variables in `env`, which
nothing reads at import time (the orchestrator forks only such workers, src/workers/worker-host.ts).

Nothing outlives the orchestrator: the host exits on stdin EOF (the orchestrator's end,
SIGKILL included) and SIGKILLs its children's process groups first; each child also has
PR_SET_PDEATHSIG, so it dies with the host however the host dies.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import selectors
import signal
import sys
import threading
import time
import traceback

# What each kind's model load imports, imported in the host before its first fork. A module
# that fails to import here is left to the worker, which reports it the way it always does.
_LLAVA = ("transformers.models.llava.modeling_llava", "transformers.models.llava.processing_llava", "transformers.models.clip.image_processing_clip")
PRELOAD: dict[str, tuple[str, ...]] = {
    "image-generator": ("pds_dpo_workers.diffusers_lean", "transformers.models.clip.modeling_clip"),
    "image-scorer": ("transformers.models.clip.modeling_clip", "transformers.models.clip.processing_clip", "transformers.models.clip.image_processing_clip"),
    "responder": _LLAVA,
    "response-scorer": ("transformers.models.llama.modeling_llama",),
    "dpo-trainer": _LLAVA + ("peft", "trl"),
    "evaluator": _LLAVA + ("peft",),
}
# The kind-specific imports that cost seconds (diffusers' pipelines, without bitsandbytes about
# 0.6 s of CPU; peft and trl pull in bitsandbytes and torch's dynamo, about 1.5 s). Waiting
# requests start by stage (their --nice: the running stage's first). A request whose costly
# imports no other waiting request shares is forked at once and imports them itself, on the
# other core, while the host goes on with the rest: the first stage's generator is then ready
# as soon as its own imports allow, not after the host has imported for every other worker.
# Costly imports that several share are imported in the host once, after the requests that
# need no costly import have started.
HEAVY = {"pds_dpo_workers.diffusers_lean": 1, "peft": 1, "trl": 1}
# What every worker imports (the CLI's serve path, torch and transformers' model base classes:
# modeling_utils alone is about 1.7 s of CPU, which every kind's model class pulls in). A worker
# forked at once (see HEAVY) is forked after torch, the first of them: it imports the rest
# itself on the other core while the host imports it for the others.
COMMON = ("torch", "transformers", "transformers.modeling_utils", "pds_dpo_workers.server", "pds_dpo_workers.environment", "pds_dpo_workers.models.spec", "pds_dpo_workers.kinds.base")
BASE = COMMON[:1]

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
# /proc/<pid>/comm of the host and of its children (their cmdline is the host's).
HOST_NAME = b"pds-dpo-host"
WORKER_NAME = b"pds-dpo-worker"


def _prctl(option: int, arg) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the stdin EOF still ends every child
        pass


def _nice_of(argv: list) -> int:
    """The worker's --nice (0 when it has none)."""
    try:
        return int(argv[argv.index("--nice") + 1])
    except (ValueError, IndexError):
        return 0


class Host:
    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.imported: set[str] = set()
        # pid -> (worker id, the read end of its stdout pipe, the unfinished line)
        self.children: dict[int, list] = {}
        self.sel = selectors.DefaultSelector()
        self.wake: tuple[int, int] = (-1, -1)
        # Requests read and not yet started, and the unfinished line after them.
        self.queue: list[dict] = []
        self.pending = b""
        self.stdin_fd = 0

    def emit(self, **fields) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    def costly(self, kind: str) -> set[str]:
        """A kind's costly imports (HEAVY) the host has not imported yet."""
        return {name for name in PRELOAD.get(kind, ()) if name in HEAVY and name not in self.imported}

    def cost(self, kind: str) -> int:
        """What a kind's imports still cost the host (HEAVY's weights of those not imported yet)."""
        return sum(HEAVY[name] for name in self.costly(kind))

    def alone(self, k: int) -> bool:
        """Whether waiting request k has costly imports and no other waiting request shares any:
        it is forked at once and imports them itself (nothing is gained by the host's)."""
        mine = self.costly(str(self.queue[k].get("kind", "")))
        return bool(mine) and not any(mine & self.costly(str(r.get("kind", ""))) for i, r in enumerate(self.queue) if i != k)

    def preload(self, kind: str | None, names: tuple[str, ...] = COMMON) -> None:
        for name in names + (PRELOAD.get(kind, ()) if kind else ()):
            if name in self.imported:
                continue
            self.imported.add(name)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 - the worker imports it again and says why
                print(f"host: preloading {name} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            else:
                print(f"host: imported {name} in {time.perf_counter() - t0:.2f}s ({time.process_time() - c0:.2f}s of CPU)", file=sys.stderr, flush=True)

    def preload_at(self, kind: str | None, nice: int, names: tuple[str, ...] = COMMON) -> None:
        """preload, at the worker's --nice: a later stage's imports yield to the running
        stage's loads, as its worker's own load would (Linux nice is per thread, so only a
        thread's can be lowered and raised back). On a thread of its own while the main thread
        goes on forwarding the started workers' lines (a worker is ready when the orchestrator
        reads that it listens, not when the host has finished importing for the others); it
        has ended before the fork, so the host still forks with no thread but its own."""

        def imports() -> None:
            if nice:
                from pds_dpo_workers.server import lower_this_thread

                lower_this_thread(nice)
            self.preload(kind, names)

        t = threading.Thread(target=imports, name="preload")
        t.start()
        while t.is_alive():
            self._pump(0.05)
        t.join()

    def start(self, req: dict, early: bool = False) -> None:
        """Forks the worker of `req`, its kind's imports done in the host first unless `early`
        (the worker imports what it lacks itself)."""
        wid = str(req["id"])
        try:
            log_fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            self.emit(id=wid, event="exit", code=1, signal=None, error=f"cannot open log {req['log']}: {e.strerror}")
            return
        # What every worker needs at the normal priority; only its kind's own at its --nice.
        if not early:
            self.preload_at(None, 0)
            self.preload_at(req.get("kind", ""), _nice_of(req["argv"]))
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        host_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._child(host_pid, req, log_fd, read_fd, write_fd)  # never returns
        # Set here as well as in the child, so the group exists before anyone signals it.
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already exec'd its own setpgid or has exited
        os.close(write_fd)
        os.close(log_fd)
        os.set_blocking(read_fd, False)
        self.children[pid] = [wid, read_fd, b""]
        self.sel.register(read_fd, selectors.EVENT_READ, pid)
        self.emit(id=wid, event="started", pid=pid)

    def _child(self, host_pid: int, req: dict, log_fd: int, read_fd: int, write_fd: int) -> None:
        code = 1
        try:
            os.setpgid(0, 0)
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            _prctl(PR_SET_NAME, ctypes.c_char_p(WORKER_NAME))
            if os.getppid() != host_pid:  # the host died before PDEATHSIG was set
                os._exit(1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            # Nothing of the host's: its stdin, its other children's pipes, its selector.
            signal.set_wakeup_fd(-1)
            self.sel.close()
            for fd in [*self.wake, *(c[1] for c in self.children.values())]:
                if fd >= 0:
                    os.close(fd)
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(write_fd, 1)
            os.dup2(log_fd, 2)
            for fd in (devnull, write_fd, log_fd):
                os.close(fd)
            os.environ.update(req.get("env") or {})
            sys.argv = ["pds_dpo_workers", *req["argv"]]
            from pds_dpo_workers.cli import main

            code = main(req["argv"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _read(self, pid: int) -> None:
        entry = self.children[pid]
        wid, fd, rest = entry
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        lines = (rest + data).split(b"\n")
        entry[2] = lines.pop() if data else b""
        if not data and lines[-1:] == [b""]:
            lines.pop()
        for line in lines:
            self.emit(id=wid, line=line.decode("utf-8", "replace"))
        if not data:
            self.sel.unregister(fd)
            os.close(fd)
            entry[1] = -1

    def reap(self) -> None:
        for pid in list(self.children):
            wid, fd, _ = self.children[pid]
            try:
                done, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                done, status, usage = pid, 0, None
            if done == 0:
                continue
            if fd >= 0:  # what it wrote before it exited
                while self.children[pid][1] >= 0:
                    self._read(pid)
            del self.children[pid]
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            cpu = round(usage.ru_utime + usage.ru_stime, 3) if usage else None
            self.emit(id=wid, event="exit", code=code, signal=signal.Signals(sig).name if sig else None, cpu_s=cpu)

    def kill_all(self) -> None:
        for pid in self.children:
            for target in (-pid, pid):
                try:
                    os.kill(target, signal.SIGKILL)
                    break
                except OSError:
                    continue

    def run(self, stdin_fd: int = 0) -> int:
        # A self-pipe: SIGCHLD wakes the loop to reap and report an exit.
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # The orchestrator ends it by closing stdin; a terminal's Ctrl-C is its business.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: self._stop(0))
        os.set_blocking(stdin_fd, False)
        self.sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        self.stdin_fd = stdin_fd
        self.emit(event="host_ready", pid=os.getpid())
        while True:
            self._pump(1.0)
            if self.queue:
                self._serve()

    def _pump(self, timeout: float) -> None:
        """One turn of the loop: requests read into the queue, the workers' lines forwarded, exits reaped."""
        for key, _ in self.sel.select(timeout=timeout):
            if key.data == "wake":
                try:
                    os.read(self.wake[0], 4096)
                except BlockingIOError:
                    pass
            elif key.data == "stdin":
                self._receive(self.stdin_fd)
            else:
                self._read(key.data)
        self.reap()

    def _parse(self, line: bytes) -> dict | None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("argv"), list) or "id" not in req or "log" not in req:
                raise ValueError("a request needs id, argv and log")
        except ValueError as e:
            print(f"host: bad request ({e}): {line[:200]!r}", file=sys.stderr, flush=True)
            return None
        return req

    def _receive(self, stdin_fd: int) -> None:
        """The requests that have arrived, into the queue (never waits); stdin's end stops the host."""
        while True:
            try:
                data = os.read(stdin_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self._stop(0)
            self.pending += data
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                req = self._parse(line) if line.strip() else None
                if req is not None:
                    self.queue.append(req)

    def _order(self, k: int) -> tuple:
        """Which waiting request starts next: by stage; in a stage, those forked at once
        (alone), then those that need no costly import, then the rest cheapest first; ties in
        arrival order."""
        req = self.queue[k]
        cost = self.cost(str(req.get("kind", "")))
        return (_nice_of(req["argv"]), 0 if self.alone(k) else 1 if cost == 0 else 2, cost, k)

    def _serve(self) -> None:
        """Starts the waiting requests (_order). torch's import comes first: by its end a run's
        other requests have arrived too."""
        self.preload_at(None, 0, BASE)
        while self.queue:
            k = min(range(len(self.queue)), key=self._order)
            early = self.alone(k)
            self.start(self.queue.pop(k), early)

    def _stop(self, code: int) -> int:
        self.kill_all()
        sys.stdout.flush()
        os._exit(code)


def main() -> int:
    # Its own group: a terminal's signals go to the orchestrator, which stops the workers.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _prctl(PR_SET_NAME, ctypes.c_char_p(HOST_NAME))
    return Host().run()
