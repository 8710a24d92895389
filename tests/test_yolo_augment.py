"YOLOv3 online augmentation (tao_nb.data.yolo_augment): boxes follow the pixels, settings at zero change nothing."
import numpy as np
import pytest

from tao_nb.core import TaoNbError
from tao_nb.data.augment import color_transform, spatial_matrix
from tao_nb.data.pipeline import SSDAugmentation, batch, detection_data, eval_dataset, preprocess, train_dataset
from tao_nb.data.yolo_augment import YOLOAugmentation, draw_matrices, tf

MEAN = np.array(YOLOAugmentation(128, 96).mean, np.float32)


def _el(image, boxes):
    n = len(boxes)
    return {"image": tf.constant(image, tf.float32), "boxes": tf.constant(np.reshape(boxes, (-1, 4)), tf.float32),
            "classes": tf.range(1, n + 1), "difficult": tf.zeros([n], tf.bool), "frame_id": tf.constant("f")}


def _rgb(out):
    "The 0..255 RGB image back from a transformed element."
    return (out["image"].numpy() + MEAN)[..., ::-1]


def _rect(w=128, h=96, box=(30, 20, 70, 50)):
    im = np.zeros((h, w, 3), np.float32)
    im[box[1]:box[3], box[0]:box[2]] = 255
    return im, np.array(box, np.float32) / [w, h, w, h]


def test_identity_settings_change_nothing_but_resize_and_mean():
    im = np.asarray(tf.random.stateless_uniform([96, 128, 3], [1, 2], 0, 255))
    el = _el(im, [[0.1, 0.2, 0.5, 0.6]])
    for aug in (YOLOAugmentation(128, 96), YOLOAugmentation(160, 128)):
        for out in (aug.eval_transform(el), aug.train_transform(el, tf.constant([3, 4], tf.int64))):
            ssd = preprocess(el, SSDAugmentation(aug.output_width, aug.output_height))
            np.testing.assert_allclose(out["image"], ssd["image"], atol=5e-3)
            np.testing.assert_allclose(out["boxes"], el["boxes"], atol=1e-6)
            assert out["image"].dtype == tf.float32


def test_hflip_and_vflip_mirror_boxes_and_pixels():
    im, box = _rect()
    el = _el(im, [box])
    for aug, fn in ((YOLOAugmentation(128, 96, hflip_probability=1.0), lambda b: [1 - b[2], b[1], 1 - b[0], b[3]]),
                    (YOLOAugmentation(128, 96, vflip_probability=1.0), lambda b: [b[0], 1 - b[3], b[2], 1 - b[1]])):
        out = aug.train_transform(el, tf.constant([0, 0], tf.int64))
        np.testing.assert_allclose(out["boxes"][0], fn(box), atol=1e-6)
        flipped = im[:, ::-1] if aug.hflip_probability else im[::-1]
        np.testing.assert_allclose(_rgb(out), flipped, atol=1e-3)


