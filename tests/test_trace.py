"""layerprop.trace: one example in the book's notation, checked against backprop and by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

import layerprop as lp
from layerprop.trace import render_text, trace_example


def small_net(loss="squared", seed=0):
    graph = lp.LayeredGraph.random([3, 4, 2], 0.6, seed=seed)
    out = "sigmoid" if loss == "squared" else None
    return lp.Network(graph, activation="sigmoid", output_activation=out, loss=loss, seed=seed)


@pytest.mark.parametrize("loss", ["squared", "softmax_cross_entropy", "binary_cross_entropy"])
def test_trace_matches_backprop(loss):
    net = small_net(loss)
    x, y = np.array([0.3, -1.2, 0.7]), np.array([1.0, 0.0])
    tr = trace_example(net, x, y, top=100)
    grad = net.backprop(x, y)
    fwd = net.forward(x)
    assert tr.loss == pytest.approx(grad.loss)
    for t in range(1, net.T + 1):
        L = tr.layers[t]
        np.testing.assert_allclose(L.a, fwd.a[t])
        np.testing.assert_allclose(L.o, fwd.o[t])
        np.testing.assert_allclose(L.sigma_prime, net.sigma_prime[t](fwd.a[t]))
        np.testing.assert_allclose(L.delta, grad.delta[t])
    # every real edge is listed once (top is large), with the gradient's value, none phantom
    assert len(tr.edges) == net.graph.num_edges()
    for e in tr.edges:
        want = grad.b[e.t - 1][e.i] if e.bias else grad.W[e.t - 1][e.i, e.j]
        assert e.value == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert e.bias or net.masks[e.t - 1][e.i, e.j]
        if loss != "binary_cross_entropy":  # BCE's g_T is fused (stable), the factors agree to rounding
            assert e.value == pytest.approx(e.delta * e.sigma_prime * e.o_prev, rel=1e-12, abs=1e-15)


def test_worked_example_by_hand():
    """A 1-1-1 network with weights 1 and no bias: every number by hand."""
    net = lp.Network(lp.LayeredGraph.dense([1, 1, 1], bias=False), activation="sigmoid", seed=0)
    net.W[0] = np.array([[1.0]])
    net.W[1] = np.array([[1.0]])
    tr = trace_example(net, np.array([0.0]), np.array([1.0]))
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    a1, o1 = 0.0, 0.5                      # a_1 = 1 * 0, o_1 = sigma(0)
    a2, o2 = o1, s(o1)                     # a_2 = 1 * o_1
    d2 = o2 - 1.0                          # delta_2 = o_2 - y
    d1 = 1.0 * d2 * o2 * (1 - o2)          # delta_1 = W_1^T (delta_2 sigma'(a_2))
    assert tr.layers[1].a == [a1] and tr.layers[1].o == [o1]
    assert tr.layers[2].a == [pytest.approx(a2)] and tr.layers[2].o == [pytest.approx(o2)]
    assert tr.layers[2].delta == [pytest.approx(d2)] and tr.layers[1].delta == [pytest.approx(d1)]
    assert tr.loss == pytest.approx(0.5 * d2 ** 2)
    by_layer = {e.t: e for e in tr.edges}
    assert by_layer[2].value == pytest.approx(d2 * o2 * (1 - o2) * o1)
    assert by_layer[1].value == pytest.approx(d1 * 0.25 * 0.0)


def test_top_per_layer_and_order():
    net = lp.Network(lp.LayeredGraph.dense([5, 6, 3]), seed=1)
    tr = trace_example(net, np.ones(5), np.array([1.0, 0.0, 0.0]), top=4)
    assert [e.t for e in tr.edges] == [2] * 4 + [1] * 4
    for t in (1, 2):
        mags = [abs(e.value) for e in tr.edges if e.t == t]
        assert mags == sorted(mags, reverse=True)


def test_forward_only_without_target():
    net = small_net()
    tr = trace_example(net, np.zeros(3))
    assert tr.loss is None and tr.edges == [] and all(L.delta is None for L in tr.layers)
    assert "no target" in render_text(tr)


def test_render_text_and_json():
    net = small_net()
    tr = trace_example(net, np.array([0.1, 0.2, 0.3]), np.array([0.0, 1.0]), x_raw=[1, 2, 3], label="b",
                       prediction="a", row=7)
    text = render_text(tr)
    for needle in ("row 7", "a_1", "o_2", "sigma'(a_1)", "delta_2", "delta_1", "l = 1/2 ||o_T - y||^2",
                   "delta_{2,", "o_{1,", "target 'b'"):
        assert needle in text, needle
    d = json.loads(json.dumps(tr.to_dict()))
    assert d["formulas"]["delta_T"] == "delta_T = o_T - y"
    assert d["edges"][0]["formula"].startswith("delta_{") and d["edges"][0]["tensor"].startswith(("W[", "b["))
    assert len(d["layers"]) == 3


def test_long_vectors_are_cut():
    net = lp.Network(lp.LayeredGraph.dense([30, 2, 1]), seed=0)
    text = render_text(trace_example(net, np.zeros(30), np.array([1.0])), max_values=5)
    assert "(30 values)" in text
