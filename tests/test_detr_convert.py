"""Deformable DETR convert end to end on tiny generated KITTI sequences: shard names and sizes with padding, category
ids, ids across sequences, TAO's shuffles, re-runs, failures that leave the previous results, and bad input."""
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from tao_nb.core import TaoNbError
from tao_nb.data.coco import read_coco
from tao_nb.data.detr_convert import (DetrConvertError, convert_kitti_to_coco, detr_convert_from_spec, detr_partitions,
                                      shard_with_padding)
from tao_nb.data.kitti import ImageAnnotations, KittiLabelError, kitti_label_text

MAPPING = {"car": "car", "van": "car", "pedestrian": "person", "cyclist": "rider"}


def make_sequence(root: Path, n: int, ext=".jpg", size=(40, 30), start=0):
    """A KITTI sequence: image i holds i % 3 + 1 cars, a pedestrian, a DontCare and an inverted van."""
    (root / "image_2").mkdir(parents=True, exist_ok=True)
    (root / "label_2").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.new("RGB", size, (i % 255, 60, 90)).save(root / "image_2" / f"{i:06d}{ext}")
        cars = i % 3 + 1
        ann = ImageAnnotations(f"{i:06d}", ["Car"] * cars + ["Pedestrian", "DontCare", "Van"],
                               [[1 + k, 2, 20.5 + k, 15.25] for k in range(cars)] + [[22, 3, 30, 28], [0, 0, 4, 4], [9, 9, 5, 12]])
        (root / "label_2" / f"{i:06d}.txt").write_text(kitti_label_text(ann))
    return root


@pytest.fixture
def data(tmp_path):
    """Two sequences (7 and 4 images), the sequence list and the mapping file."""
    make_sequence(tmp_path / "data" / "seq_a", 7)
    make_sequence(tmp_path / "data" / "seq_b", 4, start=100)
    (tmp_path / "seqs.txt").write_text("seq_a\nseq_b\n")
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))
    return tmp_path


def convert(d: Path, **kw):
    kw.setdefault("data_root", d / "data")
    return convert_kitti_to_coco(d / "seqs.txt", d / "out", d / "map.json", **kw)


def frames_of(shard: Path):
    """Frame ids of a shard's images, in order."""
    return [Path(im["file_name"]).stem for im in json.loads(shard.read_text())["images"]]


def test_shard_names_sizes_ids_and_categories(data):
    r = convert(data, num_shards=3)
    names = [Path(p).relative_to(data / "out").as_posix() for p in r.shards]
    assert names == [f"seq_a/seq_a-shard-{s:05d}-of-00003.json" for s in range(3)] + \
                    [f"seq_b/seq_b-shard-{s:05d}-of-00003.json" for s in range(3)]
    shards = [json.loads(Path(p).read_text()) for p in r.shards]
    assert [len(s["images"]) for s in shards] == [3, 3, 3, 2, 2, 2]  # ceil(7/3), ceil(4/3)
    image_ids = [im["id"] for s in shards for im in s["images"]]
    ann_ids = [a["id"] for s in shards for a in s["annotations"]]
    assert image_ids == list(range(15)) and ann_ids == list(range(len(ann_ids)))  # from 0, across sequences
    for s in shards:
        assert s["categories"] == [{"id": 1, "name": "rider"}, {"id": 2, "name": "person"}, {"id": 3, "name": "car"}]
        assert list(s) == ["images", "annotations", "categories"]
        ids = {im["id"] for im in s["images"]}
        assert all(a["image_id"] in ids and a["iscrowd"] == 0 for a in s["annotations"])
    # every frame appears; the repeats fill the last shard of each sequence
    a_frames = [f for s in r.shards[:3] for f in frames_of(Path(s))]
    assert sorted(set(a_frames)) == [f"{i:06d}" for i in range(7)] and len(a_frames) == 9
    assert len(set(frames_of(Path(r.shards[0])) + frames_of(Path(r.shards[1])))) == 6
    assert r.num_classes == 4 and r.images == 15
    assert (data / "out" / "stats.txt").read_text() == f"seq_a,9,{r.sequences[0]['annotations']}\nseq_b,15,{r.annotations}\n"


def test_shards_read_back_with_the_right_objects(data):
    r = convert(data, num_shards=2)
    for p in r.shards:
        ds = read_coco(p, data / "data")  # file names are relative to the folder holding the sequences
        for im in ds:
            i = int(im.annotations.frame_id.rsplit("/", 1)[1])
            cars = i % 3 + 1
            assert im.annotations.classes == ["car"] * cars + ["person"]
            np.testing.assert_allclose(im.annotations.boxes[0], [1, 2, 20.5, 15.25])
            assert (im.width, im.height) == (40, 30)
    entry = json.loads(Path(r.shards[0]).read_text())["annotations"][0]
    assert entry["bbox"] == [1.0, 2.0, 19.5, 13.25] and entry["area"] == 19.5 * 13.25


