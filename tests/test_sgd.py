"""lp.sgd (sgd.py) and the sampling rule (sampling.py): the book's SGD and its options."""

import itertools

import numpy as np
import pytest

import layerprop as lp
from layerprop import sampling
from layerprop.schedules import get_schedule
from layerprop.sgd import combine

# -- helpers ------------------------------------------------------------------------------------


def _problem(n=24, k=(3, 5, 2), seed=0, density=None, **net_kw):
    rng = np.random.default_rng(seed + 100)
    X = rng.normal(size=(n, k[0]))
    Y = rng.uniform(0.1, 0.9, size=(n, k[-1]))
    g = lp.LayeredGraph.dense(k) if density is None else lp.LayeredGraph.random(k, density, seed=seed)
    return lp.Network(g, activation="sigmoid", seed=seed, **net_kw), X, Y


def _bits(m):
    return np.array(list(itertools.product([0, 1], repeat=m)), dtype=float)


def _same_weights(a, b):
    for x, y in zip(list(a.W) + list(a.b), list(b.W) + list(b.b)):
        np.testing.assert_array_equal(x, y)


def _strip(history):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in history]


# -- the exact update ---------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("regularize_bias", [True, False])
def test_one_step_reference_is_exactly_the_book_update(lam, regularize_bias):
    net, X, Y = _problem()
    seed, eta = 7, 0.3
    res = lp.sgd(net, X, Y, iterations=1, batch_size=1, step_size=eta, l2=lam, seed=seed,
                 regularize_bias=regularize_bias, engine="reference")
    row = sampling.batch_rows(seed, 1, X.shape[0], 1, "uniform")
    v = net.backprop(X[row], Y[row])
    lam_b = lam if regularize_bias else 0.0
    for t in range(net.T):
        np.testing.assert_array_equal(res.network.W[t], net.W[t] - eta * (v.W[t] + lam * net.W[t]))
        np.testing.assert_array_equal(res.network.b[t], net.b[t] - eta * (v.b[t] + lam_b * net.b[t]))


@pytest.mark.parametrize("iterations", [1, 5])
@pytest.mark.parametrize("schedule", ["constant", "inverse_sqrt"])
def test_auto_engine_matches_the_book_update(iterations, schedule):
    net, X, Y = _problem()
    seed, eta, lam = 3, 0.4, 0.01
    res = lp.sgd(net, X, Y, iterations=iterations, step_size=eta, schedule=schedule, l2=lam, seed=seed,
                 engine="auto")
    W, b = [w.copy() for w in net.W], [v.copy() for v in net.b]
    ref = net.copy()
    etas = get_schedule(schedule, eta)
    for i in range(1, iterations + 1):
        row = sampling.batch_rows(seed, i, X.shape[0], 1, "uniform")
        ref.replace_params(W, b)
        v = ref.backprop(X[row], Y[row])
        W = [w - etas(i) * (g + lam * w) for w, g in zip(W, v.W)]
        b = [c - etas(i) * (g + lam * c) for c, g in zip(b, v.b)]
    for got, want in zip(list(res.network.W) + list(res.network.b), W + b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_minibatch_step_uses_the_mean_gradient():
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, iterations=1, batch_size=5, step_size=0.2, seed=1, engine="reference")
    rows = sampling.batch_rows(1, 1, X.shape[0], 5, "uniform")
    v = net.backprop(X[rows], Y[rows])
    np.testing.assert_allclose(res.network.W[0], net.W[0] - 0.2 * v.W[0], rtol=1e-13)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("bias", ["all", "masked", "none"])
def test_phantom_weights_stay_zero_after_every_step(optimizer, lam, bias):
    g = lp.LayeredGraph.random([5, 6, 3], 0.4, seed=2, bias=bias != "none")
    if bias == "masked":
        g = lp.LayeredGraph(g.sizes, g.masks, [np.arange(k) % 2 == 1 for k in g.sizes[1:]])
    net = lp.Network(g, seed=2)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 5)), rng.uniform(size=(10, 3))
    for tau in range(1, 6):  # every prefix of the run: the state after each step
        res = lp.sgd(net, X, Y, iterations=tau, step_size=0.5, l2=lam, optimizer=optimizer, batch_size=2)
        for t in range(net.T):
            assert np.all(res.network.W[t][~net.masks[t]] == 0.0)
            if net.bias_masks is not None:
                assert np.all(res.network.b[t][~net.bias_masks[t]] == 0.0)


