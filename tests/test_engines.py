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
    """The book's loop, literally: v_i from the reference, w <- w - eta_i (v_i + lam w), masked.

    The reference's products run with NumPy's "invalid" flag ignored: in 2 of ~8 full runs of the
    suite this session, the first 1x5 @ 5x7 float32 product here (finite operands, finite result)
    raised "invalid value encountered in matmul" (cause not found; not reproducible alone). The
    numbers themselves are still compared by the callers, so a real NaN still fails."""
    ref, total = ReferenceEngine(), 0.0
    for n, eta in zip(rows, etas):
        with np.errstate(invalid="ignore"):
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
@pytest.mark.parametrize("regularize_bias", [True, False])
@pytest.mark.parametrize("act,loss,out", BOOK_CASES)
def test_blocked_loop_equals_reference_loop(act, loss, out, regularize_bias, dtype):
    """The compiled loop's blocks (dense W_0, here with masked later layers and masked bias edges):
    every activation and loss, the reference loop's numbers; phantom entries stay exactly 0."""
    masked = make_net(act, loss, out, dtype)
    masks = [np.ones_like(masked.masks[0])] + list(masked.masks[1:])
    g = lp.LayeredGraph(masked.k, masks, masked.bias_masks)
    net = lp.Network(g, activation=act, output_activation=out, loss=loss, seed=4, dtype=dtype)
    X, Y, _ = make_data(net, 20)
    rng = np.random.default_rng(3)
    rows, etas, lam = rng.integers(0, 20, 45), rng.uniform(0.05, 0.2, 45), 0.01
    want_net = net.copy()
    want = reference_book_sgd(want_net, X, Y, rows, etas, lam, regularize_bias)
    eng = NumbaEngine()
    eng.block = 8
    got = eng.run_book_sgd(net, X, Y, rows, etas, lam, regularize_bias)
    assert got == pytest.approx(want, rel=TOL[dtype] * 10)
    assert_close(net.W + net.b, want_net.W + want_net.b, dtype)
    phantoms_zero(net, net.W, net.b)


@needs_numba
def test_blocked_loop_is_not_used_where_the_decay_reaches_zero():
    """eta lam >= 1 (a decay 1 - eta lam <= 0: W_0 is replaced, not scaled) runs the one-pass loop,
    with the reference loop's numbers (the blocks' products of decays would divide by 0)."""
    net = make_net("sigmoid", "squared", None, "float64", masked=False, sizes=(6, 5, 2))
    X, Y, _ = make_data(net, 10)
    rows, etas = np.arange(10).repeat(3), np.full(30, 0.5)
    want_net = net.copy()
    want = reference_book_sgd(want_net, X, Y, rows, etas, 2.0, True)
    got = NumbaEngine().run_book_sgd(net, X, Y, rows, etas, 2.0, True)
    assert got == pytest.approx(want, rel=1e-11)
    assert_close(net.W + net.b, want_net.W + want_net.b, "float64")


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


# -- the fused float32 kernels (numba) --------------------------------------------------------------
FUSED_CASES = [("sigmoid", "squared", None), ("sigmoid", "softmax_cross_entropy", None),
               ("relu", "squared", "identity"), ("leaky_relu", "squared", "sigmoid"),
               ("identity", "softmax_cross_entropy", None), ("tanh", "squared", None),
               ("sigmoid", "binary_cross_entropy", None)]


