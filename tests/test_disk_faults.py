"""Disk full and read-only output folders: a clear error naming the path and the cause, earlier results intact.

The faults are real where the machine allows it:
- disk full: the file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes writes past a size fail with EFBIG
  ("File too large"), in C++ writers (TensorFlow, h5py) as much as in Python; in a subprocess for the CLI, or for a
  moment in this process. ENOSPC ("No space left on device") is injected at the Python file level.
- read-only: the CLI runs as the unprivileged user nobody against a chmod 0555 folder (root ignores permissions);
  EROFS ("Read-only file system") is injected at the Python file level.
Every case checks: exit status 1 (or a TaoNbError), one `error:` line naming the path and the cause, no traceback,
the earlier files byte-identical, and no new file that looks complete.
"""
import builtins
import contextlib
import errno
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tao_nb.core import TaoNbError, atomic_write, write_text_atomic

NOBODY = 65534
CAUSES = {"fsize": "File too large", "enospc": "No space left on device", "erofs": "Read-only file system",
          "readonly": "Permission denied"}


# ---------------------------------------------------------------- fault helpers

@contextlib.contextmanager
def file_size_limit(nbytes):
    """For the block, writes past `nbytes` into any file of this process fail with EFBIG, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try: yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


class _Faulty:
    """A file object that fails with ENOSPC once `budget` bytes in total went to files under the faulty folder."""
    def __init__(self, f, state): self._f, self._state = f, state
    def write(self, data):
        n = len(data)
        if self._state["left"] < n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._state["left"] -= n
        return self._f.write(data)
    def __getattr__(self, k): return getattr(self._f, k)
    def __iter__(self): return iter(self._f)
    def __enter__(self): return self
    def __exit__(self, *exc): return self._f.__exit__(*exc)


@contextlib.contextmanager
def python_fault(monkeypatch, root, kind, budget=0, match=lambda p: True):
    """Python-level faults for files under `root` (and matching `match`): kind 'erofs' refuses to open them for writing,
    'enospc' lets `budget` bytes through, then fails every write."""
    root = os.path.realpath(root)
    state = {"left": budget}
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def target(path):
        if isinstance(path, int):
            try: path = os.readlink(f"/proc/self/fd/{path}")
            except OSError: return False
        p = os.path.realpath(os.fspath(path))
        return (p == root or p.startswith(root + os.sep)) and match(p)

    def writing(mode): return any(c in mode for c in "wax+")

    def fopen(file, mode="r", *a, **kw):
        if not isinstance(file, int) and writing(mode) and target(file) and kind == "erofs":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(file))
        f = real_io_open(file, mode, *a, **kw)
        return _Faulty(f, state) if kind == "enospc" and writing(mode) and target(file) else f

    def oopen(path, flags, *a, **kw):
        if kind == "erofs" and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and target(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_os_open(path, flags, *a, **kw)

    monkeypatch.setattr(builtins, "open", fopen)
    monkeypatch.setattr(io, "open", fopen)
    monkeypatch.setattr(os, "open", oopen)
    try: yield state
    finally: monkeypatch.undo()


def snapshot(folder):
    """Every file under `folder` (hidden ones too) -> its bytes."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def as_nobody(cmd):
    """`cmd` run as the user nobody: through setpriv where it exists (a Python child that calls setuid itself may be
    refused the interpreter under /root), else by setuid in the child."""
    if shutil.which("setpriv"): return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd], None
    return cmd, lambda: (os.setgroups([]), os.setgid(NOBODY), os.setuid(NOBODY))


def cli(*args, fsize=None, nobody=False, env=None, timeout=600):
    """`python -m tao_nb.cli ARGS` with a file-size limit (writes past it fail with EFBIG) or as the user nobody."""
    cmd, drop = as_nobody([sys.executable, "-m", "tao_nb.cli", *map(str, args)]) if nobody else \
        ([sys.executable, "-m", "tao_nb.cli", *map(str, args)], None)
    def pre():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
        if drop: drop()
    e = {**os.environ, "TAO_NB_PROGRESS": "0", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pre, env=e, timeout=timeout)


