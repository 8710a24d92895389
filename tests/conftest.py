"""Shared paths, the tiny sample dataset fixture and a CLI runner for the test suites."""
import subprocess
import sys
from pathlib import Path

import pytest

from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec, sample_yolov3_spec

FIXTURES = Path(__file__).parent / "fixtures"
SEED_SPECS = sorted((FIXTURES / "specs" / "seeds").glob("*.txt"))
BROKEN_SPECS = sorted((FIXTURES / "specs" / "broken").glob("*.txt"))


@pytest.fixture
def seed_spec():
    """Path of a seed spec by file name."""
    return lambda name: FIXTURES / "specs" / "seeds" / name


def tao_nb(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tao_nb.cli", *map(str, args)], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A tiny converted sample dataset; returns a function writing an SSD (or, with network="yolo_v3", YOLOv3) spec for it."""
    d = tmp_path_factory.mktemp("sample")
    make_sample_dataset(d / "data", n_train=16, n_val=4, image_size=(160, 128))
    (d / "convert.txt").write_text(sample_convert_spec(d / "data", num_shards=1))
    out = subprocess.run([sys.executable, "-m", "tao_nb.cli", "ssd", "dataset_convert", "-d", d / "convert.txt",
                          "-o", d / "tfrecords" / "sample"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    def spec(name="spec.txt", network="ssd", **kw):
        kw = {"num_epochs": 2, "batch_size": 8, "validation_period": 1, **kw}
        p = d / name
        p.write_text({"ssd": sample_ssd_spec, "yolo_v3": sample_yolov3_spec}[network](d / "data", d / "tfrecords" / "sample", **kw))
        return p
    return spec


@pytest.fixture(scope="module")
def untrained(sample, tmp_path_factory):
    """An untrained sample-spec model (head weights scaled so scores spread) and its spec."""
    from tao_nb.models.ssd import ssd_from_spec
    from tao_nb.spec import load_spec
    spec = sample("export_trt.txt")
    net = ssd_from_spec(load_spec(spec))
    for layer in net.model.layers:
        if layer.name.startswith(("ssd_conf_", "ssd_loc_")) and layer.weights:
            w, b = layer.get_weights(); layer.set_weights([w * 0.05, b])
    path = tmp_path_factory.mktemp("untrained") / "model.keras"
    net.model.save(path)
    return path, spec
