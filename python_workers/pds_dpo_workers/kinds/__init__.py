"""Worker kinds. Each module exposes `create(ctx) -> Kind`; see base.py."""

from __future__ import annotations

import importlib

from pds_dpo_workers.errors import InvalidModelSpec

# CLI name -> module. Kinds of later stages are added here as they land.
KINDS = {
    "image-generator": "pds_dpo_workers.kinds.image_generator",
    "image-scorer": "pds_dpo_workers.kinds.image_scorer",
    "responder": "pds_dpo_workers.kinds.responder",
    "response-scorer": "pds_dpo_workers.kinds.response_scorer",
    "dpo-trainer": "pds_dpo_workers.kinds.dpo_trainer",
    "evaluator": "pds_dpo_workers.kinds.evaluator",
}


def load_kind(name: str):
    if name not in KINDS:
        raise InvalidModelSpec(f"unknown or not yet implemented worker kind {name!r}; known: {', '.join(sorted(KINDS))}")
    return importlib.import_module(KINDS[name])
