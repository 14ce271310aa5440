"""A benchmark-only worker of the image-generator kind that does no model work.

It runs on the real worker host (server.py: grpc.aio, health, Describe) and answers
ImageGeneratorService.Generate with one of `--variants` small PNGs per item (chosen by the
item id's hash), inline, so what is measured is the control plane: scheduling, the journal,
the store and the records a run writes per item. The memory benchmark pairs it with
bench/null_scorer.py.

Never used by an experiment config: bench/ only.
usage: python bench/null_generator.py [--variants N] [--port P] [--parent-pid PID]
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib

from null_kinds import NullKind, context, parser, run
from pds_dpo_workers.kinds.base import WorkerContext
from pds_dpo_workers.proto import common_pb2, image_generator_pb2 as pb

SIZE = 4


def png(variant: int) -> bytes:
    """A SIZE x SIZE RGB PNG of one colour per variant (distinct bytes, so distinct artifacts)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rgb = bytes([variant & 0xFF, (variant >> 8) & 0xFF, 128])
    raw = b"".join(b"\x00" + rgb * SIZE for _ in range(SIZE))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class NullGenerator(NullKind):
    """The image-generator kind, served from its row of the kinds table, with no model."""

    TITLE = "null generator"

    def __init__(self, ctx: WorkerContext, variants: int) -> None:
        super().__init__(ctx)
        self.images = [png(v) for v in range(variants)]

    def _run(self, request, emit, cancel: threading.Event) -> None:
        for item in request.items:
            if cancel.is_set():
                return
            variant = int.from_bytes(hashlib.blake2b(item.id.encode(), digest_size=4).digest(), "big") % len(self.images)
            image = common_pb2.Blob(inline=self.images[variant])
            emit(pb.GenerateResponse(image=pb.GeneratedImage(id=item.id, image=image, width=SIZE, height=SIZE)))


def main() -> int:
    p = parser("bench:null-generator")
    p.add_argument("--variants", type=int, default=1024)
    a = p.parse_args()
    return run("image-generator", NullGenerator(context(a), a.variants), a)


if __name__ == "__main__":
    raise SystemExit(main())
