"""Training as users run it: interrupted and resumed, NaN, two replicas, the CLI end to end."""
import csv
import math
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tao_nb.core import TaoNbError
from conftest import tao_nb


def log_rows(results):
    with open(results / "training_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_train_evaluate_inference(sample, tmp_path):
    spec = sample(num_epochs=1)
    out = tao_nb("ssd", "train", "-e", spec, "-r", tmp_path / "results", "-k", "nvidia_tlt", "--log_file", tmp_path / "train.log")
    assert out.returncode == 0, out.stderr
    model = tmp_path / "results" / "weights" / "ssd_resnet10_epoch_001.keras"
    assert model.exists() and "mAP" in out.stdout
    out = tao_nb("ssd", "evaluate", "-m", model, "-e", spec)
    assert out.returncode == 0 and "mAP" in out.stdout, out.stderr
    images = spec.parent / "data" / "validation" / "image_2"
    out = tao_nb("ssd", "inference", "-m", model, "-e", spec, "-i", images, "-o", tmp_path / "annotated",
                 "-l", tmp_path / "labels", "-t", "0.0")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "labels").glob("*.txt"))) == len(list(images.glob("*.png")))


@pytest.mark.slow  # CI kills between a checkpoint's files (test_interruptions.py); the slow chaos test kills 8 times at random
def test_resume_after_kill(sample, tmp_path):
    """kill -9 during epoch 2 or 3 of 3: the run resumes from the last checkpoint; the log and schedule continue."""
    spec = sample("resume.txt", num_epochs=3)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "tao_nb.cli", "ssd", "train", "-e", spec, "-r", results],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((results / "weights").glob("*_epoch_001.state.npz")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from tao_nb.models.ssd import load_keras_model
    from tao_nb.train import latest_checkpoint
    found = latest_checkpoint(results)
    assert found and found[1] >= 1
    load_keras_model(found[0])  # whatever the kill interrupted, the latest complete checkpoint loads
    out = tao_nb("ssd", "train", "-e", spec, "-r", results)
    assert out.returncode == 0, out.stderr
    rows = log_rows(results)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    reference = tmp_path / "reference"
    assert tao_nb("ssd", "train", "-e", spec, "-r", reference).returncode == 0
    for a, b in zip(rows, log_rows(reference)):  # the learning rate follows the same schedule
        assert math.isclose(float(a["lr"]), float(b["lr"]), rel_tol=1e-5)


def test_every_checkpoint_finds_its_log_row_already_written(sample, tmp_path, monkeypatch):
    """The log row of an epoch is written before its checkpoint: a kill between the two can never lose a row."""
    import tao_nb.train as train_module
    save, seen = train_module.save_checkpoint, []
    def checking_save(detector, optimizer, weights_dir, name, epoch):
        seen.append((epoch, [int(r["epoch"]) for r in log_rows(tmp_path / "results")]))
        return save(detector, optimizer, weights_dir, name, epoch)
    monkeypatch.setattr(train_module, "save_checkpoint", checking_save)
    train_module.train(sample("order.txt", num_epochs=2), tmp_path / "results", verbose=0)
    assert seen == [(1, [1]), (2, [1, 2])]


def test_nan_loss_stops_with_clear_message(sample, tmp_path):
    from tao_nb.train import train
    spec = sample("nan.txt", num_epochs=2, max_learning_rate=1e12)
    with pytest.raises(TaoNbError, match=r"the loss became NaN or infinite at epoch \d+, step \d+; training stopped") as e:
        train(spec, tmp_path / "results", verbose=0)
    bad_epoch = int(str(e.value).split("at epoch ")[1].split(",")[0])
    saved = sorted(p.name for p in (tmp_path / "results" / "weights").glob("*.keras")) if (tmp_path / "results" / "weights").exists() else []
    assert all(int(n.split("_epoch_")[1][:3]) < bad_epoch for n in saved)  # nothing saved from the NaN epoch on
    if saved: assert saved[-1] in str(e.value)  # the message names the last good checkpoint


def test_two_replicas_scale_the_learning_rate(sample, tmp_path):
    spec = sample("replicas.txt", num_epochs=1, batch_size=4)
    script = textwrap.dedent(f"""
        from tao_nb.core import import_tensorflow
        tf = import_tensorflow()
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tao_nb.train import train
        r = train("{spec}", "{tmp_path / 'results'}", verbose=0, devices=["/cpu:0", "/cpu:1"])
        print(r.epochs, r.history[-1]["lr"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    epochs, lr = out.stdout.split()
    assert epochs == "1"
    single = tmp_path / "single"
    assert tao_nb("ssd", "train", "-e", spec, "-r", single).returncode == 0
    # two replicas: twice the base learning rate at the same progress (end of training: the minimum, scaled)
    assert math.isclose(float(lr), 2 * float(log_rows(single)[-1]["lr"]), rel_tol=1e-4)
