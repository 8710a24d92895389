"""YOLOv3 export: the portable ONNX detector gives the Keras inference model's detections; the TensorRT layout (TAO's
BatchedNMSDynamic_TRT node, its plugin computed on the CPU) gives the portable export's; evaluate agrees on both;
INT8 calibration works on both layouts; the CPU plugin agrees with TensorFlow's per-class NMS."""
import numpy as np
import onnx
import pytest

from tao_nb.core import TaoNbError, import_tensorflow
from tao_nb.export import (OnnxDetector, calibration_batches, detector_network, export_int8_onnx, export_onnx,
                           network_family, read_calibration_cache)
from tao_nb.export_tensorrt import (TensorRTLayout, batched_nms_attributes, batched_nms_plugin, calibrate_tensorrt_cache,
                                    export_onnx_tensorrt, tensorrt_nms_node, write_deepstream_config)
from tao_nb.models.detectors import YOLOV3
from tao_nb.models.ssd import nms_detections
from tao_nb.spec import load_spec
from test_export import matched

tf = import_tensorflow()
import keras  # noqa: E402

TOP_K = 100  # sample_yolov3_spec's nms_config.top_k


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    """A tiny untrained YOLOv3 of the sample spec (128 x 128, no extra head blocks, head scaled so that scores spread), saved, and its
    portable and TensorRT-layout exports made from the .keras file and the spec file, as the CLI makes them."""
    from tao_nb.data.sample import make_sample_dataset, sample_yolov3_spec
    d = tmp_path_factory.mktemp("yolo_export")
    sample = make_sample_dataset(d / "data", n_train=16, n_val=4, image_size=(128, 128))
    spec_path = d / "spec.txt"
    text = sample_yolov3_spec(d / "data", d / "tfrecords", image_size=(128, 128))
    spec_path.write_text(text.replace("arch_conv_blocks: 2", "arch_conv_blocks: 0"))  # a smaller head converts 3x faster
    spec = load_spec(spec_path)
    keras.utils.set_random_seed(0)
    net = YOLOV3.network(spec)
    for s in ("big", "mid", "small"):
        layer = net.model.get_layer(f"conv_{s}_object")
        w, b = layer.get_weights()
        layer.set_weights([w * 0.05, b])
    net.model.save(d / "model.keras")
    portable = export_onnx(d / "model.keras", spec_path, d / "portable.onnx")
    trt = export_onnx_tensorrt(d / "model.keras", spec_path, d / "trt.onnx")
    return dict(net=net, spec=spec, spec_path=spec_path, sample=sample, portable=portable, trt=trt, dir=d)


def images(n, seed=1):
    return np.random.default_rng(seed).uniform(-120, 130, (n, 128, 128, 3)).astype(np.float32)


def test_portable_export_matches_the_keras_inference_model(yolo):
    net, det, x = yolo["net"], OnnxDetector(yolo["portable"]), images(3)
    assert (det.input_shape, det.batch_size, det.classes) == ((128, 128, 3), None, ["car", "cyclist", "pedestrian"])
    assert det.session.get_modelmeta().custom_metadata_map["tao_nb.network"] == "yolo_v3"
    assert np.abs(det(x, raw=True) - net.model(x).numpy()).max() < 1e-3
    want, got = YOLOV3.inference_model(net, 0.01, 0.6, TOP_K)(x).numpy(), det(x)
    assert got.shape == want.shape == (3, TOP_K, 6)
    assert matched(want, got) == 1.0 and matched(got, want) == 1.0
    np.testing.assert_allclose(got[:, :5], want[:, :5], atol=1e-4)  # the best detections, in order
    assert det(x[:1]).shape == (1, TOP_K, 6)


def test_tensorrt_layout_is_taos_and_gives_the_portable_detections(yolo):
    proto = onnx.load(yolo["trt"])
    dims = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
    assert [(i.name, dims(i)[1:]) for i in proto.graph.input] == [("Input", [3, 128, 128])]
    assert [(o.name, o.type.tensor_type.elem_type, dims(o)[1:]) for o in proto.graph.output] == [
        ("BatchedNMS", onnx.TensorProto.INT32, [1]), ("BatchedNMS_1", onnx.TensorProto.FLOAT, [TOP_K, 4]),
        ("BatchedNMS_2", onnx.TensorProto.FLOAT, [TOP_K]), ("BatchedNMS_3", onnx.TensorProto.FLOAT, [TOP_K])]
    node = tensorrt_nms_node(proto)
    assert (node.op_type, node.name, node.domain) == ("BatchedNMSDynamic_TRT", "BatchedNMS_N", "")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == pytest.approx(dict(shareLocation=1, backgroundLabelId=-1, numClasses=3, topK=2 * TOP_K, keepTopK=TOP_K,
                                       scoreThreshold=0.01, iouThreshold=0.6, isNormalized=1, clipBoxes=1, scoreBits=16))
    x = images(4, seed=7)
    portable, trt = OnnxDetector(yolo["portable"])(x), OnnxDetector(yolo["trt"])(x)
    assert trt.shape == portable.shape == (4, TOP_K, 6)
    assert matched(portable, trt) == 1.0 and matched(trt, portable) == 1.0
    np.testing.assert_allclose(trt[:, :5], portable[:, :5], atol=1e-4)
    with pytest.raises(TaoNbError, match="raw outputs are box_data and cls_data"):
        OnnxDetector(yolo["trt"])(x, raw=True)


