"""Jacobians and the chain rule (SSBD 20.6): backpropagation as a product of layer Jacobians.

J_{o_t}(o_T) = J_{o_{t+1}}(o_T) diag(sigma'(a_{t+1})) W_t, from J_{o_T}(o_T) = I.
The column of J_w(o_T) for the edge (t, i, j) is J_{o_{t+1}}(o_T)[:, i] sigma'(a_{t+1,i}) o_{t,j}.
Teaching code: it forms the full matrices that backpropagation avoids, so use it on small nets.
"""

from __future__ import annotations

import numpy as np

from ._xp import to_numpy


def layer_jacobians(net, x, of="o"):
    """J_{a_t}(o_T) for t = 1..T and J_x(o_T), for one example x, as NumPy arrays.

    Returns (Ja, Jx, trace, net), ``net`` being the NumPy copy the trace was computed on:
    ``Ja[t]`` = J_{o_t}(o_T) diag(sigma'(a_t)) is k_T x k_t. With
    ``of="a"`` the Jacobians are of a_T instead of o_T (so Ja[T] = I).
    """
    net = net.to("numpy")
    tr = net.forward(to_numpy(x))
    T = net.T
    Ja = [None] * (T + 1)
    Ja[T] = np.eye(net.k[T]) if of == "a" else np.diag(net.sigma_prime[T](tr.a[T]))
    for t in range(T - 1, 0, -1):
        Ja[t] = (Ja[t + 1] @ net.W[t]) * net.sigma_prime[t](tr.a[t])  # J_{o_t} diag(sigma'(a_t))
    return Ja, Ja[1] @ net.W[0], tr, net


def jacobian_x(net, x):
    """J_x(o_T): the k_T x k_0 Jacobian of the output with respect to the input."""
    return layer_jacobians(net, x)[1]


def jacobian_w(net, x, of="o"):
    """J_w(o_T): k_T x |E|, one column per real edge (t, i, j), bias edges as (t, i, k_t)."""
    Ja, _, tr, net = layer_jacobians(net, x, of)
    cols, edges = [], []
    for t in range(net.T):
        d = Ja[t + 1]
        for i, j in zip(*np.nonzero(net.masks[t])):
            cols.append(d[:, i] * tr.o[t][j])
            edges.append((t, int(i), int(j)))
        if net.bias_masks is not None:
            for i in np.nonzero(net.bias_masks[t])[0]:
                cols.append(d[:, i])
                edges.append((t, int(i), net.k[t]))
    order = sorted(range(len(edges)), key=edges.__getitem__)
    return np.stack([cols[n] for n in order], axis=1), [edges[n] for n in order]


def chain_rule_check(net, x, y, eps=1e-6):
    """Max relative differences between backpropagation's gradient, delta_T^T J_w(o_T), and
    central finite differences, for one example, over the real edges."""
    from .gradcheck import gradcheck

    net64 = net.to("numpy").astype("float64")
    x, y = np.asarray(to_numpy(x), dtype=np.float64), np.asarray(to_numpy(y), dtype=np.float64)
    grad = net64.backprop(x, y)
    J, edges = jacobian_w(net64, x)
    if net64.loss.fused_g is not None:  # the loss is given from a_T: use g_T and J_w(a_T)
        via_jacobian = grad.g[-1] @ jacobian_w(net64, x, of="a")[0]
    else:
        via_jacobian = grad.delta[-1] @ J
    from_backprop = np.array([grad.W[t][i, j] if j < net64.k[t] else grad.b[t][i] for t, i, j in edges])
    rel = float(np.max(np.abs(via_jacobian - from_backprop)) / max(np.max(np.abs(from_backprop)), 1e-300))
    return {"backprop_vs_jacobian": rel,
            "backprop_vs_finite_differences": gradcheck(net64, x, y, eps=eps).max_rel_error}

