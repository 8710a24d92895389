"""Quantization-aware training: 8-bit kernels, EMA activation ranges, outputs close to the float model, training
through the rounding (DetectorTrainer on a QAT SSD), save and load, stripping back to float, and the calibration JSON."""
import json

import numpy as np
import pytest

from conftest import FIXTURES
from tao_nb.core import TaoNbError, import_tensorflow
from tao_nb.qat import (EMA_DECAY, INITIAL_AMAX, ActivationQuantizer, QuantConv2D, QuantDense, QuantDepthwiseConv2D,
                        activation_ranges, calibrate_ranges, fake_quant, is_qat_model, quantize_model,
                        quantize_weights, quantized_tensors, read_cal_json, strip_quantization, write_cal_json)

tf = import_tensorflow()
import keras  # noqa: E402
from keras import layers  # noqa: E402

CLASSES = ["car", "cyclist", "pedestrian"]  # the classes of the seed spec
STEP = INITIAL_AMAX / 127  # the grid step of an activation at its initial range


def toy_model(seed=0):
    """Fused conv-BN-ReLU, a residual Add fed by a BN, depthwise, max pooling, a concatenation, dense layers."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3), name="image")
    a = layers.Conv2D(16, 3, padding="same", name="conv_a")(inp)
    a = layers.ReLU(name="relu_a")(layers.BatchNormalization(name="bn_a")(a))
    b = layers.BatchNormalization(name="bn_b")(layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_b")(a))
    x = layers.ReLU(name="relu_x")(layers.Add(name="add")([a, b]))
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = layers.Conv2D(8, 1, use_bias=False, name="conv_c")(layers.BatchNormalization(name="bn_dw")(y))
    z = layers.Concatenate(name="concat")([layers.MaxPooling2D(name="pool_x")(x), layers.MaxPooling2D(name="pool_y")(y)])
    z = layers.Conv2D(16, 3, strides=2, padding="same", name="conv_d")(z)
    h = layers.Dense(8, activation="relu", name="fc")(layers.Flatten(name="flat")(z))
    return keras.Model(inp, layers.Dense(4, name="head")(h), name="toy")


def images(n=4, shape=(8, 8, 3), scale=1.0, seed=0):
    return (scale * np.random.default_rng(seed).normal(size=(n, *shape))).astype(np.float32)


def run(model, x, training=False): return keras.ops.convert_to_numpy(model(x, training=training))


@pytest.fixture(scope="module")
def seed_spec():
    from tao_nb.spec import load_spec
    return load_spec(FIXTURES / "specs" / "seeds" / "ssd_experiment.txt")


@pytest.fixture(scope="module")
def ssd(seed_spec):
    """A ResNet-10 SSD at 96x128 with block 0 frozen, and its QAT copy."""
    from tao_nb.models.anchors import AnchorSettings
    from tao_nb.models.ssd import build_ssd
    keras.utils.set_random_seed(0)
    net = build_ssd((96, 128, 3), CLASSES, AnchorSettings.from_spec(seed_spec.ssd_config), "resnet", 10, freeze_blocks=[0])
    return net, quantize_model(net.model, input_amax=150.0)


# --- fake quantisation -------------------------------------------------------------------------------------------

def test_quantised_kernels_take_at_most_255_values():
    qm = quantize_model(toy_model())
    kinds = {}
    for layer in qm.layers:
        if not isinstance(layer, (QuantConv2D, QuantDepthwiseConv2D, QuantDense)): continue
        kinds[type(layer).__name__] = True
        w = layer.kernel.numpy()
        q = keras.ops.convert_to_numpy(quantize_weights(layer.kernel))
        step = np.abs(w).max() / 127
        assert len(np.unique(q)) <= 255, layer.name
        assert np.abs(q - w).max() <= step / 2 * (1 + 1e-5), layer.name  # per tensor: nothing clipped
        np.testing.assert_allclose(np.abs(q).max(), np.abs(w).max(), rtol=1e-6)  # the largest weight is exact
        np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-3)  # on the grid
    assert set(kinds) == {"QuantConv2D", "QuantDepthwiseConv2D", "QuantDense"}


def test_layers_compute_with_the_quantised_kernel():
    qm = quantize_model(toy_model())
    x = images()
    conv = qm.get_layer("conv_a")
    inner = keras.Model(qm.input, conv.output)  # conv_a reads the fake-quantised image
    xq = keras.ops.convert_to_numpy(fake_quant(x, INITIAL_AMAX))
    expected = tf.nn.conv2d(xq, quantize_weights(conv.kernel), 1, "SAME") + conv.bias
    np.testing.assert_allclose(run(inner, x), expected.numpy(), atol=1e-5)
    dense = qm.get_layer("head")
    h = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(run(dense, h), h @ quantize_weights(dense.kernel).numpy() + dense.bias.numpy(), atol=1e-5)


def test_straight_through_gradient_and_zero_tensors():
    x = tf.Variable([-10.0, -3.1, 0.5, 7.0])
    with tf.GradientTape() as tape: y = fake_quant(x, 6.0)
    np.testing.assert_allclose(y.numpy(), np.array([-127, -66, 11, 127]) * 6.0 / 127, rtol=1e-6)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.0, 1.0, 1.0, 0.0])
    w = tf.Variable(tf.random.stateless_normal((3, 3, 2, 4), seed=(1, 2)))
    with tf.GradientTape() as tape: loss = tf.reduce_sum(3.0 * quantize_weights(w))
    np.testing.assert_array_equal(tape.gradient(loss, w).numpy(), np.full((3, 3, 2, 4), 3.0))  # identity for kernels
    np.testing.assert_array_equal(quantize_weights(tf.zeros((2, 3))).numpy(), np.zeros((2, 3)))
    assert fake_quant(tf.ones(2, tf.float16), 6.0).dtype == tf.float16


# --- activation ranges -------------------------------------------------------------------------------------------

def test_ema_follows_the_formula_in_training_and_is_frozen_in_inference():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="x")
    m = keras.Model(inp, layers.Dense(2, name="out")(layers.ReLU(name="r")(layers.Dense(4, name="h")(inp))))
    qm = quantize_model(m)
    assert [l.name for l in qm.layers if isinstance(l, ActivationQuantizer)] == ["x_qat", "r_qat"]
    qm.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(4, 5)).astype(np.float32) * s for s in (1, 20, 3, 7, 0.5)]
    expected = INITIAL_AMAX
    for xb in batches:  # one optimizer step per batch
        qm.train_on_batch(xb, np.zeros((4, 2), np.float32))
        expected = EMA_DECAY * expected + (1 - EMA_DECAY) * np.abs(xb).max()
        np.testing.assert_allclose(activation_ranges(qm)["x"], expected, rtol=1e-6)
    frozen = activation_ranges(qm)
    run(qm, batches[1] * 100)
    qm.predict(batches[1] * 100, verbose=0)
    qm.evaluate(batches[1] * 100, np.zeros((4, 2), np.float32), verbose=0)
    assert activation_ranges(qm) == frozen
    assert frozen["r"] != INITIAL_AMAX  # the hidden activation's range moved in training too


def test_training_step_compiles_with_xla():
    """Keras compiles training steps with XLA on GPUs: the fake quantisation and its gradient must compile."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    x = layers.ReLU()(layers.DepthwiseConv2D(3)(layers.ReLU()(layers.Conv2D(4, 3, padding="same")(inp))))
    qm = quantize_model(keras.Model(inp, layers.Dense(2)(layers.Flatten()(x))))
    qm.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=True)
    hist = qm.fit(images(4, (6, 6, 2)), np.ones((4, 2), np.float32), epochs=2, verbose=0).history
    assert np.isfinite(hist["loss"]).all() and hist["loss"][1] < hist["loss"][0]
    assert all(v != INITIAL_AMAX for v in activation_ranges(qm).values())


