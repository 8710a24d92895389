"""The data subtasks of the CLI, end to end: sample data, offline augmentation, Deformable DETR convert."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def tao_nb(*args):
    return subprocess.run([sys.executable, "-m", "tao_nb.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("data") / "sample"
    out = tao_nb("data", "make_sample", "-o", d, "--n_train", "6", "--n_val", "2")
    assert out.returncode == 0, out.stderr
    return d


def test_make_sample_writes_valid_specs(sample):
    assert len(list((sample / "training" / "image_2").glob("*.png"))) == 6
    out = tao_nb("spec", "validate", *sorted((sample / "specs").glob("*.txt")))
    assert out.returncode == 0, out.stderr
    again = tao_nb("data", "make_sample", "-o", sample, "--n_train", "2", "--n_val", "1")
    assert again.returncode == 1 and "is not empty" in again.stderr and "Traceback" not in again.stderr


def test_augment(sample, tmp_path):
    out = tao_nb("data", "augment", "-a", FIXTURES / "specs" / "augment_example.txt", "-d", sample / "training", "-o", tmp_path / "aug")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "aug" / "labels").glob("*.txt"))) == 12  # 2 copies per image


@pytest.mark.parametrize("nested", [False, True])
def test_detr_convert_yaml(sample, tmp_path, nested):
    seq = tmp_path / "sequences" / "seq0"
    seq.mkdir(parents=True)
    for sub in ("image_2", "label_2"):
        (seq / sub).symlink_to(sample / "training" / sub)
    (tmp_path / "sources.txt").write_text(f"{seq}\n")
    (tmp_path / "mapping.json").write_text(json.dumps({"car": "car", "van": "car", "pedestrian": "person", "cyclist": "person"}))
    body = {"input_source": str(tmp_path / "sources.txt"), "results_dir": str(tmp_path / "out"), "image_dir_name": "image_2",
            "label_dir_name": "label_2", "image_extension": ".png", "num_shards": 2, "mapping_path": str(tmp_path / "mapping.json")}
    lines = [f"{'  ' if nested else ''}{k}: {v}" for k, v in body.items()]
    (tmp_path / "convert.yaml").write_text(("data_convert:\n" if nested else "") + "\n".join(lines) + "\n")
    out = tao_nb("deformable_detr", "convert", "-e", tmp_path / "convert.yaml")
    assert out.returncode == 0, out.stderr
    shards = sorted((tmp_path / "out" / "seq0").glob("*.json"))
    assert len(shards) == 2
    cats = json.loads(shards[0].read_text())["categories"]
    assert [c["name"] for c in cats] == ["person", "car"]  # ids 1..N over the target names in descending order


def test_detr_convert_bad_yaml(tmp_path):
    (tmp_path / "bad.yaml").write_text("input_source: [unclosed\n")
    out = tao_nb("deformable_detr", "convert", "-e", tmp_path / "bad.yaml")
    assert out.returncode == 1 and "bad.yaml:" in out.stderr and "not valid YAML" in out.stderr
