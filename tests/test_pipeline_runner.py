"""The pipeline notebooks (nbs/pipelines/) run headless through papermill, chained by tao_nb.pipeline.

The fast tests run the first steps of the sample pipeline (make and convert the data, train, evaluate, prune swept
over two filter shares side by side) with smoke parameters, once per module, then re-run it, make a step fail and
check what each left behind. The slow test runs the whole sample pipeline (retraining and INT8 export included)
through the command-line functions.
"""
import argparse
import ast
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from tao_nb.pipeline import (METRICS_FILE, PARAMETERS_FILE, PipelineError, add_run_arguments, load_config, read_metrics,
                             run_pipeline, run_from_args)

PIPELINES = Path(__file__).parents[1] / "nbs" / "pipelines"
SAMPLE = PIPELINES / "ssd_sample.yaml"
NOTEBOOKS = sorted(PIPELINES.glob("*.ipynb"))


def sample_steps(*names):
    """Steps of the sample config by name, their notebook paths absolute (a dict config reads them from the cwd)."""
    steps = {s["name"]: s for s in yaml.safe_load(SAMPLE.read_text())["steps"]}
    return [{**steps[n], "notebook": str(PIPELINES / steps[n]["notebook"]), "parameters": dict(steps[n]["parameters"])}
            for n in names]


def chain_config():
    """The sample pipeline up to pruning, smoke-sized; pruning swept over two filter shares, two at a time."""
    steps = sample_steps("convert", "train", "evaluate", "prune")
    prune = steps[-1]
    del prune["parameters"]["filter_share"]
    prune["parameters"]["min_filters"] = 8
    prune["sweep"] = {"filter_share": [0.3, 0.6]}
    return {"parameters": {"smoke": True}, "workers": 2, "steps": steps}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("chain")
    return run_pipeline(chain_config(), run_dir), run_dir


def executed(path):
    """Outputs of an executed notebook: (errors, number of images shown)."""
    outs = [o for c in nbformat.read(path, 4).cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return [o for o in outs if o.output_type == "error"], sum("image/png" in o.get("data", {}) for o in outs)


def test_notebooks_follow_the_pipeline_style():
    """Each pipeline notebook: first a cell tagged `parameters` of `name: type = literal  # help` lines with output_dir
    among them, no library code (no def or class), no outputs committed, and it ends by writing metrics.json."""
    assert {p.stem for p in NOTEBOOKS} == {"convert", "train", "evaluate", "prune", "retrain", "export_int8"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, 4)
        first = nb.cells[0]
        assert first.cell_type == "code" and first.metadata.get("tags") == ["parameters"], path
        body = [n for n in ast.parse(first.source).body]
        assert body and all(isinstance(n, ast.AnnAssign) for n in body), path
        lines = [l for l in first.source.splitlines() if l and not l.startswith("#")]
        assert all("  # " in l and "=" not in l.split("  # ", 1)[1] for l in lines), path  # papermill reads one '=' a line
        assert "output_dir" in {n.target.id for n in body}, path
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path}: outputs committed"
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for c in code[1:] for n in ast.parse(c.source).body), path
        assert "write_metrics(" in code[-1].source, path


def test_sample_config_loads():
    cfg = load_config(SAMPLE)
    assert [s.name for s in cfg.steps] == ["convert", "train", "evaluate", "prune", "retrain", "evaluate_retrained", "export_int8"]
    assert cfg.run_dir == "demo_out/pipeline"
    assert all(s.parameters["smoke"] is False for s in cfg.steps if "smoke" in s.declared)
    assert load_config(SAMPLE, {"smoke": "true", "train.num_epochs": "3"}).steps[1].parameters["num_epochs"] == 3


def test_chain_runs_and_records_each_step(chain):
    result, run_dir = chain
    assert [(r.label, r.status) for r in result.runs] == [
        ("convert", "ran"), ("train", "ran"), ("evaluate", "ran"),
        ("prune[filter_share=0.3]", "ran"), ("prune[filter_share=0.6]", "ran")]
    for r in result.runs:
        assert {METRICS_FILE, PARAMETERS_FILE} <= {p.name for p in r.step_dir.glob("*.json")}
        errors, images = executed(r.notebook)
        assert not errors and images >= 1, r.notebook  # every step shows a plot
        assert read_metrics(r.step_dir) == {"metrics": r.metrics, "outputs": r.outputs}
    convert, train, evaluate = (result[n] for n in ("convert", "train", "evaluate"))
    assert convert.metrics["images"] == 16 and Path(convert.outputs["experiment_spec"]).is_file()
    assert train.metrics["epochs"] == 1 and Path(train.outputs["model_path"]).is_file()
    assert "num_epochs: 1\n" in Path(train.outputs["experiment_spec"]).read_text()
    assert 0 <= evaluate.metrics["mAP"] <= 1 and set(evaluate.metrics["AP"]) == {"car", "cyclist", "pedestrian"}
    assert (run_dir / "evaluate" / "PR_curve.png").is_file()
    assert not list(Path(train.outputs["model_path"]).parent.glob("*.png"))  # evaluation leaves the model's folder alone
    low, high = result["prune[filter_share=0.3]"], result["prune[filter_share=0.6]"]
    assert high.metrics["param_ratio"] < low.metrics["param_ratio"] < 1
    assert high.step_dir == run_dir / "prune" / "filter_share=0.6" and Path(high.outputs["model_path"]).is_file()
    assert 0 <= high.metrics["mAP_pruned"] <= 1
    assert json.loads((high.step_dir / PARAMETERS_FILE).read_text())["parameters"]["filter_share"] == 0.6
    table = (run_dir / "summary.txt").read_text()
    assert table == result.table() + "\n" and "prune[filter_share=0.6]  ran" in table and "param_ratio" in table


