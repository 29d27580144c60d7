import warnings

import numpy as np
import pytest

import layerprop as lp


def test_dense_counts():
    g = lp.LayeredGraph.dense([4, 5, 3], bias=True)
    assert g.T == 2 and g.k == (4, 5, 3)
    assert g.num_edges(include_bias=False) == 4 * 5 + 5 * 3
    assert g.num_edges() == 4 * 5 + 5 * 3 + 5 + 3
    assert g.num_vertices == 4 + 5 + 3 + 2  # one constant neuron per non-output layer


def test_no_bias():
    g = lp.LayeredGraph.dense([2, 3, 1], bias=False)
    assert g.bias_masks is None and g.num_edges() == g.num_edges(include_bias=False) == 9
    assert g.num_vertices == 6


@pytest.mark.parametrize("bias", [True, False, "edges"])
def test_edge_list_round_trip(bias):
    g = lp.LayeredGraph.random([5, 6, 4, 2], 0.5, seed=3, bias=bias is not False)
    edges = g.edges(include_bias=bias == "edges")
    g2 = lp.LayeredGraph.from_edges(g.sizes, edges, bias=bias if bias != "edges" else "edges")
    assert g2 == g if bias != "edges" else g2.edges() == g.edges()
    assert len(edges) == g.num_edges(include_bias=bias == "edges")


def test_edge_naming_matches_masks():
    g = lp.LayeredGraph.from_edges([2, 3], [(0, 2, 1), (0, 0, 0)], bias=False)
    assert g.masks[0][2, 1] and g.masks[0][0, 0] and g.masks[0].sum() == 2


def test_bias_edges_in_list():
    g = lp.LayeredGraph.from_edges([2, 2], [(0, 0, 0), (0, 1, 1), (0, 1, 2)], bias="edges")
    assert g.bias_masks[0].tolist() == [False, True]
    assert (0, 1, 2) in g.edges()


@pytest.mark.parametrize("edges, match", [
    ([(1, 0, 0)], "t must be in 0..0"),
    ([(0, 3, 0)], "i must be in 0..2"),
    ([(0, 0, 2)], "j must be in 0..1"),
    ([(0, 0, 0), (0, 0, 0)], "duplicate"),
    ([(0, 0)], "not a triple"),
])
def test_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        lp.LayeredGraph.from_edges([2, 3], edges, bias=False)


@pytest.mark.parametrize("sizes, exc, match", [
    ([3], ValueError, "at least an input and an output"),
    ([3, 0, 2], ValueError, "layer 1 is empty"),
    ([3, 2.5], TypeError, "sizes\\[1\\] must be an integer"),
])
def test_bad_sizes(sizes, exc, match):
    with pytest.raises(exc, match=match):
        lp.LayeredGraph.dense(sizes)


def test_masks_must_chain():
    with pytest.raises(ValueError, match="masks\\[1\\] has shape"):
        lp.LayeredGraph.from_masks([np.ones((3, 2), bool), np.ones((2, 4), bool)])


def test_mask_values_checked():
    with pytest.raises(ValueError, match="boolean"):
        lp.LayeredGraph.from_masks([np.full((2, 2), 2)])


def test_dead_neuron_warns():
    m0 = np.ones((2, 2), bool)
    m1 = np.array([[True, False]])  # v_{1,1} reaches no output
    with pytest.warns(UserWarning, match="no path to the output: v_\\{1,1\\}"):
        lp.LayeredGraph.from_masks([m0, m1])


def test_random_is_seeded_and_connected():
    a = lp.LayeredGraph.random([10, 20, 5], 0.1, seed=1)
    b = lp.LayeredGraph.random([10, 20, 5], 0.1, seed=1)
    assert a == b
    for m in a.masks:
        assert m.any(axis=0).all() and m.any(axis=1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp.LayeredGraph.random([10, 20, 5], 0.1, seed=2)


def test_banded():
    g = lp.LayeredGraph.banded([5, 5], width=1, bias=False)
    assert g.masks[0].sum() == 5 + 2 * 4
    assert g.masks[0][0, 0] and g.masks[0][0, 1] and not g.masks[0][0, 2]


def test_bias_masks_list():
    g = lp.LayeredGraph.dense([2, 3, 1], bias=[np.array([1, 0, 1]), np.array([0])])
    assert g.num_edges() == 6 + 3 + 2


def test_random_graph_and_init_with_the_same_seed_are_independent():
    g = lp.LayeredGraph.random([50, 60, 5], 0.2, seed=3)
    net = lp.Network(g, seed=3, init="book")
    kept = net.W[0][g.masks[0]]
    assert 0.35 < np.mean(kept < 0) < 0.65  # one shared stream gave ~100% negative weights
