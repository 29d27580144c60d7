"""The reference engine: the core's backpropagation (``network.gradient``), as sums over rows."""

from __future__ import annotations

from .. import backprop as bp
from .._xp import array_namespace


class ReferenceEngine:
    """Gradient sums from the readable core, on any array namespace."""

    name = "reference"

    def gradient_sums(self, net, X, Y, r=None):
        """Forward, backward and the summed gradient (SSBD 20.6) on one batch."""
        a, o = bp.forward(net.W, net.b, net.sigma, X)
        _, g_T = bp.output_g(net.loss, net.act[-1].sigma_prime, a[-1], o[-1], Y)
        _, g = bp.backward(net.W, net.sigma_prime, a, None, g_T)
        gW, gb = bp.weight_gradient(g, o, net.masks, net.bias_masks, r)
        rows = bp.loss_rows(net.loss, a[-1], o[-1], Y)
        xp = array_namespace(rows)
        if r is None:
            return float(xp.sum(rows)), float(X.shape[0]), gW, gb
        return float(xp.sum(rows * r)), float(xp.sum(r)), gW, gb
