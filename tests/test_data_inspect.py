"""Dataset inspectors: the three sources, drawing, the browser, summary and problems, augmentation preview; headless
(Agg), on tiny synthetic datasets, and on the real KITTI frames when they are there."""
import base64
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tao_nb.core import TaoNbError  # noqa: E402
from tao_nb.data.inspect import (AugmentationPreview, DatasetBrowser, InspectDataset, SummaryView,  # noqa: E402
                                 _displayable, _record_spans, _rectangles, augment_annotations, class_palette,
                                 open_coco, open_data_source, open_kitti, open_tfrecords, plot_annotations, plot_frame,
                                 plot_grid, plot_summary, preview_augmentation, summarize_dataset)
from tao_nb.data.kitti import ImageAnnotations, kitti_label_text  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_real"
MAPPING = {"car": "car", "pedestrian": "pedestrian", "cyclist": "cyclist"}
FRAMES = {  # frame id -> ((width, height), [(class, box, truncation, occlusion)])
    "000000": ((96, 64), [("Car", [10, 10, 50, 40], 0, 0), ("Pedestrian", [60, 20, 72, 60], 0, 1),
                          ("DontCare", [0, 0, 8, 8], -1, -1)]),
    "000001": ((96, 64), [("Car", [0, 30, 30, 63], 0.5, 0), ("Misc", [40, 10, 44, 14], 0, 0)]),
    "000002": ((128, 64), []),
    "000003": ((96, 64), [("Car", [20, 20, 60, 50], 0, 0)]),
}
INVERTED = "Car 0.00 0 0.00 50.00 20.00 40.00 30.00 0 0 0 0 0 0 0\n"  # x1 > x2: the reader leaves it out


def write_kitti(root: Path) -> Path:
    (root / "image_2").mkdir(parents=True); (root / "label_2").mkdir(parents=True)
    for k, (fid, ((w, h), objs)) in enumerate(FRAMES.items()):
        pixels = np.full((h, w, 3), 60 + 20 * k, np.uint8)
        for c, (x1, y1, x2, y2), _, _ in objs: pixels[y1:y2, x1:x2] = (220, 40, 40) if c == "Car" else (40, 200, 60)
        Image.fromarray(pixels).save(root / "image_2" / f"{fid}.png")
        ann = ImageAnnotations(fid, [o[0] for o in objs], [o[1] for o in objs], [o[2] for o in objs], [o[3] for o in objs])
        (root / "label_2" / f"{fid}.txt").write_text(kitti_label_text(ann) + (INVERTED if fid == "000003" else ""))
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_kitti(tmp_path_factory.mktemp("inspect") / "kitti")


@pytest.fixture(scope="module")
def kitti(root):
    return open_kitti(root / "image_2", root / "label_2")


@pytest.fixture(scope="module")
def coco(root, kitti):
    from tao_nb.data.coco import coco_annotation_entries, coco_image_entry, write_coco_json
    names = {c.lower(): k + 1 for k, c in enumerate(kitti.class_names())}
    images, anns = [], []
    for i in range(len(kitti)):
        a, (w, h) = kitti.annotations(i), kitti.image_size(i)
        images.append(coco_image_entry(i + 1, a.image_path.name, w, h))
        anns += coco_annotation_entries(a, i + 1, [names[c.lower()] for c in a.classes], len(anns) + 1)
    anns.append({"id": 99, "image_id": 2, "category_id": names["car"], "bbox": [0, 0, 20, 20], "iscrowd": 1})
    path = write_coco_json(root.parent / "coco.json", images, anns, [{"id": k, "name": n} for n, k in names.items()])
    return open_coco(path, root / "image_2")


@pytest.fixture(scope="module")
def tfr_pattern(root, kitti):
    from tao_nb.data.tfrecords import annotations_to_example, shard_name, write_tfrecord
    out = root.parent / "tfrecords"; out.mkdir()
    for fold, shard, shards, idx in [(0, 0, 2, [0, 1]), (0, 1, 2, [2]), (1, 0, 1, [3])]:
        records = []
        for i in idx:
            a, (w, h) = kitti.annotations(i), kitti.image_size(i)
            ex = annotations_to_example(a, a.image_path.read_bytes(), w, h, f"training/image_2/{a.frame_id}", [1] * len(a))
            records.append(ex.SerializeToString())
        write_tfrecord(out / shard_name("train", fold, 2, shard, shards), records)
    return str(out / "train*")


@pytest.fixture
def no_leaks():
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before, "a figure was left open"


