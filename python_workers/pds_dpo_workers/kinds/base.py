"""What every worker kind is built on.

A kind subclasses `Kind` and writes only its model load and its per-request work
(`_run(request, emit, cancel)`, blocking, in a thread). The model load is a backend: the
kind's BACKENDS table maps the model option "type" to a model family, a class that loads
the model in its constructor. The plumbing is here: the model runs one call at a time
(ModelRunner), results stream to the caller, a failure becomes one gRPC status. The host
(server.py) binds `serve` to the kind's RPC from the table in kinds/__init__.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterator, Protocol, Sequence, TypeVar

from pds_dpo_workers.errors import InvalidModelSpec, WorkerError
from pds_dpo_workers.load_progress import step
from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.store import Store, confine_path, read_blob
from pds_dpo_workers.streaming import ModelRunner, serve_stream


@dataclass
class WorkerContext:
    spec: common_pb2.ModelSpec
    store: Store | None
    # Where tiny models are built and cached (the store root by default).
    cache_root: str
    device: str
    # Directories besides the store that paths in requests may name (serve --allow-root).
    allowed_roots: tuple[str, ...] = ()

    def confine(self, path: str, what: str) -> str:
        """`path` (a request's) resolved, if it lies inside the store or an allowed root;
        else PathNotAllowed, before anything touches the disk (store.confine_path)."""
        roots = ((self.store.root,) if self.store else ()) + tuple(self.allowed_roots)
        return confine_path(path, roots, what)


class Backend(Protocol):
    """One model family a kind loads; its constructor (ctx) loads the model."""

    # What was loaded, for Describe.
    loaded: common_pb2.LoadedModel


T = TypeVar("T")


def lookup(table: dict[str, T], name: str, what: str, error: type[WorkerError] = InvalidModelSpec) -> T:
    """table[name]; an unknown name is an `error` that names the known ones."""
    if name not in table:
        raise error(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def choose_backend(table: dict[str, T], spec: common_pb2.ModelSpec, what: str) -> T:
    """The entry of `table` that the model option "type" names (unset: the table's first);
    an unknown type is an InvalidModelSpec ("unknown <what> type ...; known: ...")."""
    return lookup(table, spec.options.get("type") or next(iter(table)), f"{what} type")


class Kind:
    """One worker kind: its model and the work of its one streaming RPC."""

    # Model families by the model option "type"; the first is the default.
    BACKENDS: dict[str, Callable[[WorkerContext], Backend]] = {}
    # The kind as an unknown type's error names it, e.g. "image scorer".
    TITLE = "worker"

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.runner = ModelRunner()
        self.backend = None

    def load(self) -> common_pb2.LoadedModel:
        """Load the model (blocking; runs in a thread before the worker is SERVING)."""
        spec = self.ctx.spec
        step(f"loading the {self.TITLE} model {spec.id or spec.path}")
        self.backend = choose_backend(self.BACKENDS, self.ctx.spec, self.TITLE)(self.ctx)
        return self.backend.loaded

    def check(self, request) -> None:
        """Refuse a call before it waits for the model: raise a WorkerError. Default: none."""

    def _run(self, request, emit: Callable[[object], None], cancel: threading.Event) -> None:
        """The call's work: emit each response; stop early once `cancel` is set."""
        raise NotImplementedError

    async def serve(self, request, context) -> AsyncIterator:
        """The RPC: the responses of `_run`, a failure as one clear gRPC status."""
        async for response in serve_stream(context, self._responses(request)):
            yield response

    async def _responses(self, request) -> AsyncIterator:
        self.check(request)
        async for response in self.runner.stream(lambda emit, cancel: self._run(request, emit, cancel)):
            yield response


def batches(items: Sequence[T], max_batch_size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `max_batch_size` items, in order.

    0 makes the whole request one batch. The workers keep no default batch size of their
    own that could disagree with the orchestrator's: it always sends max_batch_size (its
    config owns each kind's default), and outputs depend on the batch (cache keys name
    it), so a request that sets none is taken as its caller built it: one batch.
    """
    size = max_batch_size or max(1, len(items))
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Item error codes that follow from the input alone: the same input always fails the same
# way, so the orchestrator may journal the failure (ItemError.deterministic). Any other code
# (generation_failed, scoring_failed, ...) may pass on a retry.
DETERMINISTIC_CODES = frozenset({"invalid_input", "invalid_image", "context_too_long", "empty_answer"})


def item_error(code: str, message: str) -> common_pb2.ItemError:
    return common_pb2.ItemError(code=code, message=message[:2000], deterministic=code in DETERMINISTIC_CODES)


def load_image(store: Store | None, blob: common_pb2.Blob):
    """An input image as RGB; raises on a missing, altered or undecodable image."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(read_blob(store, blob)))
    image.load()
    return image.convert("RGB")
