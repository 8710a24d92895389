"""Training throughput and inference latency of the sample SSD, measured side by side in one run.

1. Training (images/s): our loop, `DetectorTrainer.fit` as `train()` runs it (SSD loss with hard negative mining, the
   spec's L1 kernel regulariser, four loss trackers, the per-batch NaN guard), against a plain `keras.Model.fit` of
   the same detector compiled with the same `ssd_loss` wrapped as a Keras loss. Both run on the same in-memory
   batches (images and SSD targets computed once, so data loading is excluded), with the same batch size, the same
   optimizer (the spec's, with its soft-start annealing schedule), the same number of steps; tracing and warm-up are
   excluded and each side is timed best of N, the two sides interleaved so that both see the same machine load.
   It also times our loop without the regulariser, to tell how much of any overhead is the regulariser's.
2. Inference (baseline for pruning and INT8): median latency (ms) and images/s of the raw network and of
   `SSD.inference_model` (decoding + NMS inside the model) at batch 1 and 16, each called as a compiled graph
   (`tf.function`), warm-up excluded. The weights are those left by the timed fits (a few hundred steps on the
   fixed batches, not a trained detector); NMS time depends on how many boxes pass the confidence threshold, so
   the run prints that number too.

Goal (issue 4): our training time / plain `model.fit` time <= 1.1.

    .venv/bin/python benchmarks/training_throughput.py [--steps 20] [--repeats 3]
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TAO_NB_PROGRESS", "0")

import numpy as np  # noqa: E402

from tao_nb.core import latencies_ms  # noqa: E402
from tao_nb.data.convert import dataset_convert  # noqa: E402
from tao_nb.data.pipeline import SSDAugmentation, detection_data, tf, train_dataset  # noqa: E402
from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec  # noqa: E402
from tao_nb.models.detectors import SSD  # noqa: E402
from tao_nb.models.ssd import ssd_from_spec  # noqa: E402
from tao_nb.models.ssd_targets import ssd_loss  # noqa: E402
from tao_nb.spec import spec_from_text  # noqa: E402
from tao_nb.train import DetectorTrainer, NaNGuard, SoftStartAnnealing, _optimizer, with_targets  # noqa: E402

import keras  # noqa: E402


def fixed_batches(spec, net, n_batches: int) -> tf.data.Dataset:
    """`n_batches` augmented training batches (images, SSD targets) held in memory, repeated without end."""
    batch = spec.training_config.batch_size_per_gpu
    data = detection_data(spec.dataset_config, "train")
    ds = with_targets(train_dataset(data, SSDAugmentation.from_spec(spec.augmentation_config), spec.random_seed),
                      SSD.targets(net, spec))
    pairs = [(x.numpy(), y.numpy()) for x, y in ds.batch(batch, drop_remainder=True).take(n_batches)]
    images, targets = (tf.constant(np.stack(t)) for t in zip(*pairs))  # (n_batches, batch, ...)
    return tf.data.Dataset.from_tensor_slices((images, targets)).repeat()


def optimizer(spec, steps: int):
    """The optimizer `train()` builds for the spec: its kind and settings, with the soft-start annealing schedule."""
    tc = spec.training_config
    s = tc.learning_rate.soft_start_annealing_schedule
    return _optimizer(tc, SoftStartAnnealing(steps, s.max_learning_rate, s.min_learning_rate, s.soft_start, s.annealing))


def ours(spec, net, steps: int, reg: bool = True) -> tuple[keras.Model, list]:
    """Our training loop as `train()` sets it up: DetectorTrainer with the spec's SSD loss settings and regulariser."""
    r = spec.training_config.regularizer
    trainer = DetectorTrainer(net.model, SSD.loss(net, spec), r.RegularizationType.Name(r.type) if reg else "NO_REG", r.weight)
    trainer.compile(optimizer=optimizer(spec, steps))
    return trainer, [NaNGuard()]


