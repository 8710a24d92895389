"""Pruning on the sample SSD: parameters, FLOPs, CPU latency and mAP of pruned and retrained models against the unpruned one.

The run makes the sample dataset (300 training, 60 validation images), trains the sample SSD spec (ResNet-10,
160x128, L1 regulariser; 60 epochs unless told otherwise, or reuses a model given with --model), then runs
`tao_nb.prune_sweep.sweep` over several thresholds: each pruned model is evaluated on the validation images, retrained
(`pruned_model_path`, NO_REG, --retrain-epochs epochs) and evaluated again. Latencies are measured at the end, all
models in the same minutes and in turns (`compare_latency`: one compiled call of each model per round, median of the
rounds, random input), at batch 1 and 16: the raw network, and at batch 1 the network with decoding and NMS
(`SSD.inference_model`) on a validation image, as deployed. Ratios are against the unpruned model of the same run.

Goal (issue "Prune and retrain"): at some threshold, at least 2x fewer parameters and 1.5x lower latency with mAP
within 1 point of the unpruned model after retraining. Give threshold 0 as well to retrain the unpruned model as long
as the pruned ones (a control: extra epochs alone raise the mAP of the sample SSD by a few points).

    .venv/bin/python benchmarks/prune.py [--epochs 60] [--retrain-epochs 30] [--retrain-lr 2e-3]
        [--thresholds 0 0.1 0.3 0.5 0.7] [--model trained.keras] [--work-dir DIR]
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TAO_NB_PROGRESS", "0")

from tao_nb.data.convert import dataset_convert  # noqa: E402
from tao_nb.data.pipeline import SSDAugmentation, detection_data, eval_dataset  # noqa: E402
from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec  # noqa: E402
from tao_nb.models.detectors import SSD  # noqa: E402
from tao_nb.models.ssd import load_keras_model, ssd_network_from_model  # noqa: E402
from tao_nb.prune_sweep import compare_latency, plot_sweep, sweep  # noqa: E402
from tao_nb.spec import spec_from_text  # noqa: E402
from tao_nb.train import train  # noqa: E402


def prepare(work: Path, epochs: int):
    """The sample dataset, converted, and the spec training on it (written to work/spec.txt)."""
    if not (work / "data" / "validation").is_dir():
        make_sample_dataset(work / "data", overwrite=True)
    if not list((work / "tfrecords").glob("sample*")):
        dataset_convert(spec_from_text(sample_convert_spec(work / "data", num_shards=1)), work / "tfrecords" / "sample", workers=1)
    text = sample_ssd_spec(work / "data", work / "tfrecords" / "sample", num_epochs=epochs)
    (work / "spec.txt").write_text(text)
    return spec_from_text(text)


def end_to_end_ms(result, spec, runs: int) -> list[float]:
    """Batch-1 latency of every model of the sweep with decoding and NMS on a validation image, timed in turns."""
    nc = spec.nms_config
    models = [SSD.inference_model(ssd_network_from_model(load_keras_model(r.model_path), spec), nc.confidence_threshold,
                              nc.clustering_iou_threshold, nc.top_k) for r in [result.baseline, *result.rows]]
    image = next(iter(eval_dataset(detection_data(spec.dataset_config, "val"), SSDAugmentation.from_spec(spec.augmentation_config))))["image"]
    return compare_latency(models, 1, runs, images=image[None].numpy())


def verdict(result, nms_ms: list[float]) -> list[str]:
    """One line per threshold: the ratios against the unpruned model and whether they meet the goal.

    A threshold that prunes nothing (0, or one below every filter score) gives the unpruned model retrained as long as
    the others: a control telling what the extra epochs alone are worth. Against it, each line adds the mAP difference.
    """
    base, lines = result.baseline, []
    control = next((r for r in result.rows if r.params == base.params and r.map_after is not None), None)
    for r, ms in zip(result.rows, nms_ms[1:]):
        p, l1, l16 = base.params / r.params, base.latency_ms[1] / r.latency_ms[1], base.latency_ms[16] / r.latency_ms[16]
        d = 100 * (r.map - base.map)
        ok = p >= 2 and l1 >= 1.5 and d >= -1
        vs = f", {100 * (r.map - control.map):+.1f} against the unpruned model retrained as long" if control and r is not control else ""
        lines.append(f"  pth {r.threshold:<4g}: params {p:5.2f}x fewer, latency {l1:4.2f}x (batch 1), {l16:4.2f}x (batch 16), "
                     f"{nms_ms[0] / ms:4.2f}x (batch 1 with NMS), mAP {r.map:.4f} ({d:+.1f} points{vs})  -> "
                     f"{'meets the goal' if ok else 'misses the goal'}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60, help="training epochs of the unpruned model")
    ap.add_argument("--retrain-epochs", type=int, default=30, help="retraining epochs per threshold")
    ap.add_argument("--retrain-lr", type=float, default=None, help="peak learning rate of the retraining (default: the spec's)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7], help="pruning thresholds (-pth)")
    ap.add_argument("--model", type=Path, default=None, help="a model already trained on the sample spec (.keras): skip training")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep data, models and results here (default: a temporary folder)")
    ap.add_argument("--runs", type=int, default=30, help="timed calls per model and batch size (the median counts)")
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec = prepare(work, args.epochs)
        t = time.perf_counter()
        model = args.model or train(spec, work / "train", verbose=2).model_path
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        result = sweep(model, spec, args.thresholds, work / "sweep", retrain_epochs=args.retrain_epochs,
                       retrain_max_lr=args.retrain_lr, latency_batches=(1, 16), latency_runs=args.runs, verbose=0)
        nms_ms = end_to_end_ms(result, spec, args.runs)
        sweep_s = time.perf_counter() - t
        plot_sweep(result).savefig(work / "sweep" / "prune_sweep.png", dpi=80)
        lr = spec.training_config.learning_rate.soft_start_annealing_schedule.max_learning_rate
        print(f"model: {model}{' (given)' if args.model else f' (trained here, {args.epochs} epochs, {train_s / 60:.1f} min)'}")
        print(f"sweep: thresholds {' '.join(f'{x:g}' for x in args.thresholds)}; retraining {args.retrain_epochs} epochs, "
              f"NO_REG, peak lr {args.retrain_lr or lr:g}; {sweep_s / 60:.1f} min")
        print("raw network latency: median of", args.runs, "compiled calls per model and batch, models timed in turns")
        print(result.table())
        print("against the unpruned model (goal: >= 2x fewer parameters, >= 1.5x lower latency, mAP within 1 point):")
        print("\n".join(verdict(result, nms_ms)))
        print(f"results: {work / 'sweep'}" if args.work_dir else "results: removed with the temporary folder (give --work-dir to keep them)")
        print(f"CPU cores: {os.cpu_count()}; all measured in this process ({(time.perf_counter() - started) / 60:.1f} min in all)")


if __name__ == "__main__":
    main()