@needs_numba
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("act,loss,out", FUSED_CASES)
def test_fused_kernels_equal_reference_and_numpy(act, loss, out, masked, weighted):
    """NumpyEngine(fused=True) (numba kernels for the element-wise passes) = the reference and the
    NumPy-only path, float32, on layers wide enough for several vector lanes per row."""
    net = make_net(act, loss, out, "float32", masked=masked, sizes=(37, 70, 33, 10))
    X, Y, r = make_data(net, 45)
    r = r if weighted else None
    want = ReferenceEngine().gradient_sums(net, X, Y, r)
    plain = NumpyEngine(fused=False).gradient_sums(net, X, Y, r)
    eng = NumpyEngine(fused=True)
    for n in (45, 3, 45):  # buffers reused across batch sizes
        got = eng.gradient_sums(net, X[:n], Y[:n], None if r is None else r[:n])
    assert got[0] == pytest.approx(want[0], rel=TOL["float32"])
    assert got[1] == pytest.approx(want[1], rel=TOL["float32"])
    assert_close(got[2] + got[3], want[2] + want[3], "float32")
    assert_close(got[2] + got[3], plain[2] + plain[3], "float32")
    phantoms_zero(net, got[2], got[3])
    np.testing.assert_allclose(eng.predict(net, X), net.predict(X), rtol=1e-5, atol=1e-6)


@needs_numba
def test_fused_sigmoid_exp_accuracy_and_saturation():
    """The kernels' float32 exp: sigmoid within 2 ulp-ish of float64 over the whole range; huge
    arguments saturate to 0 and 1 without nan."""
    K = numba_single.fused_kernels()
    x = np.concatenate([np.linspace(-100, 100, 200_001), [-1e30, -1e4, 1e4, 1e30, 0.0, -0.0]]).astype(np.float32)
    for kernel in (K.bias_act, K.bias_act_par):
        z = x[None, :].copy()
        kernel(z, np.zeros(1, np.float32), False, 1, np.float32(0.01))
        with np.errstate(over="ignore"):
            want = 1 / (1 + np.exp(-x.astype(np.float64)))
        assert np.all(np.isfinite(z))
        assert np.max(np.abs(z[0] - want)) <= 2.5e-7
        inner = x > -85  # below, exp(-x) is clamped at e^87: results < 2e-38 instead of smaller
        assert np.max(np.abs(z[0] - want)[inner] / want[inner]) <= 1e-6
        z = np.tile(x[:1000], (7, 1))
        b = np.linspace(-3, 3, 1000).astype(np.float32)
        kernel(z, b, True, 1, np.float32(0.01))
        s = (x[:1000] + b).astype(np.float64)  # the sum rounded to float32, as in the kernel
        np.testing.assert_allclose(z, np.tile(1 / (1 + np.exp(-s)), (7, 1)), rtol=1e-6, atol=1e-7)


