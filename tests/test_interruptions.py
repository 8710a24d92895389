"""kill -9 at random moments, then carry on: training, dataset_convert and the pipeline runner lose nothing.

Each chaos test starts the real command in a subprocess again and again and kills it (SIGKILL, no clean-up code runs)
after a seeded random delay, checks what is on disk after every kill, then lets it finish and compares the result with
an uninterrupted run. The fast tests kill at moments chosen to hit the dangerous windows (between the files of one
checkpoint or one conversion); the `slow` ones kill many times at random moments.
"""
import csv
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chaos import KillLog, files_under, logged, run_with_kills, tao_nb_process, wait_for
from conftest import tao_nb

CHECKPOINT = re.compile(r"^[^.].*_epoch_(\d{3})\.keras$")


def log_epochs(results: Path) -> list[int]:
    with open(results / "training_log.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def log_lrs(results: Path) -> list[float]:
    with open(results / "training_log.csv", newline="") as f:
        return [float(r["lr"]) for r in csv.DictReader(f)]


def check_training_results(results: Path):
    """What a kill may leave: every checkpoint under its final name loads, with its optimizer state where the state exists;
    the log is whole and lists each epoch once, in order, up to at least the newest resumable checkpoint."""
    from tao_nb.models.ssd import load_keras_model
    from tao_nb.train import latest_checkpoint
    weights = results / "weights"
    models = sorted(p for p in weights.glob("*.keras") if CHECKPOINT.match(p.name)) if weights.exists() else []
    for p in models:
        load_keras_model(p)
        state = p.with_suffix(".state.npz")
        if state.exists():
            with np.load(state) as z: list(z.values())
    if (results / "training_log.csv").exists():
        epochs = log_epochs(results)
        assert epochs == list(range(1, len(epochs) + 1)), epochs
        found = latest_checkpoint(results)
        if found: assert len(epochs) >= found[1], (epochs, found)


def timed_run(*args, log: Path, started: str) -> float:
    """Run the CLI to the end; the seconds from `started` appearing in its log to the exit (the part worth killing)."""
    proc = tao_nb_process(*args, log=log)
    wait_for(lambda: logged(started)(proc), proc=proc)
    t0 = time.monotonic()
    assert proc.wait() == 0, log.read_text()
    return time.monotonic() - t0


def chaos_training(spec, results: Path, rng: random.Random, kills: int, epochs: int, epoch_time: float) -> KillLog:
    """Kill the training `kills` times: each start waits for a random epoch still to come to be logged, then a random
    part of an epoch more, so the kills land across the epochs and in every phase (steps, validation, checkpoint)."""
    log, targets = KillLog(), {}
    rows = lambda: len(log_epochs(results)) if (results / "training_log.csv").exists() else 0
    def busy(proc):
        if proc.pid not in targets: targets[proc.pid] = rng.randint(rows(), epochs - 1)
        return logged("training ")(proc) and rows() >= targets[proc.pid]
    note = lambda: f"(log {log_epochs(results) if (results / 'training_log.csv').exists() else []})"
    start = lambda: tao_nb_process("ssd", "train", "-e", spec, "-r", results, log=results.parent / "train.log")
    proc = run_with_kills(start, busy, rng, epoch_time, kills, lambda: check_training_results(results), log, note)
    assert proc.returncode == 0, proc.log.read_text()
    return log


def test_kill_between_the_files_of_a_checkpoint_resumes_cleanly(sample, tmp_path):
    """The model file is written, the optimizer state is not: the resume ignores the half checkpoint and redoes the epoch."""
    spec = sample("half.txt", num_epochs=2)
    results = tmp_path / "results"
    code = ("import os, sys; import tao_nb.train as t\n"
            "real = t.write_bytes_atomic\n"
            "def die(path, data):\n"
            "    if str(path).endswith('_epoch_002.state.npz'): os._exit(137)\n"
            "    return real(path, data)\n"
            "t.write_bytes_atomic = die\n"
            "from tao_nb.cli import main; sys.exit(main())\n")
    out = subprocess.run([sys.executable, "-c", code, "ssd", "train", "-e", spec, "-r", results], capture_output=True, text=True)
    assert out.returncode == 137, out.stderr
    assert (results / "weights" / "ssd_resnet10_epoch_002.keras").exists()
    assert not (results / "weights" / "ssd_resnet10_epoch_002.state.npz").exists()
    check_training_results(results)
    from tao_nb.train import latest_checkpoint
    assert latest_checkpoint(results)[1] == 1  # the half checkpoint is not taken for a finished epoch
    out = tao_nb("ssd", "train", "-e", spec, "-r", results)
    assert out.returncode == 0, out.stderr
    assert log_epochs(results) == [1, 2] and latest_checkpoint(results)[1] == 2
    from tao_nb.spec import load_spec
    from tao_nb.train import SoftStartAnnealing
    s = load_spec(spec).training_config.learning_rate.soft_start_annealing_schedule
    steps = 2  # 16 images, batches of 8
    schedule = SoftStartAnnealing(2 * steps, s.max_learning_rate, s.min_learning_rate, s.soft_start, s.annealing)
    for epoch, lr in zip([1, 2], log_lrs(results)):  # the resumed epoch continues the schedule (the maximum, then the minimum)
        assert math.isclose(lr, float(schedule(epoch * steps)), rel_tol=1e-5), (epoch, lr)
    assert not [p.name for p in (results / "weights").iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.slow
def test_training_survives_kills_at_random_moments(sample, tmp_path):
    """Eight kills at random moments of a 6-epoch run: it finishes with every epoch logged once and the same schedule."""
    spec = sample("chaos.txt", num_epochs=6, validation_period=2)
    train_time = timed_run("ssd", "train", "-e", spec, "-r", tmp_path / "reference", log=tmp_path / "reference.log",
                           started="training ")
    reference = log_lrs(tmp_path / "reference")
    log = chaos_training(spec, tmp_path / "results", random.Random(8), kills=8, epochs=6, epoch_time=train_time / 6)
    print(f"training chaos: {log.kills} kills; {log}")
    assert log.kills >= 6, log
    assert log_epochs(tmp_path / "results") == [1, 2, 3, 4, 5, 6]
    for a, b in zip(log_lrs(tmp_path / "results"), reference):  # the learning-rate schedule continues where it was
        assert math.isclose(a, b, rel_tol=1e-5)
    leftovers = [p.name for p in (tmp_path / "results" / "weights").iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left behind by the killed runs: {leftovers}"


# dataset_convert ------------------------------------------------------------------------------------------------------

def convert_spec(sample_dir: Path, folder: Path, shards: int) -> Path:
    from tao_nb.data.sample import sample_convert_spec
    p = folder / f"convert_{shards}.txt"
    p.write_text(sample_convert_spec(sample_dir, num_shards=shards))
    return p


def shard_sets(folder: Path) -> dict[str, bytes]:
    "The shards visible under their final names (what readers glob), by name."
    return {k: v for k, v in files_under(folder).items() if "-shard-" in k and not Path(k).name.startswith(".")} \
        if folder.exists() else {}


def check_conversion(folder: Path, prefix: Path, complete: list[dict[str, bytes]]):
    """After a kill, the visible shards are one whole conversion, byte for byte, and its stats file lists them; or the
    kill came while new shards replaced old ones, and readers refuse them by name."""
    from tao_nb.data.tfrecords import TFRecordsIncompleteError, find_shards, publishing_marker
    if publishing_marker(prefix).exists():
        with pytest.raises(TFRecordsIncompleteError):
            find_shards(str(prefix) + "*")
        return
    visible = shard_sets(folder)
    assert visible in complete, f"not one whole conversion: {sorted(visible)}"
    assert sorted(find_shards(str(prefix) + "*")) == sorted(str(folder / k) for k in visible)
    stats = json.loads(Path(f"{prefix}_stats.json").read_text())
    assert sorted(stats["shards"]) == sorted(str(folder / k) for k in visible)


@pytest.fixture(scope="module")
def convert_data(tmp_path_factory):
    from tao_nb.data.sample import make_sample_dataset
    d = tmp_path_factory.mktemp("convert_data")
    make_sample_dataset(d, n_train=120, n_val=4, image_size=(320, 240))
    return d


def test_kill_while_publishing_a_conversion_is_detected(convert_data, tmp_path):
    """A kill between the renames of a new conversion's shards leaves an incomplete set: readers refuse it by name."""
    from tao_nb.core import TaoNbError
    from tao_nb.data.tfrecords import find_shards
    prefix = tmp_path / "out" / "sample"
    out = tao_nb("ssd", "dataset_convert", "-d", convert_spec(convert_data, tmp_path, 4), "-o", prefix)
    assert out.returncode == 0, out.stderr
    code = ("import os, sys\n"
            "real, n = os.replace, [0]\n"
            "def replace(a, b):\n"
            "    if '-shard-' in str(b) and not os.path.basename(b).startswith('.'):  # publishing, not writing\n"
            "        n[0] += 1\n"
            "        if n[0] == 2: os._exit(137)\n"
            "    return real(a, b)\n"
            "os.replace = replace\n"
            "from tao_nb.cli import main; sys.exit(main())\n")
    out = subprocess.run([sys.executable, "-c", code, "ssd", "dataset_convert", "-d", convert_spec(convert_data, tmp_path, 2),
                          "-o", prefix], capture_output=True, text=True)
    assert out.returncode == 137, out.stderr
    with pytest.raises(TaoNbError, match=r"(?s)incomplete.*dataset_convert"):
        find_shards(str(prefix) + "*")
    out = tao_nb("ssd", "dataset_convert", "-d", convert_spec(convert_data, tmp_path, 2), "-o", prefix)
    assert out.returncode == 0, out.stderr
    assert len(find_shards(str(prefix) + "*")) == 2
    assert not [p for p in prefix.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.slow
def test_conversion_survives_kills_at_random_moments(tmp_path):
    """Twelve kills while converting with alternating shard counts: only ever one whole conversion is visible."""
    from tao_nb.data.tfrecords import publishing_marker
    from tao_nb.data.sample import make_sample_dataset
    convert_data = make_sample_dataset(tmp_path / "data", n_train=1200, n_val=4, image_size=(640, 480)).root
    prefix = tmp_path / "out" / "sample"
    specs = [convert_spec(convert_data, tmp_path, n) for n in (2, 3)]
    complete = []
    for s in specs:
        out = tao_nb("ssd", "dataset_convert", "-d", s, "-o", tmp_path / "ref" / s.stem / "sample")
        assert out.returncode == 0, out.stderr
        complete.append(shard_sets(tmp_path / "ref" / s.stem))
    rng, log, turn = random.Random(12), KillLog(), [0]
    convert_time = timed_run("ssd", "dataset_convert", "-d", specs[0], "-o", prefix, log=tmp_path / "convert.log",
                             started="dataset_convert:")

    def start():
        turn[0] += 1
        return tao_nb_process("ssd", "dataset_convert", "-d", specs[turn[0] % 2], "-o", prefix, log=tmp_path / "convert.log")
    for _ in range(12):
        run_with_kills(start, logged("dataset_convert:"), rng, convert_time, 1,
                       lambda: check_conversion(prefix.parent, prefix, complete), log,
                       lambda: "(mid-swap: refused)" if publishing_marker(prefix).exists() else "")
    print(f"convert chaos: {log.kills} kills; {log}")
    assert log.kills >= 8, log


# the pipeline runner --------------------------------------------------------------------------------------------------

def chain_config(run_dir: Path) -> Path:
    import yaml
    from test_pipeline_runner import sample_steps
    config = {"parameters": {"smoke": True}, "steps": sample_steps("convert", "train", "evaluate")}
    path = run_dir.parent / "chain.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def finished_steps(run_dir: Path) -> dict[str, dict]:
    """The steps whose metrics.json exists; each must be whole JSON (a kill never leaves a half-written one)."""
    return {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/metrics.json")} if run_dir.exists() else {}


@pytest.mark.slow
def test_pipeline_survives_kills_at_random_moments(tmp_path):
    """Kill the runner and its kernels at random moments: finished steps are kept, skipped on the re-run, and the end
    result is the same as an uninterrupted run."""
    run_dir = tmp_path / "run"
    config = chain_config(run_dir)
    t0 = time.monotonic()
    out = tao_nb("pipeline", "run", config, "-r", tmp_path / "reference")
    assert out.returncode == 0, out.stderr
    run_time = time.monotonic() - t0
    reference = finished_steps(tmp_path / "reference")
    rng, log = random.Random(3), KillLog()
    seen: dict[str, dict] = {}

    def start():
        return subprocess.Popen([sys.executable, "-m", "tao_nb.cli", "pipeline", "run", str(config), "-r", str(run_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def check():
        now = finished_steps(run_dir)
        for name, metrics in seen.items():  # a finished step stays finished, with the same metrics
            assert now.get(name) == metrics, name
        seen.update(now)

    procs = []
    def started():
        procs.append(start()); return procs[-1]
    for _ in range(5):
        proc = started()
        delay = rng.uniform(0, run_time)
        if not wait_for(lambda: proc.poll() is not None, timeout=delay):
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernels, as when the job is killed
        proc.wait()
        log.events.append({"delay": delay, "killed": proc.returncode < 0, "note": f"finished {sorted(finished_steps(run_dir))}"})
        check()
    before = set(finished_steps(run_dir))
    out = tao_nb("pipeline", "run", config, "-r", run_dir)
    assert out.returncode == 0, out.stderr
    print(f"pipeline chaos: {log.kills} kills; {log}")
    status = {r["label"]: r["status"] for r in json.loads((run_dir / "summary.json").read_text())}
    assert all(status[s] == "skipped" for s in before), status
    assert finished_steps(run_dir).keys() == reference.keys()
    assert "mAP" in finished_steps(run_dir)["evaluate"]["metrics"]
