from pdsdpo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseScoringItem(_message.Message):
    __slots__ = ("id", "question", "answer", "image")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    question: str
    answer: str
    image: _common_pb2.Blob
    def __init__(self, id: _Optional[str] = ..., question: _Optional[str] = ..., answer: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ...) -> None: ...

class ResponseScorerServiceScoreRequest(_message.Message):
    __slots__ = ("items", "max_batch_size", "score_empty_answers")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCORE_EMPTY_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ResponseScoringItem]
    max_batch_size: int
    score_empty_answers: bool
    def __init__(self, items: _Optional[_Iterable[_Union[ResponseScoringItem, _Mapping]]] = ..., max_batch_size: _Optional[int] = ..., score_empty_answers: _Optional[bool] = ...) -> None: ...

class ResponseScore(_message.Message):
    __slots__ = ("id", "score", "components", "error")
    class ComponentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    components: _containers.ScalarMap[str, float]
    error: _common_pb2.ItemError
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., components: _Optional[_Mapping[str, float]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ResponseScorerServiceScoreResponse(_message.Message):
    __slots__ = ("score", "progress")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    score: ResponseScore
    progress: _common_pb2.Progress
    def __init__(self, score: _Optional[_Union[ResponseScore, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ...) -> None: ...
