"""A benchmark-only worker of the image-scorer kind that does no model work.

It runs on the real worker host (server.py: grpc.aio, health, Describe, reflection) and
answers ImageScorerService.Score with a fixed score per item after `--delay-ms` per item,
so what is measured is the control plane: scheduling, gRPC and the journal. With
`--read-images` it reads each image (from the store by reference, or inline) and checks
its hash, as a real scorer must before decoding: the transfer benchmark.

Never used by an experiment config: bench/ only.
usage: python bench/null_scorer.py [--delay-ms N] [--read-images | --hashed-scores] [--store DIR] [--port P] [--parent-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import threading
import time

from pds_dpo_workers.kinds import kind_entry
from pds_dpo_workers.kinds.base import Kind, WorkerContext
from pds_dpo_workers.proto import common_pb2, image_scorer_pb2 as pb
from pds_dpo_workers.server import ServeOptions, serve
from pds_dpo_workers.store import Store, read_blob


class NullScorer(Kind):
    """The image-scorer kind, served from its row of the kinds table, with no model."""

    TITLE = "null scorer"

    def __init__(self, ctx: WorkerContext, delay_s: float, read_images: bool, hashed_scores: bool = False) -> None:
        super().__init__(ctx)
        self.delay_s = delay_s
        self.read_images = read_images
        self.hashed_scores = hashed_scores

    def load(self) -> common_pb2.LoadedModel:
        weights = hashlib.sha256(b"null-scorer").hexdigest()
        return common_pb2.LoadedModel(spec=self.ctx.spec, resolved_revision="bench", weights_sha256=weights, model_class="NullScorer")

    def _run(self, request, emit, cancel: threading.Event) -> None:
        for item in request.items:
            if cancel.is_set():
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.read_images:
                data = read_blob(self.ctx.store, item.image)
                score = float(len(data) % 997)
            elif self.hashed_scores:
                # A score per item id (so prompts keep different candidates), still no model.
                score = int.from_bytes(hashlib.blake2b(item.id.encode(), digest_size=4).digest(), "big") / 2**32
            else:
                score = 1.0
            emit(pb.ImageScorerServiceScoreResponse(score=pb.ImageScore(id=item.id, score=score)))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--read-images", action="store_true")
    p.add_argument("--hashed-scores", action="store_true")
    p.add_argument("--store")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parent-pid", type=int)
    # The model path the config names (resolved against its directory), so a remote runtime accepts it.
    p.add_argument("--model-path", default="bench:null-scorer")
    a = p.parse_args()
    store = Store(a.store) if a.store else None
    spec = common_pb2.ModelSpec(source=common_pb2.MODEL_SOURCE_PATH, path=a.model_path)
    ctx = WorkerContext(spec=spec, store=store, cache_root=a.store or ".", device="cpu")
    impl = NullScorer(ctx, a.delay_ms / 1000.0, a.read_images, a.hashed_scores)
    return asyncio.run(serve(kind_entry("image-scorer"), impl, ServeOptions(port=a.port, parent_pid=a.parent_pid)))


if __name__ == "__main__":
    raise SystemExit(main())
