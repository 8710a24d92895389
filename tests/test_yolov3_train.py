"""YOLOv3 through the same commands as SSD: train, evaluate and inference from the command line on the sample data,
and a spec of the other network refused with the command that fits it."""
import csv

import pytest

from conftest import tao_nb


@pytest.fixture(scope="module")
def trained(sample, tmp_path_factory):
    spec = sample("yolo.txt", network="yolo_v3", num_epochs=2)
    results = tmp_path_factory.mktemp("yolo_results")
    out = tao_nb("yolo_v3", "train", "-e", spec, "-r", results)
    assert out.returncode == 0, out.stderr[-3000:]
    return spec, results, out.stdout


@pytest.fixture(scope="module")
def keras_evaluation(trained):
    spec, results, _ = trained
    out = tao_nb("yolo_v3", "evaluate", "-m", results / "weights" / "yolov3_resnet10_epoch_002.keras", "-e", spec)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def last_map(stdout: str) -> float:
    return float(stdout.strip().splitlines()[-1].split()[-1])  # the table's last line: "mAP: 0.1234"


def test_yolov3_trains_with_its_loss_parts_and_validation_map(trained):
    spec, results, stdout = trained
    assert "trained 2 epochs" in stdout and "yolov3_resnet10_epoch_002.keras" in stdout
    with open(results / "training_log.csv", newline="") as f: rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for part in ("loss", "loc_loss", "obj_loss", "noobj_loss", "class_loss", "reg_loss", "validation_loss", "mAP"):
        assert all(r[part] not in ("", "nan") for r in rows), part
    assert all(0.0 <= float(r["mAP"]) <= 1.0 for r in rows)
    assert (results / "weights" / "yolov3_resnet10_epoch_002.state.npz").is_file()


def test_yolov3_evaluate_and_inference(trained, keras_evaluation, tmp_path):
    spec, results, _ = trained
    model = results / "weights" / "yolov3_resnet10_epoch_002.keras"
    assert "mAP" in keras_evaluation and "pedestrian" in keras_evaluation
    images = spec.parent / "data" / "validation" / "image_2"
    out = tao_nb("yolo_v3", "inference", "-m", model, "-e", spec, "-i", images, "-o", tmp_path / "annotated",
                 "-l", tmp_path / "labels", "-t", "0.0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.stem for p in (tmp_path / "labels").iterdir()) == sorted(p.stem for p in images.iterdir())
    assert len(list((tmp_path / "annotated").iterdir())) == len(list(images.iterdir()))


def test_a_spec_of_the_other_network_is_refused(sample, trained):
    yolo_spec, results, _ = trained
    out = tao_nb("ssd", "train", "-e", yolo_spec, "-r", results / "wrong")
    assert out.returncode == 1 and "the spec has yolov3_config, so it is for tao-nb yolo_v3, not tao-nb ssd" in out.stderr, out.stderr
    assert not (results / "wrong").exists()
    model = results / "weights" / "yolov3_resnet10_epoch_002.keras"
    out = tao_nb("ssd", "evaluate", "-m", model, "-e", sample("ssd.txt"))
    assert out.returncode == 1 and "is not an SSD model" in out.stderr, out.stderr


def test_yolov3_exports_in_tensorrt_layout_with_int8_and_evaluates_on_the_cpu(trained, keras_evaluation, tmp_path):
    import onnx
    spec, results, _ = trained
    model = results / "weights" / "yolov3_resnet10_epoch_002.keras"
    out = tao_nb("yolo_v3", "export", "-m", model, "-e", spec, "-o", tmp_path / "yolo.onnx", "--layout", "tensorrt",
                 "--data_type", "int8", "--cal_image_dir", spec.parent / "data" / "training" / "image_2",
                 "--batches", "1", "--batch_size", "4", "--gen_ds_config")
    assert out.returncode == 0, out.stderr[-3000:]
    graph = onnx.load(tmp_path / "yolo.onnx").graph
    assert [n.op_type for n in graph.node if n.domain != "" or n.op_type.endswith("_TRT")] == ["BatchedNMSDynamic_TRT"]
    assert [o.name for o in graph.output] == ["BatchedNMS", "BatchedNMS_1", "BatchedNMS_2", "BatchedNMS_3"]
    assert (tmp_path / "yolo.cal.bin").read_text().startswith("TRT-")
    assert "NvDsInferParseCustomBatchedNMSTLT" in (tmp_path / "nvinfer_config.txt").read_text()
    onnx_map = tao_nb("yolo_v3", "evaluate", "-m", tmp_path / "yolo.onnx", "-e", spec)  # the plugin computed on the CPU
    assert onnx_map.returncode == 0, onnx_map.stderr[-3000:]
    assert abs(last_map(keras_evaluation) - last_map(onnx_map.stdout)) < 0.02, (keras_evaluation, onnx_map.stdout)
