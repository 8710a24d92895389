"""Pruning sweeps on a briefly trained SSD: rows in order, threshold 0 = the unpruned model, JSON round trip, retraining, bad input."""
import csv
import json
import os

os.environ.setdefault("TAO_NB_PROGRESS", "0")

import pytest  # noqa: E402

from tao_nb.core import TaoNbError  # noqa: E402
from tao_nb.data.convert import dataset_convert  # noqa: E402
from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec  # noqa: E402
from tao_nb.prune import read_prune_report  # noqa: E402
from tao_nb.prune_sweep import SWEEP_FILE, compare_latency, plot_sweep, read_sweep, sweep, threshold_grid  # noqa: E402
from tao_nb.spec import spec_from_text  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A converted 16-image sample dataset, its spec file and an SSD trained on it for 2 epochs (mAP above 0)."""
    from tao_nb.train import train
    d = tmp_path_factory.mktemp("sweep")
    make_sample_dataset(d / "data", n_train=16, n_val=8, image_size=(160, 128))
    dataset_convert(spec_from_text(sample_convert_spec(d / "data", num_shards=1)), d / "tfrecords" / "sample", workers=1)
    spec = d / "spec.txt"
    spec.write_text(sample_ssd_spec(d / "data", d / "tfrecords" / "sample", num_epochs=2, validation_period=2))
    return d, train(spec, d / "train", verbose=0).model_path, spec


def grid(model_path, shares):
    from tao_nb.models.ssd import load_keras_model
    return threshold_grid(load_keras_model(model_path), shares)


@pytest.fixture(scope="module")
def swept(tiny):
    """A sweep without retraining at 0 and at thresholds below which 50% and 90% of the filters score."""
    d, model, spec = tiny
    mid, high = grid(model, (0.5, 0.9))
    return sweep(model, spec, (high, 0.0, mid), d / "no_retrain", latency_runs=3)


def test_rows_are_ordered_and_shrink(swept, tiny):
    assert [r.threshold for r in swept.rows] == [0.0, *grid(tiny[1], (0.5, 0.9))]
    params = [swept.baseline.params] + [r.params for r in swept.rows]
    assert params[1] == params[0] and params[1] > params[2] > params[3]
    flops = [r.flops for r in swept.rows]
    assert flops[0] > flops[1] > flops[2] > 0
    for r in [swept.baseline, *swept.rows]:
        assert list(r.latency_ms) == [1] and all(ms > 0 for ms in r.latency_ms.values())
        assert r.map_after is None and r.retrained_path is None


def test_threshold_zero_is_the_unpruned_model(swept):
    zero, base = swept.rows[0], swept.baseline
    assert (zero.params, zero.flops) == (base.params, base.flops)
    assert base.map_before > 0  # a real number to compare, not two zeros
    assert zero.map_before == pytest.approx(base.map_before, abs=1e-9)
    assert swept.rows[2].map_before != pytest.approx(base.map_before, abs=1e-9)  # each row evaluates its own model


def test_pruned_models_and_reports_are_saved(swept, tiny):
    d = tiny[0]
    for r in swept.rows:
        assert r.model_path == str(d / "no_retrain" / f"pth_{r.threshold:g}" / "pruned.keras")
        report = read_prune_report(r.model_path)
        assert report["parameters"]["threshold"] == r.threshold and report["params_after"] == r.params
        assert report["source"] == str(tiny[1])


def test_json_round_trip(swept, tiny):
    path = tiny[0] / "no_retrain" / SWEEP_FILE
    assert swept.path == path
    back = read_sweep(path)
    assert back.to_json() == swept.to_json()
    assert json.loads(path.read_text()) == json.loads(json.dumps(swept.to_json()))
    assert back.rows[2].latency_ms.keys() == {1}  # batch sizes come back as integers
    assert back.settings["thresholds"] == [r.threshold for r in swept.rows] and back.settings["retrain_epochs"] == 0
    assert back.table() == swept.table()
    assert [n for n in os.listdir(path.parent) if n.startswith(".")] == []  # no temporary files left


def test_table_and_plot(swept):
    lines = swept.table().splitlines()
    assert len(lines) == 1 + 1 + 3
    assert lines[1].split()[:3] == ["unpruned", f"{swept.baseline.params / 1e6:.3f}M", "1.00"]
    fig = plot_sweep(swept)
    assert [t.get_text() for t in fig.axes[0].texts] == [f"{r.threshold:g}" for r in swept.rows]
    assert list(fig.axes[1].lines[0].get_xdata()) == [r.latency_ms[1] for r in swept.rows]
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_retraining(tiny):
    d, model, spec = tiny
    t = grid(model, [0.5])[0]
    result = sweep(model, spec, [t], d / "retrain", retrain_epochs=1, latency_runs=2)
    row, folder = result.rows[0], d / "retrain" / f"pth_{t:g}"
    assert row.params < result.baseline.params
    assert row.retrained_path == str(folder / "retrain" / "weights" / "ssd_resnet10_epoch_001.keras")
    assert isinstance(row.map_after, float) and row.map == row.map_after
    with open(folder / "retrain" / "training_log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in log] == [1]
    assert float(log[0]["reg_loss"]) == 0.0  # retrained without the spec's L1 regulariser
    from tao_nb.models.ssd import load_keras_model
    assert load_keras_model(row.retrained_path).count_params() == row.params  # the pruned architecture was trained


@pytest.mark.parametrize("thresholds, message", [
    ([], "at least one"),
    ([0.1, 0.3, 0.1], "more than once"),
    ([0.1, -0.5], "0 or more: -0.5"),
    ([0.1, float("inf")], "0 or more: inf"),
    (["0.3"], "0 or more: '0.3'"),
    (0.3, "a list of numbers"),
    ("0.1 0.3", "a list of numbers"),
])
def test_bad_thresholds_fail_before_any_work(tiny, tmp_path, thresholds, message):
    with pytest.raises(TaoNbError, match=message.replace(".", r"\.").replace("(", r"\(")):
        sweep(tiny[1], tiny[2], thresholds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw, message", [
    ({"threshold": 0.2}, "unknown pruning parameter 'threshold'"),
    ({"granularity": 0}, "granularity must be a positive integer"),
    ({"retrain_epochs": -1}, "retrain_epochs must be an integer of 0 or more"),
    ({"latency_batches": [0]}, "latency_batches must be positive integers"),
])
def test_bad_settings_fail_before_any_work(tiny, tmp_path, kw, message):
    with pytest.raises(TaoNbError, match=message):
        sweep(tiny[1], tiny[2], [0.1], tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_latency_of_a_bigger_model_is_larger():
    import keras
    def conv(filters):
        x = keras.Input((64, 64, 3))
        return keras.Model(x, keras.layers.Conv2D(filters, 3, padding="same")(keras.layers.Conv2D(filters, 3, padding="same")(x)))
    big, small = compare_latency([conv(128), conv(4)], batch=2, runs=5)
    assert big > 3 * small > 0
