"""The estimators on Array API inputs (issue 4): torch tensors (CPU, and CUDA where there is a
GPU), array-api-strict arrays and CuPy arrays train in the input's namespace and device, and
predict / predict_proba / predict_log_proba return arrays there; score returns a float.

NumPy input is the yardstick: torch CPU float64 gives its numbers to 1e-10 (relative), float32
to float32 rounding. See docs/estimators.md, "Array API".
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import config_context
from sklearn.datasets import load_diabetes, load_iris

import layerprop as lp
from layerprop import estimators

torch = pytest.importorskip("torch")

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

F64_RTOL = 1e-10
F32_RTOL = 2e-4  # float32: torch and NumPy round differently; measured 1e-7 (sgd, adam), 8e-5 (lbfgs)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200] / X.std(0), y[:200] / 100


def _close(a, b, rtol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max(initial=0))))


def _coefs_close(a, b, rtol):
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        _close(ca, cb, rtol)


def _t(a, dtype=None):
    return torch.asarray(np.ascontiguousarray(a) if dtype is None else np.asarray(a, dtype=dtype))


CASES = [  # (solver, extra parameters)
    ("adam", {}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}),
    ("sgd", {"momentum": 0, "learning_rate": "invscaling", "learning_rate_init": 0.1}),
    ("lbfgs", {}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("solver,extra", CASES, ids=["adam", "nesterov", "sgd-invscaling", "lbfgs"])
def test_classifier_on_torch_cpu_gives_the_numpy_numbers(iris, dtype, solver, extra):
    X, y = iris
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=25, random_state=0, **extra)
    ref = lp.MLPClassifier(**params).fit(X, y)
    clf = lp.MLPClassifier(**params).fit(_t(X), _t(y))
    rtol = F64_RTOL if dtype == "float64" else F32_RTOL
    if solver == "lbfgs" and dtype == "float32":
        # L-BFGS's line search magnifies float32 rounding, and the NumPy engine's fused float32
        # kernels round differently from torch's: 25 iterations drift to ~1e-3, not ~1e-5.
        rtol = 5e-3

    w = clf.network_.W[0]
    assert isinstance(w, torch.Tensor) and w.device.type == "cpu" and str(w.dtype) == f"torch.{dtype}"
    _coefs_close(clf, ref, rtol)
    if solver != "lbfgs":
        assert clf.loss_curve_ == pytest.approx(ref.loss_curve_, rel=rtol)
    assert clf.n_iter_ == ref.n_iter_

    Xt = _t(X)
    proba, log_proba, pred = clf.predict_proba(Xt), clf.predict_log_proba(Xt), clf.predict(Xt)
    for out in (proba, log_proba):
        assert isinstance(out, torch.Tensor) and out.dtype == getattr(torch, dtype) and out.shape == (150, 3)
    assert isinstance(pred, torch.Tensor) and pred.dtype == torch.int64
    _close(proba, ref.predict_proba(X), rtol)
    _close(log_proba, ref.predict_log_proba(X), 10 * rtol)
    np.testing.assert_array_equal(pred.numpy(), ref.predict(X))
    score = clf.score(Xt, _t(y))
    assert isinstance(score, float) and score == ref.score(X, y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_regressor_on_torch_cpu_gives_the_numpy_numbers(diabetes, dtype, solver):
    X, y = diabetes
    X, y = X.astype(dtype), y.astype(dtype)
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=20, random_state=0)
    ref = lp.MLPRegressor(**params).fit(X, y)
    reg = lp.MLPRegressor(**params).fit(_t(X), _t(y))
    rtol = F64_RTOL if dtype == "float64" else F32_RTOL
    _coefs_close(reg, ref, rtol)
    pred = reg.predict(_t(X))
    assert isinstance(pred, torch.Tensor) and pred.dtype == getattr(torch, dtype) and pred.shape == (200,)
    _close(pred, ref.predict(X), rtol)
    score = reg.score(_t(X), _t(y))
    assert isinstance(score, float) and score == pytest.approx(ref.score(X, y), rel=rtol, abs=rtol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_partial_fit_on_torch_blocks_gives_the_numpy_numbers(iris, dtype):
    X, y = iris
    X = X.astype(dtype)
    rng = np.random.RandomState(0)
    order = rng.permutation(150)
    blocks = np.array_split(order, 3)
    ref = lp.MLPClassifier((5,), random_state=0)
    clf = lp.MLPClassifier((5,), random_state=0)
    for rows in blocks * 2:
        ref.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
        clf.partial_fit(_t(X[rows]), _t(y[rows]), classes=_t(np.array([0, 1, 2])))
    rtol = F64_RTOL if dtype == "float64" else F32_RTOL
    _coefs_close(clf, ref, rtol)
    assert clf.t_ == ref.t_ and isinstance(clf.network_.W[0], torch.Tensor)
    _close(clf.predict_proba(_t(X)), ref.predict_proba(X), rtol)

    reg_ref = lp.MLPRegressor(hidden_layer_sizes=(4,), random_state=0)
    reg = lp.MLPRegressor(hidden_layer_sizes=(4,), random_state=0)
    for rows in blocks:
        reg_ref.partial_fit(X[rows], X[rows, 0])
        reg.partial_fit(_t(X[rows]), _t(X[rows, 0]))
    _coefs_close(reg, reg_ref, rtol)


def test_sample_weight_validation_data_and_early_stopping_in_torch(iris):
    X, y = iris
    sw = np.linspace(0.5, 2, 150)
    params = dict(hidden_layer_sizes=(5,), max_iter=30, random_state=0, early_stopping=True,
                  n_iter_no_change=3)
    ref = lp.MLPClassifier(**params).fit(X, y, sample_weight=sw)
    clf = lp.MLPClassifier(**params).fit(_t(X), y, sample_weight=_t(sw))  # y NumPy: mixed inputs
    _coefs_close(clf, ref, F64_RTOL)
    assert clf.validation_scores_ == ref.validation_scores_

    val = dict(hidden_layer_sizes=(5,), max_iter=10, random_state=0)
    ref = lp.MLPClassifier(validation_data=(X[:30], y[:30]), **val).fit(X, y)
    clf = lp.MLPClassifier(validation_data=(_t(X[:30]), _t(y[:30])), **val).fit(_t(X), _t(y))
    assert clf.validation_scores_ == ref.validation_scores_


def test_multilabel_and_multi_output_in_torch(iris):
    X, y = iris
    Y = np.stack([y == 0, y == 2, X[:, 0] > 0], axis=1).astype(np.int64)
    ref = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, Y)
    clf = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(_t(X), _t(Y))
    pred = clf.predict(_t(X))
    assert isinstance(pred, torch.Tensor) and pred.shape == (150, 3)
    np.testing.assert_array_equal(pred.numpy(), ref.predict(X))
    _close(clf.predict_proba(_t(X)), ref.predict_proba(X), F64_RTOL)

    targets = X[:, :2] * 2 + 1
    reg_ref = lp.MLPRegressor(hidden_layer_sizes=(5,), max_iter=10, random_state=0).fit(X, targets)
    reg = lp.MLPRegressor(hidden_layer_sizes=(5,), max_iter=10, random_state=0).fit(_t(X), _t(targets))
    out = reg.predict(_t(X))
    assert isinstance(out, torch.Tensor) and out.shape == (150, 2)
    _close(out, reg_ref.predict(X), F64_RTOL)


def test_string_classes_come_back_as_numpy(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(_t(X), names)
    pred = clf.predict(_t(X))
    assert isinstance(pred, np.ndarray) and pred.dtype.kind == "U"
    assert isinstance(clf.predict_proba(_t(X)), torch.Tensor)  # probabilities are numbers: torch
    ref = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, names)
    np.testing.assert_array_equal(pred, ref.predict(X))


def test_numpy_input_after_a_torch_fit_without_dispatch_gives_numpy(iris):
    X, y = iris
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(_t(X), _t(y))
    out = clf.predict_proba(X)  # array_api_dispatch off: converted where the network is
    assert isinstance(out, np.ndarray)
    _close(out, clf.predict_proba(_t(X)).numpy(), 0)
    assert isinstance(clf.coefs_[0], np.ndarray) and isinstance(clf.intercepts_[0], np.ndarray)
    assert isinstance(clf.classes_, np.ndarray)


def test_with_dispatch_the_namespace_of_fit_is_required(iris, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # scikit-learn asks for it; layerprop hands scipy NumPy only
    X, y = iris
    with config_context(array_api_dispatch=True):
        clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(_t(X), _t(y))
        assert isinstance(clf.predict(_t(X)), torch.Tensor)
        for method in ("predict", "predict_proba", "predict_log_proba"):
            with pytest.raises(ValueError, match=rf"MLPClassifier\.{method}\(\) must use the same namespace"):
                getattr(clf, method)(X)
        with pytest.raises(ValueError, match="must use the same namespace"):
            clf.partial_fit(X, y)
        ref = lp.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)  # NumPy fit: NumPy in, NumPy out
        assert isinstance(ref.predict(X), np.ndarray)


def test_pickle_round_trip_of_a_torch_fit(iris):
    X, y = iris
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(_t(X), _t(y))
    back = pickle.loads(pickle.dumps(clf))
    assert isinstance(back.network_.W[0], torch.Tensor)
    _close(back.predict_proba(_t(X)), clf.predict_proba(_t(X)), 0)
    back.partial_fit(_t(X), _t(y))
    clf.partial_fit(_t(X), _t(y))
    _coefs_close(back, clf, 0)


def test_array_api_strict_inputs_give_the_numpy_numbers(iris):
    xps = pytest.importorskip("array_api_strict")
    X, y = iris
    for device in (xps.Device("CPU_DEVICE"), xps.Device("device1")):
        Xs, ys = xps.asarray(X, device=device), xps.asarray(y, device=device)
        ref = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(X, y)
        clf = lp.MLPClassifier((5,), max_iter=10, random_state=0).fit(Xs, ys)
        assert isinstance(clf.network_.W[0], np.ndarray)  # strict arrays train in NumPy
        _coefs_close(clf, ref, 0)
        for method in ("predict", "predict_proba", "predict_log_proba"):
            out = getattr(clf, method)(Xs)
            assert type(out).__module__.startswith("array_api_strict") and out.device == device
            _close(np.asarray(out.to_device(xps.Device("CPU_DEVICE"))), getattr(ref, method)(X), 0)
        assert clf.score(Xs, ys) == ref.score(X, y)


def test_device_cpu_with_an_input_on_a_gpu_is_a_clear_error(iris, monkeypatch):
    """The rule checked without a GPU: an input that reports a CUDA device conflicts with device='cpu'."""
    X, y = iris
    monkeypatch.setattr(estimators, "_gpu_index", lambda space: 0 if space is not None else None)
    with pytest.raises(ValueError, match=r"device='cpu' but X is on the GPU cuda:0"):
        lp.MLPClassifier(device="cpu").fit(_t(X), y)


def test_device_none_is_the_default_and_numpy_stays_numpy(iris):
    X, y = iris
    assert lp.MLPClassifier().device is None and lp.MLPRegressor().device is None
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(X, y)
    assert isinstance(clf.network_.W[0], np.ndarray) and isinstance(clf.predict_proba(X), np.ndarray)
    cpu = lp.MLPClassifier((5,), max_iter=5, random_state=0, device="cpu").fit(_t(X), y)
    assert isinstance(cpu.network_.W[0], torch.Tensor)  # a CPU tensor is on the CPU: no conflict
    with pytest.raises(ValueError, match="tf32=True needs device='cuda'"):
        lp.MLPClassifier((5,), max_iter=5, tf32=True).fit(_t(X), y)


# -- CUDA (skipped without a GPU) ---------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_cuda_input_trains_on_its_gpu_and_answers_there(iris, dtype):
    X, y = iris
    X = X.astype(dtype)
    Xc, yc = _t(X).cuda(), _t(y).cuda()
    params = dict(hidden_layer_sizes=(7,), max_iter=20, random_state=0)
    ref = lp.MLPClassifier(**params).fit(X, y)
    clf = lp.MLPClassifier(**params).fit(Xc, yc)
    assert clf.network_.W[0].is_cuda
    rtol = 1e-9 if dtype == "float64" else F32_RTOL
    _coefs_close(clf, ref, rtol)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        out = getattr(clf, method)(Xc)
        assert isinstance(out, torch.Tensor) and out.device == Xc.device
    _close(clf.predict_proba(Xc).cpu(), ref.predict_proba(X), rtol)
    assert clf.score(Xc, yc) == pytest.approx(ref.score(X, y))
    reg = lp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(Xc, Xc[:, 0])
    assert reg.predict(Xc).device == Xc.device


@needs_cuda
def test_cuda_device_rules(iris):
    X, y = iris
    Xc = _t(X).cuda()
    with pytest.raises(ValueError, match="device='cpu' but X is on the GPU"):
        lp.MLPClassifier(device="cpu", max_iter=2).fit(Xc, y)
    clf = lp.MLPClassifier((5,), device="cuda", max_iter=3, random_state=0).fit(_t(X), y)  # CPU tensor, GPU fit
    assert clf.network_.W[0].is_cuda
    out = clf.predict_proba(_t(X))
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu"
    assert isinstance(clf.predict_proba(X), np.ndarray)


@needs_cuda
def test_cupy_input(iris):
    cp = pytest.importorskip("cupy")
    X, y = iris
    Xc = cp.asarray(X)
    clf = lp.MLPClassifier((5,), max_iter=5, random_state=0).fit(Xc, cp.asarray(y))
    assert clf.network_.W[0].is_cuda
    out = clf.predict_proba(Xc)
    assert isinstance(out, cp.ndarray) and out.device == Xc.device
    assert isinstance(clf.predict(Xc), cp.ndarray)

