from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_SOURCE_UNSPECIFIED: _ClassVar[ModelSource]
    MODEL_SOURCE_TINY: _ClassVar[ModelSource]
    MODEL_SOURCE_HF: _ClassVar[ModelSource]
    MODEL_SOURCE_PATH: _ClassVar[ModelSource]

class WorkerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_KIND_UNSPECIFIED: _ClassVar[WorkerKind]
    WORKER_KIND_IMAGE_GENERATOR: _ClassVar[WorkerKind]
    WORKER_KIND_IMAGE_SCORER: _ClassVar[WorkerKind]
    WORKER_KIND_RESPONDER: _ClassVar[WorkerKind]
    WORKER_KIND_RESPONSE_SCORER: _ClassVar[WorkerKind]
    WORKER_KIND_DPO_TRAINER: _ClassVar[WorkerKind]
    WORKER_KIND_EVALUATOR: _ClassVar[WorkerKind]

class OutputMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_MODE_UNSPECIFIED: _ClassVar[OutputMode]
    OUTPUT_MODE_STORE: _ClassVar[OutputMode]
    OUTPUT_MODE_INLINE: _ClassVar[OutputMode]
MODEL_SOURCE_UNSPECIFIED: ModelSource
MODEL_SOURCE_TINY: ModelSource
MODEL_SOURCE_HF: ModelSource
MODEL_SOURCE_PATH: ModelSource
WORKER_KIND_UNSPECIFIED: WorkerKind
WORKER_KIND_IMAGE_GENERATOR: WorkerKind
WORKER_KIND_IMAGE_SCORER: WorkerKind
WORKER_KIND_RESPONDER: WorkerKind
WORKER_KIND_RESPONSE_SCORER: WorkerKind
WORKER_KIND_DPO_TRAINER: WorkerKind
WORKER_KIND_EVALUATOR: WorkerKind
OUTPUT_MODE_UNSPECIFIED: OutputMode
OUTPUT_MODE_STORE: OutputMode
OUTPUT_MODE_INLINE: OutputMode

class ModelSpec(_message.Message):
    __slots__ = ("source", "id", "revision", "path", "dtype", "quantization", "seed", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    source: ModelSource
    id: str
    revision: str
    path: str
    dtype: str
    quantization: str
    seed: int
    options: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[_Union[ModelSource, str]] = ..., id: _Optional[str] = ..., revision: _Optional[str] = ..., path: _Optional[str] = ..., dtype: _Optional[str] = ..., quantization: _Optional[str] = ..., seed: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("uri", "sha256", "bytes", "media_type")
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    uri: str
    sha256: str
    bytes: int
    media_type: str
    def __init__(self, uri: _Optional[str] = ..., sha256: _Optional[str] = ..., bytes: _Optional[int] = ..., media_type: _Optional[str] = ...) -> None: ...

class Blob(_message.Message):
    __slots__ = ("ref", "inline")
    REF_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    ref: ArtifactRef
    inline: bytes
    def __init__(self, ref: _Optional[_Union[ArtifactRef, _Mapping]] = ..., inline: _Optional[bytes] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("done", "total", "unit")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    unit: str
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "deterministic")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    deterministic: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., deterministic: _Optional[bool] = ...) -> None: ...

class WeightFile(_message.Message):
    __slots__ = ("path", "sha256", "bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    bytes: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("spec", "resolved_revision", "weights_sha256", "files", "model_class", "remote_code")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_REVISION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MODEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_CODE_FIELD_NUMBER: _ClassVar[int]
    spec: ModelSpec
    resolved_revision: str
    weights_sha256: str
    files: _containers.RepeatedCompositeFieldContainer[WeightFile]
    model_class: str
    remote_code: _containers.RepeatedCompositeFieldContainer[WeightFile]
    def __init__(self, spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., resolved_revision: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., files: _Optional[_Iterable[_Union[WeightFile, _Mapping]]] = ..., model_class: _Optional[str] = ..., remote_code: _Optional[_Iterable[_Union[WeightFile, _Mapping]]] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("type", "name", "memory_bytes", "count")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    memory_bytes: int
    count: int
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("kind", "model", "library_versions", "device", "image_digest", "protocol_version", "python_env_hash", "pid")
    class LibraryVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_ENV_HASH_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    kind: WorkerKind
    model: LoadedModel
    library_versions: _containers.ScalarMap[str, str]
    device: DeviceInfo
    image_digest: str
    protocol_version: str
    python_env_hash: str
    pid: int
    def __init__(self, kind: _Optional[_Union[WorkerKind, str]] = ..., model: _Optional[_Union[LoadedModel, _Mapping]] = ..., library_versions: _Optional[_Mapping[str, str]] = ..., device: _Optional[_Union[DeviceInfo, _Mapping]] = ..., image_digest: _Optional[str] = ..., protocol_version: _Optional[str] = ..., python_env_hash: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...
