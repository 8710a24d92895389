"""Pruning YOLOv3 networks: darknet residuals, the head's upsample + concatenate routes and the stride-2 expand
convolution prune exactly (planted zero filters go, outputs stay), the prediction convolutions keep every filter,
kept counts follow granularity and min_filters, and a pruned model saves, loads, trains and retrains from a spec."""
import numpy as np
import pytest

from conftest import FIXTURES
from tao_nb.core import import_tensorflow
from tao_nb.prune import plan_pruning, prune, prune_model, read_prune_report, save_pruned

import_tensorflow()
import keras  # noqa: E402
from keras import layers  # noqa: E402

HEADS = ("conv_big_object", "conv_mid_object", "conv_small_object")
SIZE = (64, 96)  # network input (height, width): multiples of 32, small


@pytest.fixture(scope="module")
def seed():
    from tao_nb.spec import load_spec
    return load_spec(FIXTURES / "specs" / "seeds" / "yolov3_experiment.txt")


def yolo(seed, arch, nlayers, conv_blocks=1, size=SIZE):
    from tao_nb.models.yolo_anchors import YoloAnchors
    from tao_nb.models.yolov3 import build_yolov3
    from tao_nb.spec import target_classes
    keras.utils.set_random_seed(0)
    net = build_yolov3((*size, 3), target_classes(seed.dataset_config.target_class_mapping),
                       YoloAnchors.from_spec(seed.yolov3_config), arch, nlayers, conv_blocks)
    randomize_batch_norms(net.model)
    return net


def randomize_batch_norms(model):
    """Batch norms as after training (a fresh one maps 0 to 0, which would hide a channel that pruning breaks)."""
    rng = np.random.default_rng(2)
    for l in model.layers:
        if isinstance(l, layers.BatchNormalization):
            n = l.gamma.shape[0]
            l.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])


def images(n=2, size=SIZE): return np.random.default_rng(0).normal(size=(n, *size, 3)).astype(np.float32)


def run(model, x): return keras.ops.convert_to_numpy(model(x, training=False))


def convs(model): return [l.name for l in model.layers if type(l) is layers.Conv2D]


def source_conv(layer):
    """The Conv2D whose channels reach `layer` one to one (through BN, activations, depthwise, pooling), or None."""
    while True:
        layer = layer.input._keras_history.operation
        if type(layer) is layers.Conv2D: return layer.name
        if not isinstance(layer, (layers.BatchNormalization, layers.ReLU, layers.LeakyReLU, layers.DepthwiseConv2D,
                                  layers.ZeroPadding2D, layers.MaxPooling2D, layers.UpSampling2D)): return None


def plant_zero_filters(model, groups, count):
    """Zero `count(channels)` random filters of each prunable group in all its convolutions, and gamma and beta of the
    batch norms they reach (directly or through a depthwise convolution), so that those channels are exactly zero."""
    rng, planted = np.random.default_rng(1), {}
    for g in groups:
        if g.reason is None:
            zeros = sorted(rng.choice(g.channels, count(g.channels), replace=False).tolist())
            planted.update((name, zeros) for name in g.layers)
    for name, zeros in planted.items():
        w = model.get_layer(name).get_weights(); w[0][..., zeros] = 0
        if len(w) > 1: w[1][zeros] = 0
        model.get_layer(name).set_weights(w)
    for l in model.layers:
        if isinstance(l, layers.BatchNormalization) and (src := source_conv(l)) in planted:
            gamma, beta, mean, var = l.get_weights(); gamma[planted[src]] = beta[planted[src]] = 0
            l.set_weights([gamma, beta, mean, var])
    return planted


def check_exact(net, planted, r, rtol=1e-4):
    """Exactly the planted filters went, every other convolution kept all its own, the outputs did not change."""
    for name in convs(net.model):
        before = net.model.get_layer(name).kernel.shape[-1]
        assert r.model.get_layer(name).kernel.shape[-1] == before - len(planted.get(name, ())), name
    for l in r.model.layers:  # element-wise merges get inputs of one shape, depthwise layers follow their parent
        if isinstance(l, layers.Add): assert len({tuple(t.shape) for t in l.input}) == 1, l.name
        if isinstance(l, layers.DepthwiseConv2D): assert l.kernel.shape[2] == l.input.shape[-1], l.name
    assert r.params_after < r.params_before and r.flops_after < r.flops_before
    x = images()
    want, got = run(net.model, x), run(r.model, x)
    assert got.shape == want.shape == (2, len(net.grid), 5 + len(net.classes))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def check_groups(net, groups):
    """Every convolution but the three predictors is prunable; the predictors keep all their filters."""
    fixed = {n for g in groups if g.reason for n in g.layers}
    assert fixed == set(HEADS), fixed
    assert all(g.reason == f"{g.layers[0]} reaches the model output" for g in groups if g.reason)
    assert {n for g in groups for n in g.layers} == set(convs(net.model))