def png_of(output):
    (out,) = output.outputs
    return base64.b64decode(out["data"]["image/png"])


# --- sources ---

def test_kitti_source(kitti):
    assert len(kitti) == 4 and repr(kitti).endswith("4 images)")
    image, ann = kitti[0]
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    assert tuple(image[20, 20]) == (220, 40, 40)
    assert ann.classes == ["Car", "Pedestrian", "DontCare"] and ann.image_path.name == "000000.png"
    assert kitti.image_size(2) == (128, 64) and len(kitti.annotations(2)) == 0
    assert [s.reason for s in kitti.skipped(3)] == ["x1 >= x2 or y1 >= y2"]
    assert [a.frame_id for _, a in kitti] == list(FRAMES)
    assert kitti.frame_id(-1) == "000003" and kitti.find(["000002", "000000"]) == [2, 0]
    with pytest.raises(IndexError, match="image 4 of"): kitti[4]
    with pytest.raises(TaoNbError, match="no image"): kitti.find(["nope"])


def test_reads_lazily():
    calls = {"image": 0, "labels": 0}
    def image(i): calls["image"] += 1; return np.zeros((4, 4, 3), np.uint8)
    def labels(i): calls["labels"] += 1; return ImageAnnotations(str(i), [], []), []
    ds = InspectDataset(1000, labels, image, lambda i: (4, 4))
    it = iter(ds)
    assert calls == {"image": 0, "labels": 0}
    next(it); next(it)
    assert calls == {"image": 2, "labels": 2}
    ds.annotations(0); ds.frame_id(1)
    assert calls["labels"] == 2  # kept once read


def test_kitti_errors(tmp_path):
    (tmp_path / "i").mkdir(); (tmp_path / "l").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "i" / "a.png")
    with pytest.raises(TaoNbError, match="no label file"): open_kitti(tmp_path / "i", tmp_path / "l")
    (tmp_path / "l" / "a.txt").write_text("")
    (tmp_path / "i" / "a.png").write_bytes(b"not a png")
    ds = open_kitti(tmp_path / "i", tmp_path / "l")
    with pytest.raises(TaoNbError, match="a.png: cannot read the image"): ds.image(0)


def test_coco_source(coco, kitti):
    assert len(coco) == 4
    image, ann = coco[0]
    assert image.shape == (64, 96, 3)
    assert ann.classes == ["car", "pedestrian", "dontcare"]
    np.testing.assert_array_equal(ann.boxes, kitti.annotations(0).boxes)
    assert coco.image_size(2) == (128, 64)
    assert [s.reason for s in coco.skipped(1)] == ["iscrowd=1"] and coco.skipped(0) == []


def test_tfrecord_source(tfr_pattern, kitti):
    tfr = open_tfrecords(tfr_pattern)
    assert len(tfr) == 4
    image, ann = tfr[1]
    assert ann.frame_id == "000001" and ann.classes == ["car", "misc"]
    np.testing.assert_array_equal(image, kitti.image(1))
    np.testing.assert_allclose(ann.boxes, kitti.annotations(1).boxes, atol=1e-4)
    np.testing.assert_allclose(ann.truncation, [0.5, 0])
    assert tfr.image_size(2) == (128, 64)
    assert [tfr.frame_id(i) for i in range(4)] == list(FRAMES)
    assert [open_tfrecords(tfr_pattern, fold=1).frame_id(0)] == ["000003"]
    assert len(open_tfrecords(tfr_pattern, fold=0)) == 3


def test_record_spans(tmp_path):
    from tao_nb.data.tfrecords import write_tfrecord
    write_tfrecord(tmp_path / "r", [b"a", b"bcd", b""])
    assert _record_spans(tmp_path / "r") == [(12, 1), (29, 3), (48, 0)]
    (tmp_path / "bad").write_bytes(struct.pack("<Q", 100) + b"\0" * 20)
    with pytest.raises(TaoNbError, match="cut short"): _record_spans(tmp_path / "bad")


def test_data_source(root, tfr_pattern):
    from tao_nb.proto.common_pb2 import DataSource
    assert len(open_data_source(DataSource(tfrecords_path=tfr_pattern), fold=1)) == 1
    src = DataSource(image_directory_path=str(root / "image_2"), label_directory_path=str(root / "label_2"))
    assert len(open_data_source(src, "png")) == 4
    with pytest.raises(TaoNbError, match="neither"): open_data_source(DataSource())


# --- drawing ---

