"""dataset_convert end to end: TAO's partition and shard rules, the CLI, interruption and bad input."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from tao_nb.data.convert import dataset_convert, random_partitions, shard_partitions
from tao_nb.data.kitti import ImageAnnotations, kitti_label_text
from tao_nb.data.tfrecords import SHARD_RE, find_shards, read_tfrecord_annotations
from tao_nb.spec import spec_from_text

REAL = Path(__file__).parents[2] / "shared" / "data" / "kitti_real"


def make_kitti(root: Path, n: int, size=(64, 48)):
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir(parents=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / "image_2" / f"{i:06d}.png")
        ann = ImageAnnotations(f"{i:06d}", ["Car", "Van", "DontCare"], [[1, 2, 30, 40], [20, 5, 50, 45], [0, 0, 5, 5]])
        (root / "label_2" / f"{i:06d}.txt").write_text(kitti_label_text(ann))
    return root


def spec_text(root, val_split=20, num_shards=2, mapping=(("car", "car"), ("van", "car"))):
    maps = "".join(f'target_class_mapping {{ key: "{k}" value: "{v}" }}\n' for k, v in mapping)
    return (f'kitti_config {{ root_directory_path: "{root}" image_dir_name: "image_2" label_dir_name: "label_2" '
            f'image_extension: ".png" partition_mode: "random" num_partitions: 2 val_split: {val_split} '
            f'num_shards: {num_shards} }}\n{maps}')


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.floats(0, 100), st.integers(1, 20))
def test_partition_and_shard_sizes_follow_tao(n, val_split, num_shards):
    ids = [f"{i:06d}" for i in range(n)]
    parts = random_partitions(ids, val_split, random.Random(42))
    assert len(parts[0]) == int(val_split / 100 * n) and sorted(parts[0] + parts[1]) == ids
    sharded = shard_partitions(parts, num_shards)
    assert len(sharded) == sum(1 for p in parts if p)  # empty partitions are dropped
    for part, shards in zip([p for p in parts if p], sharded):
        assert len(shards) == num_shards and sum(shards, []) == part
        assert all(len(s) == len(part) // num_shards for s in shards[:-1])


def test_shuffle_matches_python_random_seed_42():
    """TAO calls random.seed(42) once, shuffles each partition in _partition and again before sharding."""
    ids = [f"{i:06d}" for i in range(50)]
    random.seed(42)
    val, train = ids[:10], ids[10:]
    for p in (val, train, val, train):
        random.shuffle(p)
    rng = random.Random(42)
    parts = random_partitions(ids, 20, rng)
    for p in parts:
        rng.shuffle(p)
    assert parts == [val, train]


def test_cli_convert_and_read_back(tmp_path):
    root = make_kitti(tmp_path / "data", 10)
    (tmp_path / "spec.txt").write_text(spec_text(root))
    out = subprocess.run([sys.executable, "-m", "tao_nb.cli", "ssd", "dataset_convert", "-d", tmp_path / "spec.txt",
                          "-o", tmp_path / "tfrecords" / "kitti"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "fold 0: 2 images" in out.stdout and "fold 1: 8 images" in out.stdout
    assert "left out (not in target_class_mapping): dontcare 10" in out.stdout
    names = sorted(p.name for p in (tmp_path / "tfrecords").iterdir())
    assert names == ["kitti-fold-000-of-002-shard-00000-of-00002", "kitti-fold-000-of-002-shard-00001-of-00002",
                     "kitti-fold-001-of-002-shard-00000-of-00002", "kitti-fold-001-of-002-shard-00001-of-00002",
                     "kitti_stats.json"]
    stats = json.loads((tmp_path / "tfrecords" / "kitti_stats.json").read_text())
    assert stats["total_objects"] == {"car": 20} and stats["class_ids"] == {"car": 1, "van": 1}
    back = list(read_tfrecord_annotations(find_shards(str(tmp_path / "tfrecords" / "kitti*"))))
    assert sorted(a.frame_id for a, _ in back) == [f"{i:06d}" for i in range(10)]
    for ann, data in back:
        assert ann.classes == ["car", "van"]
        np.testing.assert_allclose(ann.boxes, [[1, 2, 30, 40], [20, 5, 50, 45]], atol=1e-3)
        assert data == (root / "image_2" / f"{ann.frame_id}.png").read_bytes()


def test_empty_mapping_keeps_every_class(tmp_path):
    root = make_kitti(tmp_path / "data", 3)
    s = dataset_convert(spec_from_text(spec_text(root, mapping=())), tmp_path / "out" / "k")
    assert s.classes == ["car", "dontcare", "van"] and not s.unmapped


def test_interrupted_conversion_keeps_previous_result(tmp_path, monkeypatch):
    import tao_nb.data.convert as convert
    root = make_kitti(tmp_path / "data", 12)
    first = dataset_convert(spec_from_text(spec_text(root, num_shards=2)), tmp_path / "out" / "k")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    calls = {"n": 0}
    real = convert._encode

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(convert, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        dataset_convert(spec_from_text(spec_text(root, num_shards=3, val_split=50)), tmp_path / "out" / "k")
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before, "an interrupted run must leave the previous conversion as it was"
    assert len(find_shards(str(tmp_path / "out" / "k*"))) == len(first.shards)


@pytest.mark.slow
def test_kill_9_leaves_no_complete_looking_shard(tmp_path):
    root = make_kitti(tmp_path / "data", 600, size=(640, 480))
    (tmp_path / "spec.txt").write_text(spec_text(root, num_shards=4))
    for delay in (0.5, 1.5, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "tao_nb.cli", "ssd", "dataset_convert", "-d", tmp_path / "spec.txt",
                                 "-o", tmp_path / "out" / "k"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shards = [p for p in (tmp_path / "out").glob("k-*") if SHARD_RE.search(p.name)] if (tmp_path / "out").exists() else []
        for s in shards:  # whatever is visible under a final name is a complete shard
            assert sum(1 for _ in read_tfrecord_annotations([str(s)])) > 0


def test_bad_inputs(tmp_path):
    root = make_kitti(tmp_path / "data", 4)
    (root / "label_2" / "000002.txt").write_text("Car 0 0 0 1 2 abc 4 1 1 1 1 1 1 0\n")
    with pytest.raises(Exception, match=r"000002.txt:1: field 7 \(x2\) is 'abc', not a number"):
        dataset_convert(spec_from_text(spec_text(root)), tmp_path / "out" / "k")
    (root / "label_2" / "000002.txt").write_text("")
    (root / "image_2" / "000001.png").write_bytes(b"")
    with pytest.raises(Exception, match="000001.png: not a readable image"):
        dataset_convert(spec_from_text(spec_text(root)), tmp_path / "out" / "k")
    empty = tmp_path / "empty"
    (empty / "image_2").mkdir(parents=True)
    (empty / "label_2").mkdir()
    with pytest.raises(Exception, match="no .png images"):
        dataset_convert(spec_from_text(spec_text(empty)), tmp_path / "out" / "k")


@pytest.mark.skipif(not REAL.exists(), reason=f"the real KITTI frames are not at {REAL}")
def test_real_kitti_frames(tmp_path):
    spec = spec_from_text(f'kitti_config {{ root_directory_path: "{REAL}" image_dir_name: "image_2" '
                          'label_dir_name: "label_2" partition_mode: "random" num_partitions: 2 val_split: 34 num_shards: 1 }\n'
                          'target_class_mapping { key: "car" value: "car" } target_class_mapping { key: "truck" value: "car" }\n'
                          'target_class_mapping { key: "pedestrian" value: "person" } target_class_mapping { key: "cyclist" value: "person" }')
    s = dataset_convert(spec, tmp_path / "k")
    assert [p["images"] for p in s.partitions] == [1, 2]  # int(0.34 * 3) = 1 validation image
    assert s.classes == ["car", "person"] and s.unmapped == {"dontcare": 4, "misc": 1}


def test_conversions_are_byte_identical_across_processes(tmp_path):
    """Protobuf writes map fields in hash order unless asked not to: two processes with different hash seeds must still
    write the same shards, so a re-run can be checked (and cached) by its bytes."""
    root = make_kitti(tmp_path / "data", 8)
    (tmp_path / "spec.txt").write_text(spec_text(root))
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-m", "tao_nb.cli", "ssd", "dataset_convert", "-d", tmp_path / "spec.txt",
                              "-o", tmp_path / seed / "k"], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.returncode == 0, out.stderr
    shards = sorted(p.name for p in (tmp_path / "1").glob("k-fold-*"))
    assert len(shards) == 4
    for name in shards:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
