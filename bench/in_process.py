"""Worker kinds run in this process, the in-process side of the benchmarks (decode.py,
direct_pipeline.py): the process prepared as a worker's is (cli.py's prepare) and each kind
loaded and called through its own compute (`_run`), with no gRPC in between."""

from __future__ import annotations

import json
import threading

_NEVER = threading.Event()


def prepare(work: dict):
    """Determinism and the thread count as a worker sets them; the work's store."""
    import torch

    from pds_dpo_workers.environment import make_deterministic
    from pds_dpo_workers.store import Store

    make_deterministic()
    if work.get("cpu_threads"):
        torch.set_num_threads(int(work["cpu_threads"]))
    return Store(work["store"])


def load(kind: str, model: dict | str, store, cache_root: str, device: str):
    """A worker kind's implementation with its model loaded (model: ModelSpec JSON)."""
    from pds_dpo_workers.kinds import kind_entry
    from pds_dpo_workers.kinds.base import WorkerContext
    from pds_dpo_workers.models.spec import parse_spec

    spec = parse_spec(model if isinstance(model, str) else json.dumps(model))
    impl = kind_entry(kind).create(WorkerContext(spec=spec, store=store, cache_root=cache_root, device=device))
    impl.load()
    return impl


def call(impl, request) -> list:
    """Every response of one request, in order."""
    out: list = []
    impl._run(request, out.append, _NEVER)
    return out
