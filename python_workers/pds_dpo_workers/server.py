"""The worker host: one grpc.aio server per worker process.

Serves grpc.health.v1 (NOT_SERVING until the model is loaded), server reflection,
WorkerService.Describe and the kind's own service. Speaks to the process that started it
through one JSON line per event on stdout ("listening", "loading" steps, "serving",
"load_failed"); logs go
to stderr. SIGTERM/SIGINT cancel the batch in flight and exit 0; so does the death of the
parent process, so a killed orchestrator never leaves a model holding a GPU.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pds_dpo_workers import PROTOCOL_VERSION
from pds_dpo_workers.environment import device_info, library_versions, python_env_hash
from pds_dpo_workers.errors import WorkerError
from pds_dpo_workers.kinds import KindEntry
from pds_dpo_workers.kinds.base import Kind
from pds_dpo_workers.load_progress import reporting
from pds_dpo_workers.proto import common_pb2, worker_pb2, worker_pb2_grpc
from pds_dpo_workers.requirements import check_requirements

log = logging.getLogger("pds_dpo_workers.server")

# gRPC's default 4 MiB receive limit is too small for inline images and batches.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
EXIT_LOAD_FAILED = 3
# The most often a client may ping (gRPC keepalive) without being told off.
MIN_PING_INTERVAL_MS = 1000


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0
    socket: str | None = None
    parent_pid: int | None = None
    parent_poll_s: float = 1.0
    # TLS (PEM files); a client CA makes client certificates required.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Bearer token every call but health must carry (from the environment, never argv).
    token: str | None = None
    # Runs in the load thread before the model loads (process-wide torch settings).
    prepare: Callable[[], None] | None = None
    # The load thread's lower CPU priority (nice increment); 0 keeps it.
    load_nice: int = 0
    # Optional packages checked before anything loads (requirements.check_requirements).
    requires: tuple[str, ...] = ()


def announce(event: str, **fields) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Describer(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.model: common_pb2.LoadedModel | None = None

    async def Describe(self, request, context):
        if self.model is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading")
        return worker_pb2.DescribeResponse(
            info=common_pb2.WorkerInfo(
                kind=self.kind,
                model=self.model,
                library_versions=library_versions(),
                device=device_info(),
                image_digest=os.environ.get("PDS_DPO_IMAGE_DIGEST", ""),
                protocol_version=PROTOCOL_VERSION,
                python_env_hash=python_env_hash(),
                pid=os.getpid(),
            )
        )


def lower_this_thread(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: nice is per thread).

    Threads it starts inherit it; the thread that serves calls and the batch threads it
    starts keep theirs, so a worker loading in the background never slows the running
    stage, and computes at the normal priority once loaded.
    """
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


def _load_and_describe(kind_impl, opts: ServeOptions) -> common_pb2.LoadedModel:
    if opts.load_nice:
        lower_this_thread(opts.load_nice)
    check_requirements(list(opts.requires))
    if opts.prepare:
        opts.prepare()
    # Each load step (a tiny model's build, hashing, loading N of M weights) as a "loading" line.
    with reporting(lambda text, done, total: announce("loading", step=text, done=done, total=total)):
        model = kind_impl.load()
    # Computed once here, off the event loop, so Describe answers at once.
    device_info()
    python_env_hash()
    return model


def _load_in_daemon_thread(fn) -> asyncio.Future:
    # A daemon thread, unlike asyncio.to_thread, does not keep a stopping worker alive
    # while a slow load (or a hung filesystem) is still in progress.
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run():
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001
            # Bound now: Python unbinds `e` when the except block ends.
            loop.call_soon_threadsafe(lambda err=e: future.done() or future.set_exception(err))
            return
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(result))

    threading.Thread(target=run, name="model-load", daemon=True).start()
    return future