def test_objects_left_out_are_counted_and_listed(data):
    r = convert(data, num_shards=4)  # seq_b pads 4 images to 4 shards of 1: no repeats; seq_a 7 -> 8
    assert r.unmapped == {"dontcare": 11}  # each image once, repeats not counted again
    assert len(r.skipped) == 11 and {s.class_name for s in r.skipped} == {"Van"}
    warning = json.loads((data / "out" / "warning.json").read_text())
    assert len(warning) == 11 and list(warning.values())[0] == [9.0, 9.0, 5.0, 12.0]
    assert r.objects["person"] == r.images  # repeats are written, so their objects count
    (data / "map.json").write_text(json.dumps({"car": "car"}))
    r = convert(data, num_shards=4)
    assert r.skipped == [] and not (data / "out" / "warning.json").exists()
    assert r.unmapped == {"dontcare": 11, "pedestrian": 11, "van": 11}


def tao_order(frames, num_shards, val_split=None):
    """The frame lists TAO's converter shards, from its documented steps, with the global `random`."""
    random.seed(42)
    if val_split is None: parts = [list(frames)]
    else:
        n_val = int(val_split / 100 * len(frames))
        parts = [list(frames[:n_val]), list(frames[n_val:])]
        for p in parts: random.shuffle(p)
    for p in parts: random.shuffle(p)
    out = []
    for p in parts:
        if not p: continue
        size = math.ceil(len(p) / num_shards)
        for i in range(num_shards):
            chunk = p[i * size:(i + 1) * size]
            out.append(chunk + (random.sample(p, size - len(chunk)) if len(chunk) < size else []))
    return out


@pytest.mark.parametrize("num_shards, mode", [(3, None), (2, 40), (1, 0), (4, 25)])
def test_same_frames_in_the_same_shards_as_tao(data, num_shards, mode):
    kw = {} if mode is None else {"partition_mode": "random", "num_partitions": 2, "val_split": mode}
    r = convert(data, num_shards=num_shards, **kw)
    for seq in r.sequences:
        frames = sorted(p.stem for p in (data / "data" / seq["name"] / "image_2").iterdir())
        assert [frames_of(Path(p)) for p in seq["shards"]] == tao_order(frames, num_shards, mode)


def test_random_partitions_name_their_folds(data):
    r = convert(data, num_shards=2, partition_mode="random", num_partitions=2, val_split=30)
    assert [Path(p).name for p in r.sequences[0]["shards"]] == [
        "seq_a-fold-000-of-002-shard-00000-of-00002.json", "seq_a-fold-000-of-002-shard-00001-of-00002.json",
        "seq_a-fold-001-of-002-shard-00000-of-00002.json", "seq_a-fold-001-of-002-shard-00001-of-00002.json"]
    assert [len(frames_of(Path(p))) for p in r.sequences[0]["shards"]] == [1, 1, 3, 3]  # 2 val, 5 train
    r = convert(data, num_shards=1, partition_mode="random", num_partitions=2, val_split=0)
    # the empty validation partition is dropped: the training images land in fold 0
    assert sorted(p.name for p in (data / "out" / "seq_a").iterdir()) == ["seq_a-fold-000-of-002-shard-00000-of-00001.json"]


def test_rerun_replaces_and_failure_keeps_previous_results(data):
    convert(data, num_shards=3)
    (data / "out" / "seq_a" / "keep_me.txt").write_text("user file")
    r = convert(data, num_shards=2)
    files = sorted(p.relative_to(data / "out").as_posix() for p in (data / "out").rglob("*") if p.is_file())
    assert files == ["seq_a/keep_me.txt", "seq_a/seq_a-shard-00000-of-00002.json", "seq_a/seq_a-shard-00001-of-00002.json",
                     "seq_b/seq_b-shard-00000-of-00002.json", "seq_b/seq_b-shard-00001-of-00002.json", "stats.txt", "warning.json"]
    assert json.loads(Path(r.shards[0]).read_text())["images"][0]["id"] == 0  # ids restart: no stats.txt carry-over
    # a broken image in the second sequence: nothing of the new run is published, no temporary files stay
    convert(data, num_shards=3)
    before = {p: p.read_bytes() for p in (data / "out").rglob("*") if p.is_file()}
    (data / "data" / "seq_b" / "image_2" / "000101.jpg").write_bytes(b"broken")
    with pytest.raises(DetrConvertError, match="000101.jpg: not a readable image"):
        convert(data, num_shards=5)
    assert {p: p.read_bytes() for p in (data / "out").rglob("*") if p.is_file()} == before


def test_exif_orientation_swaps_width_and_height(data):
    img = Image.new("RGB", (40, 30))
    exif = img.getexif(); exif[0x0112] = 8
    img.save(data / "data" / "seq_b" / "image_2" / "000100.jpg", exif=exif)
    r = convert(data, num_shards=1)
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in json.loads(Path(r.shards[1]).read_text())["images"]}
    assert sizes["seq_b/image_2/000100.jpg"] == (30, 40) and sizes["seq_b/image_2/000101.jpg"] == (40, 30)


