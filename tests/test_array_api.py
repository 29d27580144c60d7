"""The reference core on other array namespaces: array-api-strict and torch (CPU) agree with NumPy."""

import numpy as np
import pytest

from layerprop._xp import to_numpy

from _nets import LOSS_OUTPUTS, random_data, random_net, rel_err

NAMESPACES = ["array_api_strict", "torch"]


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss, out", LOSS_OUTPUTS, ids=[f"{l}-{o}" for l, o in LOSS_OUTPUTS])
def test_same_gradient_as_numpy(namespace, dtype, loss, out):
    xp = pytest.importorskip(namespace)
    net = random_net(activation="tanh", loss=loss, output=out, dtype=dtype, seed=31)
    X, Y = random_data(net, n=4, loss=loss)
    X, Y = X.astype(dtype), Y.astype(dtype)
    ref = net.backprop(X, Y)
    other = net.to(xp)
    got = other.backprop(xp.asarray(X), xp.asarray(Y))
    tol = 1e-12 if dtype == "float64" else 1e-5
    for t in range(net.T):
        assert str(got.W[t].dtype).endswith(dtype)
        assert rel_err(to_numpy(got.W[t]), ref.W[t]) <= tol
        assert np.all(to_numpy(got.W[t])[~net.masks[t]] == 0.0)
    assert got.loss == pytest.approx(ref.loss, rel=tol)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_mixed_namespaces_refused(namespace):
    xp = pytest.importorskip(namespace)
    net = random_net().to(xp)
    with pytest.raises(TypeError):
        net.forward(_foreign(namespace, net))


def _foreign(namespace, net):
    """An input from the *other* namespace than the network's."""
    other = "torch" if namespace == "array_api_strict" else "array_api_strict"
    xp = pytest.importorskip(other)
    return xp.asarray(np.zeros((1, net.k[0])))


def test_numpy_input_accepted_by_torch_network():
    torch = pytest.importorskip("torch")
    net = random_net()
    tn = net.to(torch)
    out = tn.predict(np.ones((2, 3)))
    np.testing.assert_allclose(to_numpy(out), net.predict(np.ones((2, 3))), rtol=1e-12)
