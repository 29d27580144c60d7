"""Losses on one example or a batch: each gives the loss per row and the book's delta_T = dl/do_T.

Rows are examples. ``value(o_T, y)`` returns one loss per row; ``delta(o_T, y)`` returns
dl/do_T, the start of the backward pass. Where a loss is paired with its natural output
activation, ``fused_g(a_T, y)`` returns g_T = delta_T * sigma'(a_T) computed stably from the
pre-activation (binary cross-entropy with a sigmoid output: g_T = sigma(a_T) - y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ._xp import array_namespace
from .activations import sigmoid, softplus


@dataclass(frozen=True)
class Loss:
    """A loss by name: per-row values, delta_T, the output activation it requires (if any)."""

    name: str
    value: Callable
    delta: Callable
    requires_output: Optional[str] = None
    fused_g: Optional[Callable] = None
    value_from_a: Optional[Callable] = None


def squared(o, y):
    """The book's loss: 1/2 ||o_T - y||^2 per row."""
    xp = array_namespace(o, y)
    d = o - y
    return 0.5 * xp.sum(d * d, axis=-1)


def squared_delta(o, y):
    """delta_T = o_T - y."""
    return o - y


def _logsumexp(z):
    """log sum_i exp(z_i) over the last axis, shifted by the max so that nothing overflows."""
    xp = array_namespace(z)
    m = xp.max(z, axis=-1, keepdims=True)
    return xp.squeeze(m, axis=-1) + xp.log(xp.sum(xp.exp(z - m), axis=-1))


def softmax(z):
    """softmax over the last axis, stable."""
    xp = array_namespace(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def softmax_cross_entropy(o, y):
    """-sum_i y_i log softmax(o_T)_i per row, on identity-output logits (stable log-sum-exp)."""
    xp = array_namespace(o, y)
    return xp.sum(y, axis=-1) * _logsumexp(o) - xp.sum(y * o, axis=-1)


def softmax_cross_entropy_delta(o, y):
    """delta_T = softmax(o_T) * sum(y) - y (= softmax(o_T) - y for one-hot y)."""
    xp = array_namespace(o, y)
    return softmax(o) * xp.sum(y, axis=-1, keepdims=True) - y


def binary_cross_entropy(o, y):
    """-(y log o + (1 - y) log(1 - o)) summed over outputs, from the sigmoid outputs o_T."""
    xp = array_namespace(o, y)
    tiny = xp.finfo(o.dtype).smallest_normal
    o = xp.clip(o, tiny, 1 - xp.finfo(o.dtype).eps / 2)
    return -xp.sum(y * xp.log(o) + (1 - y) * xp.log1p(-o), axis=-1)


def binary_cross_entropy_from_a(a, y):
    """The same loss from the pre-activation a_T: softplus(a) - y a, exact for any |a|."""
    xp = array_namespace(a, y)
    return xp.sum(softplus(a) - y * a, axis=-1)


def binary_cross_entropy_delta(o, y):
    """delta_T = (o_T - y) / (o_T (1 - o_T)), with o_T kept off 0 and 1."""
    xp = array_namespace(o, y)
    tiny = xp.finfo(o.dtype).smallest_normal
    o = xp.clip(o, tiny, 1 - xp.finfo(o.dtype).eps / 2)
    return (o - y) / (o * (1 - o))


def binary_cross_entropy_g(a, y):
    """g_T = delta_T * sigma'(a_T) = sigmoid(a_T) - y, stable where sigma'(a_T) underflows."""
    return sigmoid(a) - y


def poisson(o, y):
    """Half the Poisson deviance per row, on identity-output log-means o_T (log link, as
    scikit-learn's MLPRegressor(loss="poisson") with its exp output): exp(o) - y o + y log y - y."""
    xp = array_namespace(o, y)
    y_log_y = y * xp.log(xp.where(y > 0, y, xp.ones_like(y)))
    return xp.sum(xp.exp(o) - y * o + y_log_y - y, axis=-1)


def poisson_delta(o, y):
    """delta_T = exp(o_T) - y (the mean exp(o_T) minus the count)."""
    return array_namespace(o, y).exp(o) - y


LOSSES: dict[str, Loss] = {
    "squared": Loss("squared", squared, squared_delta),
    "softmax_cross_entropy": Loss(
        "softmax_cross_entropy", softmax_cross_entropy, softmax_cross_entropy_delta,
        requires_output="identity",
    ),
    "binary_cross_entropy": Loss(
        "binary_cross_entropy", binary_cross_entropy, binary_cross_entropy_delta,
        requires_output="sigmoid", fused_g=binary_cross_entropy_g,
        value_from_a=binary_cross_entropy_from_a,
    ),
    "poisson": Loss("poisson", poisson, poisson_delta, requires_output="identity"),
}
"""The losses by name."""


def get_loss(name, argname: str = "loss") -> Loss:
    """Look up a loss by name."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"{argname}={name!r} is not a known loss; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
