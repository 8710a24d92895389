"""The sample dataset: same seed same bytes, labels that read back and agree with the images, speed, bad arguments."""
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tao_nb.core import TaoNbError
from tao_nb.data.kitti import KITTI_FIELDS, pair_kitti, read_kitti_label
from tao_nb.data.sample import SAMPLE_CLASSES, make_sample_dataset, sample_class_mapping

SPLITS = ("training", "validation")


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    """The default dataset (300 + 60 images at 320x240), timed."""
    out = tmp_path_factory.mktemp("sample") / "data"
    t = time.perf_counter()
    info = make_sample_dataset(out)
    seconds = time.perf_counter() - t
    print(f"\nmake_sample_dataset: 360 images in {seconds:.2f} s ({360 / seconds:.0f} images/s)")
    return info, seconds


def read_split(split_dir):
    """Frame ids, label annotations and skipped objects of a split."""
    pairs = pair_kitti(split_dir / "image_2", split_dir / "label_2", ".png")
    read = [read_kitti_label(p, with_scores=False) for p in pairs.label_paths]
    return pairs, [a for a, _ in read], [s for _, ss in read for s in ss]


def test_default_dataset_is_fast(default_dataset):
    info, seconds = default_dataset
    assert seconds < 30, f"360 images took {seconds:.1f} s"
    assert info.image_counts == {"training": 300, "validation": 60}


def test_layout_and_images(default_dataset):
    info, _ = default_dataset
    assert info.image_size == (320, 240)
    assert info.split_dirs == {s: info.root / s for s in SPLITS}
    assert (info.training_dir, info.validation_dir) == (info.root / "training", info.root / "validation")
    assert sorted(p.name for p in info.root.iterdir()) == sorted(SPLITS)
    for split, n in info.image_counts.items():
        pairs, _, _ = read_split(info.split_dirs[split])
        assert pairs.frame_ids == [f"{i:06d}" for i in range(n)] and pairs.labels_without_image == []
        assert not [p for p in info.split_dirs[split].rglob("*") if p.name.startswith(".")]  # no temporary files left
        with Image.open(pairs.image_paths[-1]) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (320, 240))


def test_labels_read_back_valid_and_inside_the_image(default_dataset):
    info, _ = default_dataset
    w, h = info.image_size
    for split in SPLITS:
        pairs, anns, skipped = read_split(info.split_dirs[split])
        assert skipped == []
        for path, ann in zip(pairs.label_paths, anns):
            lines = path.read_text().splitlines()
            assert len(lines) == len(ann) >= 1 and all(len(l.split()) == len(KITTI_FIELDS) for l in lines), path
            b = ann.boxes
            assert ((b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3])).all(), path
            assert (b >= 0).all() and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all(), path
            assert set(ann.classes) <= {*SAMPLE_CLASSES, "dontcare"}, path
            k = len(ann) - ann.classes.count("dontcare")
            assert "dontcare" not in ann.classes[:k], path  # dontcare lines come last, as in KITTI
            real = np.array([c != "dontcare" for c in ann.classes])
            heights = (b[real, 3] - b[real, 1]) / h
            untruncated = ann.truncation[real] == 0
            assert (heights[untruncated] >= 0.15).all() and (heights <= 0.46).all(), (path, heights)
            dc = ~real
            assert (ann.truncation[dc] == -1).all() and (ann.occlusion[dc] == -1).all(), path
            assert set(ann.occlusion[real]) <= {0, 1, 2}
            assert ((ann.truncation[real] >= 0) & (ann.truncation[real] < 0.5)).all(), path


def test_class_counts_match_the_files(default_dataset):
    info, _ = default_dataset
    for split in SPLITS:
        _, anns, _ = read_split(info.split_dirs[split])
        counts = Counter(c for a in anns for c in a.classes)
        assert info.class_counts[split] == dict(counts)
        real = [(c, t, o) for a in anns for c, t, o in zip(a.classes, a.truncation, a.occlusion) if c != "dontcare"]
        assert info.truncated_counts[split] == sum(t > 0 for _, t, _ in real)
        assert info.occluded_counts[split] == sum(o > 0 for _, _, o in real)
    counts = Counter(info.class_counts["training"])
    objects = sum(counts[c] for c in SAMPLE_CLASSES)
    assert set(counts) == {*SAMPLE_CLASSES, "dontcare"}
    assert all(counts[c] > 0.15 * objects for c in ("car", "pedestrian", "cyclist")), counts
    assert 0.03 * objects < counts["van"] < 0.15 * objects, counts  # a small share of vans
    assert counts["dontcare"] > 20
    assert 0.1 * objects < info.truncated_counts["training"] < 0.4 * objects
    assert 0.05 * objects < info.occluded_counts["training"] < 0.4 * objects
    assert all(info.class_counts["validation"].get(c, 0) > 0 for c in SAMPLE_CLASSES)
    assert str(info).count("truncated") == 2 and "300 images" in str(info)