def test_sweep_runs_side_by_side(chain):
    """The two prune runs overlapped in time, in two worker processes other than this one."""
    import os
    result, _ = chain
    a, b = result["prune[filter_share=0.3]"], result["prune[filter_share=0.6]"]
    assert a.start < b.end and b.start < a.end
    assert len({a.pid, b.pid, os.getpid()}) == 3


def test_rerun_skips_finished_steps(chain):
    result, run_dir = chain
    stamps = {r.label: r.notebook.stat().st_mtime_ns for r in result.runs}
    again = run_pipeline(chain_config(), run_dir)
    assert [r.status for r in again.runs] == ["skipped"] * 5
    assert {r.label: r.notebook.stat().st_mtime_ns for r in again.runs} == stamps  # no notebook ran again
    assert [r.metrics for r in again.runs] == [r.metrics for r in result.runs]


def test_failing_step_stops_and_names_the_cell(chain, tmp_path):
    """A step that fails stops the pipeline; the error names the cell; earlier steps keep what they made."""
    _, run_dir = chain
    config = chain_config()
    bad = {**sample_steps("evaluate")[0], "name": "evaluate_bad"}
    bad["parameters"]["experiment_spec"] = str(tmp_path / "missing_spec.txt")
    after = {**sample_steps("evaluate")[0], "name": "never"}
    config["steps"] += [bad, after]
    with pytest.raises(PipelineError) as e:
        run_pipeline(config, run_dir)
    msg = str(e.value)
    nb = run_dir / "evaluate_bad" / "evaluate.ipynb"
    assert msg.startswith(f"step evaluate_bad failed at In [") and f"of {nb} (cell " in msg and f"of {PIPELINES / 'evaluate.ipynb'}" in msg
    assert "spec = load_spec(spec_path" in msg and "missing_spec.txt" in msg, msg
    assert "skipped next time: convert, train, evaluate, prune[filter_share=0.3], prune[filter_share=0.6]" in msg
    assert [(r.label, r.status) for r in e.value.result.runs][-3:] == [
        ("prune[filter_share=0.6]", "skipped"), ("evaluate_bad", "failed"), ("never", "not run")]
    errors, _ = executed(nb)
    assert len(errors) == 1 and read_metrics(run_dir / "evaluate_bad") is None
    assert not (run_dir / "never").exists()
    assert read_metrics(run_dir / "train")["metrics"]["epochs"] == 1  # what came before is kept


@pytest.mark.slow
@pytest.mark.parametrize("network", ["ssd", "yolo_v3"])
def test_sample_pipeline_smoke_through_the_cli_functions(network, tmp_path, capsys):
    """The whole sample pipeline, smoke-sized, as `tao-nb pipeline run nbs/pipelines/ssd_sample.yaml -p smoke true`,
    for each network (`-p network yolo_v3`)."""
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args([str(SAMPLE), "-r", str(tmp_path), "-p", "smoke", "true", "-p", "prune.filter_share", "0.6",
                              "-p", "prune.min_filters", "8", "-p", "network", network])
    assert run_from_args(args) == 0
    out = capsys.readouterr().out
    steps = ["convert", "train", "evaluate", "prune", "retrain", "evaluate_retrained", "export_int8"]
    assert [l.split()[:2] for l in out.splitlines()[1:8]] == [[s, "ran"] for s in steps]
    retrain, export = read_metrics(tmp_path / "retrain"), read_metrics(tmp_path / "export_int8")
    prune = read_metrics(tmp_path / "prune")["metrics"]
    assert prune["param_ratio"] < 0.9 and retrain["metrics"]["epochs"] == 1
    trained_spec = Path(retrain["outputs"]["experiment_spec"]).read_text()
    assert "pruned_model_path" in trained_spec and {"ssd": "ssd_config", "yolo_v3": "yolov3_config"}[network] in trained_spec
    assert Path(export["outputs"]["int8_model"]).is_file() and Path(export["outputs"]["cal_cache"]).is_file()
    m = export["metrics"]
    assert m["calibration_images"] == 4 and 0 <= m["mAP_int8"] <= 1 and m["int8_MiB"] < m["fp32_MiB"] / 2
    evaluated = read_metrics(tmp_path / "evaluate_retrained")["metrics"]["mAP"]
    assert abs(evaluated - m["mAP_fp32"]) < 0.05  # the same retrained model, as Keras and as ONNX
    assert run_from_args(args) == 0 and capsys.readouterr().out.count(" skipped ") == 7


def test_a_kernel_that_dies_while_starting_is_started_again(monkeypatch, tmp_path):
    """Kernels started at once by parallel runs can race for the same ports and die before replying: such a start is
    retried, while a kernel that keeps dying is reported."""
    import papermill
    from tao_nb.pipeline import _execute
    calls = []
    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) < 2: raise RuntimeError("Kernel died before replying to kernel_info")
    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    assert _execute("a.ipynb", str(tmp_path / "out.ipynb"), {}, "python3", str(tmp_path), False, False)["error"] is None
    assert len(calls) == 2
    def dead(*args, **kw):
        raise RuntimeError("Kernel died before replying to kernel_info")
    monkeypatch.setattr(papermill, "execute_notebook", dead)
    error = _execute("a.ipynb", str(tmp_path / "out.ipynb"), {}, "python3", str(tmp_path), False, False)["error"]
    assert error["ename"] == "RuntimeError" and "Kernel died" in error["evalue"]
