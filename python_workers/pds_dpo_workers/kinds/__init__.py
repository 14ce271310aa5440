"""Worker kinds: the table the host serves them from.

Each row names a kind's WorkerKind value, its implementation (a `base.Kind` subclass,
imported only when that kind is served) and its gRPC service: the generated servicer
class, the function that adds it to a server, the service's full name and its one RPC.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from pds_dpo_workers.kinds.base import lookup
from pds_dpo_workers.proto import (
    common_pb2,
    dpo_trainer_pb2,
    dpo_trainer_pb2_grpc,
    evaluator_pb2,
    evaluator_pb2_grpc,
    image_generator_pb2,
    image_generator_pb2_grpc,
    image_scorer_pb2,
    image_scorer_pb2_grpc,
    responder_pb2,
    responder_pb2_grpc,
    response_scorer_pb2,
    response_scorer_pb2_grpc,
)


@dataclass(frozen=True)
class KindEntry:
    name: str
    # common_pb2.WorkerKind value, reported by Describe.
    kind: int
    # "module:Class" of the implementation.
    impl: str
    # The generated servicer base class and the function that adds one to a server.
    servicer: type
    add_to_server: Callable
    # The service's full name (health, reflection) and its one RPC's method name.
    service: str
    rpc: str

    def create(self, ctx):
        module, cls = self.impl.split(":")
        return getattr(importlib.import_module(module), cls)(ctx)


def _entry(name: str, kind: int, impl: str, pb: ModuleType, pb_grpc: ModuleType, service: str) -> KindEntry:
    descriptor = pb.DESCRIPTOR.services_by_name[service]
    (method,) = descriptor.methods
    return KindEntry(
        name=name,
        kind=kind,
        impl=f"pds_dpo_workers.kinds.{impl}",
        servicer=getattr(pb_grpc, f"{service}Servicer"),
        add_to_server=getattr(pb_grpc, f"add_{service}Servicer_to_server"),
        service=descriptor.full_name,
        rpc=method.name,
    )


# CLI name -> entry.
KINDS: dict[str, KindEntry] = {
    e.name: e
    for e in (
        _entry("image-generator", common_pb2.WORKER_KIND_IMAGE_GENERATOR, "image_generator:ImageGenerator", image_generator_pb2, image_generator_pb2_grpc, "ImageGeneratorService"),
        _entry("image-scorer", common_pb2.WORKER_KIND_IMAGE_SCORER, "image_scorer:ImageScorer", image_scorer_pb2, image_scorer_pb2_grpc, "ImageScorerService"),
        _entry("responder", common_pb2.WORKER_KIND_RESPONDER, "responder:Responder", responder_pb2, responder_pb2_grpc, "ResponderService"),
        _entry("response-scorer", common_pb2.WORKER_KIND_RESPONSE_SCORER, "response_scorer:ResponseScorer", response_scorer_pb2, response_scorer_pb2_grpc, "ResponseScorerService"),
        _entry("dpo-trainer", common_pb2.WORKER_KIND_DPO_TRAINER, "dpo_trainer:DpoTrainer", dpo_trainer_pb2, dpo_trainer_pb2_grpc, "DpoTrainerService"),
        _entry("evaluator", common_pb2.WORKER_KIND_EVALUATOR, "evaluator:Evaluator", evaluator_pb2, evaluator_pb2_grpc, "EvaluatorService"),
    )
}


def kind_entry(name: str) -> KindEntry:
    return lookup(KINDS, name, "worker kind")
