from tao_nb.proto import options_pb2 as _options_pb2
from tao_nb.proto import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class YOLOv3Config(_message.Message):
    __slots__ = ("big_anchor_shape", "mid_anchor_shape", "small_anchor_shape", "matching_neutral_box_iou", "arch_conv_blocks", "loss_loc_weight", "loss_neg_obj_weights", "loss_class_weights", "freeze_blocks", "freeze_bn", "force_relu", "arch", "nlayers")
    BIG_ANCHOR_SHAPE_FIELD_NUMBER: _ClassVar[int]
    MID_ANCHOR_SHAPE_FIELD_NUMBER: _ClassVar[int]
    SMALL_ANCHOR_SHAPE_FIELD_NUMBER: _ClassVar[int]
    MATCHING_NEUTRAL_BOX_IOU_FIELD_NUMBER: _ClassVar[int]
    ARCH_CONV_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LOSS_LOC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOSS_NEG_OBJ_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    LOSS_CLASS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_BN_FIELD_NUMBER: _ClassVar[int]
    FORCE_RELU_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    NLAYERS_FIELD_NUMBER: _ClassVar[int]
    big_anchor_shape: str
    mid_anchor_shape: str
    small_anchor_shape: str
    matching_neutral_box_iou: float
    arch_conv_blocks: int
    loss_loc_weight: float
    loss_neg_obj_weights: float
    loss_class_weights: float
    freeze_blocks: _containers.RepeatedScalarFieldContainer[int]
    freeze_bn: bool
    force_relu: bool
    arch: str
    nlayers: int
    def __init__(self, big_anchor_shape: _Optional[str] = ..., mid_anchor_shape: _Optional[str] = ..., small_anchor_shape: _Optional[str] = ..., matching_neutral_box_iou: _Optional[float] = ..., arch_conv_blocks: _Optional[int] = ..., loss_loc_weight: _Optional[float] = ..., loss_neg_obj_weights: _Optional[float] = ..., loss_class_weights: _Optional[float] = ..., freeze_blocks: _Optional[_Iterable[int]] = ..., freeze_bn: _Optional[bool] = ..., force_relu: _Optional[bool] = ..., arch: _Optional[str] = ..., nlayers: _Optional[int] = ...) -> None: ...

class Preprocessing(_message.Message):
    __slots__ = ("output_image_width", "output_image_height", "output_image_channel", "crop_left", "crop_top", "crop_right", "crop_bottom", "min_bbox_width", "min_bbox_height", "scale_width", "scale_height")
    OUTPUT_IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CROP_LEFT_FIELD_NUMBER: _ClassVar[int]
    CROP_TOP_FIELD_NUMBER: _ClassVar[int]
    CROP_RIGHT_FIELD_NUMBER: _ClassVar[int]
    CROP_BOTTOM_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCALE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    SCALE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    output_image_width: int
    output_image_height: int
    output_image_channel: int
    crop_left: int
    crop_top: int
    crop_right: int
    crop_bottom: int
    min_bbox_width: float
    min_bbox_height: float
    scale_width: float
    scale_height: float
    def __init__(self, output_image_width: _Optional[int] = ..., output_image_height: _Optional[int] = ..., output_image_channel: _Optional[int] = ..., crop_left: _Optional[int] = ..., crop_top: _Optional[int] = ..., crop_right: _Optional[int] = ..., crop_bottom: _Optional[int] = ..., min_bbox_width: _Optional[float] = ..., min_bbox_height: _Optional[float] = ..., scale_width: _Optional[float] = ..., scale_height: _Optional[float] = ...) -> None: ...

