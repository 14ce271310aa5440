"""The host serves every kind from the table in kinds/__init__.py, through the Kind base;
each kind's model family comes from its backend table.

In process, without models: a stand-in Kind per table row is added to a grpc.aio server
by server.add_kind_service and called by the service's full name and RPC.
"""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory

from pds_dpo_workers.errors import FailedPrecondition, InvalidModelSpec, InvalidRequest
from pds_dpo_workers.kinds import KINDS, kind_entry
from pds_dpo_workers.kinds.base import DETERMINISTIC_CODES, Kind, WorkerContext, batches, choose_backend, item_error
from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.server import add_kind_service


def _ctx(store=None, spec=None) -> WorkerContext:
    return WorkerContext(spec=spec or common_pb2.ModelSpec(), store=store, cache_root="/nonexistent", device="cpu")


def _messages(entry):
    """The request and response classes of the row's RPC."""
    method = descriptor_pool.Default().FindServiceByName(entry.service).methods_by_name[entry.rpc]
    return message_factory.GetMessageClass(method.input_type), message_factory.GetMessageClass(method.output_type)


class Echo(Kind):
    """Emits one progress event per call that names its thread and request size."""

    response: type

    def _run(self, request, emit, cancel: threading.Event) -> None:
        emit(self.response(progress=common_pb2.Progress(done=1, total=2, unit=threading.current_thread().name)))
        emit(self.response(progress=common_pb2.Progress(done=2, total=2, unit=str(request.ByteSize()))))


async def _call(entry, impl, request) -> list:
    server = grpc.aio.server()
    add_kind_service(server, entry, impl)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        request_cls, response_cls = _messages(entry)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(f"/{entry.service}/{entry.rpc}", request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString)
            return [r async for r in call(request, timeout=30)]
    finally:
        await server.stop(grace=None)


def test_the_table_has_every_worker_kind_once():
    assert sorted(KINDS) == ["dpo-trainer", "evaluator", "image-generator", "image-scorer", "responder", "response-scorer"]
    assert sorted(e.kind for e in KINDS.values()) == list(range(1, 7))
    for name, entry in KINDS.items():
        assert entry.name == name
        assert common_pb2.WorkerKind.Name(entry.kind) == "WORKER_KIND_" + name.upper().replace("-", "_")
        assert entry.service.startswith("pdsdpo.v1.") and hasattr(entry.servicer, entry.rpc)


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(InvalidModelSpec, match="unknown worker kind 'painter'; known: dpo-trainer, evaluator, image-generator"):
        kind_entry("painter")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_the_host_serves_each_kind_from_its_row(name):
    entry = KINDS[name]
    request_cls, response_cls = _messages(entry)
    impl = Echo(_ctx())
    impl.response = response_cls
    out = asyncio.run(_call(entry, impl, request_cls()))
    # The work ran in the model thread, and streamed in order.
    assert [(r.progress.done, r.progress.unit) for r in out] == [(1, "model-batch"), (2, "0")]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_the_table_row_creates_the_kind_implementation(name):
    impl = KINDS[name].create(_ctx())
    assert isinstance(impl, Kind)
    assert type(impl).BACKENDS and type(impl)._run is not Kind._run


@pytest.mark.parametrize("name", sorted(KINDS))
def test_an_unknown_model_type_fails_the_load_naming_the_known_ones(name):
    impl = KINDS[name].create(_ctx(spec=common_pb2.ModelSpec(source=common_pb2.MODEL_SOURCE_TINY, id="x", options={"type": "nope"})))
    known = ", ".join(sorted(type(impl).BACKENDS))
    # Before anything is resolved or loaded.
    with pytest.raises(InvalidModelSpec) as err:
        impl.load()
    assert str(err.value) == f"unknown {type(impl).TITLE} type 'nope'; known: {known}"
    assert err.value.code == "invalid_model_spec"


def test_the_backend_is_the_named_type_or_the_first_one():
    table = {"b": 1, "a": 2}
    assert choose_backend(table, common_pb2.ModelSpec(), "x") == 1
    assert choose_backend(table, common_pb2.ModelSpec(options={"type": "a"}), "x") == 2
    with pytest.raises(InvalidModelSpec, match=r"^unknown image scorer type 'c'; known: a, b$"):
        choose_backend(table, common_pb2.ModelSpec(options={"type": "c"}), "image scorer")


def test_an_unknown_benchmark_is_an_invalid_request_naming_the_known_ones():
    from pds_dpo_workers.proto import evaluator_pb2

    impl = KINDS["evaluator"].create(_ctx())
    with pytest.raises(InvalidRequest, match=r"^unknown benchmark 'chair'; known: amber, mmhal, object-halbench, pope$"):
        impl._run(evaluator_pb2.EvaluateRequest(benchmark="chair"), lambda r: None, threading.Event())


def test_a_refused_call_is_its_status_before_the_model_runs():
    entry = KINDS["dpo-trainer"]
    request_cls, _ = _messages(entry)
    # The real trainer, never loaded: without the shared store it refuses every call.
    impl = entry.create(_ctx(store=None))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(_call(entry, impl, request_cls()))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "the trainer needs the shared store (--store)"


def test_a_train_request_without_what_the_config_requires_is_refused(tmp_path):
    from pds_dpo_workers.store import Store

    entry = KINDS["dpo-trainer"]
    request_cls, _ = _messages(entry)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(_call(entry, entry.create(_ctx(store=Store(str(tmp_path)))), request_cls()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "checkpoint_dir, dpo.beta, optim.learning_rate, lora.r, lora.alpha are required"


def test_a_failure_in_the_work_is_one_clear_status():
    entry = KINDS["image-scorer"]
    request_cls, _ = _messages(entry)

    class Refuses(Kind):
        def _run(self, request, emit, cancel):
            raise FailedPrecondition("not today")

    class Breaks(Kind):
        def _run(self, request, emit, cancel):
            raise KeyError("x")

    for impl, code, details in ((Refuses(_ctx()), grpc.StatusCode.FAILED_PRECONDITION, "not today"), (Breaks(_ctx()), grpc.StatusCode.INTERNAL, "KeyError: 'x'")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(_call(entry, impl, request_cls()))
        assert (err.value.code(), err.value.details()) == (code, details)


def test_max_batch_size_slices_the_request_and_zero_is_one_batch():
    items = list(range(5))
    assert list(batches(items, 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches(items, 5)) == [items] == list(batches(items, 9))
    # 0 (unset): the whole request is one batch; the workers keep no default of their own.
    assert list(batches(items, 0)) == [items]
    assert list(batches([], 0)) == [] == list(batches([], 3))


def test_item_errors_are_deterministic_for_the_codes_that_follow_from_the_input():
    assert DETERMINISTIC_CODES == {"invalid_input", "invalid_image", "context_too_long", "empty_answer"}
    for code in DETERMINISTIC_CODES:
        assert item_error(code, "x").deterministic is True
    # Failures a retry may clear are never journaled.
    for code in ("generation_failed", "scoring_failed", "worker_error"):
        assert item_error(code, "x").deterministic is False
    # The flag is on the wire (field 3), not only on the Python object.
    wire = common_pb2.ItemError.FromString(item_error("empty_answer", "the answer is empty").SerializeToString())
    assert (wire.code, wire.deterministic) == ("empty_answer", True)