def test_the_users_network_is_not_modified():
    net, X, Y = _problem()
    before = net.copy()
    lp.sgd(net, X, Y, iterations=50, step_size=0.5)
    _same_weights(net, before)


# -- the book's acceptance ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_reaches_full_training_accuracy(seed):
    # 2-4-1 sigmoid network, squared loss, the book's SGD (batch 1, constant eta = 2), 20 000 iterations
    X = _bits(2)
    Y = X.sum(axis=1) % 2
    net = lp.Network(lp.LayeredGraph.dense([2, 4, 1]), activation="sigmoid", seed=seed)
    res = lp.sgd(net, X, Y, iterations=20_000, step_size=2.0, seed=seed, metric="accuracy")
    assert np.array_equal(res.network.predict(X)[:, 0] > 0.5, Y > 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_4bit_parity_reaches_full_training_accuracy(seed):
    # 4-8-1 sigmoid network, bits coded as -1/+1, He init, squared loss, the book's SGD
    # (batch 1, constant eta = 1), 60 000 iterations
    X = 2 * _bits(4) - 1
    Y = (_bits(4).sum(axis=1) % 2)[:, None]
    net = lp.Network(lp.LayeredGraph.dense([4, 8, 1]), activation="sigmoid", seed=seed, init="he")
    res = lp.sgd(net, X, Y, iterations=60_000, step_size=1.0, seed=seed)
    assert np.array_equal(res.network.predict(X) > 0.5, Y > 0.5)


def test_digits_test_accuracy_at_least_97_percent():
    # docs/training.md records this run: 64-64-10 sigmoid, squared loss, batch 1, eta 0.3, lam 1e-5, 30 epochs
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import train_test_split
    X, y = datasets.load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    net = lp.Network(lp.LayeredGraph.dense([64, 64, 10]), activation="sigmoid", seed=0)
    res = lp.sgd(net, Xtr, np.eye(10)[ytr], epochs=30, step_size=0.3, l2=1e-5, seed=0)
    assert res.elapsed < 60
    assert np.mean(res.network.predict(Xte).argmax(axis=1) == yte) >= 0.97


# -- output rules, early stopping, callback, clipping, weights ----------------------------------


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def test_best_output_is_the_best_evaluated_iterate(metric):
    net, X, Y = _problem(n=40, k=(3, 6, 3))
    Xv, Yv = X[30:], Y[30:]
    Yv = np.eye(3)[np.argmax(Yv, axis=1)] if metric == "accuracy" else Yv
    res = lp.sgd(net, X[:30], Y[:30], iterations=300, step_size=2.0, validation=(Xv, Yv), eval_every=10,
                 metric=metric, seed=4)
    scores = [row["val_metric"] for row in res.history]
    best = max(scores) if metric == "accuracy" else min(scores)
    assert res.best_score == best
    assert res.history[scores.index(best)]["iteration"] == res.best_iteration
    assert [row["iteration"] for row in res.history] == list(range(10, 301, 10))
    if metric == "loss":
        assert res.network.loss_value(Xv, Yv) == pytest.approx(res.best_score, rel=1e-12)
    else:
        hits = np.mean(res.network.predict(Xv).argmax(axis=1) == Yv.argmax(axis=1))
        assert hits == res.best_score


def test_callable_metric_with_greater_is_better():
    net, X, Y = _problem()
    calls = []

    def neg_loss(n, Xa, Ya):
        calls.append(1)
        return -n.loss_value(Xa, Ya)
    neg_loss.greater_is_better = True
    res = lp.sgd(net, X, Y, iterations=40, step_size=1.0, validation=(X, Y), eval_every=10, metric=neg_loss)
    assert len(calls) == 4 and res.best_score == max(r["val_metric"] for r in res.history)
    res2 = lp.sgd(net, X, Y, iterations=40, step_size=1.0, validation=(X, Y), eval_every=10,
                  metric=(lambda n, a, b: n.loss_value(a, b), False))
    assert res2.best_score == min(r["val_metric"] for r in res2.history)


def test_average_output_is_the_mean_of_the_iterates():
    net, X, Y = _problem()
    K = 6
    res = lp.sgd(net, X, Y, iterations=K, step_size=0.5, output="average", seed=2)
    lasts = [lp.sgd(net, X, Y, iterations=k, step_size=0.5, output="last", seed=2).network for k in range(1, K + 1)]
    for t in range(net.T):
        np.testing.assert_allclose(res.network.W[t], np.mean([m.W[t] for m in lasts], axis=0), rtol=1e-12)
        np.testing.assert_allclose(res.network.b[t], np.mean([m.b[t] for m in lasts], axis=0), rtol=1e-12)


def test_last_is_the_default_without_validation():
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, iterations=30, step_size=0.5)
    assert res.recipe["output"] == "last" and res.best_iteration is None
    res_v = lp.sgd(net, X, Y, iterations=30, step_size=0.5, validation=(X, Y))
    assert res_v.recipe["output"] == "best" and res_v.best_iteration is not None