def test_evaluate_agrees_on_both_layouts(yolo):
    """compare_models (evaluate and time each model on the spec's validation data) takes a YOLOv3 spec."""
    from tao_nb.export_report import compare_models
    r = compare_models({"portable": yolo["portable"], "tensorrt": yolo["trt"]}, yolo["spec_path"], batch_sizes=(2,), rounds=1)
    assert r.mean_ap["portable"] == pytest.approx(r.mean_ap["tensorrt"], abs=1e-6)
    assert r.ap["portable"] == pytest.approx(r.ap["tensorrt"], abs=1e-6) and set(r.ap["portable"]) == {"car", "cyclist", "pedestrian"}
    assert set(r.latency_ms[2]) == {"portable", "tensorrt"}


def agreement(a, b, best=10, min_iou=0.9):
    """Fraction of the `best` detections of each image of `a` that `b` has too: same class, IoU at least `min_iou`."""
    found = total = 0
    for da, db in zip(a, b):
        for row in da[da[:, 1] > 0][:best]:
            total += 1
            other = db[(db[:, 0] == row[0]) & (db[:, 1] > 0), 2:]
            lt, rb = np.maximum(row[2:4], other[:, :2]), np.minimum(row[4:], other[:, 2:])
            inter = np.prod(np.maximum(rb - lt, 0), axis=1)
            union = np.prod(row[4:] - row[2:4]) + np.prod(other[:, 2:] - other[:, :2], axis=1) - inter
            found += bool(len(other)) and (inter / union).max() >= min_iou
    assert total > 0
    return found / total


def test_int8_calibration_on_both_layouts(yolo, tmp_path):
    images_dir = yolo["sample"].training_dir / "image_2"
    cal = calibration_batches(images_dir, yolo["spec_path"], batches=2, batch_size=8, seed=0)
    assert (cal.shape, cal.dtype) == ((2, 8, 128, 128, 3), np.float32)
    res = export_int8_onnx(yolo["portable"], tmp_path / "int8.onnx", cal, tmp_path / "cal.bin")
    assert res.calibrated and set(read_calibration_cache(res.cache)) == set(res.ranges)
    val = calibration_batches(yolo["sample"].validation_dir / "image_2", yolo["spec"], batches=1, batch_size=4)[0]
    fp32, int8 = OnnxDetector(yolo["portable"]), OnnxDetector(res.path)
    raw32, raw8 = fp32(val, raw=True), int8(val, raw=True)
    assert np.corrcoef(raw32.ravel(), raw8.ravel())[0, 1] > 0.99
    score = lambda raw: 1 / (1 + np.exp(-raw[..., 4:5])) / (1 + np.exp(-raw[..., 5:]))  # objectness x class
    assert np.abs(score(raw8) - score(raw32)).max() < 0.03
    assert agreement(fp32(val), int8(val)) >= 0.9
    again = export_int8_onnx(yolo["portable"], tmp_path / "again.onnx", None, tmp_path / "cal.bin")
    assert not again.calibrated and np.array_equal(OnnxDetector(again.path)(val, raw=True), raw8)
    ranges = calibrate_tensorrt_cache(yolo["trt"], cal, tmp_path / "trt_cal.bin")
    graph = {t for n in onnx.load(yolo["trt"]).graph.node for t in n.output} | {"Input"}
    assert {"Input", "box_data", "cls_data"} <= set(ranges) and set(read_calibration_cache(tmp_path / "trt_cal.bin")) <= graph
    assert ranges["box_data"] <= 1.0 and ranges["cls_data"] <= 1.0



