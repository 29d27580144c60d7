"""The compiled minibatch loop (engines/numba_batch.py) gives the book's minibatch SGD: the
reference core's gradient, w <- w - eta_i (v_i + lam w) on the edges of E, float32."""

import os
import signal
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import layerprop as lp
from layerprop.engines import NumbaEngine, ReferenceEngine, numba_single, select_engine
from layerprop.memmap import open_npy

pytest.importorskip("numba")
from layerprop.engines import numba_batch

TOL = 3e-5  # float32, normwise, after a dozen steps


def make_net(act, loss, out=None, masked=False, bias=True, sizes=(37, 70, 33, 10), seed=1):
    g = (lp.LayeredGraph.random(list(sizes), density=0.6, seed=seed, bias=bias) if masked
         else lp.LayeredGraph.dense(list(sizes), bias=bias))
    if masked and bias:
        g = lp.LayeredGraph(g.sizes, g.masks, [np.arange(k) % 3 != 1 for k in sizes[1:]])
    return lp.Network(g, activation=act, output_activation=out, loss=loss, seed=seed + 1, dtype="float32")


def make_data(net, n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.k[0])).astype(np.float32)
    if net.loss.name == "softmax_cross_entropy":
        Y = np.eye(net.k[-1], dtype=np.float32)[rng.integers(0, net.k[-1], n)]
    else:
        Y = rng.uniform(size=(n, net.k[-1])).astype(np.float32)
    return X, Y


def reference_minibatch_sgd(net, X, Y, rows, etas, lam, regularize_bias):
    """The book's loop, literally, in float64: v_i = the reference's mean gradient on the batch,
    w <- w - eta_i (v_i + lam w), phantom edges 0. Returns the loss sum."""
    net = net.astype("float64")
    ref, total = ReferenceEngine(), 0.0
    for r, eta in zip(rows, etas):
        loss, n, gW, gb = ref.gradient_sums(net, X[r].astype(float), Y[r].astype(float), None)
        total += loss
        W = [np.where(m, w - eta * (v / n + lam * w), 0) for w, v, m in zip(net.W, gW, net.masks)]
        lam_b = lam if regularize_bias else 0.0
        b = [None if w is None else w - eta * (v / n + lam_b * w) for w, v in zip(net.b, gb)]
        if net.bias_masks is not None:
            b = [np.where(m, w, 0) for w, m in zip(b, net.bias_masks)]
        net.replace_params(W, b)
    return total, net


def assert_close(got, want, tol=TOL):
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        scale = max(float(np.max(np.abs(w))), 1e-30)
        err = float(np.max(np.abs(np.asarray(g, float) - np.asarray(w, float))))
        assert err <= tol * scale, (err, scale)


CASES = [("sigmoid", "squared", None), ("relu", "softmax_cross_entropy", None),
         ("leaky_relu", "squared", "identity"), ("identity", "squared", "sigmoid"),
         ("sigmoid", "softmax_cross_entropy", None)]


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("masked,bias,regularize_bias,lam", [(False, True, True, 1e-2), (True, True, False, 1e-2),
                                                            (True, False, True, 0.0), (False, False, True, 0.0)])
@pytest.mark.parametrize("act,loss,out", CASES)
def test_compiled_minibatch_loop_equals_the_books_loop(act, loss, out, masked, bias, regularize_bias, lam, threads,
                                                        split):
    """Both ways of the second region: the update written by the GEMMs of each thread's columns,
    and (split) each thread's own rows' gradient summed in the first region, added in the second."""
    net = make_net(act, loss, out, masked=masked, bias=bias)
    X, Y = make_data(net)
    rng = np.random.default_rng(3)
    rows, etas = rng.integers(0, len(X), (12, 13)), rng.uniform(0.05, 0.3, 12)  # 13 rows: uneven shares
    want_loss, want = reference_minibatch_sgd(net, X, Y, rows, etas, lam, regularize_bias)
    got = numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, lam, regularize_bias, n_threads=threads, split=split)
    assert got == pytest.approx(want_loss, rel=TOL)
    assert_close(net.W + net.b, want.W + want.b)
    for t in range(net.T):  # phantom edges stay exactly 0
        assert np.all(net.W[t][~np.asarray(net.masks[t])] == 0.0)
        if bias and net.bias_masks is not None:
            assert np.all(net.b[t][~np.asarray(net.bias_masks[t])] == 0.0)


@pytest.mark.parametrize("split", [False, True])
def test_deep_network_and_batch_smaller_than_threads(split):
    net = make_net("relu", "squared", "identity", sizes=(9, 16, 12, 8, 4))
    X, Y = make_data(net, 40)
    rows, etas = np.random.default_rng(4).integers(0, 40, (7, 2)), np.full(7, 0.1)
    want_loss, want = reference_minibatch_sgd(net, X, Y, rows, etas, 1e-3, True)
    got = numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, 1e-3, n_threads=4, split=split)  # 2 rows, 4 threads
    assert got == pytest.approx(want_loss, rel=TOL)
    assert_close(net.W + net.b, want.W + want.b)


