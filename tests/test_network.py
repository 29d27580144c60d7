"""The Network's boundary: construction, weight assignment, and bad input."""

import numpy as np
import pytest

import layerprop as lp

from _nets import random_net


def _net(**kw):
    return lp.Network(lp.LayeredGraph.dense([4, 5, 3]), seed=0, **kw)


def test_public_names_example():
    g = lp.LayeredGraph.dense([4, 5, 3], bias=True)
    net = lp.Network(g, activation="sigmoid", output_activation="sigmoid", loss="squared", seed=0, dtype="float64")
    assert net.W[0].shape == (5, 4) and net.b[0].shape == (5,) and net.masks[0].dtype == bool
    tr = net.forward(np.zeros((2, 4)))
    assert tr.a[0] is None and tr.o[0].shape == (2, 4) and tr.o[2].shape == (2, 3)
    gr = net.backprop(np.zeros((2, 4)), np.zeros((2, 3)))
    assert gr.W[1].shape == (3, 5) and gr.b[1].shape == (3,)


def test_per_layer_activations():
    net = lp.Network(lp.LayeredGraph.dense([2, 3, 3, 1]), activation=["relu", "tanh"], output_activation="identity")
    assert net.activation_names == ("relu", "tanh", "identity")
    with pytest.raises(ValueError, match="list of 1, but the network has 2 hidden layers"):
        lp.Network(lp.LayeredGraph.dense([2, 3, 3, 1]), activation=["relu"])


def test_default_output_follows_loss_or_book():
    assert _net(loss="softmax_cross_entropy").activation_names[-1] == "identity"
    assert _net(loss="binary_cross_entropy").activation_names[-1] == "sigmoid"
    assert _net(activation="tanh").activation_names[-1] == "tanh"  # the book: sigma at every layer


def test_loss_needs_its_output():
    with pytest.raises(ValueError, match="needs output_activation='identity'"):
        _net(loss="softmax_cross_entropy", output_activation="sigmoid")


@pytest.mark.parametrize("init", ["glorot", "he", "book", "zeros"])
def test_init_is_seeded_and_masked(init):
    g = lp.LayeredGraph.random([6, 8, 3], 0.5, seed=1)
    a = lp.Network(g, seed=3, init=init)
    b = lp.Network(g, seed=3, init=init)
    for t in range(2):
        np.testing.assert_array_equal(a.W[t], b.W[t])
        assert np.all(a.W[t][~g.masks[t]] == 0.0)
    if init == "book":
        assert max(np.abs(w).max() for w in a.W) <= 0.05


def test_seed_changes_weights():
    assert not np.array_equal(_net().W[0], lp.Network(lp.LayeredGraph.dense([4, 5, 3]), seed=1).W[0])


def test_assign_weights():
    net = _net()
    net.W[0] = np.ones((5, 4))
    assert net.W[0].dtype == np.float64 and net.W[0].sum() == 20
    with pytest.raises(ValueError, match="W\\[0\\] must have shape \\(5, 4\\); got \\(4, 5\\)"):
        net.W[0] = np.ones((4, 5))
    with pytest.raises(ValueError, match="NaN or inf"):
        net.b[1] = [np.nan, 0, 0]


def test_assign_nonzero_phantom_refused():
    net = random_net(density=0.3)
    with pytest.raises(ValueError, match="non-zero on phantom edges"):
        net.W[0] = np.ones(net.W[0].shape)


def test_no_bias_network():
    net = lp.Network(lp.LayeredGraph.dense([2, 2], bias=False))
    assert net.b == [None]
    with pytest.raises(ValueError, match="has no bias"):
        net.b[0] = [1.0, 2.0]


@pytest.mark.parametrize("X, exc, match", [
    (np.zeros((2, 3)), ValueError, r"X must have shape \(4,\) or \(n, 4\).*got \(2, 3\)"),
    (np.zeros(5), ValueError, r"got \(1, 5\)"),
    (np.zeros((2, 4, 1)), ValueError, r"got \(2, 4, 1\)"),
    (np.array([[np.nan, 0, 0, 0]]), ValueError, "X contains NaN or inf"),
    (np.array([[np.inf, 0, 0, 0]]), ValueError, "X contains NaN or inf"),
    (np.array([["a", "b", "c", "d"]]), TypeError, "X must be a real numeric array; got dtype <U1"),
    (np.array([[1 + 2j, 0, 0, 0]]), TypeError, "complex"),
    (np.array([[{}, 0, 0, 0]], dtype=object), TypeError, "object"),
])
def test_bad_X(X, exc, match):
    with pytest.raises(exc, match=match):
        _net().forward(X)


@pytest.mark.parametrize("Y, match", [
    (np.zeros((2, 2)), r"Y must have shape \(2, 3\).*got \(2, 2\)"),
    (np.zeros((3, 3)), r"Y must have shape \(2, 3\)"),
    (np.full((2, 3), np.nan), "Y contains NaN"),
])
def test_bad_Y(Y, match):
    with pytest.raises(ValueError, match=match):
        _net().backprop(np.zeros((2, 4)), Y)


def test_no_silent_broadcast_of_single_output():
    net = lp.Network(lp.LayeredGraph.dense([2, 1]))
    net.backprop(np.zeros((3, 2)), np.zeros(3))  # (n,) targets for one output are unambiguous
    with pytest.raises(ValueError):
        net.backprop(np.zeros((3, 2)), np.zeros(1))


@pytest.mark.parametrize("w, match", [([1.0, -1.0], ">= 0"), ([0.0, 0.0], "not all 0"), ([1.0], "shape")])
def test_bad_sample_weight(w, match):
    with pytest.raises(ValueError, match=match):
        _net().backprop(np.zeros((2, 4)), np.zeros((2, 3)), sample_weight=np.array(w))


@pytest.mark.parametrize("kw, exc, match", [
    (dict(dtype="int32"), ValueError, "dtype must be one of"),
    (dict(dtype="nope"), ValueError, "dtype must be one of"),
    (dict(init="uniform"), ValueError, "init must be one of"),
    (dict(loss="hinge"), ValueError, "loss='hinge'"),
])
def test_bad_construction(kw, exc, match):
    with pytest.raises(exc, match=match):
        _net(**kw)


def test_graph_type_checked():
    with pytest.raises(TypeError, match="graph must be a LayeredGraph; got list"):
        lp.Network([2, 3])


def test_copy_is_independent():
    net = _net()
    c = net.copy()
    c.W[0] = np.zeros((5, 4))
    assert net.W[0].any()


def test_repr_and_svg_hook():
    assert "4-5-3" in repr(_net()) and "|E|=43" in repr(_net())


def test_network_facts():
    net = lp.Network(lp.LayeredGraph.dense([4, 5, 3]))
    f = lp.network_facts(net)
    assert f["num_edges"] == 43 and f["num_edges_without_bias"] == 35 and f["depth"] == 2
    assert f["num_vertices"] == 14 and f["vc_sigmoid"]["lower_value"] == 43 ** 2
    assert f["finite_precision"]["log2_class_size_at_most"] == 32 * 43


def test_per_example_with_sample_weight_is_refused():
    with pytest.raises(ValueError, match="per_example=True gives one unweighted gradient per row"):
        _net().backprop(np.zeros((2, 4)), np.zeros((2, 3)), sample_weight=np.ones(2), per_example=True)
