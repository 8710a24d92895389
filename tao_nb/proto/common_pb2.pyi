from tao_nb.proto import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SoftStartAnnealingSchedule(_message.Message):
    __slots__ = ("min_learning_rate", "max_learning_rate", "soft_start", "annealing")
    MIN_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SOFT_START_FIELD_NUMBER: _ClassVar[int]
    ANNEALING_FIELD_NUMBER: _ClassVar[int]
    min_learning_rate: float
    max_learning_rate: float
    soft_start: float
    annealing: float
    def __init__(self, min_learning_rate: _Optional[float] = ..., max_learning_rate: _Optional[float] = ..., soft_start: _Optional[float] = ..., annealing: _Optional[float] = ...) -> None: ...

class LearningRateConfig(_message.Message):
    __slots__ = ("soft_start_annealing_schedule",)
    SOFT_START_ANNEALING_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    soft_start_annealing_schedule: SoftStartAnnealingSchedule
    def __init__(self, soft_start_annealing_schedule: _Optional[_Union[SoftStartAnnealingSchedule, _Mapping]] = ...) -> None: ...

class RegularizerConfig(_message.Message):
    __slots__ = ("type", "weight")
    class RegularizationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NO_REG: _ClassVar[RegularizerConfig.RegularizationType]
        L1: _ClassVar[RegularizerConfig.RegularizationType]
        L2: _ClassVar[RegularizerConfig.RegularizationType]
    NO_REG: RegularizerConfig.RegularizationType
    L1: RegularizerConfig.RegularizationType
    L2: RegularizerConfig.RegularizationType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    type: RegularizerConfig.RegularizationType
    weight: float
    def __init__(self, type: _Optional[_Union[RegularizerConfig.RegularizationType, str]] = ..., weight: _Optional[float] = ...) -> None: ...

class SGDOptimizerConfig(_message.Message):
    __slots__ = ("momentum", "nesterov")
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    NESTEROV_FIELD_NUMBER: _ClassVar[int]
    momentum: float
    nesterov: bool
    def __init__(self, momentum: _Optional[float] = ..., nesterov: _Optional[bool] = ...) -> None: ...

class AdamOptimizerConfig(_message.Message):
    __slots__ = ("epsilon", "beta1", "beta2", "amsgrad")
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    AMSGRAD_FIELD_NUMBER: _ClassVar[int]
    epsilon: float
    beta1: float
    beta2: float
    amsgrad: bool
    def __init__(self, epsilon: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., amsgrad: _Optional[bool] = ...) -> None: ...

class RMSpropOptimizerConfig(_message.Message):
    __slots__ = ("rho", "momentum", "epsilon", "centered")
    RHO_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    CENTERED_FIELD_NUMBER: _ClassVar[int]
    rho: float
    momentum: float
    epsilon: float
    centered: bool
    def __init__(self, rho: _Optional[float] = ..., momentum: _Optional[float] = ..., epsilon: _Optional[float] = ..., centered: _Optional[bool] = ...) -> None: ...

class OptimizerConfig(_message.Message):
    __slots__ = ("adam", "sgd", "rmsprop")
    ADAM_FIELD_NUMBER: _ClassVar[int]
    SGD_FIELD_NUMBER: _ClassVar[int]
    RMSPROP_FIELD_NUMBER: _ClassVar[int]
    adam: AdamOptimizerConfig
    sgd: SGDOptimizerConfig
    rmsprop: RMSpropOptimizerConfig
    def __init__(self, adam: _Optional[_Union[AdamOptimizerConfig, _Mapping]] = ..., sgd: _Optional[_Union[SGDOptimizerConfig, _Mapping]] = ..., rmsprop: _Optional[_Union[RMSpropOptimizerConfig, _Mapping]] = ...) -> None: ...

class VisualizerConfig(_message.Message):
    __slots__ = ("enabled", "num_images", "weight_histograms")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    num_images: int
    weight_histograms: bool
    def __init__(self, enabled: _Optional[bool] = ..., num_images: _Optional[int] = ..., weight_histograms: _Optional[bool] = ...) -> None: ...

class EarlyStoppingConfig(_message.Message):
    __slots__ = ("monitor", "min_delta", "patience")
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    monitor: str
    min_delta: float
    patience: int
    def __init__(self, monitor: _Optional[str] = ..., min_delta: _Optional[float] = ..., patience: _Optional[int] = ...) -> None: ...