@pytest.mark.parametrize("rule", [None, "momentum", "adam"])
@pytest.mark.parametrize("sizes", [(9, 2, 3), (5, 3)])
def test_more_threads_than_first_layer_neurons(sizes, rule):
    """Small batches share out layer 1's neurons: with 4 threads and 2-3 neurons some threads get
    none (and some no columns of the next layer)."""
    from layerprop.optim import get_optimizer
    net = make_net("relu", "softmax_cross_entropy", sizes=sizes, masked=True)
    X, Y = make_data(net, 30)
    rows, etas = np.random.default_rng(0).integers(0, 30, (6, 5)), np.full(6, 0.05)
    if rule is None:
        want_loss, want = reference_minibatch_sgd(net, X, Y, rows, etas, 1e-2, True)
        got = numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, 1e-2, n_threads=4, split=False)
        assert got == pytest.approx(want_loss, rel=TOL)
    else:
        want, _ = reference_rule_sgd(net, X, Y, rows, etas, rule, 1e-2, True)
        numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, 1e-2, n_threads=4, split=False,
                                      opt=get_optimizer(rule, net, lam=1e-2))
    assert_close(net.W + net.b, want.W + want.b, tol=1e-4 if rule == "adam" else TOL)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("loss,out", [("squared", "sigmoid"), ("softmax_cross_entropy", None)])
def test_network_without_hidden_layer(loss, out, split, threads):
    """T = 1: the first layer is the output layer (small batches: its neurons shared out first)."""
    net = make_net("sigmoid", loss, out, masked=True, sizes=(37, 7))
    X, Y = make_data(net)
    rng = np.random.default_rng(5)
    rows, etas = rng.integers(0, len(X), (9, 11)), rng.uniform(0.05, 0.3, 9)
    want_loss, want = reference_minibatch_sgd(net, X, Y, rows, etas, 1e-2, True)
    got = numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, 1e-2, n_threads=threads, split=split)
    assert got == pytest.approx(want_loss, rel=TOL)
    assert_close(net.W + net.b, want.W + want.b)


def test_supports_only_what_it_computes():
    assert numba_batch.supports(make_net("sigmoid", "squared"))
    assert numba_batch.supports(make_net("relu", "softmax_cross_entropy"))
    assert not numba_batch.supports(make_net("tanh", "squared"))  # no fused tanh kernel
    assert not numba_batch.supports(make_net("sigmoid", "binary_cross_entropy"))
    assert not numba_batch.supports(make_net("sigmoid", "squared").astype("float64"))


