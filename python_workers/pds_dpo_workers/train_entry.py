"""One rank of distributed DPO training, started by the trainer worker under accelerate.

Reads the TrainRequest the worker wrote, trains with the same code as the single-process
path, and prints each TrainResponse of rank 0 as one "pdsdpo:<base64>" line on stdout.
SIGTERM stops training at the next step boundary and saves a checkpoint.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pds_dpo_workers.train_entry")
    p.add_argument("--request", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(stream=sys.stderr, level="INFO", format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")

    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.kinds.dpo_trainer import run_training
    from pds_dpo_workers.models.spec import parse_spec, resolve
    from pds_dpo_workers.proto import dpo_trainer_pb2 as pb
    from pds_dpo_workers.store import Store

    with open(args.request, "rb") as f:
        req = pb.TrainRequest.FromString(f.read())
    spec = parse_spec(args.model)
    ctx = WorkerContext(spec=spec, store=Store(args.store), cache_root=args.store, device=args.device)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    rank0 = rank == "0"

    def send(message) -> None:
        if rank0:
            sys.stdout.write("pdsdpo:" + base64.b64encode(message.SerializeToString()).decode() + "\n")
            sys.stdout.flush()

    run_training(req, resolve(spec, args.store).directory, ctx, send, cancel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
