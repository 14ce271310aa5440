from pdsdpo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoraConfig(_message.Message):
    __slots__ = ("r", "alpha", "dropout", "target_modules")
    R_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    r: int
    alpha: int
    dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, r: _Optional[int] = ..., alpha: _Optional[int] = ..., dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ...) -> None: ...

class DpoConfig(_message.Message):
    __slots__ = ("beta", "loss_type")
    BETA_FIELD_NUMBER: _ClassVar[int]
    LOSS_TYPE_FIELD_NUMBER: _ClassVar[int]
    beta: float
    loss_type: str
    def __init__(self, beta: _Optional[float] = ..., loss_type: _Optional[str] = ...) -> None: ...

class OptimConfig(_message.Message):
    __slots__ = ("learning_rate", "scheduler", "warmup_ratio", "epochs", "max_steps", "batch_size", "grad_accumulation", "max_length", "precision", "projector_learning_rate", "tf32", "gradient_checkpointing")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRAD_ACCUMULATION_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PROJECTOR_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    TF32_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    scheduler: str
    warmup_ratio: float
    epochs: int
    max_steps: int
    batch_size: int
    grad_accumulation: int
    max_length: int
    precision: str
    projector_learning_rate: float
    tf32: bool
    gradient_checkpointing: bool
    def __init__(self, learning_rate: _Optional[float] = ..., scheduler: _Optional[str] = ..., warmup_ratio: _Optional[float] = ..., epochs: _Optional[int] = ..., max_steps: _Optional[int] = ..., batch_size: _Optional[int] = ..., grad_accumulation: _Optional[int] = ..., max_length: _Optional[int] = ..., precision: _Optional[str] = ..., projector_learning_rate: _Optional[float] = ..., tf32: _Optional[bool] = ..., gradient_checkpointing: _Optional[bool] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("dataset", "image_root", "lora", "dpo", "optim", "seed", "checkpoint_dir", "checkpoint_every", "resume", "gpus", "deepspeed_config", "report_to", "log_dir")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    DPO_FIELD_NUMBER: _ClassVar[int]
    OPTIM_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DIR_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    DEEPSPEED_CONFIG_FIELD_NUMBER: _ClassVar[int]
    REPORT_TO_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FIELD_NUMBER: _ClassVar[int]
    dataset: _common_pb2.Blob
    image_root: str
    lora: LoraConfig
    dpo: DpoConfig
    optim: OptimConfig
    seed: int
    checkpoint_dir: str
    checkpoint_every: int
    resume: bool
    gpus: int
    deepspeed_config: str
    report_to: _containers.RepeatedScalarFieldContainer[str]
    log_dir: str
    def __init__(self, dataset: _Optional[_Union[_common_pb2.Blob, _Mapping]] = ..., image_root: _Optional[str] = ..., lora: _Optional[_Union[LoraConfig, _Mapping]] = ..., dpo: _Optional[_Union[DpoConfig, _Mapping]] = ..., optim: _Optional[_Union[OptimConfig, _Mapping]] = ..., seed: _Optional[int] = ..., checkpoint_dir: _Optional[str] = ..., checkpoint_every: _Optional[int] = ..., resume: _Optional[bool] = ..., gpus: _Optional[int] = ..., deepspeed_config: _Optional[str] = ..., report_to: _Optional[_Iterable[str]] = ..., log_dir: _Optional[str] = ...) -> None: ...

class StepMetrics(_message.Message):
    __slots__ = ("step", "epoch", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: float
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CheckpointSaved(_message.Message):
    __slots__ = ("step", "path")
    STEP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    step: int
    path: str
    def __init__(self, step: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class TrainResult(_message.Message):
    __slots__ = ("adapter", "adapter_config", "metrics", "steps", "interrupted")
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    adapter: _common_pb2.ArtifactRef
    adapter_config: _common_pb2.ArtifactRef
    metrics: _common_pb2.ArtifactRef
    steps: int
    interrupted: bool
    def __init__(self, adapter: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., adapter_config: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., metrics: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., steps: _Optional[int] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("step", "checkpoint", "result", "progress")
    STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    step: StepMetrics
    checkpoint: CheckpointSaved
    result: TrainResult
    progress: _common_pb2.Progress
    def __init__(self, step: _Optional[_Union[StepMetrics, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointSaved, _Mapping]] = ..., result: _Optional[_Union[TrainResult, _Mapping]] = ..., progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ...) -> None: ...
