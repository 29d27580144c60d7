import numpy as np
import pytest

import layerprop as lp

from _nets import LOSS_OUTPUTS, random_data, random_net, rel_err


@pytest.mark.parametrize("loss, out", LOSS_OUTPUTS, ids=[f"{l}-{o}" for l, o in LOSS_OUTPUTS])
def test_chain_rule_agrees(loss, out):
    net = random_net(activation="tanh", loss=loss, output=out, seed=21)
    X, Y = random_data(net, n=1, loss=loss)
    res = lp.chain_rule_check(net, X[0], Y[0])
    assert res["backprop_vs_jacobian"] <= 1e-12
    assert res["backprop_vs_finite_differences"] <= 1e-6


def test_jacobian_w_columns_are_named_edges():
    net = random_net(seed=22)
    x = random_data(net, n=1)[0][0]
    J, edges = lp.jacobian_w(net, x)
    assert J.shape == (net.k[-1], net.graph.num_edges())
    assert edges == net.graph.edges()


def test_jacobian_w_against_finite_differences():
    net = random_net(sizes=(3, 4, 2), seed=23)
    x = random_data(net, n=1)[0][0]
    J, edges = lp.jacobian_w(net, x)
    h = 1e-6
    for col, (t, i, j) in enumerate(edges):
        arr, idx = (net.W[t], (i, j)) if j < net.k[t] else (net.b[t], (i,))
        old = arr[idx]
        arr[idx] = old + h
        up = net.predict(x)
        arr[idx] = old - h
        down = net.predict(x)
        arr[idx] = old
        np.testing.assert_allclose(J[:, col], (up - down) / (2 * h), rtol=1e-6, atol=1e-9)


def test_jacobian_x():
    net = random_net(sizes=(3, 5, 2), seed=24)
    x = random_data(net, n=1)[0][0]
    Jx = lp.jacobian_x(net, x)
    h = 1e-6
    fd = np.stack([(net.predict(x + h * e) - net.predict(x - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    assert rel_err(Jx, fd) < 1e-7
