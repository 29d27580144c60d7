"""Backpropagation (SSBD 20.6) as pure functions on arrays, in the book's symbols.

A batch has examples as rows, so a_{t+1} = W_t o_t reads ``o[t] @ W[t].T`` (the one transpose).
``a[0]`` is None and ``o[0]`` is the input; ``delta[t]`` is the book's dl/do_t. The folded
variant ``g[t] = delta[t] * sigma'(a[t])`` (what scikit-learn and Nielsen call "delta") has its
own name. Gradients are returned as *sums* over the rows (weighted by ``r``); the caller divides
by the weight sum (see ``sgd.combine``), which is where a distributed run all-reduces.
"""

from __future__ import annotations

from ._xp import array_namespace


def layer_input(W_t, b_t, o_t):
    """Forward step (SSBD 20.6): a_{t+1} = W_t o_t (+ b_t, the constant neuron's edges)."""
    a = o_t @ W_t.T
    return a if b_t is None else a + b_t


def forward(W, b, sigma, x):
    """Forward pass (SSBD 20.6): o_0 = x; for t = 1..T, a_t = W_{t-1} o_{t-1}, o_t = sigma_t(a_t)."""
    a, o = [None], [x]
    for t in range(len(W)):
        a.append(layer_input(W[t], b[t], o[t]))
        o.append(sigma[t + 1](a[t + 1]))
    return a, o


def output_g(loss, sigma_prime_T, a_T, o_T, y):
    """delta_T = dl/do_T from the loss, and g_T = delta_T * sigma'(a_T) (fused where stable)."""
    delta_T = loss.delta(o_T, y)
    g_T = loss.fused_g(a_T, y) if loss.fused_g is not None else delta_T * sigma_prime_T(a_T)
    return delta_T, g_T


def backward(W, sigma_prime, a, delta_T, g_T):
    """Backward pass (SSBD 20.6): delta_t = W_t^T (delta_{t+1} * sigma'(a_{t+1})), t = T-1..1."""
    T = len(W)
    delta, g = [None] * (T + 1), [None] * (T + 1)
    delta[T], g[T] = delta_T, g_T
    for t in range(T - 1, 0, -1):
        delta[t] = g[t + 1] @ W[t]
        g[t] = delta[t] * sigma_prime[t](a[t])
    return delta, g


def weight_gradient(g, o, masks, bias_masks, r=None):
    """Gradient (SSBD 20.6): dl/dW_{t,i,j} = delta_{t+1,i} sigma'(a_{t+1,i}) o_{t,j} on the edges of E,
    summed over the rows (weighted by r); phantom entries exactly 0."""
    xp = array_namespace(g[-1])
    gW, gb = [], []
    for t in range(len(masks)):
        g_next = g[t + 1] if r is None else g[t + 1] * r[:, None]
        gW.append(xp.where(masks[t], g_next.T @ o[t], xp.zeros((), dtype=g_next.dtype)))
        if bias_masks is None:
            gb.append(None)
        else:
            gb.append(xp.where(bias_masks[t], xp.sum(g_next, axis=0), xp.zeros((), dtype=g_next.dtype)))
    return gW, gb


def per_example_gradient(g, o, masks, bias_masks):
    """One gradient per row: entry [n, i, j] = g_{t+1}[n, i] o_t[n, j], masked (for teaching and checks)."""
    xp = array_namespace(g[-1])
    zero = xp.zeros((), dtype=g[-1].dtype)
    gW = [xp.where(masks[t], g[t + 1][:, :, None] * o[t][:, None, :], zero) for t in range(len(masks))]
    gb = [None if bias_masks is None else xp.where(bias_masks[t], g[t + 1], zero) for t in range(len(masks))]
    return gW, gb


def loss_rows(loss, a_T, o_T, y):
    """The loss l(w) on each row (from a_T where the loss has a stable form for it)."""
    return loss.value_from_a(a_T, y) if loss.value_from_a is not None else loss.value(o_T, y)
