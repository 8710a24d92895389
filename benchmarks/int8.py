"""INT8 against FP32 in ONNX Runtime on this CPU: latency, throughput and mAP of the exported sample SSD, side by side.

The run makes the sample dataset (300 training, 60 validation images), trains the sample SSD spec (60 epochs unless
told otherwise, or takes a trained model with --model), exports it with `tao-nb ssd export`'s functions (the whole
detector, decoding and NMS included), calibrates INT8 on --batches x --batch-size training images (entropy
calibration, QDQ), and then, in the same minutes:
- evaluates the Keras model, the FP32 ONNX model and the INT8 ONNX model on the validation images (VOC mAP, the
  spec's eval_config), with per-class AP deltas;
- times the FP32 and INT8 ONNX detectors in turns (one call of each per round, median of the rounds) at batch 1 and
  16 on validation images, with ONNX Runtime's default threads.

INT8 speed depends on the CPU's integer dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX); the run prints which
this CPU has. Goal (issue "Export and INT8"): INT8 at least 2.5x faster than FP32 with mAP within 1 point.

    .venv/bin/python benchmarks/int8.py [--model trained.keras --spec spec.txt --cal-image-dir DIR] [--epochs 60] [--rounds 30]
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TAO_NB_PROGRESS", "0")


from tao_nb.data.convert import dataset_convert  # noqa: E402
from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec  # noqa: E402
from tao_nb.export import calibration_batches, cpu_int8_features, export_int8_onnx, export_onnx  # noqa: E402
from tao_nb.export_report import compare_models  # noqa: E402
from tao_nb.spec import load_spec, spec_from_text  # noqa: E402
from tao_nb.train import train  # noqa: E402


def trained_model(work: Path, epochs: int) -> tuple[Path, Path]:
    """Train the sample SSD spec on the sample dataset in `work`: (model, spec file)."""
    make_sample_dataset(work / "data", overwrite=True)
    dataset_convert(spec_from_text(sample_convert_spec(work / "data", num_shards=1)), work / "tfrecords" / "sample", workers=1)
    spec = work / "spec.txt"
    spec.write_text(sample_ssd_spec(work / "data", work / "tfrecords" / "sample", num_epochs=epochs))
    return train(spec, work / "train", verbose=2).model_path, spec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a trained sample SSD (.keras); default: train one")
    ap.add_argument("--spec", type=Path, help="its experiment spec (with --model)")
    ap.add_argument("--cal-image-dir", type=Path, help="calibration images (default: the sample training images)")
    ap.add_argument("--epochs", type=int, default=60, help="training epochs when no --model is given")
    ap.add_argument("--batches", type=int, default=10, help="calibration batches")
    ap.add_argument("--batch-size", type=int, default=16, help="calibration batch size")
    ap.add_argument("--rounds", type=int, default=30, help="timed rounds per batch size")
    ap.add_argument("--work-dir", type=Path, help="keep the data, model and exports here (default: a temporary folder)")
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model, spec_path = (args.model, args.spec) if args.model else trained_model(work, args.epochs)
        spec = load_spec(spec_path, "ssd")
        fp32 = export_onnx(model, spec, work / "export" / "ssd.onnx")
        cal_dir = args.cal_image_dir or work / "data" / "training" / "image_2"
        cal = calibration_batches(cal_dir, spec, args.batches, args.batch_size, spec.random_seed)
        int8 = export_int8_onnx(fp32, work / "export" / "ssd.int8.onnx", cal, work / "export" / "cal.bin").path
        report = compare_models({"Keras": model, "ONNX FP32": fp32, "ONNX INT8": int8}, spec, "ONNX FP32", (1, 16), args.rounds)
        report.save(work / "export" / "int8_report.json")
        print(f"model {model} ({Path(fp32).stat().st_size / 2**20:.1f} MiB FP32 ONNX, "
              f"{Path(int8).stat().st_size / 2**20:.1f} MiB INT8); calibrated on {args.batches} x {args.batch_size} images of {cal_dir}")
        print(report.table())
        d = 100 * (report.mean_ap["ONNX INT8"] - report.mean_ap["ONNX FP32"])
        print(f"INT8 vs FP32: {report.speedup('ONNX INT8', 1):.2f}x at batch 1, {report.speedup('ONNX INT8', 16):.2f}x at "
              f"batch 16, mAP {d:+.2f} points (goal: >= 2.5x, within 1 point)")
        print(f"CPU: {os.cpu_count()} cores; INT8 instructions: {', '.join(cpu_int8_features()) or 'none found'}; "
              f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