def test_default_mapping_and_upper_case_keys(data):
    (data / "data" / "seq_c" / "image_2").mkdir(parents=True)
    (data / "data" / "seq_c" / "label_2").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(data / "data" / "seq_c" / "image_2" / "x.jpg")
    (data / "data" / "seq_c" / "label_2" / "x.txt").write_text(
        "Person 0 0 0 1 1 5 5 0 0 0 0 0 0 0\nbackpack 0 0 0 2 2 4 4 0 0 0 0 0 0 0\nRider 0 0 0 1 1 3 3 0 0 0 0 0 0 0\n")
    (data / "seqs.txt").write_text("seq_c\n")
    r = convert_kitti_to_coco(data / "seqs.txt", data / "out", num_shards=1, data_root=data / "data")
    shard = json.loads(Path(r.shards[0]).read_text())
    assert shard["categories"] == [{"supercategory": n, "id": i, "name": n} for i, n in [(1, "person"), (2, "face"), (3, "bag")]]
    assert [a["category_id"] for a in shard["annotations"]] == [1, 3, 1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), st.integers(1, 40), st.integers(0, 2 ** 32))
def test_every_shard_holds_ceil_n_over_shards(n, num_shards, seed):
    part = [f"{i:04d}" for i in range(n)]
    shards = shard_with_padding([[], part], num_shards, random.Random(seed))
    assert len(shards) == 1 and len(shards[0]) == num_shards
    size = math.ceil(n / num_shards)
    assert all(len(s) == size for s in shards[0])
    flat = [f for s in shards[0] for f in s]
    assert set(flat) == set(part)
    real = [s[: max(0, min(size, n - i * size))] for i, s in enumerate(shards[0])]
    assert [f for s in real for f in s] == part  # in order; only repeats come after


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50), st.floats(0, 99.99))
def test_random_partitions_split_like_tao(n, val_split):
    ids = [f"{i:04d}" for i in range(n)]
    val, train = detr_partitions(ids, random.Random(42), "random", 2, val_split)
    assert len(val) == int(val_split / 100 * n) and sorted(val + train) == ids


@pytest.mark.parametrize("kw, message", [
    ({"num_shards": 0}, "num_shards is 0; it is a whole number >= 1"),
    ({"num_shards": 2.5}, "num_shards is 2.5"),
    ({"num_partitions": 2}, "without partition_mode there is one partition"),
    ({"partition_mode": "sequence", "num_partitions": 2}, "'sequence' is not supported by Deformable DETR convert"),
    ({"partition_mode": "random"}, "partition_mode random makes 2 partitions"),
    ({"partition_mode": "random", "num_partitions": 2, "val_split": 100}, "val_split is 100; it is a percentage"),
    ({"val_split": "10"}, "val_split is '10'"),
    ({"image_extension": ".png"}, "no .png images (found .jpg: set image_extension)"),
    ({"image_dir_name": "images"}, "image folder not found"),
])
def test_bad_options_fail_before_writing(data, kw, message):
    with pytest.raises(TaoNbError) as e:
        convert(data, **kw)
    assert message in str(e.value)
    assert not (data / "out").exists()


def test_bad_inputs_are_clear_errors(data):
    (data / "map.json").write_text('{"car": ""}')
    with pytest.raises(DetrConvertError, match="'car' maps to ''; a target class is a non-empty string"):
        convert(data)
    (data / "map.json").write_text("{car: car}")
    with pytest.raises(DetrConvertError, match="cannot read the class mapping as JSON"):
        convert(data)
    (data / "map.json").write_text(json.dumps(MAPPING))
    with pytest.raises(DetrConvertError, match="mapping_path\\) not found"):
        convert_kitti_to_coco(data / "seqs.txt", data / "out", data / "nope.json")
    (data / "seqs.txt").write_text("\n\n")
    with pytest.raises(DetrConvertError, match="lists no sequence folder"):
        convert(data)
    (data / "seqs.txt").write_text("seq_a\n")
    (data / "data" / "seq_a" / "label_2" / "000003.txt").unlink()
    with pytest.raises(KittiLabelError, match="1 of 7 images .* have no label file"):
        convert(data)
    (data / "data" / "seq_a" / "label_2" / "000003.txt").write_text("Car 0 0 0 1 1 5 5 0 0 0 0 0 0 0 0.9\n")
    with pytest.raises(KittiLabelError, match="000003.txt:1: 16 fields instead of 15"):
        convert(data)
    assert not (data / "out").exists() or not list((data / "out").rglob("*.json"))


def test_from_spec(data):
    spec = {"input_source": str(data / "seqs.txt"), "data_root": str(data / "data"), "results_dir": str(data / "out"),
            "image_dir_name": "image_2", "label_dir_name": "label_2", "num_shards": 2, "num_partitions": 1,
            "partition_mode": None, "val_split": 0, "image_extension": ".jpg", "mapping_path": str(data / "map.json")}
    r = detr_convert_from_spec(spec)
    assert len(r.shards) == 4 and r.categories[0] == {"id": 1, "name": "rider"}
    with pytest.raises(DetrConvertError, match="unknown convert spec keys \\['shards'\\]"):
        detr_convert_from_spec({**spec, "shards": 3})
    with pytest.raises(DetrConvertError, match="needs label_dir_name"):
        detr_convert_from_spec({**spec, "label_dir_name": ""})
