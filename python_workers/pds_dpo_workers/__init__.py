"""gRPC ML workers of the PDS-DPO orchestrator."""

__version__ = "0.1.0"
# Bumped when the wire contract changes meaning; part of every cache key.
PROTOCOL_VERSION = "1"
