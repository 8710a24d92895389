from tao_nb.proto import options_pb2 as _options_pb2
from tao_nb.proto import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SSDConfig(_message.Message):
    __slots__ = ("aspect_ratios_global", "aspect_ratios", "two_boxes_for_ar1", "clip_boxes", "scales", "min_scale", "max_scale", "variances", "steps", "offsets", "arch", "nlayers", "freeze_bn", "freeze_blocks", "alpha", "neg_pos_ratio", "pos_iou_thresh", "neg_iou_thresh")
    ASPECT_RATIOS_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    ASPECT_RATIOS_FIELD_NUMBER: _ClassVar[int]
    TWO_BOXES_FOR_AR1_FIELD_NUMBER: _ClassVar[int]
    CLIP_BOXES_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    MIN_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCALE_FIELD_NUMBER: _ClassVar[int]
    VARIANCES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    NLAYERS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BN_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    NEG_POS_RATIO_FIELD_NUMBER: _ClassVar[int]
    POS_IOU_THRESH_FIELD_NUMBER: _ClassVar[int]
    NEG_IOU_THRESH_FIELD_NUMBER: _ClassVar[int]
    aspect_ratios_global: str
    aspect_ratios: str
    two_boxes_for_ar1: bool
    clip_boxes: bool
    scales: str
    min_scale: float
    max_scale: float
    variances: str
    steps: str
    offsets: str
    arch: str
    nlayers: int
    freeze_bn: bool
    freeze_blocks: _containers.RepeatedScalarFieldContainer[int]
    alpha: float
    neg_pos_ratio: float
    pos_iou_thresh: float
    neg_iou_thresh: float
    def __init__(self, aspect_ratios_global: _Optional[str] = ..., aspect_ratios: _Optional[str] = ..., two_boxes_for_ar1: _Optional[bool] = ..., clip_boxes: _Optional[bool] = ..., scales: _Optional[str] = ..., min_scale: _Optional[float] = ..., max_scale: _Optional[float] = ..., variances: _Optional[str] = ..., steps: _Optional[str] = ..., offsets: _Optional[str] = ..., arch: _Optional[str] = ..., nlayers: _Optional[int] = ..., freeze_bn: _Optional[bool] = ..., freeze_blocks: _Optional[_Iterable[int]] = ..., alpha: _Optional[float] = ..., neg_pos_ratio: _Optional[float] = ..., pos_iou_thresh: _Optional[float] = ..., neg_iou_thresh: _Optional[float] = ...) -> None: ...

class SSDAugmentationConfig(_message.Message):
    __slots__ = ("output_width", "output_height", "output_channel", "random_crop_min_scale", "random_crop_max_scale", "random_crop_min_ar", "random_crop_max_ar", "zoom_out_min_scale", "zoom_out_max_scale", "brightness", "contrast", "saturation", "hue", "random_flip", "image_mean")
    class ImageMeanEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    OUTPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RANDOM_CROP_MIN_SCALE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_CROP_MAX_SCALE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_CROP_MIN_AR_FIELD_NUMBER: _ClassVar[int]
    RANDOM_CROP_MAX_AR_FIELD_NUMBER: _ClassVar[int]
    ZOOM_OUT_MIN_SCALE_FIELD_NUMBER: _ClassVar[int]
    ZOOM_OUT_MAX_SCALE_FIELD_NUMBER: _ClassVar[int]
    BRIGHTNESS_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    SATURATION_FIELD_NUMBER: _ClassVar[int]
    HUE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_FLIP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_MEAN_FIELD_NUMBER: _ClassVar[int]
    output_width: int
    output_height: int
    output_channel: int
    random_crop_min_scale: float
    random_crop_max_scale: float
    random_crop_min_ar: float
    random_crop_max_ar: float
    zoom_out_min_scale: float
    zoom_out_max_scale: float
    brightness: int
    contrast: float
    saturation: float
    hue: int
    random_flip: float
    image_mean: _containers.ScalarMap[str, float]
    def __init__(self, output_width: _Optional[int] = ..., output_height: _Optional[int] = ..., output_channel: _Optional[int] = ..., random_crop_min_scale: _Optional[float] = ..., random_crop_max_scale: _Optional[float] = ..., random_crop_min_ar: _Optional[float] = ..., random_crop_max_ar: _Optional[float] = ..., zoom_out_min_scale: _Optional[float] = ..., zoom_out_max_scale: _Optional[float] = ..., brightness: _Optional[int] = ..., contrast: _Optional[float] = ..., saturation: _Optional[float] = ..., hue: _Optional[int] = ..., random_flip: _Optional[float] = ..., image_mean: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SSDExperiment(_message.Message):
    __slots__ = ("random_seed", "ssd_config", "training_config", "eval_config", "nms_config", "augmentation_config", "dataset_config")
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    SSD_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EVAL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    NMS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DATASET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    random_seed: int
    ssd_config: SSDConfig
    training_config: _common_pb2.TrainingConfig
    eval_config: _common_pb2.EvalConfig
    nms_config: _common_pb2.NMSConfig
    augmentation_config: SSDAugmentationConfig
    dataset_config: _common_pb2.DatasetConfig
    def __init__(self, random_seed: _Optional[int] = ..., ssd_config: _Optional[_Union[SSDConfig, _Mapping]] = ..., training_config: _Optional[_Union[_common_pb2.TrainingConfig, _Mapping]] = ..., eval_config: _Optional[_Union[_common_pb2.EvalConfig, _Mapping]] = ..., nms_config: _Optional[_Union[_common_pb2.NMSConfig, _Mapping]] = ..., augmentation_config: _Optional[_Union[SSDAugmentationConfig, _Mapping]] = ..., dataset_config: _Optional[_Union[_common_pb2.DatasetConfig, _Mapping]] = ...) -> None: ...
