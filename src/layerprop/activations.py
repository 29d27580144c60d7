"""Activation functions sigma and their derivatives sigma_prime, looked up by name.

Each function takes an array of any array-API namespace and returns one of the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ._xp import array_namespace


@dataclass(frozen=True)
class Activation:
    """A pair (sigma, sigma_prime) applied element-wise; ``trainable`` is False for sign."""

    name: str
    sigma: Callable
    sigma_prime: Callable
    trainable: bool = True


def sigmoid(a):
    """sigma(a) = 1 / (1 + exp(-a)), written so that no exp overflows for any |a|."""
    xp = array_namespace(a)
    e = xp.exp(-xp.abs(a))  # in (0, 1]: never overflows
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_prime(a):
    """sigma'(a) = 1 / ((1 + exp(a)) (1 + exp(-a))) = sigma(a) (1 - sigma(a)) (SSBD 20.6)."""
    s = sigmoid(a)
    return s * (1 - s)


def tanh(a):
    """tanh(a)."""
    return array_namespace(a).tanh(a)


def tanh_prime(a):
    """1 - tanh(a)^2."""
    t = array_namespace(a).tanh(a)
    return 1 - t * t


def relu(a):
    """max(a, 0)."""
    xp = array_namespace(a)
    return xp.where(a > 0, a, xp.zeros_like(a))


def relu_prime(a):
    """1 where a > 0, else 0 (the derivative at the kink is taken as 0)."""
    xp = array_namespace(a)
    return xp.astype(a > 0, a.dtype)


LEAKY_SLOPE = 0.01


def leaky_relu(a):
    """a where a > 0, else 0.01 a."""
    xp = array_namespace(a)
    return xp.where(a > 0, a, LEAKY_SLOPE * a)


def leaky_relu_prime(a):
    """1 where a > 0, else 0.01."""
    xp = array_namespace(a)
    return xp.where(a > 0, xp.ones_like(a), xp.full_like(a, LEAKY_SLOPE))


def softplus(a):
    """log(1 + exp(a)), stable: max(a, 0) + log1p(exp(-|a|))."""
    xp = array_namespace(a)
    return xp.where(a > 0, a, xp.zeros_like(a)) + xp.log1p(xp.exp(-xp.abs(a)))


def identity(a):
    """a."""
    return a


def identity_prime(a):
    """1."""
    return array_namespace(a).ones_like(a)


def sign(a):
    """sign(a) in {-1, +1} (the book's threshold neuron; sign(0) = +1). Forward use only."""
    xp = array_namespace(a)
    return xp.where(a >= 0, xp.ones_like(a), -xp.ones_like(a))


def sign_prime(a):
    """sign has no useful derivative; training a sign network is refused before this is called."""
    raise ValueError("the 'sign' activation is for forward use only: it cannot be trained")


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_prime),
    "tanh": Activation("tanh", tanh, tanh_prime),
    "relu": Activation("relu", relu, relu_prime),
    "leaky_relu": Activation("leaky_relu", leaky_relu, leaky_relu_prime),
    "softplus": Activation("softplus", softplus, sigmoid),
    "identity": Activation("identity", identity, identity_prime),
    "sign": Activation("sign", sign, sign_prime, trainable=False),
}
"""The activations by name. scikit-learn's name "logistic" is accepted as an alias of "sigmoid"."""

ALIASES = {"logistic": "sigmoid", "linear": "identity"}


def get_activation(spec, argname: str = "activation") -> Activation:
    """Look up an activation by name, or wrap a user's (sigma, sigma_prime) pair."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        name = ALIASES.get(spec, spec)
        if name not in ACTIVATIONS:
            raise ValueError(
                f"{argname}={spec!r} is not a known activation; choose one of {sorted(ACTIVATIONS)}"
                " or pass a (sigma, sigma_prime) pair of functions"
            )
        return ACTIVATIONS[name]
    if isinstance(spec, tuple) and len(spec) == 2 and all(callable(f) for f in spec):
        return Activation("custom", spec[0], spec[1])
    raise TypeError(
        f"{argname} must be a name in {sorted(ACTIVATIONS)} or a (sigma, sigma_prime) pair of "
        f"functions; got {spec!r}"
    )