def test_palette():
    pal = class_palette(["b", "a", "DontCare", "a"])
    assert list(pal) == ["a", "b", "DontCare"] and pal["a"] == plt.get_cmap("tab10")(0)
    assert len(set(class_palette([f"c{i}" for i in range(15)]).values())) == 15


def test_plot_annotations(kitti, no_leaks):
    image, ann = kitti[0]
    fig = plot_annotations(image, ann)
    rects = _rectangles(fig.axes[0])
    assert [r.get_linestyle() for r in rects] == ["-", "--", "-"]
    assert rects[2].get_hatch() == "////" and rects[0].get_edgecolor() == class_palette(ann.classes)["Car"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["Car", "Pedestrian"]
    assert len(_rectangles(plot_annotations(image, ann, show_difficult=False).axes[0])) == 2
    image1, ann1 = kitti[1]
    assert [r.get_linestyle() for r in _rectangles(plot_annotations(image1, ann1).axes[0])] == [":", "-"]
    assert len(_rectangles(plot_annotations(image1, ann1, show_truncated=False).axes[0])) == 1
    both = ImageAnnotations("x", ["car"], [[1, 1, 20, 20]], truncation=[0.3], occlusion=[2])
    assert _rectangles(plot_annotations(image, both).axes[0])[0].get_linestyle() == "-."
    red = plot_annotations(image, ann, class_colors={"Car": "red"})
    assert _rectangles(red.axes[0])[0].get_edgecolor() == (1.0, 0.0, 0.0, 1.0)
    gray = plot_annotations(image[..., 0], ann)
    assert gray.axes[0].images[0].get_array().shape == (64, 96)
    fig.savefig(__import__("io").BytesIO(), format="png")
    for i in range(20): plot_annotations(image, ann)  # no figure left open (no_leaks)


def test_frame_and_grid(kitti, no_leaks):
    fig = plot_frame(kitti, 0, classes=["Car"])
    assert fig.axes[0].get_title() == "000000 (1/4): 1 of 3 objects"
    grid = plot_grid(kitti, [0, 1, 2], cols=2)
    assert len(grid.axes) == 4 and not grid.axes[3].images
    assert [ax.get_title() for ax in grid.axes[:3]] == ["000000: 3 objects", "000001: 2 objects", "000002: 0 objects"]
    with pytest.raises(TaoNbError, match="no images"): plot_grid(kitti, [])


def test_browser(kitti, coco, no_leaks):
    b = DatasetBrowser(kitti)
    assert b.frame.value == "000000  (1/4, 3 objects)"
    first = png_of(b.output)
    assert first.startswith(b"\x89PNG")
    b.index.value = 2
    assert b.frame.value == "000002  (3/4, 0 objects)" and png_of(b.output) != first
    b.next.click(); b.next.click()
    assert b.index.value == 0 and png_of(b.output) == first
    b.prev.click()
    assert b.frame.value.startswith("000003")
    b.index.value = 0
    b.show_difficult.value = False
    assert len(_rectangles(b.figure.axes[0])) == 2
    b.show_difficult.value, b.classes.value = True, ("Pedestrian",)
    assert len(_rectangles(b.figure.axes[0])) == 1
    sub = DatasetBrowser(coco, indices=coco.find(["000003", "000001"]))
    assert sub.index.max == 1 and sub.frame.value.startswith("000003  (1/2")
    sub.index.value = 1
    assert sub.frame.value == "000001  (2/2, 2 objects)"
    with pytest.raises(TaoNbError, match="no images"): DatasetBrowser(kitti, indices=[])


# --- summary ---

def test_summary(kitti, coco, tfr_pattern):
    s = summarize_dataset(kitti, MAPPING)
    assert s.num_images == 4
    assert s.class_counts == {"Car": 3, "Pedestrian": 1, "DontCare": 1, "Misc": 1}
    assert s.boxes_per_image == {0: 1, 1: 1, 2: 1, 3: 1}
    assert s.image_sizes == {(96, 64): 3, (128, 64): 1}
    np.testing.assert_array_equal(s.box_widths, [40, 12, 8, 30, 4, 40])
    np.testing.assert_array_equal(s.box_heights, [30, 40, 8, 33, 4, 30])
    assert list(s.box_classes) == ["Car", "Pedestrian", "DontCare", "Car", "Misc", "Car"]
    kinds = {p.kind: p for p in s.problems}
    assert list(kinds) == ["empty_label", "tiny_box", "skipped_object", "unmapped_class", "unused_mapping"]
    assert kinds["empty_label"].frame_ids == ("000002",)
    assert kinds["tiny_box"].frame_ids == ("000001",)  # the 8 px DontCare region is not flagged
    assert kinds["skipped_object"].frame_ids == ("000003",)
    assert "'misc'" in kinds["unmapped_class"].message and "'cyclist'" in kinds["unused_mapping"].message
    assert summarize_dataset(kitti, MAPPING, min_box_size=15).problems[1].frame_ids == ("000000", "000001")
    assert [p.kind for p in summarize_dataset(kitti).problems] == ["empty_label", "tiny_box", "skipped_object"]
    assert summarize_dataset(kitti, {"CAR": "car", "Pedestrian": "p", "MISC": "m"}, 1).problems[-1].kind == "skipped_object"
    assert [p.kind for p in summarize_dataset(coco, MAPPING).problems] == list(kinds)
    t = summarize_dataset(open_tfrecords(tfr_pattern), MAPPING)
    assert t.class_counts == {"car": 3, "pedestrian": 1, "dontcare": 1, "misc": 1} and t.image_sizes == s.image_sizes
    assert "4 images (3 x 96x64, 1 x 128x64)" in str(s)


def test_no_mapped_object():
    anns = [ImageAnnotations("x", ["Misc", "DontCare"], [[0, 0, 9, 9], [0, 0, 9, 9]])]
    ds = InspectDataset(1, lambda i: (anns[i], []), None, lambda i: (10, 10))
    assert [p.kind for p in summarize_dataset(ds, {"car": "car"}).problems] == \
        ["unmapped_class", "no_mapped_object", "unused_mapping"]


def test_summary_reads_headers_only(tmp_path):
    (tmp_path / "i").mkdir(); (tmp_path / "l").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)).save(tmp_path / "i" / "a.png")
    data = (tmp_path / "i" / "a.png").read_bytes()
    (tmp_path / "i" / "a.png").write_bytes(data[:200])  # the header survives, the pixels do not
    (tmp_path / "l" / "a.txt").write_text("Car 0 0 0 1 2 30 40 0 0 0 0 0 0 0\n")
    ds = open_kitti(tmp_path / "i", tmp_path / "l")
    assert summarize_dataset(ds).image_sizes == {(400, 300): 1}
    with pytest.raises(TaoNbError): ds.image(0)


