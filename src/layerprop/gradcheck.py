"""Gradient check (SSBD 20.6): central finite differences over the real edges of E."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._xp import to_numpy


@dataclass
class GradcheckResult:
    """The largest relative error between backpropagation and finite differences, and where.

    The error of a tensor is max |g - g_fd| / max |g_fd| over its real edges, so tiny entries
    cannot blow it up. ``worst_edge`` is (t, i, j), the edge from v_{t,j} to v_{t+1,i}; a bias
    edge is (t, i, k_t).
    """

    max_rel_error: float
    worst_edge: tuple
    worst_tensor: str
    per_tensor: dict = field(default_factory=dict)
    tol: float = 1e-6

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.tol

    def __str__(self):
        t, i, j = self.worst_edge
        verdict = "ok" if self.ok else "FAILED"
        return (f"gradcheck {verdict}: max relative error {self.max_rel_error:.3g} "
                f"(tolerance {self.tol:g}) at {self.worst_tensor}, edge v_{{{t},{j}}} -> v_{{{t + 1},{i}}}")


def gradcheck(net, X, Y, eps=1e-6, dtype="float64", tol=1e-6, sample_weight=None) -> GradcheckResult:
    """Compare backpropagation with (l(w + eps e) - l(w - eps e)) / 2 eps on every real edge.

    Runs on a NumPy copy of ``net`` in ``dtype`` (float64 by default); phantom edges are skipped.
    """
    if not (isinstance(eps, float) and eps > 0):
        raise ValueError(f"eps must be a positive float; got {eps!r}")
    net = net.to("numpy").astype(dtype)
    X, Y = to_numpy(X), to_numpy(Y)
    grad = net.backprop(X, Y, sample_weight=sample_weight)
    worst = (-1.0, None, None)
    per_tensor = {}
    for name, params, grads, masks in _tensors(net, grad):
        for t in range(net.T):
            if params[t] is None:
                continue
            g_fd = _finite_differences(net, params, t, masks[t], X, Y, eps, sample_weight)
            diff = np.abs(to_numpy(grads[t]) - g_fd) * masks[t]
            scale = np.max(np.abs(g_fd)) if masks[t].any() else 0.0
            err = float(diff.max() / scale) if scale > 0 else float(diff.max()) if diff.size else 0.0
            per_tensor[f"{name}[{t}]"] = err
            if err > worst[0]:
                idx = np.unravel_index(np.argmax(diff), diff.shape)
                edge = (t, int(idx[0]), int(idx[1])) if name == "W" else (t, int(idx[0]), net.k[t])
                worst = (err, edge, f"{name}[{t}]")
    return GradcheckResult(worst[0], worst[1], worst[2], per_tensor, tol)


def _tensors(net, grad):
    yield "W", net.W, grad.W, net.masks
    if net.bias_masks is not None:
        yield "b", net.b, grad.b, net.bias_masks


def _finite_differences(net, params, t, mask, X, Y, eps, r):
    """dl/dw by central differences, one real edge at a time (w_e +- eps), others fixed."""
    w = params[t]
    g_fd = np.zeros_like(w)
    for idx in zip(*np.nonzero(mask)):
        old = w[idx]
        w[idx] = old + eps
        up = net.loss_value(X, Y, r)
        w[idx] = old - eps
        down = net.loss_value(X, Y, r)
        w[idx] = old
        g_fd[idx] = (up - down) / (2 * eps)
    return g_fd
