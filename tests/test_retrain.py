"""Retraining as users run it through the CLI: prune, retrain the pruned model, evaluate; quantization-aware training."""
from pathlib import Path

from conftest import tao_nb


def test_quantization_aware_training(sample, tmp_path):
    """enable_qat trains with fake quantisation; checkpoints stay QAT models that evaluate loads; mixing is refused."""
    from tao_nb.models.ssd import load_keras_model
    from tao_nb.qat import activation_ranges, is_qat_model
    spec = Path(sample("qat.txt", num_epochs=1))
    spec.write_text(spec.read_text().replace("  num_epochs: 1\n", "  num_epochs: 1\n  enable_qat: true\n"))
    out = tao_nb("ssd", "train", "-e", spec, "-r", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    model = load_keras_model(tmp_path / "r" / "weights" / "ssd_resnet10_epoch_001.keras")
    ranges = activation_ranges(model)
    assert is_qat_model(model) and ranges["Input"] > 100  # measured on mean-subtracted images, not the initial 6
    out = tao_nb("ssd", "evaluate", "-m", tmp_path / "r" / "weights" / "ssd_resnet10_epoch_001.keras", "-e", spec)
    assert out.returncode == 0 and "mAP" in out.stdout, out.stderr
    plain = sample("plain_more.txt", num_epochs=2)  # resuming the QAT checkpoint without QAT
    out = tao_nb("ssd", "train", "-e", plain, "-r", tmp_path / "r")
    assert out.returncode == 1 and "trained with QAT" in out.stderr and "Traceback" not in out.stderr


def test_train_prune_retrain_evaluate(sample, tmp_path):
    """TAO's recipe through the CLI: train, prune, retrain the pruned model (NO_REG), evaluate; shapes stay pruned."""
    # one epoch leaves filter norms close together, so a high threshold is what prunes here
    import json
    from tao_nb.models.ssd import load_keras_model
    spec = sample("full.txt", num_epochs=1)
    assert tao_nb("ssd", "train", "-e", spec, "-r", tmp_path / "full").returncode == 0
    model = tmp_path / "full" / "weights" / "ssd_resnet10_epoch_001.keras"
    # -nf 16, not 8: a 1x1 strided convolution left with 8 channels crashes oneDNN's gradient on some CPUs
    # (tao_nb.train.onednn_crash_layers)
    out = tao_nb("ssd", "prune", "-m", model, "-o", tmp_path / "pruned.keras", "-pth", "0.99", "-nf", "16", "-k", "key")
    assert out.returncode == 0 and "pruning ratio" in out.stdout, out.stderr
    report = json.loads((tmp_path / "pruned.prune.json").read_text())
    assert report["pruned"] and report["params_after"] < report["params_before"]

    retrain = Path(sample("retrain.txt", num_epochs=1, regularizer="NO_REG"))
    text = retrain.read_text()
    retrain.write_text(text.replace("training_config {\n", f'training_config {{\n  pruned_model_path: "{tmp_path / "pruned.keras"}"\n', 1))
    out = tao_nb("ssd", "train", "-e", retrain, "-r", tmp_path / "retrained")
    assert out.returncode == 0, out.stderr
    retrained = tmp_path / "retrained" / "weights" / "ssd_resnet10_epoch_001.keras"
    assert load_keras_model(retrained).count_params() == report["params_after"]
    out = tao_nb("ssd", "evaluate", "-m", retrained, "-e", retrain)
    assert out.returncode == 0 and "mAP" in out.stdout, out.stderr

    # -m with a pruned model trains the pruned network too (copying its weights into a full one would undo pruning)
    out = tao_nb("ssd", "train", "-e", sample("plain.txt", num_epochs=1, regularizer="NO_REG"), "-r", tmp_path / "by_m",
                 "-m", tmp_path / "pruned.keras")
    assert out.returncode == 0, out.stderr
    assert load_keras_model(tmp_path / "by_m" / "weights" / "ssd_resnet10_epoch_001.keras").count_params() == report["params_after"]

    # a model pruned from a QAT model cannot be retrained without QAT (nor the reverse)
    (tmp_path / "pruned.prune.json").write_text(json.dumps({**report, "qat": True}))
    out = tao_nb("ssd", "train", "-e", retrain, "-r", tmp_path / "mixed")
    assert out.returncode == 1 and "cannot be retrained without QAT" in out.stderr and "Traceback" not in out.stderr


def test_prune_errors_name_the_problem(tmp_path):
    out = tao_nb("ssd", "prune", "-m", tmp_path / "missing.keras", "-o", tmp_path / "p.keras")
    assert out.returncode == 1 and "missing.keras: model file not found" in out.stderr
    out = tao_nb("ssd", "prune", "-m", tmp_path / "missing.keras", "-o", tmp_path / "p.h5")
    assert out.returncode == 1 and ".keras" in out.stderr and "Traceback" not in out.stderr
    out = tao_nb("ssd", "prune", "-m", tmp_path / "m.keras", "-o", tmp_path / "p.keras", "-n", "L1")
    assert out.returncode == 2 and "invalid choice" in out.stderr
