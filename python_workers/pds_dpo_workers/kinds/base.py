"""What every worker kind provides to the host (server.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.store import Store, read_blob


@dataclass
class WorkerContext:
    spec: common_pb2.ModelSpec
    store: Store | None
    # Where tiny models are built and cached (the store root by default).
    cache_root: str
    device: str


class Kind(Protocol):
    # common_pb2.WorkerKind value.
    kind: int
    # Full name of the kind's gRPC service, for health and reflection.
    service_name: str

    def load(self) -> common_pb2.LoadedModel:
        """Load the model (blocking; runs in a thread before the worker is SERVING)."""

    def register(self, server: grpc.aio.Server) -> None:
        """Add the kind's servicer to the server."""


def item_error(code: str, message: str) -> common_pb2.ItemError:
    return common_pb2.ItemError(code=code, message=message[:2000])


def load_image(store: Store | None, blob: common_pb2.Blob):
    """An input image as RGB; raises on a missing, altered or undecodable image."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(read_blob(store, blob)))
    image.load()
    return image.convert("RGB")
