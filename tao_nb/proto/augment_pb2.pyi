from tao_nb.proto import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AugmentRotationConfig(_message.Message):
    __slots__ = ("angle", "units")
    ANGLE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    angle: _containers.RepeatedScalarFieldContainer[float]
    units: str
    def __init__(self, angle: _Optional[_Iterable[float]] = ..., units: _Optional[str] = ...) -> None: ...

class AugmentShearConfig(_message.Message):
    __slots__ = ("shear_ratio_x", "shear_ratio_y")
    SHEAR_RATIO_X_FIELD_NUMBER: _ClassVar[int]
    SHEAR_RATIO_Y_FIELD_NUMBER: _ClassVar[int]
    shear_ratio_x: _containers.RepeatedScalarFieldContainer[float]
    shear_ratio_y: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shear_ratio_x: _Optional[_Iterable[float]] = ..., shear_ratio_y: _Optional[_Iterable[float]] = ...) -> None: ...

class AugmentFlipConfig(_message.Message):
    __slots__ = ("flip_horizontal", "flip_vertical", "probability")
    FLIP_HORIZONTAL_FIELD_NUMBER: _ClassVar[int]
    FLIP_VERTICAL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    flip_horizontal: bool
    flip_vertical: bool
    probability: float
    def __init__(self, flip_horizontal: _Optional[bool] = ..., flip_vertical: _Optional[bool] = ..., probability: _Optional[float] = ...) -> None: ...

class AugmentTranslationConfig(_message.Message):
    __slots__ = ("translate_x", "translate_y")
    TRANSLATE_X_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_Y_FIELD_NUMBER: _ClassVar[int]
    translate_x: _containers.RepeatedScalarFieldContainer[int]
    translate_y: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, translate_x: _Optional[_Iterable[int]] = ..., translate_y: _Optional[_Iterable[int]] = ...) -> None: ...

class AugmentSpatialConfig(_message.Message):
    __slots__ = ("rotation_config", "shear_config", "flip_config", "translation_config")
    ROTATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SHEAR_CONFIG_FIELD_NUMBER: _ClassVar[int]
    FLIP_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRANSLATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    rotation_config: AugmentRotationConfig
    shear_config: AugmentShearConfig
    flip_config: AugmentFlipConfig
    translation_config: AugmentTranslationConfig
    def __init__(self, rotation_config: _Optional[_Union[AugmentRotationConfig, _Mapping]] = ..., shear_config: _Optional[_Union[AugmentShearConfig, _Mapping]] = ..., flip_config: _Optional[_Union[AugmentFlipConfig, _Mapping]] = ..., translation_config: _Optional[_Union[AugmentTranslationConfig, _Mapping]] = ...) -> None: ...

class AugmentHueSaturationConfig(_message.Message):
    __slots__ = ("hue_rotation_angle", "saturation_shift")
    HUE_ROTATION_ANGLE_FIELD_NUMBER: _ClassVar[int]
    SATURATION_SHIFT_FIELD_NUMBER: _ClassVar[int]
    hue_rotation_angle: _containers.RepeatedScalarFieldContainer[float]
    saturation_shift: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, hue_rotation_angle: _Optional[_Iterable[float]] = ..., saturation_shift: _Optional[_Iterable[float]] = ...) -> None: ...

class AugmentContrastConfig(_message.Message):
    __slots__ = ("contrast", "center")
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    CENTER_FIELD_NUMBER: _ClassVar[int]
    contrast: _containers.RepeatedScalarFieldContainer[float]
    center: float
    def __init__(self, contrast: _Optional[_Iterable[float]] = ..., center: _Optional[float] = ...) -> None: ...

class AugmentBrightnessConfig(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, offset: _Optional[_Iterable[float]] = ...) -> None: ...

class AugmentColorConfig(_message.Message):
    __slots__ = ("hue_saturation_config", "contrast_config", "brightness_config")
    HUE_SATURATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_CONFIG_FIELD_NUMBER: _ClassVar[int]
    BRIGHTNESS_CONFIG_FIELD_NUMBER: _ClassVar[int]
    hue_saturation_config: AugmentHueSaturationConfig
    contrast_config: AugmentContrastConfig
    brightness_config: AugmentBrightnessConfig
    def __init__(self, hue_saturation_config: _Optional[_Union[AugmentHueSaturationConfig, _Mapping]] = ..., contrast_config: _Optional[_Union[AugmentContrastConfig, _Mapping]] = ..., brightness_config: _Optional[_Union[AugmentBrightnessConfig, _Mapping]] = ...) -> None: ...

class AugmentBlurConfig(_message.Message):
    __slots__ = ("std", "size")
    STD_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    std: _containers.RepeatedScalarFieldContainer[float]
    size: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, std: _Optional[_Iterable[float]] = ..., size: _Optional[_Iterable[int]] = ...) -> None: ...

class AugmentDatasetConfig(_message.Message):
    __slots__ = ("image_path", "label_path")
    IMAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    LABEL_PATH_FIELD_NUMBER: _ClassVar[int]
    image_path: str
    label_path: str
    def __init__(self, image_path: _Optional[str] = ..., label_path: _Optional[str] = ...) -> None: ...

class AugmentSpec(_message.Message):
    __slots__ = ("spatial_config", "color_config", "blur_config", "dataset_config", "output_image_width", "output_image_height", "output_image_channel", "image_extension", "random_seed", "copies_per_image", "min_bbox_width", "min_bbox_height")
    SPATIAL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    COLOR_CONFIG_FIELD_NUMBER: _ClassVar[int]
    BLUR_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DATASET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    COPIES_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MIN_BBOX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    spatial_config: AugmentSpatialConfig
    color_config: AugmentColorConfig
    blur_config: AugmentBlurConfig
    dataset_config: AugmentDatasetConfig
    output_image_width: int
    output_image_height: int
    output_image_channel: int
    image_extension: str
    random_seed: int
    copies_per_image: int
    min_bbox_width: float
    min_bbox_height: float
    def __init__(self, spatial_config: _Optional[_Union[AugmentSpatialConfig, _Mapping]] = ..., color_config: _Optional[_Union[AugmentColorConfig, _Mapping]] = ..., blur_config: _Optional[_Union[AugmentBlurConfig, _Mapping]] = ..., dataset_config: _Optional[_Union[AugmentDatasetConfig, _Mapping]] = ..., output_image_width: _Optional[int] = ..., output_image_height: _Optional[int] = ..., output_image_channel: _Optional[int] = ..., image_extension: _Optional[str] = ..., random_seed: _Optional[int] = ..., copies_per_image: _Optional[int] = ..., min_bbox_width: _Optional[float] = ..., min_bbox_height: _Optional[float] = ...) -> None: ...
