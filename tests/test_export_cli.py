"""The export command line: encrypted INT8 exports evaluate with their key, engines without TensorRT say what is
missing (and build where TensorRT and a GPU are: marker gpu), the INT8 report, INT8 from a QAT model's own ranges."""
import importlib.util
import json

import numpy as np
import pytest

from tao_nb.encryption import MAGIC
from tao_nb.export import export_onnx
from tao_nb.export_tensorrt import export_onnx_tensorrt
from conftest import tao_nb

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_cli_encrypted_int8_export_evaluates_with_its_key(untrained, tmp_path):
    model, spec = untrained
    images_dir = spec.parent / "data" / "training" / "image_2"
    out = tao_nb("ssd", "export", "-m", model, "-e", spec, "-o", tmp_path / "m.onnx", "-k", "key1", "--data_type", "int8",
                 "--cal_image_dir", images_dir, "--batches", "2", "--batch_size", "2")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.cal.bin", "m.int8.onnx", "m.onnx"]  # no plain copy left
    assert all((tmp_path / n).read_bytes().startswith(MAGIC) for n in ("m.onnx", "m.int8.onnx"))
    for name in ("m.onnx", "m.int8.onnx"):
        ok = tao_nb("ssd", "evaluate", "-m", tmp_path / name, "-e", spec, "-k", "key1")
        assert ok.returncode == 0 and "mAP" in ok.stdout, ok.stderr
    bad = tao_nb("ssd", "evaluate", "-m", tmp_path / "m.onnx", "-e", spec)
    assert bad.returncode == 1 and "is encrypted: give the key" in bad.stderr


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_engine_without_tensorrt_says_what_is_missing(untrained, tmp_path):
    model, spec = untrained
    out = tao_nb("ssd", "export", "-m", model, "-e", spec, "-o", tmp_path / "m.onnx", "--engine_file", tmp_path / "m.engine")
    assert out.returncode == 1 and "pip install tao_nb[tensorrt]" in out.stderr
    assert (tmp_path / "m.onnx").exists() and not (tmp_path / "m.engine").exists()
    out = tao_nb("ssd", "gen_trt_engine", tmp_path / "m.onnx", "-d", "3,128,160", "-o", "NMS", "-m", "4")
    assert out.returncode == 1 and "TensorRT and an NVIDIA GPU" in out.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="needs TensorRT and a GPU")
@pytest.mark.parametrize("data_type", ["fp32", "fp16", "int8"])
def test_engine_builds(untrained, tmp_path, data_type):
    import tensorrt as trt
    model, spec = untrained
    out = tao_nb("ssd", "export", "-m", model, "-e", spec, "-o", tmp_path / "m.onnx", "--engine_file", tmp_path / "m.engine",
                 "--data_type", data_type, "--max_batch_size", "4", "--cal_image_dir", spec.parent / "data" / "training" / "image_2",
                 "--batches", "2", "--batch_size", "4", "--gen_ds_config")
    assert out.returncode == 0, out.stderr
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    engine = trt.Runtime(logger).deserialize_cuda_engine((tmp_path / "m.engine").read_bytes())
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert set(names) == {"Input", "NMS", "NMS_1"}


def test_cli_compare_writes_the_int8_report(untrained, tmp_path):
    model, spec = untrained
    fp32 = export_onnx(model, spec, tmp_path / "m.onnx")
    trt = export_onnx_tensorrt(model, spec, tmp_path / "m_trt.onnx")
    out = tao_nb("ssd", "compare", "-m", fp32, trt, "-n", "fp32", "trt", "-e", spec, "-o", tmp_path / "r.json",
                 "--figure", tmp_path / "r.png", "--batch_sizes", "1", "2", "--rounds", "1")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["baseline"] == "fp32" and set(report["latency_ms"]) == {"1", "2"}
    assert report["mean_ap"]["fp32"] == pytest.approx(report["mean_ap"]["trt"], abs=1e-6)
    assert set(report["ap_delta_points"]) == {"trt"} and (tmp_path / "r.png").stat().st_size > 0
    assert "speed-up" in out.stdout and "AP per class" in out.stdout
    bad = tao_nb("ssd", "compare", "-m", fp32, fp32, "-e", spec)
    assert bad.returncode == 1 and "model names must differ" in bad.stderr


def test_cli_qat_model_exports_int8_without_calibration(untrained, tmp_path):
    from tao_nb.export import read_calibration_cache
    from tao_nb.models.ssd import load_keras_model
    from tao_nb.qat import calibrate_ranges, quantize_model
    model, spec = untrained
    qat = quantize_model(load_keras_model(model))
    shape = (2, *qat.input.shape[1:])
    calibrate_ranges(qat, [np.random.default_rng(0).uniform(-120, 130, shape).astype(np.float32)])
    qat.save(tmp_path / "qat.keras")
    for layout in ("portable", "tensorrt"):  # each layout gets a cache for its own tensor names
        out = tao_nb("ssd", "export", "-m", tmp_path / "qat.keras", "-e", spec, "-o", tmp_path / layout / "m.onnx",
                     "--layout", layout, "--data_type", "int8", "--cal_json_file", tmp_path / layout / "cal.json")
        assert out.returncode == 0, out.stderr
        assert "ranges from QAT, no calibration" in out.stdout
        cache = read_calibration_cache(tmp_path / layout / "m.cal.bin")
        assert "Input" in cache and len(cache) == len(json.loads((tmp_path / layout / "cal.json").read_text())["tensor_scales"])
    assert (tmp_path / "portable" / "m.int8.onnx").exists()
    plain = tao_nb("ssd", "export", "-m", model, "-e", spec, "-o", tmp_path / "plain.onnx", "--data_type", "int8")
    assert plain.returncode == 1 and "INT8 needs calibration" in plain.stderr
