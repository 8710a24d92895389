"""The tao-nb command line, run as users run it: in a subprocess."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BROKEN_SPECS, SEED_SPECS


def tao_nb(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tao_nb.cli", *map(str, args)], capture_output=True, text=True, **kw)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "tao-nb"
    assert script.exists(), "pip install -e . should create the tao-nb script"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tao_nb ")


def test_help_lists_only_working_subtasks():
    out = tao_nb("--help")
    assert out.returncode == 0 and "spec" in out.stdout
    out = tao_nb("spec", "--help")
    assert "validate" in out.stdout and "defaults" in out.stdout


def test_unknown_subtask_is_an_argument_error():
    out = tao_nb("spec", "frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_validate_seed_specs():
    out = tao_nb("spec", "validate", *SEED_SPECS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == len(SEED_SPECS)


@pytest.mark.parametrize("path", BROKEN_SPECS[::7], ids=lambda p: p.stem)
def test_validate_broken_spec_exits_1_without_traceback(path):
    out = tao_nb("spec", "validate", path)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {path}")
    assert "Traceback" not in out.stderr


def test_validate_mixed_files_reports_each(seed_spec):
    good, bad = seed_spec("ssd_experiment.txt"), BROKEN_SPECS[0]
    out = tao_nb("spec", "validate", good, bad)
    assert out.returncode == 1
    assert out.stdout.startswith(f"ok: {good}") and out.stderr.startswith(f"error: {bad}")


def test_kind_option(seed_spec):
    out = tao_nb("spec", "validate", "--kind", "yolo_v3", seed_spec("ssd_experiment.txt"))
    assert out.returncode == 1 and 'unknown field "ssd_config"' in out.stderr


def test_warnings_go_to_log_file(tmp_path, seed_spec):
    spec = tmp_path / "spec.txt"
    spec.write_text(seed_spec("ssd_experiment.txt").read_text().replace('arch: "resnet"', 'arch: "mobilenet_v2"'))
    log = tmp_path / "run.log"
    out = tao_nb("spec", "validate", spec, "--log_file", log)
    assert out.returncode == 0, out.stderr
    assert "ssd_config.nlayers: mobilenet_v2 has one depth; nlayers is ignored" in log.read_text()


def test_defaults():
    out = tao_nb("spec", "defaults", "--kind", "ssd")
    assert out.returncode == 0
    assert "random_flip: 0.5" in out.stdout and "batch_size_per_gpu: <required>" in out.stdout
