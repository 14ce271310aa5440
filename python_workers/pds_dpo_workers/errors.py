"""Typed worker errors. Each maps to one gRPC status and a stable code."""

import grpc


class WorkerError(Exception):
    code = "worker_error"
    status = grpc.StatusCode.INTERNAL


class InvalidModelSpec(WorkerError):
    code = "invalid_model_spec"
    status = grpc.StatusCode.INVALID_ARGUMENT


class ModelLoadError(WorkerError):
    code = "model_load_failed"
    status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidRequest(WorkerError):
    code = "invalid_request"
    status = grpc.StatusCode.INVALID_ARGUMENT


class ArtifactError(WorkerError):
    """An input artifact is missing, unreadable or does not match its hash."""

    code = "artifact_error"
    status = grpc.StatusCode.FAILED_PRECONDITION


class FailedPrecondition(WorkerError):
    """The worker cannot serve this call as it was started (e.g. without the shared store)."""

    code = "failed_precondition"
    status = grpc.StatusCode.FAILED_PRECONDITION


class MissingPackage(WorkerError):
    """An optional package the configuration needs is not installed in the worker's environment."""

    code = "missing_package"
    status = grpc.StatusCode.FAILED_PRECONDITION


class PathNotAllowed(InvalidRequest):
    """A path in a request lies outside the store and the roots the worker was started with
    (--allow-root). The message never says whether the path exists."""

    code = "path_not_allowed"
    status = grpc.StatusCode.INVALID_ARGUMENT