@needs_numba
@pytest.mark.parametrize("lam,total,masked", [(0.01, 3.0, True), (0.0, None, False), (1e-4, 1024.0, False)])
def test_fused_update_is_the_numpy_update_bit_for_bit(lam, total, masked):
    from layerprop.engines.numpy_fast import FUSED_UPDATE_MIN, book_update_
    rng = np.random.default_rng(1)
    shape = (64, FUSED_UPDATE_MIN // 64 + 3)
    w, v = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    off = (rng.random(shape) < 0.3) if masked else None
    if masked:
        w[off] = 0
    want = book_update_(w.copy(), v.copy(), 0.1, lam, off=off, total=total, fused=False)
    got = book_update_(w.copy(), v.copy(), 0.1, lam, off=off, total=total)
    np.testing.assert_array_equal(got, want)
    K = numba_single.fused_kernels()
    par = w.copy()
    f = np.float32
    K.update_par(par, v, f(0.1), f(lam), f(1.0 if total is None else total),
                 np.zeros((1, 1), bool) if off is None else off, masked)
    np.testing.assert_array_equal(par, want)
    if total is not None:  # the book's expression
        expr = np.where(off, 0, w - 0.1 * (v / total + lam * w)) if masked else w - 0.1 * (v / total + lam * w)
        np.testing.assert_array_equal(got, expr)


def test_fused_option_checked():
    with pytest.raises(ValueError, match="fused"):
        NumpyEngine(fused="yes")
    assert NumpyEngine(fused=False).fused is False
    if not numba_single.available():
        with pytest.raises(ValueError, match="numba"):
            NumpyEngine(fused=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("masked,regularize_bias,lam", [(False, True, 1e-3), (True, False, 1e-2), (True, True, 0.0)])
def test_sgd_in_place_step_is_the_combine_then_update_loop(dtype, masked, regularize_bias, lam):
    """lp.sgd's allocation-free step (the sums folded into the update) gives bit for bit the
    weights of the plain loop: engine sums, combine (means), BookSGD.step."""
    from layerprop.optim import BookSGD
    from layerprop.sampling import batch_rows
    from layerprop.sgd import combine
    net = make_net("sigmoid", "squared", None, dtype, masked=masked, sizes=(40, 90, 70, 5))
    X, Y, _ = make_data(net, 200)
    tau, b = 23, 16
    got = lp.sgd(net, X, Y, iterations=tau, batch_size=b, step_size=0.3, l2=lam, regularize_bias=regularize_bias,
                 seed=4, eval_every=10, progress=False)
    want, eng = net.copy(), NumpyEngine()
    opt = BookSGD(want, lam=lam, regularize_bias=regularize_bias)
    for i in range(1, tau + 1):
        rows = batch_rows(4, i, 200, b, "uniform")
        _, gW, gb = combine(*eng.gradient_sums(want, X[rows], Y[rows], None))
        opt.step(want, gW, gb, 0.3)
    for u, v in zip(got.network.W + got.network.b, want.W + want.b):
        if u is not None:
            np.testing.assert_array_equal(u, v)


def book_engine_blocks():
    """(engine, block) pairs: the NumPy loop, and the compiled loop one example at a time (W_0
    updated every example, fused with the next W_0 x) and in blocks (W_0 written once per block)."""
    pairs = [(NumpyEngine, None, None)]
    if numba_single.available():  # blocks: one thread, or their products shared by 2 or 3 threads
        pairs += [(NumbaEngine, 1, None), (NumbaEngine, 7, 1), (NumbaEngine, 7, 3), (NumbaEngine, 32, 1),
                  (NumbaEngine, 32, 2)]
    return pairs


@pytest.mark.parametrize("lam", [1e-2, 0.0])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("engine,block,threads", book_engine_blocks(), ids=lambda v: getattr(v, "name", str(v)))
def test_run_book_sgd_dense_equals_reference_loop(engine, block, threads, bias, dtype, lam):
    """Dense layers take the one-pass update W (1 - eta lam) - (eta g) o^T (fused with the next
    example's W_0 x in the compiled loop, or W_0 written once per block of examples): the
    reference loop's numbers, float64 <= 1e-12. 60 rows: blocks of 7 and 32 end with a short one."""
    net = make_net("sigmoid", "squared", None, dtype, bias=bias, masked=False, sizes=(50, 20, 4))
    X, Y, _ = make_data(net, 30)
    rng = np.random.default_rng(7)
    rows, etas = rng.integers(0, 30, 60), rng.uniform(0.05, 0.3, 60)
    want_net = net.copy()
    want = reference_book_sgd(want_net, X, Y, rows, etas, lam, True)
    eng = engine()
    if block is not None:
        eng.block, eng.threads = block, threads
    got = eng.run_book_sgd(net, X, Y, rows, etas, lam, True)
    assert got == pytest.approx(want, rel=TOL[dtype] * 10)
    assert_close(net.W + net.b, want_net.W + want_net.b, dtype)


def test_fused_auto_leaves_small_batches_to_numpy():
    """fused="auto" keeps small float32 batches on NumPy (no numba import for small networks): the
    numbers are those of fused=False, bit for bit."""
    from layerprop.engines.numpy_fast import FUSED_MIN_ELEMENTS
    net = make_net("sigmoid", "softmax_cross_entropy", None, "float32", masked=False, sizes=(6, 9, 3))
    X, Y, _ = make_data(net, 20)
    assert 20 * 9 < FUSED_MIN_ELEMENTS
    got = NumpyEngine().gradient_sums(net, X, Y, None)
    want = NumpyEngine(fused=False).gradient_sums(net, X, Y, None)
    assert got[0] == want[0]
    for g, w in zip(got[2] + got[3], want[2] + want[3]):
        np.testing.assert_array_equal(g, w)
