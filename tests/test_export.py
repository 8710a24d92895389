"""Export: the portable ONNX detector gives the Keras model's outputs in ONNX Runtime (raw outputs to 1e-3 absolute,
detections matched box for box to 1e-4), with a dynamic or fixed batch; clear errors; TensorRT's calibration cache
byte for byte."""
import struct

import numpy as np
import pytest

from tao_nb.core import TaoNbError, import_tensorflow
from tao_nb.export import OnnxDetector, export_onnx, read_calibration_cache, scale_hex, write_calibration_cache
from tao_nb.models.anchors import AnchorSettings
from tao_nb.models.detectors import SSD
from tao_nb.models.ssd import build_ssd

import_tensorflow()
import keras  # noqa: E402


def tiny_network(seed=0):
    """A tiny untrained SSD whose head weights are scaled down, so that scores spread over (0, 1) instead of
    saturating at 1.0 (where NMS would order ties arbitrarily)."""
    keras.utils.set_random_seed(seed)
    net = build_ssd((128, 128, 3), ["car", "person"],
                    AnchorSettings((0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05), ((1.0, 2.0, 0.5),) * 6), "resnet", 10)
    for k in range(6):
        for name in (f"ssd_conf_{k}", f"ssd_loc_{k}"):
            layer = net.model.get_layer(name)
            w, b = layer.get_weights()
            layer.set_weights([w * 0.05, b])
    return net


def images(n, seed=1):
    return np.random.default_rng(seed).uniform(-120, 130, (n, 128, 128, 3)).astype(np.float32)


def matched(a, b, atol=1e-4):
    """Fraction of the real detections of `a` that `b` has too (same image and class, score and box within atol)."""
    found = total = 0
    for da, db in zip(a, b):
        db = db[db[:, 1] > 0]
        for row in da[da[:, 1] > 0]:
            total += 1
            found += bool(np.any((db[:, 0] == row[0]) & np.all(np.abs(db[:, 1:] - row[1:]) <= atol, axis=1)))
    assert total > 0
    return found / total


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_network()
    path = export_onnx(net, None, tmp_path_factory.mktemp("export") / "ssd.onnx", top_k=50)
    return net, path


def test_onnx_detector_matches_the_keras_inference_model(exported):
    net, path = exported
    det, x = OnnxDetector(path), images(3)
    assert (det.input_shape, det.batch_size, det.classes) == ((128, 128, 3), None, ["car", "person"])
    assert np.abs(det(x, raw=True) - net.model(x).numpy()).max() < 1e-3
    want, got = SSD.inference_model(net, 0.01, 0.6, 50)(x).numpy(), det(x)
    assert got.shape == want.shape == (3, 50, 6)
    assert (want[..., 1] > 0).sum() > 30  # enough detections to compare
    assert matched(want, got) == 1.0 and matched(got, want) == 1.0
    np.testing.assert_allclose(got[:, :5], want[:, :5], atol=1e-4)  # the top detections, in order
    assert np.all(got[want[..., 1] == 0] == 0)  # padding rows are zero in both


def test_dynamic_batch(exported):
    net, path = exported
    det, x = OnnxDetector(path), images(4, seed=2)
    whole = det(x)
    for part in (x[:1], x[1:4]):
        assert det(part).shape == (len(part), 50, 6)
    np.testing.assert_allclose(det(x[1:4]), whole[1:4], atol=1e-5)


def test_fixed_batch_and_keras_file_with_spec(tmp_path):
    from tao_nb.data.sample import sample_ssd_spec
    from tao_nb.models.ssd import ssd_from_spec
    from tao_nb.spec import spec_from_text
    spec = spec_from_text(sample_ssd_spec(tmp_path, tmp_path / "tfrecords", arch="resnet", nlayers=10, image_size=(128, 128)))
    net = ssd_from_spec(spec)
    net.model.save(tmp_path / "ssd.keras")
    path = export_onnx(tmp_path / "ssd.keras", spec, tmp_path / "b2.onnx", batch_size=2)
    det = OnnxDetector(path)
    assert det.batch_size == 2 and det.classes == net.classes
    x = np.random.default_rng(3).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    assert np.abs(det(x, raw=True) - net.model(x).numpy()).max() < 1e-3
    assert det(x).shape == (2, spec.nms_config.top_k, 6)
    with pytest.raises(TaoNbError, match=r"takes images \(2, 128, 128, 3\)"):
        det(np.concatenate([x, x]))


def test_export_errors(tmp_path):
    net = tiny_network()
    with pytest.raises(TaoNbError, match="model file not found"):
        export_onnx(tmp_path / "missing.keras", None, tmp_path / "x.onnx")
    with pytest.raises(TaoNbError, match="needs its experiment spec"):
        export_onnx(net.model, None, tmp_path / "x.onnx")
    with pytest.raises(TaoNbError, match=r"use -1 \(dynamic\)"):
        export_onnx(net, None, tmp_path / "x.onnx", batch_size=0)
    assert not (tmp_path / "x.onnx").exists()


def test_onnx_detector_errors(tmp_path):
    import onnx
    from onnx import helper as h
    with pytest.raises(TaoNbError, match="ONNX model file not found"):
        OnnxDetector(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(TaoNbError, match="not a loadable ONNX model"):
        OnnxDetector(tmp_path / "junk.onnx")
    graph = h.make_graph([h.make_node("Identity", ["Input"], ["y"])], "g",
                         [h.make_tensor_value_info("Input", onnx.TensorProto.FLOAT, [1, 8, 8, 3])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 8, 3])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "other.onnx")
    with pytest.raises(TaoNbError, match="not an SSD detector exported by tao_nb"):
        OnnxDetector(tmp_path / "other.onnx")


