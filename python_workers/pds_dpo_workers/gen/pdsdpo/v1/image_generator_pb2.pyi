from pdsdpo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageDefect(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_DEFECT_UNSPECIFIED: _ClassVar[ImageDefect]
    IMAGE_DEFECT_NAN_PIXELS: _ClassVar[ImageDefect]
    IMAGE_DEFECT_ALL_BLACK: _ClassVar[ImageDefect]
IMAGE_DEFECT_UNSPECIFIED: ImageDefect
IMAGE_DEFECT_NAN_PIXELS: ImageDefect
IMAGE_DEFECT_ALL_BLACK: ImageDefect

class ImageGenerationItem(_message.Message):
    __slots__ = ("id", "prompt", "negative_prompt", "guidance_scale", "steps", "width", "height", "seed", "generator_device")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_DEVICE_FIELD_NUMBER: _ClassVar[int]
    id: str
    prompt: str
    negative_prompt: str
    guidance_scale: float
    steps: int
    width: int
    height: int
    seed: int
    generator_device: str
    def __init__(self, id: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., guidance_scale: _Optional[float] = ..., steps: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., generator_device: _Optional[str] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("items", "output", "max_batch_size")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ImageGenerationItem]
    output: _common_pb2.OutputMode
    max_batch_size: int
    def __init__(self, items: _Optional[_Iterable[_Union[ImageGenerationItem, _Mapping]]] = ..., output: _Optional[_Union[_common_pb2.OutputMode, str]] = ..., max_batch_size: _Optional[int] = ...) -> None: ...

class GeneratedImage(_message.Message):
    __slots__ = ("id", "image", "width", "height", "defects", "error", "seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEFECTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: _common_pb2.Blob
    width: int
    height: int
    defects: _containers.RepeatedScalarFieldContainer[ImageDefect]
    error: _common_pb2.ItemError
    seconds: float
    def __init__(self, id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., defects: _Optional[_Iterable[_Union[ImageDefect, str]]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("image", "progress")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    image: GeneratedImage
    progress: _common_pb2.Progress
    def __init__(self, image: _Optional[_Union[GeneratedImage, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ...) -> None: ...
