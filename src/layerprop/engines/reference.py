"""The reference engine: the core's backpropagation (``network.backward_pass``), as sums over rows."""

from __future__ import annotations

from .. import backprop as bp
from ..network import backward_pass, loss_and_weight_sums


class ReferenceEngine:
    """Gradient sums from the readable core, on any array namespace."""

    name = "reference"

    def gradient_sums(self, net, X, Y, r=None):
        """Forward, backward and the summed gradient (SSBD 20.6) on one batch."""
        _, o, _, g, rows = backward_pass(net, X, Y)
        gW, gb = bp.weight_gradient(g, o, net.masks, net.bias_masks, r)
        return (*loss_and_weight_sums(rows, r), gW, gb)