class SpatialAugmentation(_message.Message):
    __slots__ = ("hflip_probability", "vflip_probability", "zoom_min", "zoom_max", "translate_max_x", "translate_max_y", "rotate_rad_max", "rotate_probability")
    HFLIP_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    VFLIP_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    ZOOM_MIN_FIELD_NUMBER: _ClassVar[int]
    ZOOM_MAX_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_MAX_X_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_MAX_Y_FIELD_NUMBER: _ClassVar[int]
    ROTATE_RAD_MAX_FIELD_NUMBER: _ClassVar[int]
    ROTATE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    hflip_probability: float
    vflip_probability: float
    zoom_min: float
    zoom_max: float
    translate_max_x: float
    translate_max_y: float
    rotate_rad_max: float
    rotate_probability: float
    def __init__(self, hflip_probability: _Optional[float] = ..., vflip_probability: _Optional[float] = ..., zoom_min: _Optional[float] = ..., zoom_max: _Optional[float] = ..., translate_max_x: _Optional[float] = ..., translate_max_y: _Optional[float] = ..., rotate_rad_max: _Optional[float] = ..., rotate_probability: _Optional[float] = ...) -> None: ...

class ColorAugmentation(_message.Message):
    __slots__ = ("color_shift_stddev", "hue_rotation_max", "saturation_shift_max", "contrast_scale_max", "contrast_center")
    COLOR_SHIFT_STDDEV_FIELD_NUMBER: _ClassVar[int]
    HUE_ROTATION_MAX_FIELD_NUMBER: _ClassVar[int]
    SATURATION_SHIFT_MAX_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_SCALE_MAX_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_CENTER_FIELD_NUMBER: _ClassVar[int]
    color_shift_stddev: float
    hue_rotation_max: float
    saturation_shift_max: float
    contrast_scale_max: float
    contrast_center: float
    def __init__(self, color_shift_stddev: _Optional[float] = ..., hue_rotation_max: _Optional[float] = ..., saturation_shift_max: _Optional[float] = ..., contrast_scale_max: _Optional[float] = ..., contrast_center: _Optional[float] = ...) -> None: ...

class DetectionAugmentationConfig(_message.Message):
    __slots__ = ("preprocessing", "spatial_augmentation", "color_augmentation")
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    SPATIAL_AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    COLOR_AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    preprocessing: Preprocessing
    spatial_augmentation: SpatialAugmentation
    color_augmentation: ColorAugmentation
    def __init__(self, preprocessing: _Optional[_Union[Preprocessing, _Mapping]] = ..., spatial_augmentation: _Optional[_Union[SpatialAugmentation, _Mapping]] = ..., color_augmentation: _Optional[_Union[ColorAugmentation, _Mapping]] = ...) -> None: ...

class YOLOv3Experiment(_message.Message):
    __slots__ = ("random_seed", "yolov3_config", "training_config", "eval_config", "nms_config", "augmentation_config", "dataset_config", "yolo_config")
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    YOLOV3_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EVAL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    NMS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DATASET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    YOLO_CONFIG_FIELD_NUMBER: _ClassVar[int]
    random_seed: int
    yolov3_config: YOLOv3Config
    training_config: _common_pb2.TrainingConfig
    eval_config: _common_pb2.EvalConfig
    nms_config: _common_pb2.NMSConfig
    augmentation_config: DetectionAugmentationConfig
    dataset_config: _common_pb2.DatasetConfig
    yolo_config: YOLOv3Config
    def __init__(self, random_seed: _Optional[int] = ..., yolov3_config: _Optional[_Union[YOLOv3Config, _Mapping]] = ..., training_config: _Optional[_Union[_common_pb2.TrainingConfig, _Mapping]] = ..., eval_config: _Optional[_Union[_common_pb2.EvalConfig, _Mapping]] = ..., nms_config: _Optional[_Union[_common_pb2.NMSConfig, _Mapping]] = ..., augmentation_config: _Optional[_Union[DetectionAugmentationConfig, _Mapping]] = ..., dataset_config: _Optional[_Union[_common_pb2.DatasetConfig, _Mapping]] = ..., yolo_config: _Optional[_Union[YOLOv3Config, _Mapping]] = ...) -> None: ...
