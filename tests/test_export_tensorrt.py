"""The TensorRT layout (TAO's input and NMSDynamic_TRT node) gives the Keras model's detections when its plugin is
computed on the CPU; evaluate agrees with the portable export; encrypted exports need their key."""
import numpy as np
import onnx
import pytest

from tao_nb.core import TaoNbError
from tao_nb.encryption import MAGIC
from tao_nb.evaluate import evaluate
from tao_nb.export import OnnxDetector, export_onnx
from tao_nb.export_tensorrt import export_onnx_tensorrt
from tao_nb.models.detectors import SSD
from test_export import images, matched, tiny_network


@pytest.mark.parametrize("seed,top_k,batch_size", [(0, 20, -1), (3, 100, 2)])
def test_tensorrt_layout_gives_the_keras_detections(tmp_path, seed, top_k, batch_size):
    net = tiny_network(seed)
    path = export_onnx_tensorrt(net, None, tmp_path / "ssd.onnx", batch_size=batch_size, top_k=top_k, iou_threshold=0.5)
    dims = [d.dim_value or d.dim_param for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 128, 128] and (dims[0] == batch_size if batch_size > 0 else isinstance(dims[0], str))
    x = images(2, seed=seed + 1)
    want, got = SSD.inference_model(net, 0.01, 0.5, top_k)(x).numpy(), OnnxDetector(path)(x)
    assert got.shape == want.shape == (2, top_k, 6)
    assert matched(want, got) == 1.0 and matched(got, want) == 1.0
    np.testing.assert_allclose(got[:, :3], want[:, :3], atol=1e-4)  # the best detections, in order


def test_evaluate_agrees_on_both_layouts_and_encryption_needs_the_key(untrained, tmp_path):
    model, spec = untrained
    portable = export_onnx(model, spec, tmp_path / "portable.onnx")
    locked = export_onnx_tensorrt(model, spec, tmp_path / "trt.onnx", key="s3cret")
    assert locked.read_bytes().startswith(MAGIC) and b"NMSDynamic_TRT" not in locked.read_bytes()
    a, b = evaluate(portable, spec), evaluate(locked, spec, key="s3cret")
    assert a.mean_ap == pytest.approx(b.mean_ap, abs=1e-6) and a.ap == pytest.approx(b.ap, abs=1e-6)
    assert a.coco.ap == pytest.approx(b.coco.ap, abs=1e-6)
    with pytest.raises(TaoNbError, match="trt.onnx is encrypted: give the key it was exported with"):
        evaluate(locked, spec)
    with pytest.raises(TaoNbError, match=r"wrong key \(-k\)"):
        evaluate(locked, spec, key="nvidia_tlt")
