"""The generated wire code, importable as `from pds_dpo_workers.proto import pb`.

grpcio-tools writes absolute imports (`from pdsdpo.v1 import common_pb2`), so the
generated tree is put on sys.path once here instead of rewriting generated files.
"""

import os
import sys

_GEN = os.path.join(os.path.dirname(__file__), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

from pdsdpo.v1 import common_pb2  # noqa: E402
from pdsdpo.v1 import dpo_trainer_pb2, dpo_trainer_pb2_grpc  # noqa: E402,F401
from pdsdpo.v1 import evaluator_pb2, evaluator_pb2_grpc  # noqa: E402,F401
from pdsdpo.v1 import image_generator_pb2, image_generator_pb2_grpc  # noqa: E402
from pdsdpo.v1 import image_scorer_pb2, image_scorer_pb2_grpc  # noqa: E402
from pdsdpo.v1 import responder_pb2, responder_pb2_grpc  # noqa: E402,F401
from pdsdpo.v1 import response_scorer_pb2, response_scorer_pb2_grpc  # noqa: E402,F401
from pdsdpo.v1 import worker_pb2, worker_pb2_grpc  # noqa: E402

__all__ = [
    "common_pb2",
    "image_generator_pb2",
    "image_generator_pb2_grpc",
    "image_scorer_pb2",
    "image_scorer_pb2_grpc",
    "worker_pb2",
    "worker_pb2_grpc",
]
