"""Data throughput, measured side by side in one run on the sample dataset.

1. dataset_convert (images/s) against the raw read rate of the same image files;
2. the SSD training input pipeline with augmentation (images/s) against what training consumes (images/s).

Goals (issue 3): conversion at least half the raw read rate; the pipeline at least 3x what training consumes.

    .venv/bin/python benchmarks/data_throughput.py [--images 600] [--steps 20]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TAO_NB_PROGRESS", "0")

from tao_nb.data.convert import dataset_convert  # noqa: E402
from tao_nb.data.pipeline import SSDAugmentation, detection_data, tf, train_dataset  # noqa: E402
from tao_nb.data.sample import make_sample_dataset, sample_convert_spec, sample_ssd_spec  # noqa: E402
from tao_nb.models.ssd import ssd_from_spec  # noqa: E402
from tao_nb.spec import spec_from_text  # noqa: E402
from tao_nb.models.detectors import SSD  # noqa: E402
from tao_nb.train import DetectorTrainer, with_targets  # noqa: E402


def best_of(fn, repeats=3):
    """The fastest of `repeats` timed runs of fn(), in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600, help="training images in the generated sample dataset")
    ap.add_argument("--steps", type=int, default=20, help="training steps and pipeline batches timed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_sample_dataset(d / "data", n_train=args.images, n_val=20)
        files = sorted((d / "data" / "training" / "image_2").glob("*.png"))
        read = lambda: [f.read_bytes() for f in files]
        read()  # warm the page cache, as conversion will find it
        raw_s = best_of(read)
        conv_spec = spec_from_text(sample_convert_spec(d / "data", num_shards=4))
        conv_s = best_of(lambda: dataset_convert(conv_spec, d / "tfrecords" / "sample", workers=1))
        n = len(files)
        print(f"images: {n} PNG, {sum(f.stat().st_size for f in files) / n / 1024:.0f} KiB on average")
        print(f"raw read:        {n / raw_s:10.0f} images/s")
        print(f"dataset_convert: {n / conv_s:10.0f} images/s")
        print(f"conversion / raw read = {raw_s / conv_s:.2f}  (goal >= 0.5)")

        spec = spec_from_text(sample_ssd_spec(d / "data", d / "tfrecords" / "sample"))
        batch = spec.training_config.batch_size_per_gpu
        data = detection_data(spec.dataset_config, "train")
        aug = SSDAugmentation.from_spec(spec.augmentation_config)
        net = ssd_from_spec(spec)
        ds = with_targets(train_dataset(data, aug, spec.random_seed), SSD.targets(net, spec)).batch(batch).prefetch(tf.data.AUTOTUNE)
        it = iter(ds)
        next(it)  # build the pipeline
        pipe_s = best_of(lambda: [next(it) for _ in range(args.steps)])
        trainer = DetectorTrainer(net.model, SSD.loss(net, spec))
        trainer.compile(optimizer="sgd")
        fixed = ds.take(1).cache().repeat()
        trainer.fit(fixed, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # trace and warm up
        train_s = best_of(lambda: trainer.fit(fixed, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False), repeats=2)
        imgs = args.steps * batch
        print(f"input pipeline:  {imgs / pipe_s:10.0f} images/s (augmentation + targets, batch {batch})")
        print(f"training step:   {imgs / train_s:10.0f} images/s ({net.model.name}, "
              f"{aug.output_width}x{aug.output_height}, {statistics.mean([train_s / args.steps]):.3f} s/step)")
        print(f"pipeline / training = {train_s / pipe_s:.2f}  (goal >= 3)")
        print(f"CPU cores: {os.cpu_count()}; both sides measured in this process, the same minute")


if __name__ == "__main__":
    main()