def group_of(groups, name): return next(g for g in groups if name in g.layers)


# --- exactness on every backbone ---------------------------------------------------------------------------------

FAST = [("resnet", 10, 2), ("darknet", 19, 1), ("mobilenet_v2", 0, 1)]
SLOW = [("resnet", 10, 0), ("resnet", 10, 1), ("resnet", 18, 1), ("darknet", 53, 1), ("darknet", 53, 2), ("vgg", 16, 1),
        ("vgg", 19, 0), ("mobilenet_v1", 0, 2), ("mobilenet_v2", 0, 0), ("googlenet", 0, 1), ("squeezenet", 0, 2)]
CASES = FAST + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW]


@pytest.mark.parametrize("arch,nlayers,conv_blocks", CASES, ids=lambda v: str(v))
def test_planted_zero_filters_are_removed_exactly(seed, arch, nlayers, conv_blocks):
    """Granularity 1: a quarter of each group's filters are planted zeros and exactly those go."""
    net = yolo(seed, arch, nlayers, conv_blocks)
    groups = plan_pruning(net.model, threshold=0.0)
    check_groups(net, groups)
    planted = plant_zero_filters(net.model, groups, lambda n: n // 4)
    r = prune_model(net.model, threshold=0.01, granularity=1, min_filters=1)
    check_exact(net, planted, r)
    # the head's routes: each concatenation feeds a convolution sliced at the offsets of its two inputs
    for k, (up, after) in enumerate([("yolo_conv2_conv", "yolo_conv3_1_conv"), ("yolo_conv4_conv", "yolo_conv5_1_conv")]):
        feature = r.model.get_layer(f"yolo_concat{k}").input[1]
        assert r.model.get_layer(f"yolo_concat{k}").output.shape[-1] == r.model.get_layer(up).filters + feature.shape[-1]
        assert r.model.get_layer(after).kernel.shape[2] == r.model.get_layer(f"yolo_concat{k}").output.shape[-1]


def test_granularity_8_keeps_multiples_of_8(seed):
    """TAO's defaults (pth 0.1, pg 8, nf 16) with planted zeros in multiples of 8: the same exact removal."""
    net = yolo(seed, "resnet", 10, 0)
    groups = plan_pruning(net.model, threshold=0.0)
    planted = plant_zero_filters(net.model, groups, lambda n: 8 * max(0, (n - 16) // 8 // 2))  # at most half, >= 16 stay
    planted = {k: v for k, v in planted.items() if v}
    assert len(planted) > 10
    r = prune_model(net.model)
    check_exact(net, planted, r)
    assert all(len(g.kept) % 8 == 0 and len(g.kept) >= 16 for g in r.groups)


def test_darknet_residuals_and_the_expand_conv(seed):
    """Darknet53's residual Adds join each stage's downsampling conv with the second conv of all its units; a
    non-darknet backbone's stride-2 `yolo_expand_conv1` is a prunable layer of its own."""
    groups = plan_pruning(yolo(seed, "darknet", 53, 0).model, threshold=0.0)
    assert group_of(groups, "block_1a_2_conv").layers == ["block_1_down_conv", "block_1a_2_conv"]
    stage2 = group_of(groups, "block_2_down_conv")
    assert stage2.layers == ["block_2_down_conv", "block_2a_2_conv", "block_2b_2_conv"] and stage2.reason is None
    assert len(group_of(groups, "block_5_down_conv").layers) == 5  # 4 units in the last stage
    assert group_of(groups, "block_2a_1_conv").layers == ["block_2a_1_conv"]
    groups = plan_pruning(yolo(seed, "resnet", 10, 0).model, threshold=0.0)
    assert group_of(groups, "yolo_expand_conv1_conv").layers == ["yolo_expand_conv1_conv"]


# --- granularity, min_filters and the heads on scaled filters ----------------------------------------------------

def scale_filters(model, seed=0):
    """Spread the filter norms (as L1-regularised training does), so that pruning removes something."""
    rng = np.random.default_rng(seed)
    for l in model.layers:
        if isinstance(l, layers.Conv2D): l.kernel.assign(l.kernel * rng.uniform(0, 1, l.kernel.shape[-1]) ** 2)


@pytest.fixture(scope="module")
def resnet10(seed):
    net = yolo(seed, "resnet", 10, 1)
    scale_filters(net.model)
    return net


@pytest.fixture(scope="module")
def pruned_yolo(resnet10, seed, tmp_path_factory):
    from tao_nb.models.ssd import load_keras_model
    r = prune_model(resnet10.model, threshold=0.5)
    path = save_pruned(r, tmp_path_factory.mktemp("pruned") / "pruned.keras")
    return r, load_keras_model(path), path


def test_pruned_yolov3_saves_loads_and_trains(resnet10, pruned_yolo, seed):
    from tao_nb.models.detectors import YOLOV3
    from tao_nb.models.yolov3 import yolov3_network_from_model
    from tao_nb.train import DetectorTrainer
    r, loaded, path = pruned_yolo
    assert r.params_after < 0.5 * r.params_before and read_prune_report(path)["params_after"] == loaded.count_params()
    x = images()
    np.testing.assert_allclose(run(loaded, x), run(r.model, x), rtol=1e-5, atol=1e-5)
    net = yolov3_network_from_model(loaded, seed)
    np.testing.assert_array_equal(net.grid.priors, resnet10.grid.priors)
    targets = YOLOV3.targets(net, seed)
    y = np.stack([targets(np.array([[0.1, 0.2, 0.5, 0.7]]), np.array([k + 1])).numpy() for k in range(2)])
    trainer = DetectorTrainer(loaded, YOLOV3.loss(net, seed))
    trainer.compile(optimizer=keras.optimizers.SGD(1e-3), run_eagerly=True)
    before = [w.numpy().copy() for w in loaded.trainable_weights]
    hist = trainer.fit(x, y, batch_size=1, epochs=1, verbose=0).history  # two steps
    assert np.isfinite(hist["loss"]).all() and set(YOLOV3.loss(net).names) <= set(hist)
    assert sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, loaded.trainable_weights)) > len(before) // 2


@pytest.mark.slow  # in CI, the YOLOv3 tutorial prunes and retrains through the same calls
def test_retraining_a_pruned_yolov3_from_its_spec(sample, tmp_path):
    from tao_nb.models.ssd import load_keras_model
    from tao_nb.models.yolov3 import yolov3_from_spec
    from tao_nb.spec import load_spec
    from tao_nb.train import train
    spec = load_spec(sample("yolo_retrain.txt", network="yolo_v3", num_epochs=1, regularizer="NO_REG"))
    spec.training_config.pruned_model_path = str(tmp_path / "pruned.keras")
    full = yolov3_from_spec(spec)
    scale_filters(full.model)
    full.model.save(tmp_path / "trained.keras")
    prune(tmp_path / "trained.keras", tmp_path / "pruned.keras", threshold=0.5)
    report, pruned = read_prune_report(tmp_path / "pruned.keras"), load_keras_model(tmp_path / "pruned.keras")
    assert report["param_ratio"] < 0.5
    result = train(spec, tmp_path / "retrain", verbose=0)
    assert result.epochs == 1 and np.isfinite(float(result.history[-1]["loss"]))
    assert result.validation is not None and 0 <= result.validation.mean_ap <= 1
    retrained = load_keras_model(result.model_path)
    assert retrained.count_params() == report["params_after"]  # trained as itself, not copied into a full network
    assert [w.shape for w in retrained.weights] == [w.shape for w in pruned.weights]
    assert not all(np.array_equal(a, b) for a, b in zip(retrained.get_weights(), pruned.get_weights()))


@pytest.mark.slow
def test_a_qat_yolov3_prunes_as_its_float_network(seed):
    """The same kept channels as the float network; the pruned model is QAT again with the original ranges.
    (Outputs are not compared: a 1e-7 change in summation order moves fake-quantised values by a whole step.)"""
    from tao_nb.qat import activation_ranges, is_qat_model, quantize_model
    net = yolo(seed, "resnet", 10, 1)
    scale_filters(net.model)
    q = quantize_model(net.model)
    for i, layer in enumerate(l for l in q.layers if hasattr(l, "amax")): layer.amax.assign(1.0 + i / 10)
    r, rf = prune_model(q, threshold=0.5), prune_model(net.model, threshold=0.5)
    assert r.qat and is_qat_model(r.model) and activation_ranges(r.model) == activation_ranges(q)
    assert [g.kept for g in r.groups] == [g.kept for g in rf.groups] and rf.param_ratio < 0.5
    assert r.params_before - r.params_after == rf.params_before - rf.params_after  # (QAT adds one range per quantizer)
    y = run(r.model, images())
    assert y.shape == (2, len(net.grid), 5 + len(net.classes)) and np.isfinite(y).all()
