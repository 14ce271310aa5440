from pdsdpo.v1 import common_pb2 as _common_pb2
from pdsdpo.v1 import responder_pb2 as _responder_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateRequest(_message.Message):
    __slots__ = ("benchmark", "questions", "image_root", "adapter_dir", "decoding", "max_batch_size", "split", "references")
    class ReferencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ...) -> None: ...
    BENCHMARK_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_DIR_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    benchmark: str
    questions: _common_pb2.Blob
    image_root: str
    adapter_dir: str
    decoding: _responder_pb2.Decoding
    max_batch_size: int
    split: str
    references: _containers.MessageMap[str, _common_pb2.Blob]
    def __init__(self, benchmark: _Optional[str] = ..., questions: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ..., image_root: _Optional[str] = ..., adapter_dir: _Optional[str] = ..., decoding: _Optional[_Union[_responder_pb2.Decoding, _Mapping]] = ..., max_batch_size: _Optional[int] = ..., split: _Optional[str] = ..., references: _Optional[_Mapping[str, _common_pb2.Blob]] = ...) -> None: ...

class EvalAnswer(_message.Message):
    __slots__ = ("question_id", "answer", "parsed")
    QUESTION_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    PARSED_FIELD_NUMBER: _ClassVar[int]
    question_id: str
    answer: str
    parsed: str
    def __init__(self, question_id: _Optional[str] = ..., answer: _Optional[str] = ..., parsed: _Optional[str] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("metrics", "answers")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.ScalarMap[str, float]
    answers: _common_pb2.ArtifactRef
    def __init__(self, metrics: _Optional[_Mapping[str, float]] = ..., answers: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("progress", "answer", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    answer: EvalAnswer
    result: EvalResult
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., answer: _Optional[_Union[EvalAnswer, _Mapping]] = ..., result: _Optional[_Union[EvalResult, _Mapping]] = ...) -> None: ...