def test_activation_quantizer_layer():
    q = ActivationQuantizer(decay=0.5, initial_amax=2.0, name="t_qat")
    x = tf.constant([[1.0, -4.0]])
    np.testing.assert_allclose(q(x).numpy(), [[1.0, -2.0]], atol=2.0 / 127)  # clipped to the initial range
    q(x, training=True)  # amax: 0.5 * 2 + 0.5 * 4 = 3, used at once
    np.testing.assert_allclose(q.amax.numpy(), 3.0)
    np.testing.assert_allclose(q(x).numpy(), [[1.0, -3.0]], atol=3.0 / 127)
    assert q.trainable_weights == [] and len(q.non_trainable_weights) == 1
    assert ActivationQuantizer.from_config(q.get_config()).get_config()["decay"] == 0.5
    with pytest.raises(TaoNbError, match=r"decay must be in \[0, 1\)"): ActivationQuantizer(decay=1.5)
    with pytest.raises(TaoNbError, match="initial_amax must be positive"): ActivationQuantizer(initial_amax=-1.0)


# --- the rebuilt model -------------------------------------------------------------------------------------------

def test_which_tensors_are_quantised():
    m = toy_model()
    # conv_a -> bn_a -> relu_a fuse; bn_b feeds the Add; dw -> bn_dw fuse; max pooling and flatten keep ranges;
    # fc has its own ReLU; the head makes the output
    assert quantized_tensors(m) == ["image", "relu_a", "bn_b", "add", "relu_x", "bn_dw", "conv_c", "concat", "conv_d",
                                    "fc"]
    assert "image" not in quantized_tensors(m, quantize_input=False)
    qm = quantize_model(m, quantize_input=False, initial_amax=3.0, decay=0.9)
    qs = [l for l in qm.layers if isinstance(l, ActivationQuantizer)]
    assert [l.name for l in qs] == [f"{n}_qat" for n in quantized_tensors(m)[1:]]
    assert {(l.decay, l.initial_amax) for l in qs} == {(0.9, 3.0)}


