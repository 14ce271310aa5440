"""The generated wire code, importable as `from pds_dpo_workers.proto import <name>_pb2`.

grpcio-tools writes absolute imports (`from pdsdpo.v1 import common_pb2`), so the
generated tree is put on sys.path once here instead of rewriting generated files. Any
`<file>_pb2` / `<file>_pb2_grpc` of proto/pdsdpo/v1 is imported on first use, so a new
worker kind's service needs no line here.
"""

import importlib
import os
import sys

_GEN = os.path.join(os.path.dirname(__file__), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

from pdsdpo.v1 import common_pb2  # noqa: E402
from pdsdpo.v1 import worker_pb2, worker_pb2_grpc  # noqa: E402

__all__ = ["common_pb2", "worker_pb2", "worker_pb2_grpc"]


def __getattr__(name: str):
    if name.endswith(("_pb2", "_pb2_grpc")):
        try:
            module = importlib.import_module(f"pdsdpo.v1.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"no generated module pdsdpo.v1.{name} (run npm run gen)") from None
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
