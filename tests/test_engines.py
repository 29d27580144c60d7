"""Every engine gives the reference core's numbers (SSBD 20.6), and select_engine picks them."""

import numpy as np
import pytest

import layerprop as lp
from layerprop.engines import ENGINES, NumbaEngine, NumpyEngine, ReferenceEngine, numba_single, select_engine

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]
# (loss, output activation): the book's squared loss with any output, and the paired losses
LOSSES = [("squared", None), ("squared", "identity"), ("softmax_cross_entropy", None),
          ("binary_cross_entropy", None)]
TOL = {"float64": 1e-12, "float32": 2e-5}
needs_numba = pytest.mark.skipif(not numba_single.available(), reason="numba is not installed")


def make_net(act, loss, out, dtype, bias=True, masked=True, sizes=(5, 7, 6, 3), seed=1):
    g = (lp.LayeredGraph.random(list(sizes), density=0.6, seed=seed, bias=bias) if masked
         else lp.LayeredGraph.dense(list(sizes), bias=bias))
    if masked and bias:  # mask some bias edges too
        bm = [np.arange(k) % 3 != 1 for k in sizes[1:]]
        g = lp.LayeredGraph(g.sizes, g.masks, bm)
    return lp.Network(g, activation=act, output_activation=out, loss=loss, seed=seed + 1, dtype=dtype)


def make_data(net, n, seed=0):
    rng = np.random.default_rng(seed)
    dt = net.W[0].dtype
    X = rng.normal(size=(n, net.k[0])).astype(dt)
    Y = rng.uniform(size=(n, net.k[-1])).astype(dt)
    if net.loss.name == "softmax_cross_entropy":
        Y = np.eye(net.k[-1], dtype=dt)[rng.integers(0, net.k[-1], n)]
    return X, Y, rng.uniform(0.1, 2.0, size=n).astype(dt)


def assert_close(got, want, dtype):
    """Normwise relative error per array: max |got - want| <= tol * max |want|."""
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        scale = max(float(np.max(np.abs(w))), np.finfo(w.dtype).tiny)
        assert float(np.max(np.abs(np.asarray(g, float) - np.asarray(w, float)))) <= TOL[dtype] * scale