def _bounds(rgb):
    ys, xs = np.nonzero(rgb[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("kw", [dict(zoom=(1.4, 1.4)), dict(zoom=(0.6, 0.6)), dict(translate_max=(12.0, 9.0)),
                                dict(zoom=(0.7, 1.5), translate_max=(10.0, 10.0), hflip_probability=0.5)])
def test_zoom_translate_move_boxes_with_the_content(kw):
    im, box = _rect()
    aug = YOLOAugmentation(128, 96, **kw)
    for k in range(3):
        out = aug.train_transform(_el(im, [box]), tf.constant([7, k], tf.int64))
        got = out["boxes"][0].numpy() * [128, 96, 128, 96]
        np.testing.assert_allclose(got, _bounds(_rgb(out)), atol=1.0)


def test_rotation_box_bounds_rotated_rectangle():
    im, box = _rect()
    aug = YOLOAugmentation(128, 96, rotate_rad_max=0.5, rotate_probability=1.0)
    out = aug.train_transform(_el(im, [box]), tf.constant([5, 1], tf.int64))
    b, r = out["boxes"][0].numpy() * [128, 96, 128, 96], _bounds(_rgb(out))
    assert (b[:2] <= r[:2] + 1).all() and (b[2:] >= r[2:] - 1).all()


def test_crop_then_resize_maps_boxes():
    im, _ = _rect(200, 100, (50, 30, 90, 70))
    box = np.array([50, 30, 90, 70], np.float32) / [200, 100, 200, 100]
    aug = YOLOAugmentation(128, 96, crop=(40, 20, 120, 80))  # 80 x 60 crop -> x1.6 both ways
    out = aug.eval_transform(_el(im, [box]))
    expect = (np.array([50, 30, 90, 70]) - [40, 20, 40, 20]) * 1.6 / [128, 96, 128, 96]
    np.testing.assert_allclose(out["boxes"][0], expect, atol=1e-5)
    np.testing.assert_allclose(out["boxes"][0].numpy() * [128, 96, 128, 96], _bounds(_rgb(out)), atol=1.0)
    # right/bottom past the image: black padding, boxes still in output pixels of the crop
    out = YOLOAugmentation(128, 96, crop=(0, 0, 400, 200)).eval_transform(_el(im, [box]))
    np.testing.assert_allclose(out["boxes"][0], np.array([50, 30, 90, 70]) * [0.32, 0.48, 0.32, 0.48] / [128, 96, 128, 96], atol=1e-5)
    assert _rgb(out)[60:, 80:].max() < 1e-3


def test_min_bbox_drops_small_boxes_and_boxes_that_leave():
    im = np.zeros((96, 128, 3), np.float32)
    boxes = [[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.12, 0.5], [0.6, 0.6, 0.9, 0.62]]  # ~51x38, ~2.6x38, ~38x2 px
    out = YOLOAugmentation(128, 96, min_bbox=(4.0, 4.0)).eval_transform(_el(im, boxes))
    assert out["classes"].numpy().tolist() == [1]
    out = YOLOAugmentation(128, 96).eval_transform(_el(im, boxes))
    assert out["classes"].numpy().tolist() == [1, 2, 3]
    out = YOLOAugmentation(128, 96, crop=(0, 0, 60, 40)).eval_transform(_el(im, boxes))  # the third is outside
    assert out["classes"].numpy().tolist() == [1, 2]


def test_colour_ops_identity_at_zero_and_match_offline_color_transform():
    im = np.asarray(tf.random.stateless_uniform([96, 128, 3], [1, 2], 0, 255)).round()
    el = _el(im, [[0.1, 0.2, 0.5, 0.6]])
    base = YOLOAugmentation(128, 96).train_transform(el, tf.constant([1, 1], tf.int64))
    np.testing.assert_array_equal(_rgb(base), _rgb(YOLOAugmentation(128, 96).eval_transform(el)))
    aug = YOLOAugmentation(128, 96, hue_rotation_max=25.0, saturation_shift_max=0.2, contrast_scale_max=0.1,
                           contrast_center=0.5)
    seed = tf.constant([1, 1], tf.int64)
    out = aug.train_transform(el, seed)
    assert out["image"].shape == (96, 128, 3) and out["image"].dtype == tf.float32
    assert np.abs(_rgb(out) - im).max() > 1
    # the same draw through the offline tool's colour_transform (it rounds to uint8)
    from tao_nb.data.pipeline import _seeds
    s = _seeds(seed, 2)
    u = tf.random.stateless_uniform([10], s[0]).numpy().astype(np.float64)
    c = (2 * u[9] - 1) * 0.1
    offline = color_transform(im.astype(np.uint8), (2 * u[7] - 1) * 25.0, 1 + (2 * u[8] - 1) * 0.2, c, 127.5)
    np.testing.assert_allclose(_rgb(out), offline, atol=0.51)


def test_draw_matrices_is_the_offline_spatial_matrix():
    aug = YOLOAugmentation(128, 96, hflip_probability=1.0, translate_max=(10.0, 6.0), rotate_rad_max=0.3,
                           rotate_probability=1.0)
    u = np.array([0.1, 0.9, 0.3, 0.75, 0.25, 0.0, 1.0, 0.5, 0.5, 0.5])
    m, colour, offset = draw_matrices(u, np.zeros(3), aug)
    np.testing.assert_allclose(m, spatial_matrix(128, 96, angle=0.3, translate_x=5.0, translate_y=-3.0,
                                                 flip_horizontal=True), atol=1e-12)
    np.testing.assert_allclose(colour, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(offset, 0, atol=1e-9)


def test_same_seed_same_output():
    im, box = _rect()
    aug = YOLOAugmentation(128, 96, hflip_probability=0.5, zoom=(0.7, 1.8), translate_max=(8.0, 8.0),
                           hue_rotation_max=25.0, color_shift_stddev=0.1)
    el = _el(im, [box])
    a, b = (aug.train_transform(el, tf.constant([9, 9], tf.int64)) for _ in range(2))
    np.testing.assert_array_equal(a["image"], b["image"]); np.testing.assert_array_equal(a["boxes"], b["boxes"])
    outs = [aug.train_transform(el, tf.constant([9, k], tf.int64))["boxes"].numpy() for k in range(4)]
    assert len({o.tobytes() for o in outs}) > 1


def test_from_spec_seed_and_bad_crop():
    from tao_nb.spec import load_spec, spec_from_text
    from pathlib import Path
    path = Path(__file__).parent / "fixtures/specs/seeds/yolov3_experiment.txt"
    aug = YOLOAugmentation.from_spec(load_spec(path).augmentation_config)
    assert (aug.output_width, aug.output_height, aug.crop, aug.min_bbox) == (1248, 384, (0, 0, 1248, 384), (1.0, 1.0))
    assert (aug.hflip_probability, aug.zoom, aug.translate_max, aug.hue_rotation_max, aug.saturation_shift_max,
            aug.contrast_scale_max) == (0.5, (0.7, 1.8), (8.0, 8.0), 25.0, 0.2, 0.1)
    text = path.read_text().replace("crop_right: 1248", "crop_right: 1248\n    crop_left: 1300")
    with pytest.raises(TaoNbError, match="crop_right"):
        YOLOAugmentation.from_spec(spec_from_text(text, "yolo_v3").augmentation_config)


def test_train_dataset_over_a_yolov3_spec(tmp_path):
    from pathlib import Path
    from tao_nb.data.sample import make_sample_dataset, sample_class_mapping
    from tao_nb.spec import spec_from_text
    make_sample_dataset(tmp_path, n_train=3, n_val=1, image_size=(256, 128), workers=1)
    train = tmp_path / "training"
    mapping = "".join(f'  target_class_mapping {{ key: "{k}" value: "{v}" }}\n' for k, v in sample_class_mapping().items())
    path = Path(__file__).parent / "fixtures/specs/seeds/yolov3_experiment.txt"
    text = path.read_text().split("\ndataset_config {")[0] + f"""
dataset_config {{
  data_sources {{ image_directory_path: "{train / 'image_2'}" label_directory_path: "{train / 'label_2'}" }}
  image_extension: "png"
{mapping}}}"""
    text = text.replace("output_image_width: 1248", "output_image_width: 256").replace("crop_right: 1248", "crop_right: 0")
    text = text.replace("output_image_height: 384", "output_image_height: 128").replace("crop_bottom: 384", "crop_bottom: 0")
    spec = spec_from_text(text, "yolo_v3")
    aug, data = YOLOAugmentation.from_spec(spec.augmentation_config), detection_data(spec.dataset_config)
    b = next(iter(batch(train_dataset(data, aug, seed=1), 2)))
    assert b["image"].shape == (2, 128, 256, 3) and b["boxes"].shape[0] == 2 and b["boxes"].shape[2] == 4
    assert b["classes"].shape == b["boxes"].shape[:2]
    again = next(iter(batch(train_dataset(data, aug, seed=1), 2)))
    np.testing.assert_array_equal(b["image"], again["image"])
    e = next(iter(batch(eval_dataset(data, aug), 3)))
    assert e["image"].shape == (3, 128, 256, 3)
    b_ = (e["boxes"].numpy(), e["classes"].numpy())
    assert ((b_[0][b_[1] > 0] >= 0) & (b_[0][b_[1] > 0] <= 1)).all()


def test_gray_output_no_boxes_and_pre_crop_scale():
    im, box = _rect()
    out = YOLOAugmentation(64, 48, output_channel=1, mean=(117.3786,)).train_transform(
        _el(im, np.zeros((0, 4))), tf.constant([1, 1], tf.int64))
    assert out["image"].shape == (48, 64, 1) and out["boxes"].shape == (0, 4) and out["classes"].shape == (0,)
    # scale 2x, then crop the top-left 128 x 96 scaled pixels: the top-left quarter of the image, enlarged 2x
    out = YOLOAugmentation(128, 96, crop=(0, 0, 128, 96), scale=(2.0, 2.0)).eval_transform(_el(im, [box]))
    np.testing.assert_allclose(out["boxes"][0], np.minimum(box * 2, 1), atol=1e-6)


def test_crop_outside_the_image_is_a_clear_error():
    im, box = _rect()
    with pytest.raises(Exception, match="crop_left/crop_top must lie inside the image"):
        YOLOAugmentation(128, 96, crop=(300, 0, 0, 0)).eval_transform(_el(im, [box]))


@pytest.mark.slow
def test_fuzz_boxes_follow_the_rectangle():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(x0=st.integers(0, 100), y0=st.integers(0, 70), w=st.integers(8, 60), h=st.integers(8, 50),
           zoom=st.floats(0.5, 2.0), tx=st.floats(0, 20), ty=st.floats(0, 20), flip=st.booleans(),
           crop=st.booleans(), seed=st.integers(0, 2 ** 31))
    def check(x0, y0, w, h, zoom, tx, ty, flip, crop, seed):
        box = (x0, y0, min(x0 + w, 128), min(y0 + h, 96))
        im, nbox = _rect(128, 96, box)
        aug = YOLOAugmentation(96, 64, crop=(10, 5, 120, 90) if crop else (0, 0, 0, 0), zoom=(zoom, zoom),
                               translate_max=(tx, ty), hflip_probability=float(flip))
        out = aug.train_transform(_el(im, [nbox]), tf.constant([seed, 0], tf.int64))
        rgb = _rgb(out)
        if out["boxes"].shape[0] == 0:  # dropped: (almost) nothing of the rectangle is left
            assert (rgb[..., 0] > 127).sum() <= 2 * max(rgb.shape)
            return
        got = out["boxes"][0].numpy() * [96, 64, 96, 64]
        if (rgb[..., 0] > 127).sum() == 0:  # a sliver thinner than a pixel centre
            assert min(got[2] - got[0], got[3] - got[1]) < 1.5
            return
        np.testing.assert_allclose(got, _bounds(rgb), atol=1.0)
    check()


@pytest.mark.slow
def test_seed_spec_sized_transform_speed():
    import time
    from pathlib import Path
    from tao_nb.spec import load_spec
    path = Path(__file__).parent / "fixtures/specs/seeds/yolov3_experiment.txt"
    aug = YOLOAugmentation.from_spec(load_spec(path).augmentation_config)
    im = np.asarray(tf.random.stateless_uniform([375, 1242, 3], [1, 2], 0, 255))
    el = _el(im, [[0.1, 0.2, 0.3, 0.4]] * 10)
    fn = tf.function(aug.train_transform)
    fn(el, tf.constant([0, 0], tf.int64))
    start = time.perf_counter()
    for k in range(10): out = fn(el, tf.constant([0, k], tf.int64))
    per = (time.perf_counter() - start) / 10
    assert out["image"].shape == (384, 1248, 3)
    assert per < 0.5, f"{per * 1000:.0f} ms per 1242x375 image"
    print(f"{per * 1000:.0f} ms per image")


def test_box_outside_the_crop_stays_dropped_under_zoom_out():
    "Found by the fuzz test: a zoom out shows the area around the crop (black), the boxes there must not come back."
    im, box = _rect(128, 96, (0, 0, 8, 8))
    aug = YOLOAugmentation(96, 64, crop=(10, 5, 120, 90), zoom=(0.5, 0.5))
    out = aug.train_transform(_el(im, [box]), tf.constant([0, 0], tf.int64))
    assert out["boxes"].shape == (0, 4) and (_rgb(out)[..., 0] > 127).sum() == 0


@pytest.mark.slow
def test_fuzz_rotated_boxes_contain_the_rectangle_and_colour_keeps_range():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=100, deadline=None)
    @given(x0=st.integers(0, 90), y0=st.integers(0, 60), w=st.integers(8, 40), h=st.integers(8, 30),
           angle=st.floats(0, 3.14159265), zoom=st.floats(0.6, 1.6), hue=st.floats(0, 360), sat=st.floats(0, 1),
           contrast=st.floats(0, 1), shift=st.floats(0, 1), seed=st.integers(0, 2 ** 31))
    def check(x0, y0, w, h, angle, zoom, hue, sat, contrast, shift, seed):
        box = (x0, y0, min(x0 + w, 128), min(y0 + h, 96))
        im, nbox = _rect(128, 96, box)
        aug = YOLOAugmentation(128, 96, zoom=(zoom, zoom), rotate_rad_max=angle, rotate_probability=1.0)
        out = aug.train_transform(_el(im, [nbox]), tf.constant([seed, 1], tf.int64))
        rgb = _rgb(out)
        if (rgb[..., 0] > 127).sum():
            assert out["boxes"].shape[0] == 1
            b, r = out["boxes"][0].numpy() * [128, 96, 128, 96], _bounds(rgb)
            assert (b[:2] <= r[:2] + 1).all() and (b[2:] >= r[2:] - 1).all()
        col = YOLOAugmentation(128, 96, hue_rotation_max=hue, saturation_shift_max=sat, contrast_scale_max=contrast,
                               color_shift_stddev=shift)
        out = col.train_transform(_el(im, [nbox]), tf.constant([seed, 2], tf.int64))
        c = _rgb(out)
        assert out["image"].shape == (96, 128, 3) and np.isfinite(c).all()
        assert c.min() >= -1e-3 and c.max() <= 255 + 1e-3
        np.testing.assert_array_equal(out["boxes"], _el(im, [nbox])["boxes"])
    check()