def assert_clear_failure(out, path, cause):
    """Exit 1, no traceback, and one `error:` line naming `path` (a file or the folder holding it) and `cause`."""
    assert out.returncode == 1, (out.returncode, out.stderr[-3000:])
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]
    errors = [l for l in out.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert f"cannot write {path}" in errors[0] and cause in errors[0], errors[0]
    return errors[0]


def assert_clear_error(exc, path, cause):
    msg = str(exc.value)
    assert f"cannot write {path}" in msg and cause in msg, msg


@pytest.fixture
def shared_dir():
    """A folder the user nobody can read (pytest's own temporary folders are root's alone); None if nobody cannot run
    this Python at all."""
    d = Path(tempfile.mkdtemp(prefix="tao_nb_faults_"))
    d.chmod(0o755)
    cmd, drop = as_nobody([sys.executable, "-c", "import tao_nb.core"])
    try: ok = os.geteuid() == 0 and subprocess.run(cmd, capture_output=True, preexec_fn=drop).returncode == 0
    except OSError: ok = False
    try: yield d if ok else None
    finally: shutil.rmtree(d, ignore_errors=True)


def readonly_folder(shared_dir, name):
    if shared_dir is None: pytest.skip("cannot run as the user nobody here (not root, or this Python is not readable by nobody)")
    out = shared_dir / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def make_readable(folder):
    for p in [folder, *Path(folder).rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


# ---------------------------------------------------------------- the atomic writers everything stands on

@pytest.mark.parametrize("fault", ["fsize", "enospc", "erofs"])
def test_atomic_write_keeps_the_old_file(tmp_path, monkeypatch, fault):
    path = tmp_path / "out" / "result.json"
    write_text_atomic(path, "old\n")
    before = snapshot(tmp_path)
    big = "x" * 200_000
    with pytest.raises(TaoNbError) as e:
        if fault == "fsize":
            with file_size_limit(50_000): write_text_atomic(path, big)
        else:
            with python_fault(monkeypatch, tmp_path / "out", fault, budget=10_000): write_text_atomic(path, big)
    assert_clear_error(e, path, CAUSES[fault])
    assert snapshot(tmp_path) == before  # the old file as it was, no temporary file left


@pytest.mark.parametrize("fault", ["fsize", "enospc", "erofs"])
def test_figure_save_keeps_the_old_image(tmp_path, monkeypatch, fault):
    """Figures (`data summary --figure`, `ssd compare --figure`) go through save_figure: matplotlib's own
    savefig(path) would leave a truncated image under the final name."""
    import matplotlib; matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from tao_nb.core import save_figure
    fig = Figure(figsize=(6, 6)); fig.add_subplot().imshow(__import__("numpy").random.default_rng(0).random((200, 200)))
    path = tmp_path / "plots" / "summary.png"
    path.parent.mkdir()
    path.write_bytes(b"an earlier figure")
    before = snapshot(tmp_path)
    with pytest.raises(TaoNbError) as e:
        if fault == "fsize":
            with file_size_limit(4000): save_figure(fig, path)
        else:
            with python_fault(monkeypatch, path.parent, fault, budget=4000): save_figure(fig, path)
    assert_clear_error(e, path, CAUSES[fault])
    assert snapshot(tmp_path) == before


def test_atomic_write_passes_other_errors_through(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")
    with pytest.raises(ZeroDivisionError), atomic_write(path) as f: f.write("new"); 1 / 0
    assert snapshot(tmp_path) == {"a.txt": b"old"}


# ---------------------------------------------------------------- spec save, spec editor save

SPEC_KINDS = ["fsize", "enospc", "erofs"]


@pytest.mark.parametrize("fault", SPEC_KINDS)
@pytest.mark.parametrize("writer", ["save_spec", "SpecEditor.save", "SpecEditor save button"])
def test_spec_save(tmp_path, monkeypatch, seed_spec, fault, writer):
    from tao_nb.spec import load_spec, save_spec
    from tao_nb.spec_editor import SpecEditor
    path = tmp_path / "specs" / "spec.txt"
    path.parent.mkdir()
    path.write_text("# the earlier spec, kept as it is\n" + seed_spec("ssd_experiment.txt").read_text())
    spec = load_spec(path)
    spec.training_config.num_epochs += 1
    ed = SpecEditor(path)
    ed.file.value = str(path)
    before = snapshot(tmp_path)
    save = {"save_spec": lambda: save_spec(spec, path), "SpecEditor.save": lambda: ed.save(path),
            "SpecEditor save button": lambda: ed.save_button.click()}[writer]
    with contextlib.ExitStack() as stack:
        stack.enter_context(file_size_limit(64) if fault == "fsize" else python_fault(monkeypatch, path.parent, fault))
        if writer == "SpecEditor save button": save()
        else: e = stack.enter_context(pytest.raises(TaoNbError)); save()
    if writer == "SpecEditor save button":
        assert f"cannot write {path}: {CAUSES[fault]}" in ed.status.value, ed.status.value
    else: assert_clear_error(e, path, CAUSES[fault])
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- TFRecord shards (TensorFlow's C++ writer)

def test_tfrecord_writer_disk_full(tmp_path):
    from tao_nb.data.tfrecords import write_tfrecord
    path = tmp_path / "shard-00000"
    write_tfrecord(path, [b"old" * 10])
    before = snapshot(tmp_path)
    with pytest.raises(TaoNbError) as e, file_size_limit(20_000):
        write_tfrecord(path, [os.urandom(5000) for _ in range(20)])
    assert_clear_error(e, path, CAUSES["fsize"])
    assert snapshot(tmp_path) == before


def test_tfrecord_writer_read_only(tmp_path, monkeypatch):
    """TensorFlow opens files itself: a folder it cannot create files in is a clear error too (EROFS via os.open does
    not reach TensorFlow's C++; a missing parent folder stands in for the refused open)."""
    from tao_nb.data.tfrecords import write_tfrecord
    path = tmp_path / "missing" / "shard-00000"
    with pytest.raises(TaoNbError) as e: write_tfrecord(path, [b"x"])
    assert f"cannot write {path}" in str(e.value) and "No such file or directory" in str(e.value), str(e.value)


def test_cli_dataset_convert_disk_full(sample, tmp_path):
    """The previous conversion stays complete and byte-identical; no shard of the new one appears."""
    d = sample().parent
    out = tmp_path / "tfrecords"
    shutil.copytree(d / "tfrecords", out)
    before = snapshot(out)
    r = cli("ssd", "dataset_convert", "-d", d / "convert.txt", "-o", out / "sample", fsize=16_000)
    line = assert_clear_failure(r, out, CAUSES["fsize"])  # names the shard being written
    assert snapshot(out) == before, line


def test_cli_dataset_convert_read_only(sample, shared_dir):
    d = sample().parent
    root = readonly_folder(shared_dir, "convert")
    shutil.copytree(d / "data", root / "data")
    (root / "convert.txt").write_text((d / "convert.txt").read_text().replace(str(d / "data"), str(root / "data")))
    out = root / "tfrecords"
    shutil.copytree(d / "tfrecords", out)
    make_readable(root)
    out.chmod(0o555)
    before = snapshot(out)
    r = cli("ssd", "dataset_convert", "-d", root / "convert.txt", "-o", out / "sample", nobody=True)
    assert_clear_failure(r, out, CAUSES["readonly"])
    assert snapshot(out) == before


# ---------------------------------------------------------------- training: checkpoints and the log

@pytest.fixture(scope="module")
def tiny_model():
    from tao_nb.core import import_tensorflow
    keras = import_tensorflow().keras
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(4, name="d2")(keras.layers.Dense(64, name="d1")(inp)), name="tiny")
    opt = keras.optimizers.Adam()
    opt.build(model.trainable_variables)
    return model, opt


@pytest.mark.parametrize("fault", ["fsize", "enospc", "erofs"])
def test_checkpoint_disk_full_keeps_the_previous_epoch(tmp_path, tiny_model, monkeypatch, fault):
    """The model file of epoch 2 does not fit (Keras writes it through zipfile and h5py): epoch 1 stays the latest
    checkpoint, as it was; no epoch-2 file at all."""
    from tao_nb.train import latest_checkpoint, save_checkpoint
    model, opt = tiny_model
    weights = tmp_path / "weights"
    first = save_checkpoint(model, opt, weights, "tiny", 1)
    before = snapshot(tmp_path)
    with pytest.raises(TaoNbError) as e:
        if fault == "fsize":
            with file_size_limit(first.stat().st_size // 3): save_checkpoint(model, opt, weights, "tiny", 2)
        else:
            with python_fault(monkeypatch, weights, fault, budget=first.stat().st_size // 3):
                save_checkpoint(model, opt, weights, "tiny", 2)
    assert_clear_error(e, weights / "tiny_epoch_002.keras", CAUSES[fault])
    assert snapshot(tmp_path) == before
    assert latest_checkpoint(tmp_path) == (first, 1)


@pytest.mark.parametrize("fault", ["enospc", "erofs"])
def test_checkpoint_state_fails_after_the_model_was_written(tmp_path, tiny_model, monkeypatch, fault):
    """The optimizer state of epoch 2 cannot be written after its model file was: no lone epoch-2 model is left
    (it would look like a checkpoint but cannot resume)."""
    from tao_nb.train import latest_checkpoint, save_checkpoint
    model, opt = tiny_model
    weights = tmp_path / "weights"
    first = save_checkpoint(model, opt, weights, "tiny", 1)
    before = snapshot(tmp_path)
    with pytest.raises(TaoNbError) as e:
        with python_fault(monkeypatch, weights, fault, match=lambda p: ".state.npz" in p):
            save_checkpoint(model, opt, weights, "tiny", 2)
    assert_clear_error(e, weights / "tiny_epoch_002.state.npz", CAUSES[fault])
    assert snapshot(tmp_path) == before
    assert latest_checkpoint(tmp_path) == (first, 1)


@pytest.mark.parametrize("fault", ["fsize", "enospc"])
def test_training_log_disk_full(tmp_path, monkeypatch, fault):
    from types import SimpleNamespace
    from tao_nb.train import CSVLog
    path = tmp_path / "training_log.csv"
    log = CSVLog(path, 0)
    log.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=1e-3, iterations=0)))
    log.on_epoch_end(0, {"loss": 1.0})
    before = snapshot(tmp_path)
    with pytest.raises(TaoNbError) as e:
        logs = {f"AP_class_{i}": 0.5 for i in range(200)}
        if fault == "fsize":
            with file_size_limit(path.stat().st_size + 10): log.on_epoch_end(1, logs)
        else:
            with python_fault(monkeypatch, tmp_path, fault, budget=100): log.on_epoch_end(1, logs)
    assert_clear_error(e, path, CAUSES[fault])
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- the CLI's last line of defence

@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EFBIG, errno.EROFS])
def test_cli_reports_a_raw_os_error_in_one_line(monkeypatch, capsys, tmp_path, err):
    """An OSError that escapes a writer (a library writing on its own) is one line naming the file, no traceback."""
    import tao_nb.data.sample as sample_mod
    from tao_nb.cli import main
    def boom(*a, **kw): raise OSError(err, os.strerror(err), str(tmp_path / "x.png"))
    monkeypatch.setattr(sample_mod, "make_sample_dataset", boom)
    assert main(["data", "make_sample", "-o", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: cannot write {tmp_path / 'x.png'}: {os.strerror(err)}"], lines


# ---------------------------------------------------------------- heavier runs through the CLI

@pytest.mark.slow
def test_cli_train_disk_full_at_epoch_2_then_resume(sample, tmp_path):
    """Epoch 1 finished; epoch 2's checkpoint does not fit: exit 1 naming it, epoch 1's checkpoint byte-identical and
    the latest; run again with room: training resumes after epoch 1 and finishes."""
    results = tmp_path / "results"
    r = cli("ssd", "train", "-e", sample("disk1.txt", num_epochs=1), "-r", results)
    assert r.returncode == 0, r.stderr[-3000:]
    weights = results / "weights"
    before = snapshot(weights)
    size = (weights / "ssd_resnet10_epoch_001.keras").stat().st_size
    spec = sample("disk2.txt", num_epochs=2)
    r = cli("ssd", "train", "-e", spec, "-r", results, fsize=size // 2)
    assert_clear_failure(r, weights / "ssd_resnet10_epoch_002.keras", CAUSES["fsize"])
    assert snapshot(weights) == before
    from tao_nb.train import latest_checkpoint
    assert latest_checkpoint(results)[1] == 1
    r = cli("ssd", "train", "-e", spec, "-r", results)
    assert r.returncode == 0 and "trained 2 epochs" in r.stdout, r.stderr[-3000:]
    assert {p.name for p in weights.iterdir()} == {f"ssd_resnet10_epoch_00{i}.{s}" for i in (1, 2) for s in ("keras", "state.npz")}


@pytest.fixture(scope="module")
def trained(sample, tmp_path_factory):
    results = tmp_path_factory.mktemp("trained")
    spec = sample("disk_export.txt", num_epochs=1)
    r = cli("ssd", "train", "-e", spec, "-r", results)
    assert r.returncode == 0, r.stderr[-3000:]
    return results / "weights" / "ssd_resnet10_epoch_001.keras", spec


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["portable", "tensorrt"])
def test_cli_export_disk_full(trained, tmp_path, layout):
    """The ONNX model and calibration cache do not fit: the earlier export stays byte-identical, nothing new appears."""
    model, spec = trained
    images = spec.parent / "data" / "validation" / "image_2"
    out = tmp_path / "export"
    args = ["ssd", "export", "-m", model, "-e", spec, "-o", out / "model.onnx", "--layout", layout, "--data_type", "int8",
            "--cal_image_dir", images, "--batches", "1", "--batch_size", "2"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    before = snapshot(out)
    sizes = sorted(len(v) for v in before.values())
    # the ONNX model (the largest file) does not fit
    r = cli(*args, fsize=sizes[-1] // 2)
    assert_clear_failure(r, out, CAUSES["fsize"])
    assert snapshot(out) == before
    # only the calibration cache (the smallest) does not fit, with the cache re-made
    cache = out / "model.cal.bin"
    cache_before = cache.read_bytes()
    cache.unlink()
    r = cli(*args, fsize=len(cache_before) // 2)
    assert_clear_failure(r, out, CAUSES["fsize"])
    assert not cache.exists() and not [p for p in out.iterdir() if p.name.startswith(".")], sorted(out.iterdir())


@pytest.mark.slow
def test_cli_export_read_only(trained, shared_dir):
    model, spec = trained
    root = readonly_folder(shared_dir, "export")
    shutil.copy(model, root / "model.keras")
    shutil.copy(spec, root / "spec.txt")
    out = root / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"earlier export")
    make_readable(root)
    out.chmod(0o555)
    r = cli("ssd", "export", "-m", root / "model.keras", "-e", root / "spec.txt", "-o", out / "model.onnx", nobody=True)
    assert_clear_failure(r, out, CAUSES["readonly"])
    assert snapshot(out) == {"model.onnx": b"earlier export"}


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["fsize", "readonly"])
def test_cli_inference_output_folder(trained, tmp_path, shared_dir, fault):
    """Annotated images that do not fit (or a read-only folder): exit 1 naming the image, the earlier ones intact."""
    model, spec = trained
    images = spec.parent / "data" / "validation" / "image_2"
    if fault == "fsize":
        out = tmp_path / "annotated"
        out.mkdir()
        (out / "earlier.png").write_bytes(b"an earlier result")
        r = cli("ssd", "inference", "-m", model, "-e", spec, "-i", images, "-o", out, "-t", "0.0", fsize=4000)
    else:
        root = readonly_folder(shared_dir, "inference")
        shutil.copy(model, root / "model.keras"); shutil.copy(spec, root / "spec.txt"); shutil.copytree(images, root / "images")
        out = root / "annotated"
        out.mkdir()
        (out / "earlier.png").write_bytes(b"an earlier result")
        make_readable(root)
        out.chmod(0o555)
        r = cli("ssd", "inference", "-m", root / "model.keras", "-e", root / "spec.txt", "-i", root / "images", "-o", out,
                "-t", "0.0", nobody=True)
    assert_clear_failure(r, out, CAUSES[fault])
    assert snapshot(out) == {"earlier.png": b"an earlier result"}


PIPE_NB = """{{"cells": [
 {{"cell_type": "code", "id": "p", "metadata": {{"tags": ["parameters"]}}, "source": "output_dir = 'out'\\nsize = 10", "outputs": [], "execution_count": null}},
 {{"cell_type": "code", "id": "b", "metadata": {{}}, "source": {body}, "outputs": [], "execution_count": null}}],
 "metadata": {{"kernelspec": {{"name": "python3", "display_name": "Python 3", "language": "python"}}}},
 "nbformat": 4, "nbformat_minor": 5}}"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["output", "notebook"])
def test_cli_pipeline_disk_full_keeps_finished_steps(tmp_path, where):
    """Step b's output (or its executed notebook) does not fit: exit 1 naming the file; step a's metrics.json and
    executed notebook byte-identical; no half-written notebook; run again with room: a is skipped, b runs."""
    body = ("from pathlib import Path\nfrom tao_nb.core import write_bytes_atomic\nfrom tao_nb.pipeline import write_metrics\n"
            "write_bytes_atomic(Path(output_dir) / 'data.bin', b'x' * size)\n"
            "print('y' * {printed})\nwrite_metrics(output_dir, {{'size': size}})")
    for name, printed in (("a", 10), ("b", 10 if where == "output" else 300_000)):
        (tmp_path / f"{name}.ipynb").write_text(PIPE_NB.format(body=json.dumps(body.format(printed=printed))))
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""\
        steps:
          - {{name: a, notebook: {tmp_path / 'a.ipynb'}, parameters: {{size: 1000}}}}
          - {{name: b, notebook: {tmp_path / 'b.ipynb'}, parameters: {{size: {300_000 if where == 'output' else 1000}}}}}
        """))
    run = tmp_path / "run"
    r = cli("pipeline", "run", tmp_path / "p.yaml", "-r", run, "--workers", "1", fsize=100_000)
    path = run / "b" / ("data.bin" if where == "output" else "b.ipynb")
    assert r.returncode == 1 and "Traceback (most recent" not in r.stderr, r.stderr[-3000:]
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and f"cannot write {path}" in r.stderr and CAUSES["fsize"] in r.stderr, r.stderr[-3000:]
    a_before = snapshot(run / "a")
    assert json.loads(a_before["metrics.json"])["metrics"] == {"size": 1000}
    assert not (run / "b" / "metrics.json").exists()
    for nb in (run / "b").glob("*.ipynb"): json.loads(nb.read_text())  # any executed notebook there is complete
    r = cli("pipeline", "run", tmp_path / "p.yaml", "-r", run, "--workers", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert snapshot(run / "a") == a_before
    assert (run / "b" / "metrics.json").exists()