class TrainingConfig(_message.Message):
    __slots__ = ("batch_size_per_gpu", "num_epochs", "learning_rate", "regularizer", "optimizer", "checkpoint_interval", "enable_qat", "resume_model_path", "pretrain_model_path", "pruned_model_path", "max_queue_size", "n_workers", "use_multiprocessing", "early_stopping", "visualizer", "pretrained_model_path")
    BATCH_SIZE_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    NUM_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ENABLE_QAT_FIELD_NUMBER: _ClassVar[int]
    RESUME_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    PRETRAIN_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    PRUNED_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_WORKERS_FIELD_NUMBER: _ClassVar[int]
    USE_MULTIPROCESSING_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    VISUALIZER_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    batch_size_per_gpu: int
    num_epochs: int
    learning_rate: LearningRateConfig
    regularizer: RegularizerConfig
    optimizer: OptimizerConfig
    checkpoint_interval: int
    enable_qat: bool
    resume_model_path: str
    pretrain_model_path: str
    pruned_model_path: str
    max_queue_size: int
    n_workers: int
    use_multiprocessing: bool
    early_stopping: EarlyStoppingConfig
    visualizer: VisualizerConfig
    pretrained_model_path: str
    def __init__(self, batch_size_per_gpu: _Optional[int] = ..., num_epochs: _Optional[int] = ..., learning_rate: _Optional[_Union[LearningRateConfig, _Mapping]] = ..., regularizer: _Optional[_Union[RegularizerConfig, _Mapping]] = ..., optimizer: _Optional[_Union[OptimizerConfig, _Mapping]] = ..., checkpoint_interval: _Optional[int] = ..., enable_qat: _Optional[bool] = ..., resume_model_path: _Optional[str] = ..., pretrain_model_path: _Optional[str] = ..., pruned_model_path: _Optional[str] = ..., max_queue_size: _Optional[int] = ..., n_workers: _Optional[int] = ..., use_multiprocessing: _Optional[bool] = ..., early_stopping: _Optional[_Union[EarlyStoppingConfig, _Mapping]] = ..., visualizer: _Optional[_Union[VisualizerConfig, _Mapping]] = ..., pretrained_model_path: _Optional[str] = ...) -> None: ...

class EvalConfig(_message.Message):
    __slots__ = ("validation_period_during_training", "average_precision_mode", "batch_size", "matching_iou_threshold", "visualize_pr_curve")
    class AP_MODE(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SAMPLE: _ClassVar[EvalConfig.AP_MODE]
        INTEGRATE: _ClassVar[EvalConfig.AP_MODE]
    SAMPLE: EvalConfig.AP_MODE
    INTEGRATE: EvalConfig.AP_MODE
    VALIDATION_PERIOD_DURING_TRAINING_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_MODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MATCHING_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VISUALIZE_PR_CURVE_FIELD_NUMBER: _ClassVar[int]
    validation_period_during_training: int
    average_precision_mode: EvalConfig.AP_MODE
    batch_size: int
    matching_iou_threshold: float
    visualize_pr_curve: bool
    def __init__(self, validation_period_during_training: _Optional[int] = ..., average_precision_mode: _Optional[_Union[EvalConfig.AP_MODE, str]] = ..., batch_size: _Optional[int] = ..., matching_iou_threshold: _Optional[float] = ..., visualize_pr_curve: _Optional[bool] = ...) -> None: ...

class NMSConfig(_message.Message):
    __slots__ = ("confidence_threshold", "clustering_iou_threshold", "top_k", "infer_nms_score_bits", "cluster_iou_threshold")
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    INFER_NMS_SCORE_BITS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    confidence_threshold: float
    clustering_iou_threshold: float
    top_k: int
    infer_nms_score_bits: int
    cluster_iou_threshold: float
    def __init__(self, confidence_threshold: _Optional[float] = ..., clustering_iou_threshold: _Optional[float] = ..., top_k: _Optional[int] = ..., infer_nms_score_bits: _Optional[int] = ..., cluster_iou_threshold: _Optional[float] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("tfrecords_path", "image_directory_path", "label_directory_path")
    TFRECORDS_PATH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIRECTORY_PATH_FIELD_NUMBER: _ClassVar[int]
    LABEL_DIRECTORY_PATH_FIELD_NUMBER: _ClassVar[int]
    tfrecords_path: str
    image_directory_path: str
    label_directory_path: str
    def __init__(self, tfrecords_path: _Optional[str] = ..., image_directory_path: _Optional[str] = ..., label_directory_path: _Optional[str] = ...) -> None: ...

class DatasetConfig(_message.Message):
    __slots__ = ("data_sources", "target_class_mapping", "validation_data_sources", "include_difficult_in_training", "validation_fold", "image_extension")
    class TargetClassMappingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATA_SOURCES_FIELD_NUMBER: _ClassVar[int]
    TARGET_CLASS_MAPPING_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_SOURCES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DIFFICULT_IN_TRAINING_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FOLD_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    data_sources: _containers.RepeatedCompositeFieldContainer[DataSource]
    target_class_mapping: _containers.ScalarMap[str, str]
    validation_data_sources: _containers.RepeatedCompositeFieldContainer[DataSource]
    include_difficult_in_training: bool
    validation_fold: int
    image_extension: str
    def __init__(self, data_sources: _Optional[_Iterable[_Union[DataSource, _Mapping]]] = ..., target_class_mapping: _Optional[_Mapping[str, str]] = ..., validation_data_sources: _Optional[_Iterable[_Union[DataSource, _Mapping]]] = ..., include_difficult_in_training: _Optional[bool] = ..., validation_fold: _Optional[int] = ..., image_extension: _Optional[str] = ...) -> None: ...
