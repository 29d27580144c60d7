"""Robustness (issue 8): numerics at the edges.

* logits of +-1000: every loss, its gradient and the predictions stay finite (float32, float64);
* a step size of 1e6: training ends with finite weights or stops with ``lp.DivergenceError``,
  and no file with a NaN is ever written (the checkpoint folder and the CLI's ``-o``);
* zero-variance features: the CLI's standardization never divides by zero;
* float32 overflow in the squared loss: a clear stop, nothing non-finite saved.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import layerprop as lp
from layerprop import io as lpio
from layerprop.cli import cli

DTYPES = ["float64", "float32"]
OUTPUT_FOR = {"squared": ["identity", "sigmoid"], "softmax_cross_entropy": ["identity"],
              "binary_cross_entropy": ["sigmoid"], "poisson": ["identity"]}
LOSS_CASES = [(loss, act) for loss, acts in OUTPUT_FOR.items() for act in acts]


def test_every_loss_is_covered():
    assert set(OUTPUT_FOR) == set(lp.LOSSES)


def logit_net(loss, out_act, dtype, logit):
    """A 2-1-3 identity network whose output pre-activations a_T are +logit, -logit, 0."""
    net = lp.Network(lp.LayeredGraph.dense([2, 1, 3]), activation="identity", output_activation=out_act,
                     loss=loss, seed=0, dtype=dtype)
    W = [np.array([[1.0, 0.0]], dtype=dtype), np.array([[logit], [-logit], [0.0]], dtype=dtype)]
    b = [np.zeros(1, dtype=dtype), np.zeros(3, dtype=dtype)]
    net.replace_params(W, b)
    return net


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("logit", [1000.0, -1000.0])
@pytest.mark.parametrize("loss,out_act", LOSS_CASES)
def test_logits_1000_stay_finite(loss, out_act, logit, dtype):
    net = logit_net(loss, out_act, dtype, logit)
    X = np.array([[1.0, 0.0]])
    Y = np.array([[0.0, 1.0, 0.0]]) if loss != "poisson" else np.array([[0.0, 2.0, 1.0]])
    if loss == "poisson" or (loss == "squared" and out_act == "identity"):
        # exp(1000) and 1000^2/2 are the true values (the first overflows): never NaN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = net.loss_value(X, Y)
            assert not np.isnan(value)
            try:  # an overflowed exp gives a non-finite gradient: training must stop, not save it
                res = lp.sgd(net, np.repeat(X, 4, axis=0), np.repeat(Y, 4, axis=0), iterations=3, progress=False)
            except lp.DivergenceError as e:
                res = e.result
        assert all(np.isfinite(np.asarray(w)).all() for w in res.network.W)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        value = net.loss_value(X, Y)
        grad = net.backprop(X, Y)
    assert np.isfinite(value) and value >= 0
    assert all(np.isfinite(np.asarray(w)).all() for w in grad.W)
    assert np.isfinite(np.asarray(net.predict(X))).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_tanh_saturate_without_warnings(dtype):
    for act in ("sigmoid", "tanh", "softplus"):
        f = lp.ACTIVATIONS[act]
        a = np.array([-1e4, -1000.0, 0.0, 1000.0, 1e4], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            s, ds = f.sigma(a), f.sigma_prime(a)
        assert np.isfinite(ds).all() and not np.isnan(s).any(), act


# -- step size 1e6 -------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
Y_REG = (X @ np.array([[1.0], [2.0], [-1.0]])) * 10


def all_model_files_finite(folder: Path) -> int:
    """Load every model file in ``folder`` (io refuses a NaN); return how many there are."""
    files = [p for p in folder.iterdir() if p.suffix == ".safetensors"]
    for p in files:
        net = lpio.load(p)
        assert all(np.isfinite(np.asarray(w)).all() for w in net.W)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    return len(files)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("out_act", ["identity", "sigmoid"])
def test_step_size_1e6_finishes_finite_or_diverges(tmp_path, out_act, optimizer, dtype):
    net = lp.Network(lp.LayeredGraph.dense([3, 5, 1]), activation="tanh", output_activation=out_act,
                     seed=0, dtype=dtype)
    Y = Y_REG if out_act == "identity" else (Y_REG > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = lp.sgd(net, X, Y, iterations=200, step_size=1e6, optimizer=optimizer, checkpoint=tmp_path,
                         checkpoint_every=10, progress=False)
        except lp.DivergenceError as e:
            res = e.result
            assert res is not None and "step_size" in str(e)
    assert all(np.isfinite(np.asarray(w)).all() for w in res.network.W)
    all_model_files_finite(tmp_path)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("num")
    lab = np.where(X[:, 0] > 0, "yes", "no")

    def write(name, cols, labels=lab):
        rows = [",".join([*(repr(float(v)) for v in r), str(l)]) for r, l in zip(np.column_stack(cols), labels)]
        (d / name).write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
        return d / name

    return {
        "plain": write("plain.csv", [X[:, 0], X[:, 1], X[:, 2]]),
        "regression": write("reg.csv", [X[:, 0], X[:, 1], X[:, 2]], labels=Y_REG[:, 0]),
        "one_constant": write("const1.csv", [X[:, 0], np.full(40, 5.0), X[:, 2]]),
        "all_constant": write("const_all.csv", [np.full(40, 5.0), np.zeros(40), np.full(40, -3.0)]),
        "constant_1e300": write("const_big.csv", [X[:, 0], np.full(40, 1e300), X[:, 2]]),
        "constant_tiny": write("const_tiny.csv", [X[:, 0], np.full(40, 5e-324), X[:, 2]]),
        "jitter_1e-17": write("jitter.csv", [X[:, 0], 1.0 + np.where(np.arange(40) % 2, 2.2e-16, 0.0), X[:, 2]]),
    }


@pytest.mark.parametrize("case", ["one_constant", "all_constant", "constant_1e300", "constant_tiny", "jitter_1e-17"])
def test_cli_zero_variance_features_do_not_divide_by_zero(tmp_path, csv_files, case):
    out = tmp_path / "m.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = run("train", csv_files[case], "--hidden", "3", "--epochs", "3", "-q", "-o", out)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        net = lpio.load(out)
        scale = np.array(net.info["input_scaling"]["scale"])
        assert np.isfinite(scale).all() and (scale > 0).all()
        pred = run("predict", out, csv_files[case], "--proba")
    assert pred.exit_code == 0 and "nan" not in pred.stdout.lower() and "inf" not in pred.stdout.lower()


@pytest.mark.parametrize("data", ["plain", "regression"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cli_step_size_1e6_never_saves_a_nan(tmp_path, csv_files, data, optimizer):
    out, ck = tmp_path / "out", tmp_path / "ck"
    out.mkdir()
    result = run("train", csv_files[data], "--hidden", "4", "--epochs", "20", "--lr", "1e6", "--optimizer", optimizer,
                 "--batch-size", "1", "--checkpoint", ck, "--checkpoint-every", "5", "--no-standardize", "-q",
                 "-o", out / "m.safetensors")
    if result.exit_code == 0:
        assert all_model_files_finite(out) == 1
    else:
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and "diverged" in lines[0], result.stderr
        assert list(out.iterdir()) == []
    if ck.exists():
        all_model_files_finite(ck)


# -- float32 overflow in the squared loss ----------------------------------------------------------

@pytest.mark.parametrize("target", [1e20, 3e38, -3e38])
def test_float32_squared_loss_overflow_stops_clearly(tmp_path, target):
    """(o - y)^2 / 2 overflows float32 (max 3.4e38) although y is finite: the run stops with
    DivergenceError (the loss is inf) and writes no checkpoint with a non-finite number."""
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 1]), output_activation="identity", seed=0, dtype="float32")
    Y = np.full((40, 1), target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert not np.isnan(net.loss_value(X, Y))
        try:
            res = lp.sgd(net, X, Y, iterations=50, checkpoint=tmp_path, checkpoint_every=5, progress=False)
        except lp.DivergenceError as e:
            res = e.result
    assert all(np.isfinite(np.asarray(w)).all() for w in res.network.W)
    all_model_files_finite(tmp_path)


def test_float32_regressor_with_huge_targets(tmp_path):
    est = lp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X, np.full(40, 1e20))
        except ValueError as e:
            assert "non-finite" in str(e) or "too large" in str(e)
            return
    assert all(np.isfinite(np.asarray(w)).all() for w in est.network_.W)
    lpio.save(est, tmp_path / "m.safetensors")
