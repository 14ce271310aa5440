"""What the benchmark-only no-op workers share: a kind with no model, and its serving.

Each no-op worker (null_generator.py, null_scorer.py, null_responses.py) is a real kind of
the kinds table served by the real worker server (server.py: grpc.aio, health, Describe),
whose `_run` answers without a model, so what a benchmark measures is the control plane.
Never used by an experiment config: bench/ only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib

from pds_dpo_workers.kinds import kind_entry
from pds_dpo_workers.kinds.base import Kind, WorkerContext
from pds_dpo_workers.proto import common_pb2
from pds_dpo_workers.server import ServeOptions, serve
from pds_dpo_workers.store import Store


class NullKind(Kind):
    """A kind with no model: Describe names the class and a weights hash of its name."""

    def load(self) -> common_pb2.LoadedModel:
        name = type(self).__name__
        weights = hashlib.sha256(name.encode()).hexdigest()
        return common_pb2.LoadedModel(spec=self.ctx.spec, resolved_revision="bench", weights_sha256=weights, model_class=name)


def unit(text: str) -> float:
    """A number in [0, 1) per text: item-dependent outputs, still no model."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") / 2**32


def parser(default_model: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--store")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parent-pid", type=int)
    # The model path the config names (resolved against its directory), so a remote runtime accepts it.
    p.add_argument("--model-path", default=default_model)
    return p


def context(a: argparse.Namespace) -> WorkerContext:
    spec = common_pb2.ModelSpec(source=common_pb2.MODEL_SOURCE_PATH, path=a.model_path)
    return WorkerContext(spec=spec, store=Store(a.store) if a.store else None, cache_root=a.store or ".", device="cpu")


def run(kind: str, impl: Kind, a: argparse.Namespace) -> int:
    return asyncio.run(serve(kind_entry(kind), impl, ServeOptions(port=a.port, parent_pid=a.parent_pid)))
