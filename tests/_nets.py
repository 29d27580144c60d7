"""Small random networks shared by the core tests (a plain module, not a fixture file)."""

import numpy as np

import layerprop as lp

DIFFERENTIABLE = ["sigmoid", "tanh", "softplus", "identity", "leaky_relu", "relu"]
LOSS_OUTPUTS = [("squared", "sigmoid"), ("squared", "identity"), ("softmax_cross_entropy", "identity"),
                ("binary_cross_entropy", "sigmoid")]


def random_net(sizes=(3, 4, 5, 2), activation="sigmoid", loss="squared", output=None, bias=True,
               density=0.6, seed=0, dtype="float64", scale=1.0):
    """A random sparse network with weights large enough that every activation is exercised."""
    g = lp.LayeredGraph.random(list(sizes), density, seed=seed, bias=bias) if density < 1 \
        else lp.LayeredGraph.dense(list(sizes), bias=bias)
    if bias is True and density < 1:  # also drop some bias edges
        rng = np.random.default_rng(seed + 100)
        g = lp.LayeredGraph(g.sizes, g.masks, [rng.random(k) < 0.7 for k in g.sizes[1:]])
    net = lp.Network(g, activation=activation, output_activation=output, loss=loss, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for t in range(net.T):
        net.W[t] = np.where(net.masks[t], rng.normal(0, scale, net.W[t].shape), 0.0)
        if net.b[t] is not None:
            net.b[t] = np.where(net.bias_masks[t], rng.normal(0, scale, net.b[t].shape), 0.0)
    return net


def random_data(net, n=5, seed=0, loss="squared"):
    rng = np.random.default_rng(seed + 7)
    X = rng.normal(size=(n, net.k[0]))
    if loss == "softmax_cross_entropy":
        Y = np.eye(net.k[-1])[rng.integers(0, net.k[-1], n)]
    else:
        Y = rng.random((n, net.k[-1]))
    return X, Y


def rel_err(g, ref):
    """max |g - g_ref| / max |g_ref| (the issue's measure)."""
    g, ref = np.asarray(g, dtype=float), np.asarray(ref, dtype=float)
    scale = np.max(np.abs(ref))
    return float(np.max(np.abs(g - ref)) / scale) if scale > 0 else float(np.max(np.abs(g)))
