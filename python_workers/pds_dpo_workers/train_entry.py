"""One rank of distributed DPO training, started by the trainer worker under accelerate.

`accelerate launch` (torchrun) starts this module once per rank, each in a session of its
own. The process forks at once, before torch is imported: the child trains (run_training,
the code of the single-process path) and the parent stays a small supervisor that waits
for it, so the worker learns how every rank ended, a SIGKILL included, which a rank cannot
report itself. Both write protocol lines to stdout, the pipe the worker reads:

    @@pdsdpo:start:<rank>:<pid>,<pgid>   the supervisor, once the trainer runs (pid: the trainer)
    @@pdsdpo:event:<rank>:<base64>       a TrainResponse (rank 0 only)
    @@pdsdpo:error:<rank>:<base64 JSON>  the exception the trainer failed with ({type, message})
    @@pdsdpo:exit:<rank>:<pid>,<status>  the supervisor, when the trainer has ended
                                         (status: its exit code, or -N for signal N)

Each line is one write() of less than PIPE_BUF, so lines of two ranks never mix. The
trainer's own stdout goes to stderr (the worker's log), its log lines name its rank.

SIGTERM to the trainer stops training at the next step boundary of all ranks (they agree
on it) and saves a checkpoint. The supervisor ignores SIGTERM (torchrun signals the whole
group), and if the worker process dies it sends the trainer SIGTERM (then SIGKILL after
ORPHAN_KILL_S); the trainer dies with its supervisor (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import sys
import time

MARKER = b"@@pdsdpo:"
_LINE = re.compile(rb"@@pdsdpo:(start|event|error|exit):(\d+):([A-Za-z0-9+/=,\-]*)\s*$")
# How long a trainer whose worker died may take to reach a step boundary and save.
ORPHAN_KILL_S = 300.0
_POLL_S = 0.1


def encode(kind: str, rank: int, payload: str) -> bytes:
    return MARKER + f"{kind}:{rank}:{payload}\n".encode()


def parse(line: bytes) -> tuple[bytes, tuple[str, int, str] | None]:
    """Pure: (the text before a protocol line's marker, (kind, rank, payload) or None).

    A line without the marker is all text; so is one whose protocol part is malformed.
    """
    at = line.find(MARKER)
    if at < 0:
        return line, None
    m = _LINE.match(line, at)
    if not m:
        return line, None
    return line[:at], (m.group(1).decode(), int(m.group(2)), m.group(3).decode())


def decode_error(payload: str) -> dict:
    return json.loads(base64.b64decode(payload))


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # the worker is gone (EPIPE): nobody to tell


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state follows the parenthesised command name.
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _die_with_parent() -> None:
    """The trainer gets SIGKILL when its supervisor dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def supervise(child: int, rank: int, worker_pid: int) -> int:
    """The parent: report the trainer, wait for it, report how it ended, end the same way."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _write(1, encode("start", rank, f"{child},{os.getpgid(0)}"))
    orphaned_at = None
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            break
        if worker_pid and orphaned_at is None and not _alive(worker_pid):
            orphaned_at = time.monotonic()
            os.kill(child, signal.SIGTERM)
        if orphaned_at is not None and time.monotonic() - orphaned_at > ORPHAN_KILL_S:
            os.kill(child, signal.SIGKILL)
        time.sleep(_POLL_S)
    code = os.waitstatus_to_exitcode(status)
    _write(1, encode("exit", rank, f"{child},{code}"))
    if code < 0:
        # End as the trainer did, so torchrun reports the same signal (SIGKILL has no handler to reset).
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code  # a signal whose default action is not to end the process
    return code


def train(args, rank: int, events_fd: int) -> int:
    """The child: one rank of training."""
    import logging
    import threading

    logging.basicConfig(stream=sys.stderr, level="WARNING", format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    logging.getLogger("pds_dpo_workers").setLevel("INFO")
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    log = logging.getLogger("pds_dpo_workers.train_entry")
    try:
        from pds_dpo_workers.environment import make_deterministic
        from pds_dpo_workers.kinds.base import WorkerContext
        from pds_dpo_workers.kinds.dpo_trainer import run_training
        from pds_dpo_workers.models.spec import parse_spec
        from pds_dpo_workers.proto import dpo_trainer_pb2 as pb
        from pds_dpo_workers.store import Store

        make_deterministic()
        with open(args.request, "rb") as f:
            req = pb.TrainRequest.FromString(f.read())
        ctx = WorkerContext(spec=parse_spec(args.model), store=Store(args.store), cache_root=args.store, device=args.device)

        def send(message) -> None:
            if rank == 0:
                _write(events_fd, encode("event", 0, base64.b64encode(message.SerializeToString()).decode()))

        run_training(req, args.model_dir, ctx, send, cancel)
    except BaseException as e:  # noqa: BLE001 - reported to the worker, then a failed exit
        log.exception("rank %d failed", rank)
        info = {"type": type(e).__name__, "message": str(e)[:2000]}
        _write(events_fd, encode("error", rank, base64.b64encode(json.dumps(info).encode()).decode()))
        return 1
    return 0


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pds_dpo_workers.train_entry")
    p.add_argument("--request", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True, help="the model spec (JSON)")
    p.add_argument("--model-dir", required=True, help="the resolved model directory")
    p.add_argument("--device", default="cuda")
    p.add_argument("--worker-pid", type=int, default=0, help="the worker; when it dies the trainer is stopped")
    return p


def main(argv: list[str] | None = None) -> int:
    args = arg_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    sys.stdout.flush()
    supervisor = os.getpid()
    child = os.fork()
    if child:
        return supervise(child, rank, args.worker_pid)
    _die_with_parent()
    if os.getppid() != supervisor:
        os._exit(1)
    # Protocol lines go to the pipe alone; anything the libraries print goes to the log.
    events_fd = os.dup(1)
    os.dup2(2, 1)
    code = train(args, rank, events_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
