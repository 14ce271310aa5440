"""`python -m pds_dpo_workers serve --kind K --model JSON ...`"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import sys

from pds_dpo_workers.errors import WorkerError


# The bearer token's variable when --token-env is not given; unset, the worker takes calls without a token.
DEFAULT_TOKEN_ENV = "PDS_DPO_WORKER_TOKEN"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pds_dpo_workers", description="PDS-DPO gRPC ML worker")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve one worker kind over gRPC")
    s.add_argument("--kind", required=True, help="image-generator, image-scorer, ...")
    s.add_argument("--model", required=True, help="ModelSpec as proto JSON, e.g. '{\"source\":\"MODEL_SOURCE_TINY\",\"id\":\"sd\"}'")
    s.add_argument("--store", default=None, help="shared content-addressed store root (omit: inline outputs only)")
    s.add_argument("--cache-root", default=None, help="where tiny models are built (default: the store, else ~/.cache/pds-dpo)")
    s.add_argument("--host", default="127.0.0.1", help="a non-loopback address needs TLS (--tls-cert) or --insecure")
    s.add_argument("--insecure", action="store_true", help="serve plaintext gRPC on a non-loopback --host (e.g. a container's 0.0.0.0 published on the host's loopback); logs a warning")
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
    s.add_argument(
        "--token-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding the bearer token every call but health must carry; given explicitly, VAR must be set (default: {DEFAULT_TOKEN_ENV}, and no token when it is unset)",
    )
    s.add_argument(
        "--allow-root",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory besides the store that paths in requests may name (image roots, question files, checkpoints); repeatable",
    )
    s.add_argument("--expect-gpus", type=int, default=0, metavar="N", help="the worker must see N GPUs (its runtime.devices, made visible by the orchestrator): checked before the model loads")
    s.add_argument("--require", action="append", default=[], metavar="PACKAGE", help="an optional package the configuration needs (bitsandbytes, deepspeed, ...): checked before anything loads")
    s.add_argument("--log-level", default="INFO")
    w = sub.add_parser("host", help="the warm worker host: imports the model libraries once and forks one `serve` worker per request on stdin (see host.py)")
    w.add_argument("--store", default=None, help="the store its workers serve: unused, but it names the host and its workers (their command line is the host's) in ps and /proc")
    sub.add_parser("families", help="print, as JSON, the model types each kind loads and the tiny twins it can build")
    b = sub.add_parser("benchmark-fixtures", help="write the tiny benchmark fixtures (POPE, Object-HalBench, AMBER, MMHal-Bench) in their official formats")
    b.add_argument("out_dir", help="where pope/, object-halbench/, amber/ and mmhal/ go (configs/benchmarks in the repository)")
    e = sub.add_parser("export-hf", help="write a run's pairs as a Hugging Face datasets dataset (parquet and a dataset card) in dataset/hf/")
    e.add_argument("run_dir", help="the run directory (<store>/runs/<run id>)")
    e.add_argument("--out", default=None, metavar="DIR", help="where to write it (default: RUN_DIR/dataset/hf)")
    e.add_argument("--license", default=None, metavar="ID", help="the dataset card's licence (default: the source models' one licence, else other)")
    h = sub.add_parser("health", help="exit 0 if the worker at --address is SERVING (container HEALTHCHECK, Kubernetes exec probe)")
    h.add_argument("--address", required=True, help="HOST:PORT (or unix:PATH)")
    h.add_argument("--timeout", type=float, default=3.0, help="seconds for the whole check")
    h.add_argument("--tls-ca", default=None, metavar="PEM", help="speak TLS and verify the worker's certificate with this CA (omit: plaintext)")
    h.add_argument("--tls-server-name", default=None, metavar="NAME", help="the name the worker's certificate must carry when it is not --address's host (a probe dialing 127.0.0.1)")
    h.add_argument("--tls-cert", default=None, metavar="PEM", help="client certificate, for workers started with --tls-client-ca (and --tls-key)")
    h.add_argument("--tls-key", default=None, metavar="PEM")
    return p


class _HealthUsageError(Exception):
    """A health option that cannot work (exit 2)."""


def _read_pem(flag: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _HealthUsageError(f"{flag} {path}: {e.strerror or e}") from None
    if b"-----BEGIN " not in data:
        raise _HealthUsageError(f"{flag} {path}: not a PEM file")
    return data


@contextlib.contextmanager
def _quiet_stderr():
    """gRPC's C core logs failed TLS handshakes to fd 2 (GRPC_VERBOSITY is read when grpc is
    imported, before this runs): keep the probe's output to the one line it prints."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no fd 2 to protect
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _health_failure(code: str, details: str, args: argparse.Namespace) -> str:
    """One line for a failed check: the status code and, where it can tell, why."""
    details = " ".join(details.split())
    low = details.lower()
    if "hostname verification" in low or "no match found for server name" in low:
        if args.tls_server_name:
            return f"{code}: TLS handshake failed: the worker's certificate does not name {args.tls_server_name!r}"
        return f"{code}: TLS handshake failed: the worker's certificate does not name the host of --address (pass --tls-server-name)"
    if "handshake failed" in low:
        # "... OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK"
        m = re.search(r"OPENSSL_internal:([A-Z_]+)(?::\s*([^:]+))?", details)
        if not m:
            return f"{code}: TLS handshake failed ({details})"
        reason = m.group(1) + (f": {m.group(2).strip()}" if m.group(2) else "")
        if m.group(1) == "CERTIFICATE_VERIFY_FAILED":
            return f"{code}: TLS handshake failed: the worker's certificate is not signed by --tls-ca ({reason})"
        return f"{code}: TLS handshake failed ({reason})"
    if "security handshaker" in low:
        return f"{code}: TLS setup failed: gRPC could not use the PEM files (is --tls-ca a CA certificate, and --tls-key the key of --tls-cert?)"
    if "connection refused" in low:
        return f"{code}: connection refused"
    if "socket closed" in low or "connection reset" in low:
        if not args.tls_ca:
            return f"{code}: connection closed by the worker (does it serve TLS? pass --tls-ca)"
        if not args.tls_cert:
            return f"{code}: connection closed by the worker (does it require a client certificate? pass --tls-cert and --tls-key)"
        return f"{code}: connection closed by the worker (was the client certificate refused?)"
    if code == "DEADLINE_EXCEEDED":
        return f"{code}: no answer within {args.timeout:g}s"
    # "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: why" -> "why"
    details = re.sub(r"^failed to connect to all addresses; last error: [A-Z_]+: (?:ipv4|ipv6|unix)\S*: ", "", details)
    return f"{code}: {details}" if details else code


