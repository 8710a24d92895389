"""Offline augmentation: determinism, valid boxes after any transform, exact flips, labels untouched by colour,
clear errors for bad specs and bad input, speed."""
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from conftest import FIXTURES
from tao_nb.core import TaoNbError
from tao_nb.data.augment import (AugmentParams, augment_dataset, augment_image, color_transform, flip_matrix,
                                 gaussian_blur, sample_params, spatial_matrix, transform_annotations, transform_boxes,
                                 warp_image)
from tao_nb.data.kitti import ImageAnnotations, kitti_label_text, read_kitti_label
from tao_nb.spec import SpecError, load_spec, spec_from_text, spec_kind, spec_to_text

EXAMPLE = FIXTURES / "specs" / "augment_example.txt"
DATASET = 'dataset_config { image_path: "images" label_path: "labels" }\n'
FULL = DATASET + """
spatial_config {
  rotation_config { angle: [-15, 15] }
  shear_config { shear_ratio_x: [-0.2, 0.2] shear_ratio_y: [-0.1, 0.1] }
  flip_config { flip_horizontal: true flip_vertical: true probability: 0.5 }
  translation_config { translate_x: [-40, 40] translate_y: [-20, 20] }
}
color_config {
  hue_saturation_config { hue_rotation_angle: [-45, 45] saturation_shift: [0.5, 1.5] }
  contrast_config { contrast: [-0.3, 0.3] }
  brightness_config { offset: [-30, 30] }
}
blur_config { std: [0.3, 1.5] }
output_image_width: 160
output_image_height: 96
copies_per_image: 3
"""