def test_truncated_objects_touch_the_border_and_occluded_ones_overlap_another(default_dataset):
    info, _ = default_dataset
    w, h = info.image_size
    levels = Counter()
    for split in SPLITS:
        _, anns, _ = read_split(info.split_dirs[split])
        for ann in anns:
            ann = ann.select(np.array([c != "dontcare" for c in ann.classes], bool))
            b = ann.boxes
            touches = (b[:, 0] == 0) | (b[:, 1] == 0) | (b[:, 2] == w) | (b[:, 3] == h)
            assert touches[ann.truncation > 0].all(), ann
            for i in np.flatnonzero(ann.occlusion > 0):  # something in front overlaps its box
                others = np.delete(b, i, axis=0)
                iw = np.minimum(others[:, 2], b[i, 2]) - np.maximum(others[:, 0], b[i, 0])
                ih = np.minimum(others[:, 3], b[i, 3]) - np.maximum(others[:, 1], b[i, 1])
                assert ((iw > 0) & (ih > 0)).any(), (ann.frame_id, i)
            levels.update(ann.occlusion.tolist())
    assert levels[0] > levels[1] > levels[2] > 0, levels


def test_same_seed_same_bytes_any_threads(tmp_path):
    a = make_sample_dataset(tmp_path / "a", n_train=20, n_val=5, seed=3, workers=1)
    b = make_sample_dataset(tmp_path / "b", n_train=20, n_val=5, seed=3, workers=3)
    c = make_sample_dataset(tmp_path / "c", n_train=20, n_val=5, seed=4)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert len(files) == 2 * (20 + 5)
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for f in files: assert (a.root / f).read_bytes() == (b.root / f).read_bytes(), f
    assert a.class_counts == b.class_counts
    differ = sum((a.root / f).read_bytes() != (c.root / f).read_bytes() for f in files)
    assert differ == len(files)


def test_other_image_sizes(tmp_path):
    info = make_sample_dataset(tmp_path / "s", n_train=3, n_val=12, image_size=(128, 160))
    ids = pair_kitti(info.validation_dir / "image_2", info.validation_dir / "label_2").frame_ids
    assert ids == [f"{i:06d}" for i in range(12)]
    with Image.open(info.training_dir / "image_2" / "000000.png") as im: assert im.size == (128, 160)
    _, anns, skipped = read_split(info.validation_dir)
    assert skipped == [] and all((a.boxes[:, 2] <= 128).all() and (a.boxes[:, 3] <= 160).all() for a in anns)


def test_overwrite_replaces_the_splits_only(tmp_path):
    out = tmp_path / "data"
    make_sample_dataset(out, n_train=6, n_val=2)
    with pytest.raises(TaoNbError, match="is not empty.*overwrite=True"):
        make_sample_dataset(out, n_train=2, n_val=1)
    (out / "notes.txt").write_text("mine")
    info = make_sample_dataset(out, n_train=2, n_val=1, overwrite=True)
    assert sorted(p.name for p in (out / "training" / "label_2").iterdir()) == ["000000.txt", "000001.txt"]
    assert (out / "notes.txt").read_text() == "mine" and info.image_counts == {"training": 2, "validation": 1}
    make_sample_dataset(tmp_path / "empty_ok", n_train=1, n_val=1)
    (tmp_path / "empty").mkdir()
    make_sample_dataset(tmp_path / "empty", n_train=1, n_val=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0), "n_train must be a whole number of images, at least 1, not 0"),
    (dict(n_train=-5), "n_train must be"),
    (dict(n_val=0), "n_val must be"),
    (dict(n_val=2.0), "n_val must be"),
    (dict(n_train=True), "n_train must be"),
    (dict(image_size=(320, 127)), "image_size 320x127: width and height must be 128 to 4096 pixels"),
    (dict(image_size=(100, 240)), "width and height must be 128"),
    (dict(image_size=320), "image_size must be (width, height)"),
    (dict(image_size=(320, 240, 3)), "image_size must be (width, height)"),
    (dict(seed=-1), "seed must be a whole number, 0 or more"),
    (dict(seed=1.5), "seed must be"),
    (dict(workers=0), "workers must be a whole number, at least 1, or None, not 0"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(TaoNbError) as e:
        make_sample_dataset(tmp_path / "out", **kwargs)
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(TaoNbError, match="exists and is not a folder"):
        make_sample_dataset(tmp_path / "f", overwrite=True)


def test_class_mapping_maps_vans_to_cars():
    mapping = sample_class_mapping()
    assert mapping == {"car": "car", "van": "car", "pedestrian": "pedestrian", "cyclist": "cyclist"}
    assert set(mapping) == set(SAMPLE_CLASSES)
    mapping["van"] = "van"
    assert sample_class_mapping()["van"] == "car"  # a fresh dict each time