def _health(args: argparse.Namespace) -> int:
    """grpc.health.v1 Check on the worker: exit 0 on SERVING, 1 otherwise, 2 on bad options.

    Kept light (grpc and the health stubs only, never torch): Kubernetes runs it as the
    pod's exec probe, since its own gRPC probe does not speak TLS. Health calls need no
    bearer token (server.BearerTokenInterceptor lets them through).
    """
    address = args.address
    try:
        others = [f for f, v in (("--tls-server-name", args.tls_server_name), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)) if v]
        if others and not args.tls_ca:
            raise _HealthUsageError(f"{' and '.join(others)} need{'s' if len(others) == 1 else ''} --tls-ca")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise _HealthUsageError("--tls-cert and --tls-key go together")
        if args.tls_ca:
            ca = _read_pem("--tls-ca", args.tls_ca)
            cert = _read_pem("--tls-cert", args.tls_cert) if args.tls_cert else None
            key = _read_pem("--tls-key", args.tls_key) if args.tls_key else None
    except _HealthUsageError as e:
        print(f"pds_dpo_workers: {e}", file=sys.stderr)
        return 2

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with _quiet_stderr():
            if args.tls_ca:
                creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
                options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
                channel = grpc.secure_channel(address, creds, options=options)
            else:
                channel = grpc.insecure_channel(address)
            with channel:
                res = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
    except grpc.RpcError as e:
        code = e.code().name if e.code() is not None else "UNKNOWN"
        print(f"pds_dpo_workers: {address}: {_health_failure(code, e.details() or '', args)}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a probe prints one line, never a traceback
        print(f"pds_dpo_workers: {address}: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
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


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (bracketed or not)."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class _ServeUsageError(Exception):
    """A serve option that cannot work (one line, exit 2)."""


def _serve_checks(args: argparse.Namespace) -> tuple[str | None, tuple[str, ...]]:
    """Checked before anything loads: (the bearer token or None, the allowed roots resolved)."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise _ServeUsageError("--tls-cert and --tls-key go together")
    if not args.socket and not args.tls_cert and not args.insecure and not is_loopback(args.host):
        raise _ServeUsageError(
            f"--host {args.host} is not a loopback address: serve TLS there (--tls-cert and --tls-key) or pass --insecure to serve plaintext anyway"
        )
    if args.token_env is not None:
        # Named explicitly (the orchestrator's per-run token): serving without it would let
        # anyone call the worker, so an unset variable is an error, never "no token".
        if args.token_env not in os.environ:
            raise _ServeUsageError(f"--token-env {args.token_env}: the variable is not set")
        if not os.environ[args.token_env]:
            raise _ServeUsageError(f"--token-env {args.token_env}: the variable is empty")
        token = os.environ[args.token_env]
    else:
        token = os.environ.get(DEFAULT_TOKEN_ENV) or None
    roots = []
    for root in args.allow_root:
        if not root or not os.path.isdir(root):
            raise _ServeUsageError(f"--allow-root {root}: not a directory")
        roots.append(os.path.realpath(root))
    return token, tuple(roots)


def _export_hf(args) -> int:
    """One JSON line of what was written on stdout; a bad run directory is one line on stderr, exit 2."""
    from pds_dpo_workers.hf_dataset import DatasetExportError, export

    try:
        written = export(args.run_dir, args.out, args.license)
    except DatasetExportError as e:
        print(f"pds_dpo_workers export-hf: {e}", file=sys.stderr)
        return 2
    print(json.dumps(written))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "health":
        return _health(args)
    if args.command == "families":
        return _families()
    if args.command == "benchmark-fixtures":
        from pds_dpo_workers.benchmarks.fixtures import write_all

        write_all(args.out_dir)
        return 0
    if args.command == "host":
        from pds_dpo_workers.host import main as host_main

        return host_main()
    if args.command == "export-hf":
        return _export_hf(args)
    try:
        token, allowed_roots = _serve_checks(args)
    except _ServeUsageError as e:
        print(f"pds_dpo_workers: {e}", file=sys.stderr)
        return 2
    if args.own_process_group:
        # Its own group, so the orchestrator can signal it and its children together, but
        # the orchestrator's session: with autogroup scheduling, CPU shares are split between
        # sessions, so only within one does a lower priority (--nice) count against the others.
        os.setpgid(0, 0)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.socket and not args.tls_cert and not is_loopback(args.host):
        logging.getLogger("pds_dpo_workers").warning(
            "--insecure: serving plaintext gRPC on %s: whoever reaches it can read the calls%s",
            args.host,
            "" if token else " and, without a bearer token (--token-env), make them",
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
    ctx = WorkerContext(
        spec=spec, store=store, cache_root=cache_root, device=device() if args.device == "auto" else args.device, allowed_roots=allowed_roots
    )
    opts = ServeOptions(
        host=args.host,
        port=args.port,
        socket=args.socket,
        parent_pid=args.parent_pid,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        token=token,
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