def test_calibration_cache_byte_for_byte(tmp_path):
    assert scale_hex(6.0) == "3d418306"  # the reference's example: 6 / 127 = 0.047244
    path = write_calibration_cache({"Input": 6.0, "conv1/Relu:0": 127.0, "x": 254.0}, tmp_path / "cal.bin")
    assert path.read_bytes() == b"TRT-8503-EntropyCalibration2\nInput: 3d418306\nconv1/Relu:0: 3f800000\nx: 40000000\n"
    write_calibration_cache({"Input": 6.0}, path, trt_version=(10, 3, 0))
    assert path.read_bytes() == b"TRT-10300-EntropyCalibration2\nInput: 3d418306\n"
    amax = read_calibration_cache(path)
    assert list(amax) == ["Input"] and amax["Input"] == pytest.approx(6.0, rel=1e-6)
    # every hex is the float32 of amax / 127, whatever the value
    for a in (1e-3, 0.1, 3.3, 1234.5):
        assert struct.unpack(">f", bytes.fromhex(scale_hex(a)))[0] == np.float32(a / 127)


def test_calibration_cache_errors(tmp_path):
    with pytest.raises(TaoNbError, match="ranges are positive numbers"):
        write_calibration_cache({"x": float("nan")}, tmp_path / "c.bin")
    with pytest.raises(TaoNbError, match="minor must be 0..9"):
        write_calibration_cache({"x": 1.0}, tmp_path / "c.bin", trt_version=(8, 10, 0))
    assert not (tmp_path / "c.bin").exists()
    (tmp_path / "c.bin").write_text("hello\n")
    with pytest.raises(TaoNbError, match="not a TensorRT calibration cache"):
        read_calibration_cache(tmp_path / "c.bin")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from tao_nb.data.sample import make_sample_dataset, sample_ssd_spec
    from tao_nb.spec import spec_from_text
    root = tmp_path_factory.mktemp("sample")
    info = make_sample_dataset(root / "data", n_train=16, n_val=4, image_size=(128, 128))
    return info, spec_from_text(sample_ssd_spec(root / "data", root / "tfrecords", image_size=(128, 128)))


def test_calibration_batches_and_data_file(sample, tmp_path):
    from tao_nb.export import calibration_batches, load_calibration_data, save_calibration_data
    info, spec = sample
    folder = info.training_dir / "image_2"
    cal = calibration_batches(folder, spec, batches=3, batch_size=5, seed=7)
    assert cal.shape == (3, 5, 128, 128, 3) and cal.dtype == np.float32
    assert len({c.tobytes() for c in cal.reshape(15, -1)}) == 15  # drawn without replacement
    np.testing.assert_array_equal(calibration_batches(folder, spec, 3, 5, seed=7), cal)
    assert not np.array_equal(calibration_batches(folder, spec, 3, 5, seed=8), cal)
    for name in ("c.npy", "c.npz"):
        np.testing.assert_array_equal(load_calibration_data(save_calibration_data(cal, tmp_path / name)), cal)
    with pytest.raises(TaoNbError, match=r"16 .jpg/.jpeg/.png images found, calibration needs batches x batch_size = 2 x 9 = 18"):
        calibration_batches(folder, spec, 2, 9)


def test_int8_onnx_close_to_fp32_and_cache_reused(exported, sample, tmp_path):
    from tao_nb.export import calibration_batches, export_int8_onnx
    _, path = exported
    info, spec = sample
    cal = calibration_batches(info.training_dir / "image_2", spec, batches=2, batch_size=4)
    res = export_int8_onnx(path, tmp_path / "int8.onnx", cal, tmp_path / "cal.bin")
    assert res.calibrated and read_calibration_cache(res.cache).keys() == res.ranges.keys()
    assert all(np.isclose(read_calibration_cache(res.cache)[k], v, rtol=1e-6) for k, v in res.ranges.items())
    val = calibration_batches(info.validation_dir / "image_2", spec, batches=1, batch_size=4)[0]
    raw32, raw8 = OnnxDetector(path)(val, raw=True), OnnxDetector(res.path)(val, raw=True)
    assert np.abs(raw8 - raw32).max() < 0.1 * np.abs(raw32).max()
    assert np.corrcoef(raw32.ravel(), raw8.ravel())[0, 1] > 0.999
    again = export_int8_onnx(path, tmp_path / "again.onnx", None, tmp_path / "cal.bin")
    assert not again.calibrated
    np.testing.assert_array_equal(OnnxDetector(again.path)(val, raw=True), raw8)

    # a cache made for another export (tensor names it does not have): refused without data, recalibrated with it
    stray = {**read_calibration_cache(tmp_path / "cal.bin"), "not_in_this_graph:0": 1.0}
    write_calibration_cache(stray, tmp_path / "other.bin")
    with pytest.raises(TaoNbError, match="was written for another export .* not_in_this_graph:0"):
        export_int8_onnx(path, tmp_path / "x.onnx", None, tmp_path / "other.bin")
    redone = export_int8_onnx(path, tmp_path / "x.onnx", cal, tmp_path / "other.bin")
    assert redone.calibrated and "not_in_this_graph:0" not in read_calibration_cache(tmp_path / "other.bin")
