"""`python -m pds_dpo_workers serve --kind K --model JSON ...`"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pds_dpo_workers.errors import WorkerError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pds_dpo_workers", description="PDS-DPO gRPC ML worker")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve one worker kind over gRPC")
    s.add_argument("--kind", required=True, help="image-generator, image-scorer, ...")
    s.add_argument("--model", required=True, help="ModelSpec as proto JSON, e.g. '{\"source\":\"MODEL_SOURCE_TINY\",\"id\":\"sd\"}'")
    s.add_argument("--store", default=None, help="shared content-addressed store root (omit: inline outputs only)")
    s.add_argument("--cache-root", default=None, help="where tiny models are built (default: the store, else ~/.cache/pds-dpo)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 picks a free port; it is announced on stdout")
    s.add_argument("--socket", default=None, help="serve on this unix socket instead of a TCP port")
    s.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--cpu-threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    s.add_argument("--nice", type=int, default=0, choices=range(0, 20), metavar="0..19", help="load the model (imports included) at this lower CPU priority; calls run at the normal one")
    s.add_argument("--own-process-group", action="store_true", help="lead a process group of its own (what the orchestrator signals) in the caller's session")
    s.add_argument("--tls-cert", default=None, help="serve TLS with this PEM certificate (and --tls-key)")
    s.add_argument("--tls-key", default=None)
    s.add_argument("--tls-client-ca", default=None, help="require client certificates signed by this CA")
    s.add_argument("--token-env", default="PDS_DPO_WORKER_TOKEN", help="environment variable holding the bearer token calls must carry (unset: no token)")
    s.add_argument("--expect-gpus", type=int, default=0, metavar="N", help="the worker must see N GPUs (its runtime.devices, made visible by the orchestrator): checked before the model loads")
    s.add_argument("--require", action="append", default=[], metavar="PACKAGE", help="an optional package the configuration needs (bitsandbytes, deepspeed, ...): checked before anything loads")
    s.add_argument("--log-level", default="INFO")
    sub.add_parser("families", help="print, as JSON, the model types each kind loads and the tiny twins it can build")
    h = sub.add_parser("health", help="exit 0 if the worker at --address is SERVING (container HEALTHCHECK)")
    h.add_argument("--address", required=True)
    h.add_argument("--timeout", type=float, default=3.0)
    return p


def _health(address: str, timeout: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(address) as channel:
            res = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError as e:
        print(f"pds_dpo_workers: {address}: {e.code().name}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(res.status)
    print(status)
    return 0 if res.status == health_pb2.HealthCheckResponse.SERVING else 1


def _families() -> int:
    """The tables the control plane's validation mirrors (src/config/families.ts)."""
    import importlib
    import json

    from pds_dpo_workers.kinds import KINDS
    from pds_dpo_workers.models import tiny

    kinds = {}
    for name, entry in KINDS.items():
        module, cls = entry.impl.split(":")
        kinds[name] = list(getattr(importlib.import_module(module), cls).BACKENDS)
    print(json.dumps({"kinds": kinds, "tiny": sorted(tiny.BUILDERS)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "health":
        return _health(args.address, args.timeout)
    if args.command == "families":
        return _families()
    if args.own_process_group:
        # Its own group, so the orchestrator can signal it and its children together, but
        # the orchestrator's session: with autogroup scheduling, CPU shares are split between
        # sessions, so only within one does a lower priority (--nice) count against the others.
        os.setpgid(0, 0)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Imported after logging is set up: these pull in torch.
    from pds_dpo_workers.environment import check_gpus, device, make_deterministic
    from pds_dpo_workers.kinds import kind_entry
    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.models.spec import parse_spec
    from pds_dpo_workers.server import ServeOptions, serve
    from pds_dpo_workers.store import Store

    try:
        spec = parse_spec(args.model)
        kind = kind_entry(args.kind)
    except WorkerError as e:
        print(f"pds_dpo_workers: {e}", file=sys.stderr)
        return 2
    def prepare() -> None:
        # In the load thread: importing torch is part of what --nice lowers.
        if args.expect_gpus:
            check_gpus(args.expect_gpus)
        make_deterministic()
        if args.cpu_threads:
            import torch

            torch.set_num_threads(args.cpu_threads)

    store = Store(os.path.abspath(args.store)) if args.store else None
    cache_root = args.cache_root or (store.root if store else os.path.expanduser("~/.cache/pds-dpo"))
    ctx = WorkerContext(spec=spec, store=store, cache_root=cache_root, device=device() if args.device == "auto" else args.device)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("pds_dpo_workers: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    opts = ServeOptions(
        host=args.host,
        port=args.port,
        socket=args.socket,
        parent_pid=args.parent_pid,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        token=os.environ.get(args.token_env) or None,
        prepare=prepare,
        load_nice=args.nice,
        requires=tuple(args.require),
    )
    code = asyncio.run(serve(kind, kind.create(ctx), opts))
    # Every call has ended and every store write is complete (atomic renames), so skip the
    # interpreter's teardown of torch and the model libraries: it took over a second per
    # worker, which every run spent waiting for its workers to exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
