"""The book's Backpropagation as literal per-neuron, per-edge loops (SSBD 20.6), for one example.

SLOW ON PURPOSE: plain Python floats and ``for`` loops over neurons and edges, with the
activations and losses written again from their formulas (``math``), so that this module is an
independent oracle for the vectorized core. Use it on tiny networks in tests only.
"""

from __future__ import annotations

import math

from ._xp import to_numpy

SIGMA = {
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z)),
    "tanh": math.tanh,
    "relu": lambda z: z if z > 0 else 0.0,
    "leaky_relu": lambda z: z if z > 0 else 0.01 * z,
    "softplus": lambda z: max(z, 0.0) + math.log1p(math.exp(-abs(z))),
    "identity": lambda z: z,
}
SIGMA_PRIME = {
    "sigmoid": lambda z: 1 / ((1 + math.exp(min(z, 700))) * (1 + math.exp(min(-z, 700)))),  # the book's form
    "tanh": lambda z: 1 - math.tanh(z) ** 2,
    "relu": lambda z: 1.0 if z > 0 else 0.0,
    "leaky_relu": lambda z: 1.0 if z > 0 else 0.01,
    "softplus": lambda z: SIGMA["sigmoid"](z),
    "identity": lambda z: 1.0,
}


def output_delta(loss, o, y):
    """delta_T = dl/do_T, written per coordinate from each loss's formula."""
    if loss == "squared":  # l = 1/2 sum_i (o_i - y_i)^2
        return [o[i] - y[i] for i in range(len(o))]
    if loss == "softmax_cross_entropy":  # l = sum_i y_i (log sum_j exp(o_j) - o_i)
        m = max(o)
        Z = sum(math.exp(v - m) for v in o)
        return [math.exp(o[i] - m) / Z * sum(y) - y[i] for i in range(len(o))]
    if loss == "binary_cross_entropy":  # l = -sum_i y_i log o_i + (1 - y_i) log(1 - o_i)
        return [(o[i] - y[i]) / (o[i] * (1 - o[i])) for i in range(len(o))]
    raise ValueError(f"no literal form for loss {loss!r}")


def backprop_literal(net, x, y):
    """Backpropagation exactly as the pseudo-code: returns (gW, gb) as nested lists of floats.

    gW[t][i][j] is the partial derivative for the edge (v_{t,j}, v_{t+1,i}), 0.0 on phantom edges.
    """
    W = [to_numpy(w).tolist() for w in net.W]
    b = [None if v is None else to_numpy(v).tolist() for v in net.b]
    E = [to_numpy(m).tolist() for m in net.masks]
    Eb = None if net.bias_masks is None else [to_numpy(m).tolist() for m in net.bias_masks]
    sigma = [None] + [SIGMA[n] for n in net.activation_names]
    sigma_prime = [None] + [SIGMA_PRIME[n] for n in net.activation_names]
    k, T = net.k, net.T
    x, y = [float(v) for v in to_numpy(x)], [float(v) for v in to_numpy(y)]

    # Forward: o_0 = x; for t = 1..T: a_{t,i} = sum_j W_{t-1,i,j} o_{t-1,j}; o_{t,i} = sigma(a_{t,i})
    o, a = [x], [None]
    for t in range(1, T + 1):
        a.append([0.0] * k[t])
        o.append([0.0] * k[t])
        for i in range(k[t]):
            for j in range(k[t - 1]):
                if E[t - 1][i][j]:
                    a[t][i] += W[t - 1][i][j] * o[t - 1][j]
            if Eb is not None and Eb[t - 1][i]:
                a[t][i] += b[t - 1][i]  # the constant neuron's edge
            o[t][i] = sigma[t](a[t][i])

    # Backward: delta_T = dl/do_T; delta_{t,j} = sum_i W_{t,i,j} delta_{t+1,i} sigma'(a_{t+1,i})
    delta = [None] * (T + 1)
    delta[T] = output_delta(net.loss_name, o[T], y)
    for t in range(T - 1, 0, -1):
        delta[t] = [0.0] * k[t]
        for j in range(k[t]):
            for i in range(k[t + 1]):
                if E[t][i][j]:
                    delta[t][j] += W[t][i][j] * delta[t + 1][i] * sigma_prime[t + 1](a[t + 1][i])

    # Output: for each edge (v_{t-1,j}, v_{t,i}) in E: delta_{t,i} sigma'(a_{t,i}) o_{t-1,j}
    gW = [[[0.0] * k[t] for _ in range(k[t + 1])] for t in range(T)]
    gb = [None if Eb is None else [0.0] * k[t + 1] for t in range(T)]
    for t in range(1, T + 1):
        for i in range(k[t]):
            for j in range(k[t - 1]):
                if E[t - 1][i][j]:
                    gW[t - 1][i][j] = delta[t][i] * sigma_prime[t](a[t][i]) * o[t - 1][j]
            if Eb is not None and Eb[t - 1][i]:
                gb[t - 1][i] = delta[t][i] * sigma_prime[t](a[t][i]) * 1.0
    return gW, gb