def test_outputs_close_to_the_float_model():
    m = toy_model()
    qm = quantize_model(m)
    assert qm.name == m.name
    assert [l.name for l in qm.layers if not isinstance(l, ActivationQuantizer)] == [l.name for l in m.layers]
    qat_class = {"Conv2D": "QuantConv2D", "Dense": "QuantDense", "DepthwiseConv2D": "QuantDepthwiseConv2D"}
    for l in m.layers:
        assert type(qm.get_layer(l.name)).__name__ == qat_class.get(type(l).__name__, type(l).__name__)
        for a, b in zip(l.get_weights(), qm.get_layer(l.name).get_weights()): np.testing.assert_array_equal(a, b)
    x = images(8)
    yf, yq = run(m, x), run(qm, x)
    assert yq.shape == yf.shape
    assert 0 < np.abs(yf - yq).max() < 2 * STEP  # rounded, but within a couple of activation steps
    # larger inputs: clipped at the initial range until the ranges are calibrated
    big = images(8, scale=30.0, seed=1)
    yf = run(m, big)
    rel = lambda y: np.linalg.norm(y - yf) / np.linalg.norm(yf)
    assert rel(run(qm, big)) > 0.5
    ranges = calibrate_ranges(qm, [big[:4], (big[4:], None)])  # inputs, or (input, target) pairs
    np.testing.assert_allclose(ranges["image"], np.abs(big).max(), rtol=1e-6)
    assert ranges == activation_ranges(qm)
    assert rel(run(qm, big)) < 0.08  # 8 bits per tensor, 7 layers deep: a few percent


def test_frozen_layers_stay_frozen(ssd):
    net, qm = ssd
    frozen = {l.name for l in net.model.layers if l.weights and not l.trainable}
    assert frozen and frozen == {l.name for l in qm.layers if l.weights and not l.trainable}
    assert len(qm.trainable_weights) == len(net.model.trainable_weights)


def test_strip_gives_the_float_architecture_and_weights():
    m = toy_model()
    qm = quantize_model(m)
    qm.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    qm.fit(images(8), np.ones((8, 4), np.float32), epochs=2, batch_size=4, verbose=0)
    fm = strip_quantization(qm)
    assert not is_qat_model(fm) and fm.name == m.name
    assert [(l.name, type(l)) for l in fm.layers] == [(l.name, type(l)) for l in m.layers]
    strip_config = lambda l: {k: v for k, v in l.get_config().items() if k != "name"}
    assert [strip_config(l) for l in fm.layers] == [strip_config(l) for l in m.layers]
    changed = False
    for l in fm.layers:
        for a, b, c in zip(l.get_weights(), qm.get_layer(l.name).get_weights(), m.get_layer(l.name).get_weights()):
            np.testing.assert_array_equal(a, b)  # the trained weights
            changed |= not np.array_equal(a, c)
    assert changed
    # without training, stripping undoes quantisation exactly
    np.testing.assert_array_equal(run(strip_quantization(quantize_model(m)), images()), run(m, images()))