def test_plot_summary(kitti, no_leaks):
    fig = plot_summary(summarize_dataset(kitti, MAPPING))
    assert [ax.get_title() for ax in fig.axes] == ["objects per class", "boxes per image", "box sizes (px)", "image sizes"]
    assert [p.get_width() for p in fig.axes[0].patches] == [1, 1, 1, 3]
    assert sum(len(c.get_offsets()) for c in fig.axes[2].collections) == 6
    empty = InspectDataset(1, lambda i: (ImageAnnotations("e", [], []), []), None, lambda i: (8, 8))
    assert len(plot_summary(summarize_dataset(empty)).axes) == 4


def test_summary_view(kitti, no_leaks):
    v = SummaryView(kitti, MAPPING)
    assert png_of(v.output).startswith(b"\x89PNG") and "unused_mapping" in v.problems.value
    v.min_box_size.value = 15
    assert v.summary.min_box_size == 15 and v.summary.problems[1].frame_ids == ("000000", "000001")
    ok = SummaryView(kitti, {"car": "c", "pedestrian": "p", "misc": "m"}, 1)
    assert "tiny_box" not in ok.problems.value and "empty_label" in ok.problems.value


# --- augmentation ---

@pytest.fixture(scope="module")
def aug():
    from tao_nb.data.pipeline import SSDAugmentation
    return SSDAugmentation(80, 48, zoom_out_max_scale=2.0)


def test_displayable_undoes_preprocess(kitti):
    import tensorflow as tf
    from tao_nb.data.pipeline import SSDAugmentation, preprocess
    pixels = kitti.image(0)
    a = SSDAugmentation(96, 64, mean=(100.0, 110.0, 120.0))
    net = preprocess({"image": tf.constant(pixels, tf.float32)}, a)["image"].numpy()
    np.testing.assert_allclose(net[20, 20], np.array([40, 40, 220]) - [100, 110, 120], atol=1e-3)  # BGR, mean off
    assert np.abs(_displayable(net, a).astype(int) - pixels).max() <= 1
    gray = SSDAugmentation(96, 64, output_channel=1, mean=(117.0,))
    shown = _displayable(preprocess({"image": tf.constant(pixels, tf.float32)}, gray)["image"].numpy(), gray)
    assert shown.shape == (64, 96, 3) and (shown[..., 0] == shown[..., 2]).all()