def test_int8_calibration_of_an_untrained_model_whose_box_sizes_overflow(yolo, tmp_path):
    """An untrained network's size logits reach the thousands, where exp overflows: the decoding caps them (the boxes
    are the whole image either way), so the FP32 detections stay finite and both layouts calibrate (this failed the
    quick tutorial's INT8 export: 'supplied range of [-inf, inf] is not finite')."""
    model = keras.models.clone_model(yolo["net"].model)
    model.set_weights(yolo["net"].model.get_weights())
    n_out = 8  # 5 + 3 classes per anchor
    for s in ("big", "mid", "small"):
        layer = model.get_layer(f"conv_{s}_object")
        w, b = layer.get_weights()
        for k in range(b.size // n_out): b[k * n_out + 2:k * n_out + 4] = 3000.0  # tw, th of every anchor
        layer.set_weights([w, b])
    model.save(tmp_path / "huge.keras")
    portable = export_onnx(tmp_path / "huge.keras", yolo["spec_path"], tmp_path / "huge.onnx")
    trt = export_onnx_tensorrt(tmp_path / "huge.keras", yolo["spec_path"], tmp_path / "huge_trt.onnx")
    cal = calibration_batches(yolo["sample"].training_dir / "image_2", yolo["spec_path"], batches=1, batch_size=4, seed=0)
    det = OnnxDetector(portable)(cal[0])
    assert np.isfinite(det).all()
    kept = det[det[..., 1] > 0]
    np.testing.assert_array_equal(kept[:, 2:], np.tile([0.0, 0.0, 1.0, 1.0], (len(kept), 1)))  # whole-image boxes
    res = export_int8_onnx(portable, tmp_path / "huge.int8.onnx", cal, tmp_path / "cal.bin")
    assert res.ranges and all(np.isfinite(v) for v in res.ranges.values())
    assert np.isfinite(OnnxDetector(res.path)(cal[0])).all()
    ranges = calibrate_tensorrt_cache(trt, cal, tmp_path / "trt_cal.bin")
    assert all(np.isfinite(v) for v in ranges.values()) and ranges["box_data"] <= 1.0

@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_plugin_agrees_with_tensorflow_nms(seed):
    """The CPU plugin and the per-class NMS of the portable export pick the same detections (boxes clipped, topK large)."""
    rng = np.random.default_rng(seed)
    n, a, c, k = 2, 300, 3, 40
    centre, size = rng.uniform(0, 1, (n, a, 2)), rng.uniform(0.05, 0.4, (n, a, 2))
    boxes = np.clip(np.concatenate([centre - size / 2, centre + size / 2], -1), 0, 1).astype(np.float32)
    scores = rng.uniform(0, 1, (n, a, c)).astype(np.float32) ** 3
    want = nms_detections(tf.constant(boxes), tf.constant(scores), 0.05, 0.5, k).numpy()
    count, b, s, cls = batched_nms_plugin(boxes[:, :, None], scores, batched_nms_attributes(c, 0.05, 0.5, k) | {"topK": a})
    got = np.concatenate([cls[..., None] + 1, s[..., None], b], -1) * (np.arange(k) < count)[..., None]
    assert (count.ravel() == (want[..., 1] > 0).sum(1)).all()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_network_and_spec_errors(yolo, tmp_path):
    net, spec = yolo["net"], yolo["spec"]
    assert network_family(detector_network(net)) is YOLOV3 and detector_network(net) is net
    with pytest.raises(TaoNbError, match="needs its experiment spec"):
        detector_network(net.model)
    from tao_nb.qat import is_qat_model, quantize_model
    qat = detector_network(quantize_model(net.model), spec)  # a QAT YOLOv3 is exported as its float graph
    assert not is_qat_model(qat.model) and len(qat.grid) == len(net.grid)
    with pytest.raises(TaoNbError, match="top_k up to 2048"):
        export_onnx_tensorrt(net, None, tmp_path / "x.onnx", top_k=3000)
    assert not (tmp_path / "x.onnx").exists()
    config, labels = write_deepstream_config(tmp_path, yolo["trt"], yolo["spec_path"])
    props = dict(line.split("=", 1) for line in config.read_text().splitlines()[1:] if not line.startswith("#"))
    assert (props["output-blob-names"], props["parse-bbox-func-name"], props["num-detected-classes"]) == \
        ("BatchedNMS", "NvDsInferParseCustomBatchedNMSTLT", "3")
    assert labels.read_text() == "car\ncyclist\npedestrian\n"
    with pytest.raises(TaoNbError, match="no NMSDynamic_TRT or BatchedNMSDynamic_TRT node"):
        TensorRTLayout(onnx.load(yolo["portable"]), "portable.onnx")
