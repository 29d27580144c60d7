"""The layerprop command: in-process (click's CliRunner) and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import layerprop
from layerprop.cli import cli

COMMANDS = sorted(cli.commands)


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok and result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n"
                             f"{result.exception!r}")
    return result


def assert_one_error_line(result, *needles):
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- fixtures: small data files and trained models ---------------------------------------------

def write_csv(path, header, rows):
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    Path(path).write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    f = {"folder": d}
    f["good"] = write_csv(d / "good.csv", ["a", "b", "c", "label"], [[*np.round(x, 4), l] for x, l in zip(X, labels)])
    f["features"] = write_csv(d / "features.csv", ["c", "b", "a"], [list(np.round(x[::-1], 4)) for x in X[:7]])
    f["reg"] = write_csv(d / "reg.csv", ["u", "v", "target"], [[*np.round(x[:2], 4), round(2 * x[0] - x[1], 4)] for x in X])
    f["missing"] = str(d / "nope.csv")
    (d / "empty.csv").write_text("")
    f["empty"] = str(d / "empty.csv")
    f["header_only"] = write_csv(d / "header_only.csv", ["a", "b", "label"], [])
    f["ragged_short"] = write_csv(d / "ragged_short.csv", ["a", "b", "label"], [[1, 2, "x"], [3, "y"], [5, 6, "x"]])
    f["ragged_long"] = write_csv(d / "ragged_long.csv", ["a", "b", "label"], [[1, 2, "x"], [3, 4, 5, "y"], [5, 6, "x"]])
    f["non_numeric"] = write_csv(d / "non_numeric.csv", ["a", "b", "label"], [[1, 2, "x"], [3, "abc", "y"], [5, 6, "x"]])
    f["nan"] = write_csv(d / "nan.csv", ["a", "b", "label"], [[1, 2, "x"], [3, "nan", "y"], [5, 6, "x"]])
    f["inf"] = write_csv(d / "inf.csv", ["a", "b", "label"], [[1, 2, "x"], [3, "inf", "y"], [5, 6, "x"]])
    f["single_class"] = write_csv(d / "single.csv", ["a", "b", "label"], [[1, 2, "x"], [3, 4, "x"], [5, 6, "x"]])
    (d / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    f["corrupt_model"] = str(d / "corrupt.safetensors")
    with zipfile.ZipFile(d / "other.safetensors", "w") as z:
        z.writestr("data.pkl", b"\x80\x04K\x01.")
    f["other_format_model"] = str(d / "other.safetensors")
    f["wrong_features"] = write_csv(d / "wrong_features.csv", ["a", "x", "c"], [[1, 2, 3]])
    return f


@pytest.fixture(scope="module")
def model(files):
    path = files["folder"] / "good.safetensors"
    run("train", files["good"], "--hidden", "8", "--epochs", "40", "--lr", "0.3", "-q", "-o", path)
    return str(path)


@pytest.fixture(scope="module")
def reg_model(files):
    path = files["folder"] / "reg.safetensors"
    run("train", files["reg"], "--hidden", "8", "--epochs", "30", "-q", "-o", path)
    return str(path)


# -- basics --------------------------------------------------------------------------------------

def test_version():
    result = run("--version")
    assert result.stdout.strip() == f"layerprop {layerprop.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_ending_in_an_example(command):
    result = run(command, "--help")
    lines = [l for l in result.stdout.strip().splitlines() if l.strip()]
    assert lines[-2].strip() == "Example:", result.stdout
    assert lines[-1].strip().startswith("layerprop "), result.stdout
    assert len(cli.commands[command].help or "") > 40


def test_group_help_lists_every_command():
    out = run("--help").stdout
    for command in COMMANDS:
        assert f"  {command} " in out


@pytest.mark.parametrize("args", [
    ["train", "--no-such-option"],
    ["train", "iris", "--iterations", "5", "--epochs", "5"],
    ["train", "iris", "--hidden", "8,x"],
    ["train", "iris", "--activation", "sign"],
    ["train", "iris", "--lr", "-1"],
    ["predict"],
    ["trace", "m.safetensors"],
    ["nonexistent-command"],
])
def test_usage_errors_exit_2(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


# -- train and the model file --------------------------------------------------------------------

def test_default_train_is_fast_and_accurate(tmp_path, monkeypatch):
    """`layerprop train` with no DATA: digits, well under 30 s.

    The default recipe (one hidden layer of 256 relu neurons, softmax cross-entropy, plain SGD
    with minibatches of 4, eta 0.05, 30 epochs) was chosen by scripts/choose_default_recipe.py
    without looking at the test rows: the best 5-fold cross-validated accuracy on digits'
    1,437 non-test rows (97.42% +- 1.42) of a fixed grid of 20 candidates. Its test accuracy,
    measured once after choosing, is 96.39% (347 of 360 test rows; below issue 5's 97%, reported
    as it came); the threshold allows 0.5 point for platform float differences."""
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    result = run("train", "--json")
    seconds = time.perf_counter() - t0
    s = json.loads(result.stdout)
    assert s["data"] == "digits" and s["sizes"] == [64, 256, 10] and s["activations"][0] == "relu"
    assert s["loss"] == "softmax_cross_entropy"
    assert s["metrics"]["test"]["accuracy"] >= 0.9589, s["metrics"]
    assert seconds < 30
    assert (tmp_path / "model.safetensors").exists()
    info = layerprop.io.load(tmp_path / "model.safetensors").info
    for key in ("classes", "feature_names", "target_name", "task", "input_scaling", "recipe", "metrics", "history"):
        assert info.get(key) is not None, key
    print(f"default train: {seconds:.1f} s, test accuracy {s['metrics']['test']['accuracy']:.4f}")


def test_train_summary_text(files, tmp_path):
    out = run("train", files["good"], "--hidden", "4", "--epochs", "3", "-o", tmp_path / "m.safetensors").stdout
    for word in ("network", "|E| =", "iterations", "train ", "validation", "test ", "accuracy"):
        assert word in out
    assert "3-4-2" in out


def test_train_regression_and_options(files, tmp_path):
    out = tmp_path / "r.safetensors"
    s = json.loads(run("train", files["reg"], "--hidden", "6,5", "--activation", "tanh,relu", "--iterations", "300",
                       "--batch-size", "8", "--optimizer", "adam", "--lr", "0.01", "--schedule", "cosine", "--l2", "1e-4",
                       "--density", "0.8", "--json", "-o", out).stdout)
    assert s["task"] == "regression" and s["sizes"] == [2, 6, 5, 1] and s["iterations"] == 300
    assert set(s["metrics"]["test"]) == {"r2", "mse", "mae"}
    net = layerprop.io.load(out)
    assert net.activation_names == ("tanh", "relu", "identity")
    assert net.graph.num_edges() < 2 * 6 + 6 * 5 + 5 + 12  # sparse E


def test_train_task_and_target_options(files, tmp_path):
    s = json.loads(run("train", files["reg"], "--target", "u", "--task", "regression", "--epochs", "2",
                       "--json", "-o", tmp_path / "m.safetensors").stdout)
    assert s["sizes"][0] == 2 and s["task"] == "regression"


def test_train_checkpoint_and_resume(files, tmp_path):
    ck = tmp_path / "ck"
    args = ["train", files["good"], "--hidden", "4", "--iterations", "60", "--checkpoint", ck,
            "--checkpoint-every", "20", "--json", "-o", tmp_path / "m.safetensors"]
    first = json.loads(run(*args).stdout)
    assert any(ck.iterdir())
    again = json.loads(run(*args, "--resume").stdout)
    assert again["iterations"] == first["iterations"] == 60


def test_train_no_test_split_on_tiny_data(tmp_path):
    s = json.loads(run("train", "xor", "--hidden", "3", "--json", "-o", tmp_path / "x.safetensors").stdout)
    assert "test" not in s["metrics"] and s["notes"]


def test_train_failure_leaves_previous_model_intact(files, tmp_path):
    out = tmp_path / "m.safetensors"
    run("train", files["good"], "--hidden", "3", "--epochs", "1", "-q", "-o", out)
    before = out.read_bytes()
    assert_one_error_line(run("train", files["nan"], "-o", out, ok=False))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_train_output_folder_missing_fails_before_training(files, tmp_path):
    assert_one_error_line(run("train", files["good"], "-o", tmp_path / "no" / "m.safetensors", ok=False), "does not exist")


# -- bad input: one Error line naming the file, exit 1, no traceback, no output -----------------

@pytest.mark.parametrize("case,needle", [
    ("missing", "nope.csv"), ("empty", "empty.csv"), ("header_only", "header_only.csv"),
    ("ragged_short", "ragged_short.csv"), ("ragged_long", "ragged_long.csv"),
    ("non_numeric", "non_numeric.csv"), ("nan", "nan.csv"), ("inf", "inf.csv"),
    ("single_class", "single.csv"),
])
def test_train_bad_data(files, case, needle, tmp_path):
    out = tmp_path / "m.safetensors"
    line = assert_one_error_line(run("train", files[case], "-o", out, ok=False), needle)
    if case in ("ragged_short", "ragged_long", "non_numeric", "nan", "inf"):
        assert "line" in line or "row" in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_train_missing_target_column(files, tmp_path):
    assert_one_error_line(run("train", files["good"], "--target", "zzz", "-o", tmp_path / "m", ok=False), "zzz")


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect", "trace", "report", "gradcheck"])
@pytest.mark.parametrize("case", ["corrupt_model", "other_format_model", "missing"])
def test_bad_model_files(files, command, case, tmp_path):
    path = files[case]
    args = {"predict": [path, files["good"]], "evaluate": [path, files["good"]], "inspect": [path],
            "trace": [path, files["good"]], "report": [path, "-o", tmp_path / "r.html"], "gradcheck": [path]}[command]
    assert_one_error_line(run(command, *args, ok=False), Path(path).name)
    assert not (tmp_path / "r.html").exists()


def test_predict_features_not_matching_the_model(files, model, tmp_path):
    out = tmp_path / "p.csv"
    line = assert_one_error_line(run("predict", model, files["wrong_features"], "-o", out, ok=False), "wrong_features.csv")
    assert "'b'" in line
    assert not out.exists()


def test_predict_bad_data_rows(files, model, tmp_path):
    out = tmp_path / "p.csv"
    assert_one_error_line(run("predict", model, files["non_numeric"], "-o", out, ok=False), "non_numeric.csv")
    assert not out.exists()


# -- round trips -------------------------------------------------------------------------------

def test_predict_to_stdout_and_file(files, model, tmp_path):
    out = run("predict", model, files["good"]).stdout.splitlines()
    assert out[0] == "label" and len(out) == 121 and set(out[1:]) <= {"yes", "no"}
    path = tmp_path / "p.csv"
    run("predict", model, files["features"], "--proba", "-o", path)  # columns reordered, no target: by name
    rows = [l.split(",") for l in path.read_text().splitlines()]
    assert rows[0] == ["label", "p_no", "p_yes"] and len(rows) == 8
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    labels = run("predict", model, files["good"]).stdout.splitlines()[1:8]
    assert [r[0] for r in rows[1:]] == labels


def test_evaluate_classification(files, model):
    out = run("evaluate", model, files["good"]).stdout
    assert "accuracy" in out and "confusion matrix" in out
    m = json.loads(run("evaluate", model, files["good"], "--json").stdout)
    assert m["n"] == 120 and m["accuracy"] > 0.85 and np.sum(m["confusion_matrix"]) == 120
    assert m["labels"] == ["no", "yes"]


def test_evaluate_regression(files, reg_model):
    m = json.loads(run("evaluate", reg_model, files["reg"], "--json").stdout)
    assert m["r2"] > 0.5 and m["mse"] >= 0


def test_inspect(model):
    out = run("inspect", model).stdout
    for word in ("3-8-2", "VC dimension", "|E| = 50", "chapter 20", "recipe"):
        assert word in out, word
    info = json.loads(run("inspect", model, "--json").stdout)
    assert info["facts"]["num_edges"] == 3 * 8 + 8 + 8 * 2 + 2 and info["classes"] == ["no", "yes"]


def test_trace_row_and_json(files, model):
    out = run("trace", model, files["good"], "--row", "3").stdout
    for word in ("a_1", "o_1", "sigma'(a_1)", "delta_2", "delta_1", "loss:", "delta_{2,", "o_{1,"):
        assert word in out, word
    tr = json.loads(run("trace", model, files["good"], "--row", "3", "--json").stdout)
    assert len(tr["layers"]) == 3 and tr["row"] == 3 and tr["loss"] > 0
    for e in tr["edges"]:
        assert e["value"] == pytest.approx(e["delta"] * e["sigma_prime"] * e["o_prev"], rel=1e-9, abs=1e-15)


def test_trace_x_with_and_without_y(model):
    out = run("trace", model, "--x", "0.5,-1,2", "--y", "yes").stdout
    assert "delta_1" in out
    out = run("trace", model, "--x", "0.5,-1,2").stdout
    assert "no target" in out and "delta_1" not in out
    assert run("trace", model, "--x", "1,2", ok=False).exit_code == 2


def test_trace_row_out_of_range(files, model):
    assert_one_error_line(run("trace", model, files["good"], "--row", "500", ok=False), "good.csv", "500")


def test_gradcheck_random_and_model(files, model):
    out = run("gradcheck").stdout
    assert "ok" in out and "worst edge" in out
    r = json.loads(run("gradcheck", model, "--data", files["good"], "--json").stdout)
    assert r["ok"] and r["max_rel_error"] < 1e-6 and r["chain_rule"]["backprop_vs_jacobian"] < 1e-8


def test_report_classification(files, model, tmp_path):
    pytest.importorskip("matplotlib")
    html_path, png = tmp_path / "report.html", tmp_path / "png"
    run("report", model, "-o", html_path, "--png", png)
    html = html_path.read_text()
    assert "<svg" in html and "data:image/png;base64," in html and "Confusion matrix" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert sorted(p.name for p in png.iterdir()) == ["confusion.png", "curves.png", "weights.png"]


def test_report_png_without_matplotlib_is_one_error_line(model, tmp_path, monkeypatch):
    """--png without matplotlib: one Error line naming the extra; no folder, no report written."""
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    html_path, png = tmp_path / "report.html", tmp_path / "png"
    assert_one_error_line(run("report", model, "-o", html_path, "--png", png, ok=False), "matplotlib", "layerprop[plot]")
    assert not html_path.exists() and not png.exists()


def test_report_regression_with_data(files, reg_model, tmp_path):
    pytest.importorskip("matplotlib")
    html_path = tmp_path / "r.html"
    run("report", reg_model, "-o", html_path, "--data", files["reg"])
    html = html_path.read_text()
    assert "Residuals" in html and "reg.csv" in html


def test_export_onnx(model, tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    run("export", model, "--onnx", out)
    assert out.stat().st_size > 0


def test_datasets_lists_bundled_sets():
    out = run("datasets").stdout
    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes", "xor", "parity", "moons", "circles"):
        assert name in out
    assert {d["name"] for d in json.loads(run("datasets", "--json").stdout)} >= {"digits", "iris"}


# -- as a real subprocess ------------------------------------------------------------------------

def _subprocess(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_subprocess_version_and_module():
    exe = Path(sys.executable).with_name("layerprop")
    script = [str(exe)] if exe.exists() else [sys.executable, "-m", "layerprop"]
    r = _subprocess(*script, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"layerprop {layerprop.__version__}"
    r = _subprocess(sys.executable, "-m", "layerprop", "--help")
    assert r.returncode == 0 and "train" in r.stdout


def test_subprocess_startup_is_fast():
    t0 = time.perf_counter()
    r = _subprocess(sys.executable, "-m", "layerprop", "train", "--help")
    assert r.returncode == 0
    assert time.perf_counter() - t0 < 3.0
    r = _subprocess(sys.executable, "-X", "importtime", "-m", "layerprop", "--help")
    heavy = [m for m in ("sklearn", "matplotlib", "pandas", "torch")
             if any(line.rstrip().endswith(f"| {m}") for line in r.stderr.splitlines())]
    assert heavy == []


def test_subprocess_train_predict_and_bad_input(files, tmp_path):
    out = tmp_path / "m.safetensors"
    r = _subprocess(sys.executable, "-m", "layerprop", "train", files["good"], "--epochs", "2", "-q", "-o", str(out))
    assert r.returncode == 0, r.stderr
    r = _subprocess(sys.executable, "-m", "layerprop", "predict", str(out), files["ragged_long"])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error: ") and "ragged_long.csv" in r.stderr
    r = _subprocess(sys.executable, "-m", "layerprop", "train", "--bogus")
    assert r.returncode == 2


def test_train_with_val_and_test_files(files, tmp_path):
    s = json.loads(run("train", files["good"], "--val", files["good"], "--test", files["good"], "--hidden", "4",
                       "--epochs", "2", "--no-standardize", "--json", "-o", tmp_path / "m.safetensors").stdout)
    assert s["metrics"]["test"] and s["metrics"]["validation"]
    info = layerprop.io.load(tmp_path / "m.safetensors").info
    assert info["input_scaling"] == {"mean": [0.0] * 3, "scale": [1.0] * 3}
    assert info["recipe"]["splits"] == {"fit": 120, "validation": 120, "test": 120}


def test_train_device_cuda_without_a_gpu_is_one_error_line(files, tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert_one_error_line(run("train", files["good"], "--device", "cuda", "-o", tmp_path / "m", ok=False), "cuda")


def test_report_curves_follow_the_selection_metric(files, tmp_path):
    pytest.importorskip("matplotlib")
    m = tmp_path / "m.safetensors"
    run("train", files["good"], "--hidden", "4", "--epochs", "3", "--metric", "accuracy", "-q", "-o", m)
    run("report", m, "-o", tmp_path / "r.html")
    assert layerprop.io.load(m).info["recipe"]["metric"] == "accuracy"


def test_trace_data_without_target_is_forward_only(files, model):
    out = run("trace", model, files["features"], "--row", "2").stdout
    assert "target -" in out and "no target" in out and "a_1" in out


def test_density_graph_is_independent_of_the_initial_weights(files, tmp_path):
    m = tmp_path / "m.safetensors"
    run("train", files["good"], "--hidden", "64", "--density", "0.3", "--iterations", "1", "--lr", "1e-9",
        "-q", "-o", m)
    net = layerprop.io.load(m)
    share = float((net.W[0][net.masks[0]] > 0).mean())
    assert 0.3 < share < 0.7, share  # the same seed for graph and init made the kept weights mostly negative


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] > 0).astype(int)
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=y)
    m = tmp_path / "m.safetensors"
    run("train", data, "--hidden", "5", "--epochs", "5", "-q", "-o", m)
    out = run("predict", m, data).stdout.splitlines()
    assert len(out) == 81 and set(out[1:]) <= {"0", "1"}
    assert json.loads(run("evaluate", m, data, "--json").stdout)["n"] == 80


def test_hidden_zero_is_an_empty_layer_not_none():
    r = CliRunner().invoke(cli, ["train", "iris", "--hidden", "0"])
    assert r.exit_code == 2 and "write 'none' for no hidden layer" in r.output