def plain(spec, net, steps: int) -> tuple[keras.Model, list]:
    """The same detector under plain `compile` + `fit`, the same SSD loss wrapped as a Keras loss function."""
    c = spec.ssd_config
    def loss(y_true, y_pred): return ssd_loss(y_true, y_pred, c.neg_pos_ratio, c.alpha)["loss"]
    net.model.compile(optimizer=optimizer(spec, steps), loss=loss)
    return net.model, []


def fit_seconds(model, callbacks, ds, steps: int) -> float:
    """Seconds of one `fit` of `steps` steps."""
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per timed fit")
    ap.add_argument("--repeats", type=int, default=3, help="timed fits per loop (the best counts)")
    ap.add_argument("--batches", type=int, default=4, help="distinct in-memory batches the steps cycle through")
    ap.add_argument("--runs", type=int, default=30, help="timed inference calls per case (the median counts)")
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_sample_dataset(d / "data", n_train=64, n_val=8)
        dataset_convert(spec_from_text(sample_convert_spec(d / "data", num_shards=1)), d / "tfrecords" / "sample", workers=1)
        spec = spec_from_text(sample_ssd_spec(d / "data", d / "tfrecords" / "sample"))
        keras.utils.set_random_seed(spec.random_seed)
        net = ssd_from_spec(spec)
        ds = fixed_batches(spec, net, args.batches)
    batch, a = spec.training_config.batch_size_per_gpu, spec.augmentation_config
    r = spec.training_config.regularizer
    loops = {"plain model.fit (ssd_loss as a Keras loss)": plain(spec, net, args.steps),
             f"ours: DetectorTrainer.fit ({r.RegularizationType.Name(r.type)} {r.weight:g}, NaN guard)": ours(spec, net, args.steps),
             "ours without the regulariser": ours(spec, net, args.steps, reg=False)}
    for model, cbs in loops.values(): model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False, callbacks=cbs)
    best = {k: float("inf") for k in loops}
    for _ in range(args.repeats):  # interleaved: every loop sees the same machine load
        for k, (model, cbs) in loops.items(): best[k] = min(best[k], fit_seconds(model, cbs, ds, args.steps))
    imgs = args.steps * batch
    print(f"model: {net.model.name}, input {a.output_width}x{a.output_height}x{a.output_channel}, "
          f"{len(net.anchors)} anchors, {net.model.count_params() / 1e6:.2f} M parameters; optimizer "
          f"{spec.training_config.optimizer.WhichOneof('optimizer')}, batch {batch}, {args.steps} steps, best of {args.repeats}")
    for k, s in best.items(): print(f"  {k:58s} {imgs / s:7.1f} images/s  {1000 * s / args.steps:7.1f} ms/step")
    (plain_s, ours_s, noreg_s) = best.values()
    print(f"ours / plain time = {ours_s / plain_s:.3f}  (goal <= 1.1); without the regulariser {noreg_s / plain_s:.3f}")

    x = next(iter(ds.unbatch().batch(16)))[0]
    nc = spec.nms_config
    detect = SSD.inference_model(net, nc.confidence_threshold, nc.clustering_iou_threshold, nc.top_k)
    kept = float(np.mean(np.sum(detect(x, training=False).numpy()[..., 1] > 0, axis=1)))
    print(f"inference baseline (compiled graph call, median of {args.runs} at batch 1, {max(5, args.runs // 3)} at 16; "
          f"NMS keeps {kept:.0f} of top_k {nc.top_k} boxes an image, confidence threshold {nc.confidence_threshold:g}):")
    cases = {"raw network": net.model, "inference_model (decoding + NMS)": detect}
    for name, model in cases.items():
        fn = tf.function(lambda x, m=model: m(x, training=False))
        for b in (1, 16):
            ms = latencies_ms({name: lambda: fn(x[:b]).numpy()}, args.runs if b == 1 else max(5, args.runs // 3), warmup=3)[name]
            print(f"  {name:34s} batch {b:2d}: {ms:8.1f} ms  {1000 * b / ms:7.1f} images/s")
    print(f"CPU cores: {os.cpu_count()}; all measured in this process, the same minutes ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