def test_save_and_load_round_trip(tmp_path, ssd):
    from tao_nb.models.ssd import load_keras_model
    _, qm = ssd
    qm.get_layer("conv1_relu_qat").amax.assign(4.5)
    qm.save(tmp_path / "qat.keras")
    back = load_keras_model(tmp_path / "qat.keras")
    assert is_qat_model(back)
    assert activation_ranges(back) == activation_ranges(qm) and activation_ranges(back)["conv1_relu"] == 4.5
    assert [(l.name, type(l)) for l in back.layers] == [(l.name, type(l)) for l in qm.layers]
    x = images(2, (96, 128, 3), scale=50.0)
    np.testing.assert_array_equal(run(back, x), run(qm, x))



def test_loading_gives_the_package_classes_after_a_notebook_registered_its_own(tmp_path):
    """nbdev_test runs notebooks one after another in one process, and 42_qat's cells register their own copies of the
    QAT layers under the package's names (as running such a cell again in Jupyter does): a model loaded afterwards must
    still be a QAT model to the package (this failed the SSD tutorial's QAT export in CI)."""
    import inspect

    import tao_nb.qat as qat
    from tao_nb.models.ssd import load_keras_model
    qm = quantize_model(toy_model())
    qm.save(tmp_path / "qat.keras")
    package_layers = (ActivationQuantizer, *qat.QUANTIZED.values())
    try:
        notebook = dict(vars(qat))
        for cls in package_layers: exec(inspect.getsource(cls), notebook)  # what running the notebook's cells does
        assert keras.saving.get_registered_object("tao_nb>ActivationQuantizer") is notebook["ActivationQuantizer"]
        back = load_keras_model(tmp_path / "qat.keras")
        assert is_qat_model(back) and activation_ranges(back) == activation_ranges(qm)
    finally:
        for cls in package_layers: keras.saving.register_keras_serializable("tao_nb")(cls)


# --- the SSD -----------------------------------------------------------------------------------------------------

def test_ssd_quantises_and_keeps_its_heads(ssd, seed_spec):
    from tao_nb.models.ssd import ssd_network_from_model
    net, qm = ssd
    names = quantized_tensors(net.model)
    assert names[0] == "Input" and {"conv1_relu", "block_1a_2_bn", "block_1a_proj_bn", "block_1a_add", "block_4a_out",
                                    "ssd_extra_4_2_relu"} <= set(names)
    assert not {n for n in names if n.startswith(("ssd_conf", "ssd_loc", "ssd_pred"))}  # heads stay float
    assert not {n for n in names if n.endswith("_conv")}  # folded into their batch norms
    assert activation_ranges(qm)["Input"] == 150.0
    for k in range(6):
        for head in (f"ssd_conf_{k}", f"ssd_loc_{k}"):
            assert isinstance(qm.get_layer(head), QuantConv2D)
            assert qm.get_layer(head).output.shape == net.model.get_layer(head).output.shape
            assert qm.get_layer(f"{head}_reshape").output.shape == net.model.get_layer(f"{head}_reshape").output.shape
    assert qm.output.shape == net.model.output.shape and qm.input.shape == net.model.input.shape
    qnet = ssd_network_from_model(qm, seed_spec)
    np.testing.assert_array_equal(qnet.anchors, net.anchors)
    assert qnet.model is qm


