import warnings

import numpy as np
import pytest

import layerprop as lp
from layerprop.activations import get_activation
from layerprop.losses import get_loss, softmax


def test_sigmoid_stable_for_large_inputs():
    a = np.array([-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = lp.ACTIVATIONS["sigmoid"].sigma(a)
        ds = lp.ACTIVATIONS["sigmoid"].sigma_prime(a)
    assert np.all(np.isfinite(s)) and s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert ds[3] == 0.25 and np.all(ds >= 0)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "identity", "leaky_relu", "relu"])
def test_derivative_matches_finite_differences(name):
    f = lp.ACTIVATIONS[name]
    a = np.linspace(-4, 4, 41) + 0.013  # avoid relu's kink at 0
    h = 1e-6
    fd = (f.sigma(a + h) - f.sigma(a - h)) / (2 * h)
    np.testing.assert_allclose(f.sigma_prime(a), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(lp.ACTIVATIONS))
def test_float32_stays_float32(name):
    a = np.linspace(-3, 3, 7, dtype=np.float32)
    assert lp.ACTIVATIONS[name].sigma(a).dtype == np.float32
    if name != "sign":
        assert lp.ACTIVATIONS[name].sigma_prime(a).dtype == np.float32


def test_sign_is_forward_only():
    g = lp.LayeredGraph.dense([2, 2, 1])
    net = lp.Network(g, activation="sign", output_activation="sign", seed=0)
    assert set(np.unique(net.predict(np.array([[1.0, -1.0], [0.0, 2.0]])))) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="forward use only"):
        net.backprop(np.ones(2), np.ones(1))


def test_custom_pair():
    sq = (lambda a: a * a, lambda a: 2 * a)
    act = get_activation(sq)
    assert act.name == "custom" and act.sigma(np.array(3.0)) == 9.0


@pytest.mark.parametrize("bad, exc", [("sigmod", ValueError), (3, TypeError), ((np.exp,), TypeError)])
def test_unknown_activation(bad, exc):
    with pytest.raises(exc, match="activation"):
        lp.Network(lp.LayeredGraph.dense([2, 1]), activation="sigmoid", output_activation=bad)


def test_unknown_loss():
    with pytest.raises(ValueError, match="loss='hinge' is not a known loss"):
        get_loss("hinge")


@pytest.mark.parametrize("name", sorted(lp.LOSSES))
def test_loss_delta_is_gradient_of_value(name):
    rng = np.random.default_rng(0)
    o = rng.uniform(0.1, 0.9, (4, 3)) if name == "binary_cross_entropy" else rng.normal(size=(4, 3))
    y = np.eye(3)[[0, 2, 1, 1]] if name == "softmax_cross_entropy" else rng.random((4, 3))
    loss, h = lp.LOSSES[name], 1e-6
    fd = np.zeros_like(o)
    for idx in np.ndindex(o.shape):
        up, down = o.copy(), o.copy()
        up[idx] += h
        down[idx] -= h
        fd[idx] = (loss.value(up, y)[idx[0]] - loss.value(down, y)[idx[0]]) / (2 * h)
    np.testing.assert_allclose(loss.delta(o, y), fd, rtol=1e-5, atol=1e-7)


def test_softmax_cross_entropy_stable_for_huge_logits():
    o = np.array([[1000.0, -1000.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = lp.LOSSES["softmax_cross_entropy"].value(o, y)
        d = lp.LOSSES["softmax_cross_entropy"].delta(o, y)
    assert v[0] == pytest.approx(2000.0) and np.all(np.isfinite(d))
    np.testing.assert_allclose(softmax(o).sum(), 1.0)


def test_binary_cross_entropy_from_logits_is_exact():
    from layerprop.losses import binary_cross_entropy_from_a
    a = np.array([[-800.0, 800.0, 0.0]])
    y = np.array([[1.0, 0.0, 1.0]])
    np.testing.assert_allclose(binary_cross_entropy_from_a(a, y), [800 + 800 + np.log(2)])