async def _watch_parent(pid: int, poll_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.warning("parent process %d is gone; shutting down", pid)
            stop.set()
            return
        except PermissionError:
            pass
        if os.getppid() != pid and os.getppid() == 1:
            log.warning("orphaned (parent %d gone); shutting down", pid)
            stop.set()
            return
        await asyncio.sleep(poll_s)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>`; health stays open for probes."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details):
        if details.method.startswith("/grpc.health.v1.Health/"):
            return await continuation(details)
        sent = dict(details.invocation_metadata or ()).get("authorization", "")
        # As bytes: compare_digest refuses str with non-ASCII characters.
        if hmac.compare_digest(sent.encode() if isinstance(sent, str) else bytes(sent), self._expected):
            return await continuation(details)

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        handler = await continuation(details)
        if handler is None:
            return None
        if handler.response_streaming:
            async def deny_stream(request, context):
                await deny(request, context)
                yield  # pragma: no cover - abort raises first

            return grpc.unary_stream_rpc_method_handler(deny_stream, handler.request_deserializer, handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)


def _credentials(opts: ServeOptions):
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    ca = read(opts.tls_client_ca) if opts.tls_client_ca else None
    return grpc.ssl_server_credentials([(read(opts.tls_key), read(opts.tls_cert))], root_certificates=ca, require_client_auth=ca is not None)


def add_kind_service(server: grpc.aio.Server, kind: KindEntry, kind_impl: Kind) -> None:
    """Adds the kind's service from its table row: its one RPC is the implementation's `serve`."""
    servicer = kind.servicer()
    setattr(servicer, kind.rpc, kind_impl.serve)
    kind.add_to_server(servicer, server)


async def serve(kind: KindEntry, kind_impl: Kind, opts: ServeOptions) -> int:
    server = grpc.aio.server(
        interceptors=[BearerTokenInterceptor(opts.token)] if opts.token else None,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # The orchestrator pings every keepalive_s (30 s by default) to notice a vanished
            # worker, also between calls: allow it (gRPC's default answers pings more often
            # than every 5 minutes with GOAWAY "too_many_pings", which fails calls in flight).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
            ("grpc.http2.max_ping_strikes", 0),
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    describer = Describer(kind.kind)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(describer, server)
    add_kind_service(server, kind, kind_impl)
    worker_service = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name
    reflection.enable_server_reflection(
        [kind.service, worker_service, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    served = ["", kind.service, worker_service]
    for name in served:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    host = f"[{opts.host}]" if ":" in opts.host and not opts.host.startswith("[") else opts.host  # a bare IPv6 address
    address = f"unix:{opts.socket}" if opts.socket else f"{host}:{opts.port}"
    port = server.add_secure_port(address, _credentials(opts)) if opts.tls_cert else server.add_insecure_port(address)
    await server.start()
    announce("listening", address=address if opts.socket else f"{host}:{port}", port=port, pid=os.getpid())
    log.info("listening on %s", address if opts.socket else f"{host}:{port}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchers = [asyncio.create_task(_watch_parent(opts.parent_pid, opts.parent_poll_s, stop))] if opts.parent_pid else []

    exit_code = 0
    load = _load_in_daemon_thread(lambda: _load_and_describe(kind_impl, opts))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([load, stopping], return_when=asyncio.FIRST_COMPLETED)
    if load.done():
        try:
            describer.model = load.result()
        except WorkerError as e:
            log.error("model load failed: %s", e)
            announce("load_failed", code=e.code, message=str(e))
            stop.set()
            exit_code = EXIT_LOAD_FAILED
        except Exception as e:  # noqa: BLE001
            log.exception("model load failed")
            announce("load_failed", code="model_load_failed", message=f"{type(e).__name__}: {e}")
            stop.set()
            exit_code = EXIT_LOAD_FAILED
        else:
            m = describer.model
            log.info("loaded %s (%s, revision %s, weights %s)", m.spec.id or m.spec.path, m.model_class, m.resolved_revision, m.weights_sha256[:12])
            for name in served:
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            announce("serving")
    await stopping
    log.info("shutting down: cancelling calls in flight")
    await health_servicer.enter_graceful_shutdown()
    # grace=None cancels the calls in flight at once; their batches stop at the next step.
    await server.stop(grace=None)
    for w in watchers:
        w.cancel()
    log.info("stopped")
    return exit_code