def phantoms_zero(net, W, b):
    for t in range(net.T):
        assert np.all(W[t][~net.masks[t]] == 0.0)
        if net.bias_masks is not None:
            assert np.all(b[t][~net.bias_masks[t]] == 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss,out", LOSSES)
@pytest.mark.parametrize("act", ACTS)
def test_numpy_engine_equals_reference(act, loss, out, bias, weighted, dtype):
    net = make_net(act, loss, out, dtype, bias=bias)
    X, Y, r = make_data(net, 13)
    r = r if weighted else None
    want = ReferenceEngine().gradient_sums(net, X, Y, r)
    got = NumpyEngine().gradient_sums(net, X, Y, r)
    assert got[0] == pytest.approx(want[0], rel=TOL[dtype])
    assert got[1] == pytest.approx(want[1], rel=TOL[dtype])
    assert_close(got[2] + got[3], want[2] + want[3], dtype)
    phantoms_zero(net, got[2], got[3])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_engine_dense_and_reused_buffers(dtype):
    """Dense layers skip the mask; calls with several batch sizes reuse buffers correctly."""
    net = make_net("sigmoid", "softmax_cross_entropy", None, dtype, masked=False, sizes=(8, 16, 4))
    X, Y, _ = make_data(net, 40)
    eng = NumpyEngine()
    for n in (40, 7, 40, 1):
        want = ReferenceEngine().gradient_sums(net, X[:n], Y[:n], None)
        got = eng.gradient_sums(net, X[:n], Y[:n], None)
        assert got[0] == pytest.approx(want[0], rel=TOL[dtype])
        assert_close(got[2] + got[3], want[2] + want[3], dtype)


def reference_book_sgd(net, X, Y, rows, etas, lam, regularize_bias):
    """The book's loop, literally: v_i from the reference, w <- w - eta_i (v_i + lam w), masked."""
    ref, total = ReferenceEngine(), 0.0
    for n, eta in zip(rows, etas):
        loss, _, gW, gb = ref.gradient_sums(net, X[n:n + 1], Y[n:n + 1], None)
        total += loss
        W = [np.where(m, w - eta * (v + lam * w), 0) for w, v, m in zip(net.W, gW, net.masks)]
        lam_b = lam if regularize_bias else 0.0
        b = [None if w is None else w - eta * (v + lam_b * w) for w, v in zip(net.b, gb)]
        if net.bias_masks is not None:
            b = [np.where(m, w, 0) for w, m in zip(b, net.bias_masks)]
        net.replace_params([w.astype(net.dtype) for w in W], [None if w is None else w.astype(net.dtype) for w in b])
    return total


BOOK_CASES = [("sigmoid", "squared", None), ("tanh", "softmax_cross_entropy", None),
              ("relu", "squared", "identity"), ("leaky_relu", "binary_cross_entropy", None),
              ("softplus", "squared", "sigmoid"), ("identity", "squared", "identity")]


def book_engines():
    engines = [NumpyEngine]
    if numba_single.available():
        engines.append(NumbaEngine)
    return engines


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("regularize_bias", [True, False])
@pytest.mark.parametrize("act,loss,out", BOOK_CASES)
@pytest.mark.parametrize("engine", book_engines(), ids=lambda e: e.name)
def test_run_book_sgd_equals_reference_loop(engine, act, loss, out, regularize_bias, dtype):
    net = make_net(act, loss, out, dtype)
    X, Y, _ = make_data(net, 20)
    rng = np.random.default_rng(3)
    rows, etas, lam = rng.integers(0, 20, 30), rng.uniform(0.05, 0.2, 30), 0.01
    want_net = net.copy()
    want = reference_book_sgd(want_net, X, Y, rows, etas, lam, regularize_bias)
    got = engine().run_book_sgd(net, X, Y, rows, etas, lam, regularize_bias)
    assert got == pytest.approx(want, rel=TOL[dtype] * 10)
    assert_close(net.W + net.b, want_net.W + want_net.b, dtype)
    phantoms_zero(net, net.W, net.b)


@needs_numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_fallback_equals_numba(dtype):
    net = make_net("sigmoid", "squared", None, dtype, bias=True, masked=False, sizes=(30, 12, 4))
    X, Y, _ = make_data(net, 50)
    rows = np.random.default_rng(5).integers(0, 50, 200)
    a, b = net.copy(), net.copy()
    la = NumbaEngine().run_book_sgd(a, X, Y, rows, np.full(200, 0.1), 1e-3)
    lb = NumpyEngine().run_book_sgd(b, X, Y, rows, np.full(200, 0.1), 1e-3)
    assert la == pytest.approx(lb, rel=TOL[dtype] * 10)
    assert_close(a.W + a.b, b.W + b.b, dtype)


def test_run_book_sgd_zero_rows_is_a_no_op():
    net = make_net("sigmoid", "squared", None, "float64")
    X, Y, _ = make_data(net, 4)
    before = net.copy()
    for engine in book_engines():
        assert engine().run_book_sgd(net, X, Y, np.zeros(0, int), np.zeros(0), 0.1) == 0.0
    assert_close(net.W + net.b, before.W + before.b, "float64")


# -- select_engine ----------------------------------------------------------------------------
def test_select_engine_choices():
    net = make_net("sigmoid", "squared", None, "float32")
    one = select_engine(net, batch_size=1, optimizer="sgd")
    assert one.name == ("numba" if numba_single.available() else "numpy")
    assert hasattr(one, "run_book_sgd")
    assert select_engine(net, batch_size=32, optimizer="sgd").name == "numpy"
    assert select_engine(net, batch_size=1, optimizer="adam").name == "numpy"
    assert select_engine(net, batch_size=1, engine="reference").name == "reference"
    assert select_engine(net, engine="numpy").name == "numpy"
    assert {"reference", "numpy", "numba"} <= set(ENGINES)


def test_select_engine_falls_back_to_reference():
    custom = (lambda a: a, lambda a: np.ones_like(a))
    net = lp.Network(lp.LayeredGraph.dense([3, 2, 1]), activation=custom, output_activation="identity")
    assert select_engine(net, batch_size=8).name == "reference"
    with pytest.raises(ValueError, match="engine='numpy'"):
        select_engine(net, engine="numpy")
    with pytest.raises(ValueError, match="not known"):
        select_engine(net, engine="fastest")


def test_select_engine_torch_is_not_a_numpy_engine():
    pytest.importorskip("torch")
    net = make_net("sigmoid", "squared", None, "float32").to("torch")
    assert select_engine(net, batch_size=1).name not in ("numpy", "numba")
    assert select_engine(net, batch_size=64).name not in ("numpy", "numba")
    assert select_engine(net, batch_size=64, engine="reference").name == "reference"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_book_update_is_the_books_expression_exactly(dtype):
    """book_update_ (in place, no allocation with tmp) = w - eta (v / total + lam w), bit for bit."""
    from layerprop.engines.numpy_fast import book_update_
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=(6, 5)).astype(dtype), rng.normal(size=(6, 5)).astype(dtype)
    off = rng.random((6, 5)) < 0.3
    w[off] = 0
    want = np.where(off, 0, w - 0.1 * (v / 3.0 + 0.01 * w))
    got = book_update_(w.copy(), v.copy(), 0.1, 0.01, off=off, total=3.0, tmp=np.empty_like(w))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(book_update_(w.copy(), v.copy(), 0.1, 0.0), w - 0.1 * v)