def test_threads_follow_the_blas_limit():
    with threadpool_limits(1):
        assert numba_batch.threads() == 1
    assert numba_batch.threads() >= 1


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("batch", [32, numba_batch.SPLIT_MIN_ROWS])
def test_select_engine_and_sgd_use_it_for_large_float32_batches(monkeypatch, batch, masked):
    """lp.sgd picks the compiled loop for float32 batches of >= FUSED_MIN_ELEMENTS activations and
    gives the step-by-step path's weights (shuffled epochs: the last batch is shorter). Batch
    SPLIT_MIN_ROWS takes the split second region where there are two threads."""
    net = make_net("sigmoid", "softmax_cross_entropy", sizes=(20, 300, 10), masked=masked)
    X, Y = make_data(net, 250)
    assert select_engine(net, batch_size=batch).name == "numba"
    assert NumbaEngine().minibatch_ok(net, 32) and not NumbaEngine().minibatch_ok(net, 16)
    calls = []
    real = numba_batch.run_minibatch_sgd
    monkeypatch.setattr(numba_batch, "run_minibatch_sgd", lambda *a, **k: calls.append(a[3].shape) or real(*a, **k))
    kw = {"epochs": 3, "batch_size": batch, "step_size": 0.2, "l2": 1e-3, "validation": (X[:50], Y[:50]),
          "eval_every": 5}
    fast = lp.sgd(net, X, Y, **kw)
    step = lp.sgd(net, X, Y, engine="numpy", **kw)
    last = 250 % batch  # 250 = 7 x 32 + 26 = 128 + 122
    assert calls and any(len(c) == 2 and c[1] == last for c in calls)
    assert fast.iterations == step.iterations == 3 * -(-250 // batch)
    assert_close(fast.network.W + fast.network.b, step.network.W + step.network.b, tol=2e-4)
    assert [h["train_loss"] for h in fast.history] == pytest.approx([h["train_loss"] for h in step.history], rel=1e-4)
    # ||v_i|| of each evaluated iteration (inside the loop where it splits: the rules, batch SPLIT_MIN_ROWS)
    assert [h["grad_norm"] for h in fast.history] == pytest.approx([h["grad_norm"] for h in step.history], rel=1e-4)


def test_memmap_rows_are_read_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_single, "MEMMAP_CHUNK", 64)  # several chunks
    net = make_net("sigmoid", "squared")
    X, Y = make_data(net, 300)
    np.save(tmp_path / "X.npy", X)
    rows, etas = np.random.default_rng(2).integers(0, 300, (40, 16)), np.full(40, 0.1)
    a, b = net.copy(), net.copy()
    la = NumbaEngine().run_minibatch_sgd(a, X, Y, rows, etas, 1e-3)
    lb = NumbaEngine().run_minibatch_sgd(b, open_npy(tmp_path / "X.npy"), Y, rows, etas, 1e-3)
    assert la == pytest.approx(lb, rel=1e-6)
    for u, v in zip(a.W + a.b, b.W + b.b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_trains_with_the_numpy_step():
    """After the parent ran the parallel loop, a forked child must not start numba's OpenMP pool
    (numba terminates such a child): lp.sgd there takes the NumPy engine's step (batch 32) and the
    one-thread blocks (batch 1), and still trains."""
    net = make_net("sigmoid", "squared", sizes=(20, 300, 10))
    X, Y = make_data(net, 64)
    lp.sgd(net, X, Y, epochs=1, batch_size=32, progress=False)  # the parallel loop runs here
    assert numba_batch.usable()
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if it trained with the loop switched off
        code = 3
        try:
            res = lp.sgd(net, X, Y, epochs=2, batch_size=32, progress=False)
            one = lp.sgd(net, X, Y, epochs=1, batch_size=1, progress=False)  # the batch-1 blocks: one thread
            ok = np.isfinite(res.network.W[0]).all() and np.isfinite(one.network.W[0]).all()
            code = 0 if ok and not numba_batch.usable() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_compiled_functions_can_be_cached_on_disk():
    """Every cached numba function is defined at module level: numba keys a closure's cache entry
    by its captured values, which for captured compiled functions differ in every process (each
    process then compiled the loops again, 4-8 s)."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    from layerprop.engines import _compiled
    cached = [f for f in vars(_compiled).values() if isinstance(f, CPUDispatcher) and not isinstance(f._cache, NullCache)]
    names = {f.py_func.__name__ for f in cached}
    assert {"run", "run_blocked", "run_blocked_parallel", "run_minibatch", "_bias_act_one", "gemm"} <= names
    for f in cached:
        assert f.py_func.__closure__ is None, f.py_func.__qualname__


# -- the update rules of optim.py in the loop (momentum, nesterov, adam) ----------------------------
def reference_rule_sgd(net, X, Y, rows, etas, name, lam, regularize_bias):
    """The step-by-step loop in float64: the reference's mean gradient, then ``optim``'s rule."""
    from layerprop.optim import get_optimizer
    net = net.astype("float64")
    opt = get_optimizer(name, net, lam=lam, regularize_bias=regularize_bias)
    ref = ReferenceEngine()
    for r, eta in zip(rows, etas):
        _, n, gW, gb = ref.gradient_sums(net, X[r].astype(float), Y[r].astype(float), None)
        opt.step(net, [g / n for g in gW], [None if g is None else g / n for g in gb], float(eta))
    return net, opt


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("masked,bias,regularize_bias", [(False, True, True), (True, True, False), (True, False, True)])
@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_compiled_loop_runs_the_update_rules_of_optim(name, masked, bias, regularize_bias, threads, split):
    """Both second regions: the threads' parts of the summed gradient added up (split), and for
    small batches the whole sum written by each thread's share of columns (rows of W_0)."""
    from layerprop.optim import get_optimizer
    net = make_net("relu", "softmax_cross_entropy", masked=masked, bias=bias)
    X, Y = make_data(net)
    rng = np.random.default_rng(5)
    rows, etas = rng.integers(0, len(X), (12, 13)), rng.uniform(0.002, 0.02, 12)
    want, want_opt = reference_rule_sgd(net, X, Y, rows, etas, name, 1e-2, regularize_bias)
    opt = get_optimizer(name, net, lam=1e-2, regularize_bias=regularize_bias)
    numba_batch.run_minibatch_sgd(net, X, Y, rows, etas, 1e-2, regularize_bias, n_threads=threads, opt=opt,
                                  split=split)
    assert opt.t == want_opt.t == 12
    assert_close(net.W + net.b, want.W + want.b, tol=1e-4 if name == "adam" else TOL)
    for key in want_opt.state:  # the optimizer state, updated in place, is the rule's state
        assert_close(opt.state[key][0] + opt.state[key][1], want_opt.state[key][0] + want_opt.state[key][1],
                     tol=1e-4 if name == "adam" else TOL)
    for t in range(net.T):  # phantom entries of the weights and of the state stay exactly 0
        off = ~np.asarray(net.masks[t])
        assert np.all(net.W[t][off] == 0.0)
        assert all(np.all(opt.state[key][0][t][off] == 0.0) for key in opt.state)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_sgd_with_a_rule_uses_the_loop_and_resumes_bitwise(tmp_path, monkeypatch, optimizer):
    """lp.sgd takes the compiled loop for momentum and adam too: the step-by-step path's numbers
    (float32 tolerance), and a resumed run is the uninterrupted one bit for bit."""
    net = make_net("sigmoid", "softmax_cross_entropy", sizes=(20, 300, 10))
    X, Y = make_data(net, 250)
    assert select_engine(net, batch_size=64, optimizer=optimizer).name == "numba"
    calls = []
    real = numba_batch.run_minibatch_sgd
    monkeypatch.setattr(numba_batch, "run_minibatch_sgd", lambda *a, **k: calls.append(1) or real(*a, **k))
    kw = {"epochs": 3, "batch_size": 64, "step_size": 0.01, "l2": 1e-3, "optimizer": optimizer,
          "validation": (X[:50], Y[:50]), "eval_every": 5}  # (checkpoints: every evaluation)
    fast = lp.sgd(net, X, Y, checkpoint=tmp_path / "a", **kw)
    assert calls
    step = lp.sgd(net, X, Y, engine="numpy", **kw)
    assert_close(fast.network.W + fast.network.b, step.network.W + step.network.b, tol=1e-4)
    assert [h["train_loss"] for h in fast.history] == pytest.approx([h["train_loss"] for h in step.history], rel=1e-4)
    # ||v_i|| of each evaluated iteration (inside the loop where it splits: the rules, batch SPLIT_MIN_ROWS)
    assert [h["grad_norm"] for h in fast.history] == pytest.approx([h["grad_norm"] for h in step.history], rel=1e-4)
    first = lp.sgd(net, X, Y, checkpoint=tmp_path / "b", **{**kw, "epochs": 1})
    resumed = lp.sgd(net, X, Y, checkpoint=tmp_path / "b", resume=True, **kw)
    assert first.iterations < resumed.iterations == fast.iterations
    for u, v in zip(fast.network.W + fast.network.b, resumed.network.W + resumed.network.b):
        np.testing.assert_array_equal(u, v)


DIVERGE = """
import numpy as np, layerprop as lp
rng = np.random.default_rng(0)
X = (rng.normal(size=(250, 20)) * 50).astype(np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 250)]
net = lp.Network(lp.LayeredGraph.dense([20, 300, 10]), activation="relu", loss="softmax_cross_entropy", seed=2,
                 dtype="float32")
for engine in ("auto", "numpy"):
    try:
        lp.sgd(net, X, Y, epochs=5, batch_size=64, step_size=1e5, optimizer="momentum", engine=engine)
    except lp.DivergenceError as e:
        print(e.iteration)
"""


def test_a_diverging_rule_run_names_the_step_paths_iteration():
    """A non-finite loss in the loop: the chunk is redone step by step from its first weights and
    optimizer state, and the error names the same iteration as the NumPy engine's run. (In a
    child process, so that its inf and NaN stay out of the test worker's memory: one full run of
    the suite this session saw a spurious "invalid value encountered in matmul" in later tiny
    float32 products of finite numbers on the same worker; the cause was not established.)"""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-c", DIVERGE], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    first, second = res.stdout.split()
    assert first == second


CONCURRENT = """
import threading, numpy as np, layerprop as lp, numba
rng = np.random.default_rng(0)
X = rng.random((512, 64), dtype=np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 512)]
net = lp.Network(lp.LayeredGraph.dense([64, 512, 10]), activation="relu", loss="softmax_cross_entropy", seed=0,
                 dtype="float32")
out = []
def work(seed, b):
    out.append(lp.sgd(net, X, Y, epochs=5, batch_size=b, seed=seed, progress=False).iterations)
ts = [threading.Thread(target=work, args=(s, b)) for s in range(2) for b in (1, 64)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(out), numba.threading_layer())
"""


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_training_in_several_python_threads_at_once(layer):
    """lp.sgd from several Python threads at once (batch 1 and 64, so both compiled loops): numba's
    workqueue layer aborts the process on concurrent parallel launches, so there the calls take
    turns (``numba_batch.call_parallel``); OpenMP or TBB run them side by side."""
    import subprocess
    import sys
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    res = subprocess.run([sys.executable, "-c", CONCURRENT], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-1] in (("workqueue",) if layer == "workqueue" else ("omp", "tbb", "workqueue"))
    assert res.stdout.startswith("[40, 40, 2560, 2560]")