def test_augment_annotations(kitti, aug):
    image, ann = kitti[0]
    a1, k1 = augment_annotations(image, ann, aug, (3, 1))
    a2, k2 = augment_annotations(image, ann, aug, (3, 1))
    assert a1.shape == (48, 80, 3) and a1.dtype == np.uint8
    np.testing.assert_array_equal(a1, a2); np.testing.assert_array_equal(k1.boxes, k2.boxes)
    assert len({augment_annotations(image, ann, aug, (3, k))[0].tobytes() for k in range(6)}) > 1
    for k in range(6):
        _, kept = augment_annotations(image, ann, aug, (3, k))
        assert set(kept.classes) <= set(ann.classes)
        assert ((kept.boxes >= -1e-3) & (kept.boxes <= np.array([80, 48, 80, 48]) + 1e-3)).all()
    from tao_nb.data.pipeline import SSDAugmentation
    still = SSDAugmentation(96, 64, crop_min_scale=1, zoom_out_max_scale=1, brightness=0, contrast=0, saturation=0,
                            hue=0, flip_prob=0)
    same, kept = augment_annotations(image, ann, still)
    assert np.abs(same.astype(int) - image).max() <= 1
    np.testing.assert_allclose(kept.boxes, ann.boxes, atol=1e-3)
    assert kept.classes == ann.classes and list(kept.occlusion) == list(ann.occlusion)
    flip = SSDAugmentation(96, 64, crop_min_scale=1, zoom_out_max_scale=1, brightness=0, contrast=0, saturation=0,
                           hue=0, flip_prob=1)
    flipped, kf = augment_annotations(image, ann, flip)
    assert np.abs(flipped.astype(int) - image[:, ::-1]).max() <= 1
    np.testing.assert_allclose(kf.boxes[0], [46, 10, 86, 40], atol=1e-3)


def test_augmentation_from_spec(kitti, seed_spec):
    from tao_nb.spec import load_spec
    spec = load_spec(seed_spec("ssd_experiment.txt"))
    image, ann = kitti[0]
    a, _ = augment_annotations(image, ann, spec, (0, 0))
    b, _ = augment_annotations(image, ann, spec.augmentation_config, (0, 0))
    assert a.shape == (300, 300, 3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TaoNbError, match="not augmentation settings"): augment_annotations(image, ann, spec.dataset_config)


def test_preview(kitti, aug, no_leaks):
    image, ann = kitti[0]
    fig = preview_augmentation(image, ann, aug, n=4, seed=7, cols=3)
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "000000 (original)"
    np.testing.assert_array_equal(fig.axes[3].images[0].get_array(), augment_annotations(image, ann, aug, (7, 2))[0])
    assert not fig.axes[5].images
    p = AugmentationPreview(kitti, aug, n=2, seed=5)
    first = png_of(p.output)
    p.seed.value = 6
    assert p.frame.value == "000000, seed 6" and png_of(p.output) != first
    p.seed.value = 5
    assert png_of(p.output) == first
    p.index.value = 3
    assert p.figure.axes[0].get_title() == "000003 (original)"


# --- the real KITTI frames ---

@pytest.mark.skipif(not REAL.exists(), reason="the real KITTI frames are not here")
def test_real_kitti(no_leaks):
    real = open_kitti(REAL / "image_2", REAL / "label_2")
    assert len(real) == 3 and real.image_size(0) == (1224, 370) and real.image(1).shape == (375, 1242, 3)
    s = summarize_dataset(real, MAPPING)
    assert s.class_counts["DontCare"] == 4
    assert {p.message.split("'")[1] for p in s.problems if p.kind == "unmapped_class"} == {"misc", "truck"}
    assert all(p.kind == "unmapped_class" for p in s.problems)  # DontCare is neither unmapped nor tiny
    b = DatasetBrowser(real, dpi=40)
    b.index.value = 1
    assert b.frame.value == "000001  (2/3, 7 objects)"
    rects = _rectangles(b.figure.axes[0])
    assert sum(r.get_hatch() == "////" for r in rects) == 4 and sum(r.get_linestyle() == "--" for r in rects) == 1
    b.classes.value = ("Car",)
    assert len(_rectangles(b.figure.axes[0])) == 1