def test_ssd_trainer_trains_a_qat_ssd(ssd):
    from tao_nb.models.ssd_targets import ssd_loss, ssd_targets
    from tao_nb.models.detectors import SSD
    from tao_nb.train import DetectorTrainer, conv_kernels
    net, _ = ssd
    qm = quantize_model(net.model, input_amax=150.0)
    assert len(conv_kernels(qm)) == len(conv_kernels(net.model))  # the kernel regulariser still sees every conv
    x = images(2, (96, 128, 3), scale=50.0)
    y = keras.ops.stack([ssd_targets(np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), np.array([1], np.int32),
                                     net.anchors, net.variances)] * 2)
    with tf.GradientTape() as tape: loss = ssd_loss(y, qm(x, training=True))["loss"]
    grads = tape.gradient(loss, qm.trainable_variables)
    missing = [v.path for v, g in zip(qm.trainable_variables, grads) if g is None]
    assert not missing, missing
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    trainer = DetectorTrainer(qm, SSD.loss(net), reg_kind="L1", reg_weight=1e-5)
    trainer.compile(optimizer=keras.optimizers.SGD(1e-3))
    before = {v.path: v.numpy().copy() for v in qm.trainable_variables}
    amax_before = activation_ranges(qm)
    losses = [trainer.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(3)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert any(not np.array_equal(before[v.path], v.numpy()) for v in qm.trainable_variables)
    after = activation_ranges(qm)
    assert after.keys() == amax_before.keys() and after != amax_before


# --- export ------------------------------------------------------------------------------------------------------

def test_write_cal_json(tmp_path):
    m = toy_model()
    qm = quantize_model(m)
    qm.get_layer("relu_a_qat").amax.assign(2.5)
    path = write_cal_json(qm, tmp_path / "out" / "cal.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data) == ["tensor_scales"] and list(data["tensor_scales"]) == quantized_tensors(m)
    assert data["tensor_scales"]["relu_a"] == 2.5 and data["tensor_scales"]["add"] == INITIAL_AMAX
    assert path.read_text().endswith("\n") and sorted(p.name for p in path.parent.iterdir()) == ["cal.json"]
    assert read_cal_json(path) == data["tensor_scales"]
    (tmp_path / "bad.json").write_text('{"tensor_scales": {"relu_a": 0}}')
    with pytest.raises(TaoNbError, match="tensor 'relu_a' has the range 0"): read_cal_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text('[1, 2]')
    with pytest.raises(TaoNbError, match="tensor_scales"): read_cal_json(tmp_path / "list.json")
    (tmp_path / "broken.json").write_text('{"tensor_scales": ')
    with pytest.raises(TaoNbError, match="unreadable calibration JSON"): read_cal_json(tmp_path / "broken.json")
    with pytest.raises(TaoNbError, match="not found"): read_cal_json(tmp_path / "missing.json")
    with pytest.raises(TaoNbError, match="not a QAT model"): write_cal_json(m, tmp_path / "float.json")
    assert not (tmp_path / "float.json").exists()


# --- what is refused ---------------------------------------------------------------------------------------------

def test_clear_errors():
    m = toy_model()
    qm = quantize_model(m)
    with pytest.raises(TaoNbError, match="toy is a QAT model already"): quantize_model(qm)
    with pytest.raises(TaoNbError, match="toy is not a QAT model"): strip_quantization(m)
    with pytest.raises(TaoNbError, match="not a QAT model"): activation_ranges(m)
    with pytest.raises(TaoNbError, match="not a QAT model"): calibrate_ranges(m, [images()])
    with pytest.raises(TaoNbError, match="no batches"): calibrate_ranges(qm, [])
    with pytest.raises(TaoNbError, match="needs a functional Keras model"):
        quantize_model(keras.Sequential([layers.Dense(2)]))
    shared, i = layers.Dense(2, name="shared"), keras.Input((2,))
    with pytest.raises(TaoNbError, match="more than once: shared"): quantize_model(keras.Model(i, shared(shared(i))))
    inner = keras.Model(i, layers.Dense(2)(i), name="inner")
    j = keras.Input((2,))
    with pytest.raises(TaoNbError, match="layer 'inner' is a nested model"): quantize_model(keras.Model(j, inner(j)))
    k = keras.Input((4,), name="k")
    clash = keras.Model(k, layers.Dense(2, name="h")(layers.ReLU(name="r_qat")(layers.ReLU(name="r")(k))))
    with pytest.raises(TaoNbError, match="r_qat"): quantize_model(clash)
    lora = layers.Dense(3, name="lora_dense")
    out = lora(k)
    lora.enable_lora(2)
    with pytest.raises(TaoNbError, match="lora_dense: QAT cannot"): quantize_model(keras.Model(k, out))
