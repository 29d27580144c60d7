"""Backpropagation against independent oracles: the book's literal loops, finite differences,
PyTorch autograd; and its own invariants (batch mean, phantom zeros, dtypes)."""

import numpy as np
import pytest

import layerprop as lp
from layerprop.reference import backprop_literal

from _nets import DIFFERENTIABLE, LOSS_OUTPUTS, random_data, random_net, rel_err

CASES = [(act, loss, out, bias) for act in DIFFERENTIABLE for loss, out in LOSS_OUTPUTS
         for bias in (True, False)]


def _ids(case):
    return "-".join(str(c) for c in case)


@pytest.mark.parametrize("act, loss, out, bias", CASES, ids=[_ids(c) for c in CASES])
def test_matches_literal_loops(act, loss, out, bias):
    net = random_net(activation=act, loss=loss, output=out, bias=bias, seed=hash(act) % 100)
    X, Y = random_data(net, n=1, loss=loss)
    gr = net.backprop(X[0], Y[0])
    gW, gb = backprop_literal(net, X[0], Y[0])
    for t in range(net.T):
        assert rel_err(gr.W[t], gW[t]) <= 1e-9
        if bias:
            assert rel_err(gr.b[t], gb[t]) <= 1e-9


@pytest.mark.parametrize("act, loss, out, bias", CASES, ids=[_ids(c) for c in CASES])
def test_matches_torch_autograd(act, loss, out, bias):
    torch = pytest.importorskip("torch")
    net = random_net(activation=act, loss=loss, output=out, bias=bias, seed=3)
    X, Y = random_data(net, n=4, loss=loss)
    gr = net.backprop(X, Y)
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda z: z,
           "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
           "softplus": torch.nn.functional.softplus}
    W = [torch.tensor(w, requires_grad=True) for w in net.W]
    b = [None if v is None else torch.tensor(v, requires_grad=True) for v in net.b]
    o = torch.tensor(X)
    for t in range(net.T):
        a = o @ (W[t] * torch.tensor(net.masks[t])).T
        if b[t] is not None:
            a = a + b[t] * torch.tensor(net.bias_masks[t])
        o = fns[net.activation_names[t]](a) if t < net.T - 1 or loss != "binary_cross_entropy" else a
    y = torch.tensor(Y)
    if loss == "squared":
        rows = 0.5 * ((o - y) ** 2).sum(dim=1)
    elif loss == "softmax_cross_entropy":
        rows = -(y * torch.log_softmax(o, dim=1)).sum(dim=1)
    else:
        rows = torch.nn.functional.binary_cross_entropy_with_logits(o, y, reduction="none").sum(dim=1)
    rows.mean().backward()
    assert gr.loss == pytest.approx(rows.mean().item(), rel=1e-12)
    for t in range(net.T):
        assert rel_err(gr.W[t], W[t].grad.numpy()) <= 1e-9
        if bias:
            assert rel_err(gr.b[t], b[t].grad.numpy()) <= 1e-9


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "identity", "relu", "leaky_relu"])
@pytest.mark.parametrize("loss, out", LOSS_OUTPUTS, ids=[f"{l}-{o}" for l, o in LOSS_OUTPUTS])
def test_finite_differences(act, loss, out):
    net = random_net(activation=act, loss=loss, output=out, seed=5, scale=0.7)
    X, Y = random_data(net, n=3, loss=loss)
    if act in ("relu", "leaky_relu"):  # stay away from the kink at 0
        a = net.forward(X).a
        assert min(np.min(np.abs(v)) for v in a[1:]) > 1e-4
    res = lp.gradcheck(net, X, Y)
    assert res.ok and res.max_rel_error <= 1e-6, str(res)


def test_gradcheck_names_worst_edge_when_wrong():
    net = random_net(seed=2)
    X, Y = random_data(net, n=2)
    res = lp.gradcheck(net, X, Y)
    assert res.worst_tensor in res.per_tensor and len(res.worst_edge) == 3
    # break the loss by a constant factor: finite differences then disagree with backprop
    net2 = net.copy()
    net2.loss_value = lambda *a, **k: 2 * lp.Network.loss_value(net2, *a, **k)
    net2.to = lambda *a, **k: net2
    net2.astype = lambda *a, **k: net2
    bad = lp.gradcheck(net2, X, Y)
    assert not bad.ok and bad.max_rel_error == pytest.approx(0.5, rel=1e-4)