def test_early_stopping_stops():
    net, X, Y = _problem()
    # tol so large that no evaluation after the first counts as an improvement
    res = lp.sgd(net, X, Y, iterations=1000, step_size=0.5, validation=(X, Y), eval_every=10,
                 early_stopping=True, patience=3, tol=1e9)
    assert res.stopped_early and res.stop_reason == "early_stopping"
    assert res.iterations == 40 and len(res.history) == 4


def test_early_stopping_without_validation_uses_the_training_set():
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, iterations=1000, step_size=0.5, eval_every=10, early_stopping=True, patience=2, tol=1e9)
    assert res.stopped_early and res.iterations == 30


def test_callback_false_stops_and_sees_every_row():
    net, X, Y = _problem()
    rows = []

    def cb(row):
        rows.append(row)
        return len(rows) < 3
    res = lp.sgd(net, X, Y, iterations=100, step_size=0.5, eval_every=7, callback=cb)
    assert res.iterations == 21 and res.stop_reason == "callback" and res.stopped_early
    assert [r["iteration"] for r in rows] == [7, 14, 21]
    assert set(rows[0]) == {"iteration", "epoch", "eta", "train_loss", "val_loss", "val_metric", "grad_norm", "elapsed"}


@pytest.mark.parametrize("c", [1e-3, 0.05])
def test_clipping_bounds_the_step(c):
    net, X, Y = _problem()
    eta = 0.5
    res = lp.sgd(net, X, Y, iterations=1, step_size=eta, clip_norm=c, seed=1, engine="reference")
    step = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(res.network.W + res.network.b, net.W + net.b)))
    assert res.history[0]["grad_norm"] > c  # the gradient really was clipped
    assert step / eta == pytest.approx(c, rel=1e-10)


def test_zero_sample_weight_equals_dropping_the_rows():
    net, X, Y = _problem(n=20)
    r = np.random.default_rng(5).uniform(0.5, 2.0, size=20)
    r[[1, 4, 5, 13]] = 0.0
    keep = r > 0
    kw = dict(iterations=30, step_size=1.0, sampling="epochs", seed=3, engine="reference")
    weighted = lp.sgd(net, X, Y, batch_size=20, sample_weight=r, **kw).network
    dropped = lp.sgd(net, X[keep], Y[keep], batch_size=int(keep.sum()), sample_weight=r[keep], **kw).network
    plain = lp.sgd(net, X, Y, batch_size=20, **kw).network
    for t in range(net.T):
        np.testing.assert_allclose(weighted.W[t], dropped.W[t], rtol=1e-10, atol=1e-13)
        assert not np.allclose(weighted.W[t], plain.W[t], rtol=1e-6)


