"""Update rules (optim.py): the book's exact step, scikit-learn's momentum/nesterov/adam, masks."""

import numpy as np
import pytest

import layerprop as lp
from layerprop.optim import OPTIMIZERS, get_optimizer


def _net(seed=0, bias=True, dtype="float64", density=0.5):
    g = lp.LayeredGraph.random([4, 5, 3], density, seed=seed, bias=bias)
    return lp.Network(g, activation="sigmoid", seed=seed, dtype=dtype)


def _data(seed=1, n=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), rng.uniform(size=(n, 3))


@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("regularize_bias", [True, False])
def test_book_step_is_exactly_the_formula(lam, regularize_bias):
    net = _net()
    X, Y = _data()
    grad = net.backprop(X, Y)
    W0 = [w.copy() for w in net.W]
    b0 = [v.copy() for v in net.b]
    eta = 0.37
    opt = get_optimizer("sgd", net, lam=lam, regularize_bias=regularize_bias)
    opt.step(net, grad.W, grad.b, eta)
    lam_b = lam if regularize_bias else 0.0
    for t in range(net.T):
        np.testing.assert_array_equal(net.W[t], W0[t] - eta * (grad.W[t] + lam * W0[t]))
        np.testing.assert_array_equal(net.b[t], b0[t] - eta * (grad.b[t] + lam_b * b0[t]))


def _sklearn_momentum(params, grads, velocities, eta, mu, nesterov):
    """scikit-learn's SGDOptimizer._get_updates, restated."""
    velocities[:] = [mu * v - eta * g for v, g in zip(velocities, grads)]
    updates = velocities
    if nesterov:
        updates = [mu * v - eta * g for v, g in zip(velocities, grads)]
    return [p + u for p, u in zip(params, updates)]


def _sklearn_adam(params, grads, ms, vs, t, eta, b1, b2, eps):
    """scikit-learn's AdamOptimizer._get_updates, restated."""
    ms[:] = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads)]
    vs[:] = [b2 * v + (1 - b2) * g ** 2 for v, g in zip(vs, grads)]
    lr = eta * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return [p - lr * m / (np.sqrt(v) + eps) for p, m, v in zip(params, ms, vs)]


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_matches_sklearn_rules_over_steps(name, lam):
    net = lp.Network(lp.LayeredGraph.dense([4, 5, 3]), seed=3)
    X, Y = _data()
    opt = get_optimizer(name, net, lam=lam, momentum=0.8, beta_1=0.85, beta_2=0.99, epsilon=1e-7)
    params = [w.copy() for w in net.W] + [v.copy() for v in net.b]
    state1 = [np.zeros_like(p) for p in params]
    state2 = [np.zeros_like(p) for p in params]
    for i in range(1, 6):
        tmp = net.copy()
        tmp.replace_params(params[:2], params[2:])
        grad = tmp.backprop(X, Y)
        grads = [g + lam * p for g, p in zip(grad.W + grad.b, params)]
        eta = 0.1 / i
        if name == "adam":
            params = _sklearn_adam(params, grads, state1, state2, i, eta, 0.85, 0.99, 1e-7)
        else:
            params = _sklearn_momentum(params, grads, state1, eta, 0.8, name == "nesterov")
        g = net.backprop(X, Y)
        opt.step(net, g.W, g.b, eta)
        for got, want in zip(list(net.W) + list(net.b), params):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("lam", [0.0, 0.1])
@pytest.mark.parametrize("bias", ["all", "masked", "none"])
def test_phantom_weights_stay_exactly_zero(name, lam, bias):
    g = lp.LayeredGraph.random([6, 7, 5, 3], 0.4, seed=5, bias=bias != "none")
    if bias == "masked":
        bm = [np.arange(k) % 2 == 0 for k in g.sizes[1:]]
        g = lp.LayeredGraph(g.sizes, g.masks, bm)
    net = lp.Network(g, seed=2)
    X, Y = _data(n=8)
    X = np.hstack([X, X[:, :2]])
    Y = Y[:, :3]
    opt = get_optimizer(name, net, lam=lam)
    for i in range(1, 8):
        grad = net.backprop(X, Y)
        opt.step(net, grad.W, grad.b, 0.5)
        for t in range(net.T):
            assert np.all(net.W[t][~net.masks[t]] == 0.0)
            if net.b[t] is not None and net.bias_masks is not None:
                assert np.all(net.b[t][~net.bias_masks[t]] == 0.0)
        for key, arr in opt.state_dict().items():
            if key == "t":
                continue
            _, kind, t = key.split(".")
            mask = (net.masks if kind == "W" else net.bias_masks)[int(t)]
            assert np.all(arr[~mask] == 0.0), key


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_torch_matches_numpy(name):
    torch = pytest.importorskip("torch")
    net = _net()
    tnet = net.to(torch)
    X, Y = _data()
    opt, topt = get_optimizer(name, net, lam=0.1), get_optimizer(name, tnet, lam=0.1)
    for _ in range(3):
        g, tg = net.backprop(X, Y), tnet.backprop(torch.asarray(X), torch.asarray(Y))
        opt.step(net, g.W, g.b, 0.3)
        topt.step(tnet, tg.W, tg.b, 0.3)
    for a, b in zip(net.W, tnet.W):
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_roundtrip_resumes_exactly(name):
    X, Y = _data()
    net_a = _net()
    opt_a = get_optimizer(name, net_a, lam=0.01)
    for _ in range(6):
        g = net_a.backprop(X, Y)
        opt_a.step(net_a, g.W, g.b, 0.2)
    net_b = _net()
    opt_b = get_optimizer(name, net_b, lam=0.01)
    for _ in range(3):
        g = net_b.backprop(X, Y)
        opt_b.step(net_b, g.W, g.b, 0.2)
    saved, net_c = opt_b.state_dict(), net_b.copy()
    opt_c = get_optimizer(name, net_c, lam=0.01)
    opt_c.load_state_dict(saved)
    for _ in range(3):
        g = net_c.backprop(X, Y)
        opt_c.step(net_c, g.W, g.b, 0.2)
    for a, c in zip(net_a.W + net_a.b, net_c.W + net_c.b):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name, kw, argname", [
    ("rmsprop", {}, "optimizer"),
    ("sgd", {"lam": -0.1}, "l2"),
    ("sgd", {"lam": float("nan")}, "l2"),
    ("momentum", {"momentum": 1.0}, "momentum"),
    ("nesterov", {"momentum": -0.1}, "momentum"),
    ("adam", {"beta_1": 1.0}, "beta_1"),
    ("adam", {"beta_2": -0.5}, "beta_2"),
    ("adam", {"epsilon": 0.0}, "epsilon"),
])
def test_bad_arguments(name, kw, argname):
    with pytest.raises(ValueError, match=argname):
        get_optimizer(name, _net(), **kw)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="lr"):
        get_optimizer("sgd", _net(), lr=0.1)