def make_kitti(root: Path, n: int = 6, size=(128, 80), ext=".png") -> Path:
    """A KITTI folder of `n` images with two coloured rectangles each, labelled."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    w, h = size
    for i in range(n):
        px = np.zeros((h, w, 3), np.uint8)
        px[..., 2] = np.linspace(30, 150, w, dtype=np.uint8)
        boxes = [[4 + i, 6, w // 2, h - 10], [w // 2 + 5, 10 + i, w - 3, h // 2 + 10]]
        for (x1, y1, x2, y2), colour in zip(boxes, [(220, 50, 40), (50, 210, 80)]):
            px[y1:y2, x1:x2] = colour
        Image.fromarray(px).save(root / "images" / f"{i:06d}{ext}")
        ann = ImageAnnotations(f"{i:06d}", ["Car", "Pedestrian"], boxes, truncation=[0.0, 0.25], occlusion=[0, 2],
                               alpha=[0.5, -1.0])
        (root / "labels" / f"{i:06d}.txt").write_text(kitti_label_text(ann))
    return root


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the spec -------------------------------------------------------------------------------------------------------

def test_example_spec_loads_and_round_trips():
    spec = load_spec(EXAMPLE)
    assert spec_kind(spec) == "augment"
    assert list(spec.spatial_config.rotation_config.angle) == [-5.0, 5.0]
    assert spec_from_text(spec_to_text(spec)) == spec


@pytest.mark.parametrize("text, expected", [
    ("blur_config { std: 1 }", "dataset_config: missing; this section is required"),
    (DATASET + "blur_config { std: -1 }", "blur_config.std[0]: -1 is outside the valid range [0, inf)"),
    (DATASET + "blur_config { size: 4 }", "blur_config.size[0]: 4 is even"),
    (DATASET + "color_config { hue_saturation_config { saturation_shift: -0.5 } }",
     "saturation_shift[0]: -0.5 is outside the valid range [0, inf)"),
    (DATASET + "output_image_width: 320 blur_config { std: 1 }", "output_image_width: set output_image_height as well"),
    (DATASET + "output_image_channel: 4", "output_image_channel: 4 is not a valid value; valid: 1, 3"),
    (DATASET + 'image_extension: ".bmp"', 'image_extension: ".bmp" is not a valid value'),
    (DATASET + 'spatial_config { rotation_config { angle: 5 units: "turns" } }', 'units: "turns" is not a valid value'),
    (DATASET + "spatial_config { flip_config { probability: 1.5 } }",
     "probability: 1.5 is outside the valid range [0, 1]"),
    (DATASET + "copies_per_image: 0", "copies_per_image: 0 is outside the valid range [1, 1000]"),
    (DATASET + "spatial_config { rotaton_config { angle: 5 } }",
     'unknown field "rotaton_config"; did you mean "rotation_config"?'),
    (DATASET + "spatial_config { translation_config { translate_x: 1.5 } }", "expected integer, got 1.5"),
])
def test_bad_specs_give_clear_errors(text, expected):
    with pytest.raises(SpecError) as info:
        spec_from_text(text, "augment", file="aug.txt")
    assert expected in str(info.value) and "aug.txt" in str(info.value)


def test_spec_warnings_are_logged(caplog):
    with caplog.at_level(logging.WARNING):
        spec_from_text(DATASET + "copies_per_image: 4 spatial_config { rotation_config { angle: 3 } }", "augment")
    assert "would be identical" in caplog.text


def test_kind_is_detected_from_its_sections():
    for section in ("spatial_config {}", "color_config {}", "blur_config { std: 1 }"):
        assert spec_kind(spec_from_text(DATASET + section)) == "augment"


# --- boxes ----------------------------------------------------------------------------------------------------------

params_st = st.builds(
    AugmentParams,
    angle=st.floats(-math.pi, math.pi), shear_x=st.floats(-0.5, 0.5), shear_y=st.floats(-0.5, 0.5),
    translate_x=st.floats(-300, 300), translate_y=st.floats(-300, 300),
    flip_horizontal=st.booleans(), flip_vertical=st.booleans())
size_st = st.tuples(st.integers(8, 2000), st.integers(8, 2000))


@st.composite
def boxes_st(draw, max_w=2000, max_h=2000):
    n = draw(st.integers(0, 12))
    out = []
    for _ in range(n):
        x1, x2 = sorted(draw(st.lists(st.floats(-50, max_w + 50), min_size=2, max_size=2, unique=True)))
        y1, y2 = sorted(draw(st.lists(st.floats(-50, max_h + 50), min_size=2, max_size=2, unique=True)))
        out.append([x1, y1, x2, y2])
    return np.array(out, np.float32).reshape(-1, 4)


@settings(max_examples=300, deadline=None)
@given(params_st, size_st, size_st, boxes_st(), st.floats(0, 5), st.floats(0, 5))
def test_boxes_stay_valid_after_any_transform(p, in_size, out_size, boxes, min_w, min_h):
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    ann = ImageAnnotations("f", ["Car"] * len(boxes), boxes, truncation=np.full(len(boxes), 0.1))
    m = spatial_matrix(*in_size, *out_size, p.angle, p.shear_x, p.shear_y, p.translate_x, p.translate_y,
                       p.flip_horizontal, p.flip_vertical)
    moved, dropped = transform_annotations(ann, m, *out_size, min_w, min_h)
    w, h = out_size
    b = moved.boxes
    assert len(moved) + dropped.sum() == len(ann)
    assert ((b[:, 0] >= 0) & (b[:, 2] <= w) & (b[:, 1] >= 0) & (b[:, 3] <= h)).all()
    assert ((b[:, 2] - b[:, 0] >= min_w - 1e-4) & (b[:, 3] - b[:, 1] >= min_h - 1e-4)).all()
    assert ((moved.truncation >= 0.1 - 1e-6) & (moved.truncation <= 1)).all()
    # what is written reads back unchanged: x1 < x2 and y1 < y2 survive KITTI's two decimals
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "f.txt").write_text(kitti_label_text(moved))
        back, skipped = read_kitti_label(Path(d) / "f.txt")
    assert not skipped and len(back) == len(moved)
    np.testing.assert_allclose(back.boxes, b, atol=0.006)


@settings(max_examples=200, deadline=None)
@given(st.floats(-300, 300), st.floats(-300, 300), st.floats(0.1, 4), st.floats(0.1, 4), st.booleans(),
       st.booleans(), boxes_st(500, 500))
def test_axis_aligned_affine_and_back_is_exact(tx, ty, sx, sy, fh, fv, boxes):
    m = spatial_matrix(500, 400, int(500 * sx) or 1, int(400 * sy) or 1, translate_x=tx, translate_y=ty,
                       flip_horizontal=fh, flip_vertical=fv)
    back = transform_boxes(transform_boxes(boxes, m), np.linalg.inv(m))
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(params_st, boxes_st(500, 500))
def test_any_affine_and_back_holds_the_box(p, boxes):
    m = spatial_matrix(500, 400, angle=p.angle, shear_x=p.shear_x, shear_y=p.shear_y, translate_x=p.translate_x,
                       translate_y=p.translate_y, flip_horizontal=p.flip_horizontal, flip_vertical=p.flip_vertical)
    back = transform_boxes(transform_boxes(boxes, m), np.linalg.inv(m))
    assert (back[:, :2] <= boxes[:, :2] + 1e-3).all() and (back[:, 2:] >= boxes[:, 2:] - 1e-3).all()


# --- images ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fh, fv", [(True, False), (False, True), (True, True)])
def test_flips_are_exact_for_pixels_and_boxes(fh, fv):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    ann = ImageAnnotations("f", ["Car", "Van"], [[3, 4, 20, 30], [40.25, 0, 53, 37]])
    out, moved, dropped = augment_image(Image.fromarray(px), ann, AugmentParams(flip_horizontal=fh, flip_vertical=fv))
    expected = px[::-1 if fv else 1, ::-1 if fh else 1]
    np.testing.assert_array_equal(np.asarray(out), expected)
    flipped = transform_boxes(ann.boxes, flip_matrix(fh, fv, 53, 37))
    np.testing.assert_array_equal(moved.boxes, flipped.astype(np.float32))
    assert not dropped.any()
    twice, back, _ = augment_image(out, moved, AugmentParams(flip_horizontal=fh, flip_vertical=fv))
    np.testing.assert_array_equal(np.asarray(twice), px)
    np.testing.assert_array_equal(back.boxes, ann.boxes)


def test_neutral_params_change_nothing():
    px = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ann = ImageAnnotations("f", ["Car"], [[1.5, 2.25, 10, 19]], truncation=[0.3])
    out, moved, _ = augment_image(Image.fromarray(px), ann, AugmentParams())
    np.testing.assert_array_equal(np.asarray(out), px)
    assert kitti_label_text(moved) == kitti_label_text(ann)


def test_resize_scales_boxes_and_pixels():
    px = np.zeros((40, 60, 3), np.uint8)
    px[10:20, 30:60] = 255
    ann = ImageAnnotations("f", ["Car"], [[30, 10, 60, 20]])
    out, moved, _ = augment_image(Image.fromarray(px), ann, AugmentParams(), size=(120, 20))
    assert out.size == (120, 20)
    np.testing.assert_allclose(moved.boxes, [[60, 5, 120, 10]])
    assert np.asarray(out)[7, 90].min() == 255 and np.asarray(out)[2, 90].max() == 0


def test_colour_and_blur_change_pixels_only():
    px = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    ann = ImageAnnotations("f", ["Car", "Van"], [[0, 0, 40, 30], [5.5, 6.25, 7.75, 9]], truncation=[0.4, 0],
                           occlusion=[1, 3])
    p = AugmentParams(hue=60, saturation=0.3, contrast=0.5, offset=-40, blur_std=1.5)
    out, moved, dropped = augment_image(Image.fromarray(px), ann, p)
    assert not np.array_equal(np.asarray(out), px)
    assert kitti_label_text(moved) == kitti_label_text(ann) and not dropped.any()


def test_colour_transform_keeps_greys_under_hue_and_saturation():
    grey = np.full((4, 4, 3), 77, np.uint8)
    np.testing.assert_array_equal(color_transform(grey, hue=123, saturation=0.2), grey)
    np.testing.assert_array_equal(gaussian_blur(grey, 3.0), grey)


def test_warp_fills_outside_with_black():
    px = np.full((10, 10, 3), 200, np.uint8)
    out = np.asarray(warp_image(Image.fromarray(px), spatial_matrix(10, 10, translate_x=5), (10, 10)))
    assert out[:, :5].max() == 0 and out[:, 5:].min() == 200


# --- the dataset ----------------------------------------------------------------------------------------------------

def test_same_seed_writes_identical_bytes(tmp_path):
    data = make_kitti(tmp_path / "data")
    spec = spec_from_text(FULL)
    a = augment_dataset(spec, tmp_path / "a", dataset_root=data)
    b = augment_dataset(spec, tmp_path / "b", dataset_root=data)
    c = augment_dataset(spec, tmp_path / "c", dataset_root=data, seed=spec.random_seed + 1)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert len(tree_bytes(tmp_path / "a")) == 2 * 6 * 3
    assert tree_bytes(tmp_path / "a") != tree_bytes(tmp_path / "c")
    assert a.params == b.params != c.params and a.seed == spec.random_seed


def test_an_image_is_augmented_the_same_whatever_else_the_folder_holds(tmp_path):
    data = make_kitti(tmp_path / "data")
    spec = spec_from_text(FULL)
    augment_dataset(spec, tmp_path / "all", dataset_root=data)
    for p in list((data / "images").iterdir())[1:]:
        p.unlink()
        (data / "labels" / f"{p.stem}.txt").unlink()
    augment_dataset(spec, tmp_path / "one", dataset_root=data)
    one = tree_bytes(tmp_path / "one")
    assert one and all(tree_bytes(tmp_path / "all")[k] == v for k, v in one.items())


def test_dataset_output_is_valid_and_counted(tmp_path):
    data = make_kitti(tmp_path / "data", n=8)
    s = augment_dataset(spec_from_text(FULL), tmp_path / "out", dataset_root=data)
    assert (s.images_read, s.images_written, s.objects_read) == (8, 24, 16)
    assert s.objects_written + sum(s.dropped.values()) == 16 * 3
    labels = sorted((tmp_path / "out" / "labels").iterdir())
    assert [p.stem for p in labels][:3] == ["000000_aug0", "000000_aug1", "000000_aug2"]
    written = 0
    for lbl in labels:
        ann, skipped = read_kitti_label(lbl)
        with Image.open(tmp_path / "out" / "images" / f"{lbl.stem}.png") as im:
            assert im.size == (160, 96) and im.mode == "RGB"
        assert not skipped
        b = ann.boxes
        assert ((b[:, 0] >= 0) & (b[:, 0] < b[:, 2]) & (b[:, 2] <= 160) & (b[:, 1] >= 0) & (b[:, 1] < b[:, 3])
                & (b[:, 3] <= 96)).all()
        assert set(ann.occlusion.tolist()) <= {0, 2}
        written += len(ann)
    assert written == s.objects_written


def test_dropped_objects_are_counted_by_class(tmp_path):
    data = make_kitti(tmp_path / "data", n=2)
    spec = spec_from_text(DATASET + "spatial_config { translation_config { translate_x: -70 } }")
    s = augment_dataset(spec, tmp_path / "out", dataset_root=data)
    assert s.dropped == {"Car": 2} and s.objects_written == 2
    ann, _ = read_kitti_label(tmp_path / "out" / "labels" / "000000.txt")
    assert ann.classes == ["Pedestrian"] and ann.boxes[0, 0] == 0 and ann.truncation[0] > 0.25


def test_colour_only_spec_copies_labels_verbatim(tmp_path):
    data = make_kitti(tmp_path / "data", n=3)
    spec = spec_from_text(DATASET + """color_config { hue_saturation_config { hue_rotation_angle: [-90, 90] }
        contrast_config { contrast: 0.4 } brightness_config { offset: -25 } } blur_config { std: 2 size: 7 }""")
    augment_dataset(spec, tmp_path / "out", dataset_root=data)
    for lbl in (data / "labels").iterdir():
        assert (tmp_path / "out" / "labels" / lbl.name).read_text() == lbl.read_text()
        with Image.open(data / "images" / f"{lbl.stem}.png") as a:
            with Image.open(tmp_path / "out" / "images" / f"{lbl.stem}.png") as b:
                assert a.size == b.size and not np.array_equal(np.asarray(a), np.asarray(b))


def test_grayscale_jpeg_output(tmp_path):
    data = make_kitti(tmp_path / "data", n=2, ext=".jpg")
    spec = spec_from_text(DATASET + 'spatial_config { flip_config { flip_horizontal: true } }\n'
                          'output_image_channel: 1 image_extension: ".jpg"')
    augment_dataset(spec, tmp_path / "out", dataset_root=data)
    with Image.open(tmp_path / "out" / "images" / "000001.jpg") as im:
        assert (im.mode, im.format, im.size) == ("L", "JPEG", (128, 80))


def test_relative_paths_start_at_the_current_folder(tmp_path, monkeypatch):
    make_kitti(tmp_path / "data", n=1)
    monkeypatch.chdir(tmp_path / "data")
    s = augment_dataset(spec_from_text(DATASET + "blur_config { std: 1 }"), tmp_path / "out")
    assert s.images_written == 1 and (tmp_path / "out" / "images" / "000000.png").is_file()


def test_spec_file_and_example_fixture(tmp_path):
    data = make_kitti(tmp_path / "data", n=2, size=(200, 90))
    (data / "image_2").symlink_to(data / "images")
    (data / "label_2").symlink_to(data / "labels")
    s = augment_dataset(EXAMPLE, tmp_path / "out", dataset_root=data)
    assert s.images_written == 4
    with Image.open(tmp_path / "out" / "images" / "000001_aug1.png") as im:
        assert im.size == (1248, 384)


def test_bad_input_names_the_file_or_field(tmp_path):
    data = make_kitti(tmp_path / "data", n=2)
    spec = spec_from_text(DATASET + "blur_config { std: 1 }")
    with pytest.raises(TaoNbError, match=r"nowhere/images: folder not found \(dataset_config.image_path"):
        augment_dataset(spec, tmp_path / "out", dataset_root=tmp_path / "nowhere")
    with pytest.raises(TaoNbError, match="the output would overwrite the input dataset"):
        augment_dataset(spec, data, dataset_root=data)
    with pytest.raises(TaoNbError, match="expected an augment spec"):
        augment_dataset(load_spec(FIXTURES / "specs" / "seeds" / "ssd_experiment.txt"), tmp_path / "out", data)
    with pytest.raises(SpecError, match="no such file"):
        augment_dataset(tmp_path / "missing.txt", tmp_path / "out", data)
    (data / "labels" / "000001.txt").write_text("Car 0 0 0 1 2 oops 4 1 1 1 1 1 1 0\n")
    with pytest.raises(TaoNbError, match=r"000001.txt:1: field 7 \(x2\) is 'oops', not a number"):
        augment_dataset(spec, tmp_path / "out", dataset_root=data)
    (data / "labels" / "000001.txt").write_text("")
    (data / "images" / "000000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(TaoNbError, match=r"000000.png: not a readable image"):
        augment_dataset(spec, tmp_path / "out", dataset_root=data)
    (data / "labels" / "000000.txt").unlink()
    with pytest.raises(TaoNbError, match="have no label file"):
        augment_dataset(spec, tmp_path / "out", dataset_root=data)


def test_stale_files_from_an_earlier_run_are_reported(tmp_path, caplog):
    data = make_kitti(tmp_path / "data", n=2)
    augment_dataset(spec_from_text(FULL), tmp_path / "out", dataset_root=data)
    with caplog.at_level(logging.WARNING, logger="tao_nb"):
        augment_dataset(spec_from_text(DATASET + "blur_config { std: 1 }"), tmp_path / "out", dataset_root=data)
    assert "6 files in" in caplog.text and "were not written by this run" in caplog.text


def test_sample_params_follow_tao_value_lists():
    spec = spec_from_text(DATASET + """spatial_config { rotation_config { angle: [1, 2, 3] units: "radians" }
        translation_config { translate_x: [-10, 10] translate_y: 4 } } blur_config { size: [2, 9] }""")
    draws = [sample_params(spec, np.random.default_rng(i)) for i in range(200)]
    assert {d.angle for d in draws} == {1.0, 2.0, 3.0}
    assert all(-10 <= d.translate_x <= 10 and d.translate_y == 4 for d in draws)
    assert {d.blur_size for d in draws} <= {3, 5, 7, 9} and len({d.blur_size for d in draws}) == 4


@pytest.mark.slow  # a timing, not a correctness check: noisy on loaded machines, so outside the CI suite
def test_speed(tmp_path):
    data = make_kitti(tmp_path / "data", n=20, size=(640, 360))
    spec = spec_from_text(FULL.replace("output_image_width: 160", "output_image_width: 640")
                          .replace("output_image_height: 96", "output_image_height: 360")
                          .replace("copies_per_image: 3", ""))
    start = time.perf_counter()
    s = augment_dataset(spec, tmp_path / "out", dataset_root=data)
    per_image = (time.perf_counter() - start) / s.images_written
    assert per_image < 0.25, f"{per_image * 1000:.0f} ms per 640x360 image"