def test_integer_sample_weight_equals_repeating_rows():
    net, X, Y = _problem(n=10)
    r = np.array([1, 2, 1, 3, 1, 1, 2, 1, 1, 1], dtype=float)
    kw = dict(iterations=10, step_size=1.0, sampling="epochs", seed=0, engine="reference")
    weighted = lp.sgd(net, X, Y, batch_size=10, sample_weight=r, **kw).network
    rep = np.repeat(np.arange(10), r.astype(int))
    repeated = lp.sgd(net, X[rep], Y[rep], batch_size=len(rep), **kw).network
    np.testing.assert_allclose(weighted.W[0], repeated.W[0], rtol=1e-10)


# -- divergence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("validation", [False, True])
def test_divergence_names_the_iteration_and_keeps_finite_weights(engine, validation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) * 10
    Y = X @ np.array([[1.0], [2.0], [-1.0]])
    net = lp.Network(lp.LayeredGraph.dense([3, 4, 1]), activation="tanh", output_activation="identity", seed=0)
    kw = {"validation": (X, Y)} if validation else {}
    with pytest.raises(lp.DivergenceError, match=r"iteration \d+.*smaller step_size") as info:
        lp.sgd(net, X, Y, iterations=5000, step_size=1e6, eval_every=5, engine=engine, **kw)
    err = info.value
    assert isinstance(err, ArithmeticError) and err.iteration >= 1
    out = err.result.network
    assert all(np.all(np.isfinite(w)) for w in out.W + out.b)
    assert err.result.stop_reason == "diverged"


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sampling_mode", ["uniform", "epochs"])
def test_same_seed_gives_bitwise_the_same_run(engine, optimizer, sampling_mode):
    net, X, Y = _problem(density=0.6)
    kw = dict(iterations=120, step_size=0.3, optimizer=optimizer, sampling=sampling_mode, validation=(X, Y),
              eval_every=25, engine=engine, seed=11, l2=1e-3)
    a, b = lp.sgd(net, X, Y, **kw), lp.sgd(net, X, Y, **kw)
    _same_weights(a.network, b.network)
    assert _strip(a.history) == _strip(b.history)
    c = lp.sgd(net, X, Y, **{**kw, "seed": 12})
    assert not np.array_equal(a.network.W[0], c.network.W[0])


def test_recipe_records_the_run():
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, epochs=3, batch_size=4, step_size=0.2, schedule="step", step_every=5, gamma=0.5,
                 optimizer="momentum", momentum=0.8, l2=0.01, seed=9, engine="reference")
    r = res.recipe
    assert r["iterations"] == 18 and r["epochs"] == 3 and r["sampling"] == "epochs"
    assert r["schedule"] == "step" and r["schedule_params"] == {"step_every": 5, "gamma": 0.5}
    assert r["optimizer"] == "momentum" and r["optimizer_params"] == {"momentum": 0.8}
    assert (r["l2"], r["batch_size"], r["seed"], r["engine"]) == (0.01, 4, 9, "reference")
    assert res.history[-1]["epoch"] == 3.0


def test_history_train_loss_is_the_mean_since_the_last_evaluation():
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, iterations=6, step_size=0.3, eval_every=3, seed=2, engine="reference")
    w, losses = net.copy(), []
    for tau in range(1, 7):
        row = sampling.batch_rows(2, tau, X.shape[0], 1, "uniform")
        losses.append(w.loss_value(X[row], Y[row]))
        w = lp.sgd(net, X, Y, iterations=tau, step_size=0.3, seed=2, engine="reference").network
    assert res.history[0]["train_loss"] == pytest.approx(np.mean(losses[:3]), rel=1e-12)
    assert res.history[1]["train_loss"] == pytest.approx(np.mean(losses[3:]), rel=1e-12)


# -- progress -----------------------------------------------------------------------------------


def test_verbose_prints_a_line_per_evaluation(capsys):
    net, X, Y = _problem()
    res = lp.sgd(net, X, Y, iterations=30, step_size=0.3, eval_every=10, verbose=True, progress=False)
    err = capsys.readouterr().err
    assert len(res.history) == 3 and err.count("iteration ") == 3