def test_batch_gradient_is_mean_of_single_gradients():
    net = random_net(seed=4)
    X, Y = random_data(net, n=6)
    batch = net.backprop(X, Y)
    singles = [net.backprop(X[n], Y[n]) for n in range(6)]
    for t in range(net.T):
        np.testing.assert_allclose(batch.W[t], np.mean([s.W[t] for s in singles], axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(batch.b[t], np.mean([s.b[t] for s in singles], axis=0), rtol=1e-12, atol=1e-15)
    assert batch.loss == pytest.approx(np.mean([s.loss for s in singles]), rel=1e-12)


def test_per_example_gradients():
    net = random_net(seed=6)
    X, Y = random_data(net, n=4)
    per = net.backprop(X, Y, per_example=True)
    for n in range(4):
        one = net.backprop(X[n], Y[n])
        for t in range(net.T):
            np.testing.assert_allclose(per.W[t][n], one.W[t], rtol=1e-12, atol=1e-15)


def test_sample_weight_is_weighted_mean():
    net = random_net(seed=8)
    X, Y = random_data(net, n=3)
    w = np.array([1.0, 0.0, 3.0])
    g = net.backprop(X, Y, sample_weight=w)
    g_ref = net.backprop(X[[0, 2, 2, 2]], Y[[0, 2, 2, 2]])
    for t in range(net.T):
        np.testing.assert_allclose(g.W[t], g_ref.W[t], rtol=1e-12)


@pytest.mark.parametrize("act, loss, out", [(a, l, o) for a in DIFFERENTIABLE for l, o in LOSS_OUTPUTS])
def test_phantom_entries_exactly_zero(act, loss, out):
    net = random_net(activation=act, loss=loss, output=out, density=0.4, seed=9)
    X, Y = random_data(net, n=5, loss=loss)
    gr = net.backprop(X, Y)
    for t in range(net.T):
        assert np.all(gr.W[t][~net.masks[t]] == 0.0)
        assert np.all(gr.b[t][~net.bias_masks[t]] == 0.0)
        assert np.signbit(gr.W[t][~net.masks[t]]).sum() == 0  # +0.0, not -0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_preserved(dtype):
    net = random_net(dtype=dtype)
    X, Y = random_data(net, n=3)
    X, Y = X.astype(dtype), Y.astype(dtype)
    tr = net.forward(X)
    gr = net.backprop(X, Y)
    assert all(o.dtype == np.dtype(dtype) for o in tr.o[1:])
    assert all(w.dtype == np.dtype(dtype) for w in gr.W)
    assert all(d.dtype == np.dtype(dtype) for d in gr.delta[1:])


def test_float32_close_to_float64():
    net = random_net(dtype="float64", seed=11)
    X, Y = random_data(net, n=4)
    g64 = net.backprop(X, Y)
    g32 = net.astype("float32").backprop(X.astype(np.float32), Y.astype(np.float32))
    for t in range(net.T):
        assert rel_err(g32.W[t], g64.W[t]) < 1e-5


def test_delta_is_derivative_wrt_outputs():
    """The book's delta_t = dl/do_t: perturb o_t of a hidden layer and watch the loss."""
    net = random_net(sizes=(3, 4, 2), density=1.0, seed=12)
    x, y = random_data(net, n=1)
    x, y = x[0], y[0]
    gr = net.backprop(x, y)
    tr = net.forward(x)
    h = 1e-6
    for i in range(4):
        def loss_from_o1(o1):
            a2 = net.W[1] @ o1 + net.b[1]
            return 0.5 * np.sum((net.sigma[2](a2) - y) ** 2)
        up, down = tr.o[1].copy(), tr.o[1].copy()
        up[i] += h
        down[i] -= h
        assert gr.delta[1][i] == pytest.approx((loss_from_o1(up) - loss_from_o1(down)) / (2 * h), rel=1e-6)
