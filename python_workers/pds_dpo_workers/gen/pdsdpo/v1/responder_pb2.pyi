from pdsdpo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decoding(_message.Message):
    __slots__ = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "num_samples")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    num_samples: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., do_sample: _Optional[bool] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., num_samples: _Optional[int] = ...) -> None: ...

class RespondItem(_message.Message):
    __slots__ = ("id", "image", "instruction", "seed", "decoding")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: _common_pb2.Blob
    instruction: str
    seed: int
    decoding: Decoding
    def __init__(self, id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ..., instruction: _Optional[str] = ..., seed: _Optional[int] = ..., decoding: _Optional[_Union[Decoding, _Mapping]] = ...) -> None: ...

class RespondRequest(_message.Message):
    __slots__ = ("items", "max_batch_size")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RespondItem]
    max_batch_size: int
    def __init__(self, items: _Optional[_Iterable[_Union[RespondItem, _Mapping]]] = ..., max_batch_size: _Optional[int] = ...) -> None: ...

class GeneratedResponse(_message.Message):
    __slots__ = ("id", "sample_index", "text", "num_tokens", "finish_reason", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    sample_index: int
    text: str
    num_tokens: int
    finish_reason: str
    error: _common_pb2.ItemError
    def __init__(self, id: _Optional[str] = ..., sample_index: _Optional[int] = ..., text: _Optional[str] = ..., num_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class RespondResponse(_message.Message):
    __slots__ = ("response", "progress")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    response: GeneratedResponse
    progress: _common_pb2.Progress
    def __init__(self, response: _Optional[_Union[GeneratedResponse, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ...) -> None: ...