def test_progress_bar_when_asked(capsys):
    net, X, Y = _problem()
    lp.sgd(net, X, Y, iterations=30, step_size=0.3, eval_every=10, progress=True)
    assert "30/30" in capsys.readouterr().err


def test_no_bar_when_not_a_terminal(capsys):
    net, X, Y = _problem()
    lp.sgd(net, X, Y, iterations=30, step_size=0.3)
    assert capsys.readouterr().err == ""


# -- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("kw, exc, name", [
    ({}, ValueError, "iterations"),
    ({"iterations": 5, "epochs": 1}, ValueError, "iterations"),
    ({"iterations": 0}, ValueError, "iterations"),
    ({"iterations": 2.5}, ValueError, "iterations"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"iterations": 5, "step_size": 0}, ValueError, "step_size"),
    ({"iterations": 5, "step_size": -1.0}, ValueError, "step_size"),
    ({"iterations": 5, "l2": -0.1}, ValueError, "l2"),
    ({"iterations": 5, "batch_size": 0}, ValueError, "batch_size"),
    ({"iterations": 5, "batch_size": 25}, ValueError, "batch_size"),
    ({"iterations": 5, "sampling": "bootstrap"}, ValueError, "sampling"),
    ({"iterations": 5, "schedule": "linear"}, ValueError, "schedule"),
    ({"iterations": 5, "optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"iterations": 5, "optimizer": "adam", "beta_1": 1.5}, ValueError, "beta_1"),
    ({"iterations": 5, "output": "best"}, ValueError, "validation"),
    ({"iterations": 5, "output": "median"}, ValueError, "output"),
    ({"iterations": 5, "metric": "f1"}, TypeError, "metric"),
    ({"iterations": 5, "metric": lambda n, x, y: 0.0}, TypeError, "greater_is_better"),
    ({"iterations": 5, "patience": 0}, ValueError, "patience"),
    ({"iterations": 5, "tol": -1}, ValueError, "tol"),
    ({"iterations": 5, "clip_norm": 0}, ValueError, "clip_norm"),
    ({"iterations": 5, "eval_every": 0}, ValueError, "eval_every"),
    ({"iterations": 5, "seed": -1}, ValueError, "seed"),
    ({"iterations": 5, "seed": 1.5}, ValueError, "seed"),
    ({"iterations": 5, "sample_weight": -np.ones(24)}, ValueError, "sample_weight"),
    ({"iterations": 5, "sample_weight": np.ones(3)}, ValueError, "sample_weight"),
    ({"iterations": 5, "validation": (np.ones((3, 3)),)}, TypeError, "validation"),
    ({"iterations": 5, "validation": (np.ones((3, 4)), np.ones((3, 2)))}, ValueError, "X"),
    ({"iterations": 5, "engine": "warp"}, ValueError, "engine"),
    ({"iterations": 5, "resume": True}, ValueError, "checkpoint"),
    ({"iterations": 5, "checkpoint_every": 3}, ValueError, "checkpoint"),
    ({"iterations": 5, "callback": 3}, TypeError, "callback"),
    ({"iterations": 5, "progress": "yes"}, TypeError, "progress"),
])
def test_bad_arguments_name_the_argument(kw, exc, name):
    net, X, Y = _problem()
    with pytest.raises(exc, match=name):
        lp.sgd(net, X, Y, **kw)


@pytest.mark.parametrize("X_shape, Y_shape, name", [((24, 4), (24, 2), "X"), ((24, 3), (24, 3), "Y"),
                                                      ((24, 3), (23, 2), "Y"), ((3,), (2,), "X")])
def test_bad_data_shapes(X_shape, Y_shape, name):
    net, _, _ = _problem()
    with pytest.raises(ValueError, match=name):
        lp.sgd(net, np.zeros(X_shape), np.zeros(Y_shape), iterations=3)


def test_untrainable_network_is_refused():
    net = lp.Network(lp.LayeredGraph.dense([2, 2, 1]), activation="sign", output_activation="identity")
    with pytest.raises(ValueError, match="sign"):
        lp.sgd(net, np.zeros((4, 2)), np.zeros(4), iterations=3)


