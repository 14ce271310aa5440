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

import threading
import time

from null_kinds import NullKind, context, parser, run, unit
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.proto import image_scorer_pb2 as pb
from pds_dpo_workers.store import read_blob


class NullScorer(NullKind):
    """The image-scorer kind, served from its row of the kinds table, with no model."""

    TITLE = "null scorer"

    def __init__(self, ctx: WorkerContext, delay_s: float, read_images: bool, hashed_scores: bool = False) -> None:
        super().__init__(ctx)
        self.delay_s = delay_s
        self.read_images = read_images
        self.hashed_scores = hashed_scores

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
                score = unit(item.id)
            else:
                score = 1.0
            emit(pb.ImageScorerServiceScoreResponse(score=pb.ImageScore(id=item.id, score=score)))


def main() -> int:
    p = parser("bench:null-scorer")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--read-images", action="store_true")
    p.add_argument("--hashed-scores", action="store_true")
    a = p.parse_args()
    return run("image-scorer", NullScorer(context(a), a.delay_ms / 1000.0, a.read_images, a.hashed_scores), a)


if __name__ == "__main__":
    raise SystemExit(main())