def test_not_a_network_is_a_type_error():
    with pytest.raises(TypeError, match="net"):
        lp.sgd("net", np.zeros((4, 2)), np.zeros(4), iterations=3)


def test_distributed_outside_torchrun_is_a_clear_error(monkeypatch):
    pytest.importorskip("torch")
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    net, X, Y = _problem()
    with pytest.raises(Exception, match="not started by torchrun"):
        lp.sgd(net, X, Y, iterations=3, distributed=True)


# -- combine and sampling -----------------------------------------------------------------------


def test_combine_makes_means_after_the_reduce_hook():
    gW, gb = [np.array([[2.0, 4.0]])], [np.array([6.0])]
    assert combine(3.0, 2.0, gW, gb)[0] == 1.5
    seen = []

    def reduce(loss_sum, weight_sum, W, b):  # as an all-reduce over two equal ranks would
        seen.append(weight_sum)
        return 2 * loss_sum, 2 * weight_sum, [2 * w for w in W], [2 * v for v in b]
    loss, W, b = combine(3.0, 2.0, gW, gb, reduce=reduce)
    assert seen == [2.0] and loss == 1.5
    np.testing.assert_array_equal(W[0], [[1.0, 2.0]])
    np.testing.assert_array_equal(b[0], [3.0])
    loss, W, b = combine(0.0, 0.0, gW, gb)
    assert loss == 0.0 and not W[0].any()


@pytest.mark.parametrize("mode", ["uniform", "epochs"])
@pytest.mark.parametrize("n, b", [(10, 1), (10, 3), (7, 7), (5000, 2)])
def test_rows_for_range_agrees_with_batch_rows(mode, n, b):
    for start, stop in [(1, 2), (1, 9), (4, 13), (2040, 2060)]:
        flat = sampling.rows_for_range(5, start, stop, n, b, mode)
        each = np.concatenate([sampling.batch_rows(5, i, n, b, mode) for i in range(start, stop)])
        np.testing.assert_array_equal(flat, each)


@pytest.mark.parametrize("n, b", [(10, 3), (9, 3), (10, 1)])
def test_epochs_mode_uses_each_row_once_per_epoch(n, b):
    nb = sampling.batches_per_epoch(n, b)
    for e in range(3):
        rows = np.concatenate([sampling.batch_rows(1, e * nb + j + 1, n, b, "epochs") for j in range(nb)])
        assert sorted(rows) == list(range(n))
    assert sampling.examples_seen(2 * nb, n, b, "epochs") == 2 * n


def test_uniform_sampling_is_a_pure_function_of_seed_and_iteration():
    a = [sampling.batch_rows(3, i, 50, 2, "uniform").tolist() for i in (1, 5000, 2)]
    sampling._block.cache_clear()
    b = [sampling.batch_rows(3, i, 50, 2, "uniform").tolist() for i in (1, 5000, 2)]
    assert a == b
    counts = np.bincount(sampling.rows_for_range(0, 1, 50_001, 10, 1, "uniform"), minlength=10)
    assert counts.min() > 4500 and counts.max() < 5500  # uniform over the rows, with replacement


# -- other array namespaces ---------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["torch", "array_api_strict"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_other_namespaces_match_numpy(namespace, optimizer):
    xp = pytest.importorskip(namespace)
    net, X, Y = _problem(density=0.6)
    kw = dict(iterations=40, step_size=0.3, optimizer=optimizer, l2=0.01, batch_size=4, output="average", seed=1)
    ref = lp.sgd(net, X, Y, engine="reference", **kw)
    res = lp.sgd(net.to(xp), xp.asarray(X), xp.asarray(Y), validation=(xp.asarray(X), xp.asarray(Y)), **kw)
    for a, b in zip(res.network.W + res.network.b, ref.network.W + ref.network.b):
        np.testing.assert_allclose(lp._xp.to_numpy(a), b, rtol=1e-12, atol=1e-14)
