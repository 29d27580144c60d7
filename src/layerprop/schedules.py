"""Step sizes eta_i, i = 1, 2, ..., tau of the book's SGD (SSBD 20.6).

``get_schedule`` turns a name (or a callable i -> eta_i) into a function of the iteration i
(counted from 1, as in the book). Every named schedule starts at ``eta_1 = step_size``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable

SCHEDULES = ("constant", "inverse_sqrt", "invscaling", "step", "cosine")


def constant(eta, i):
    """eta_i = eta."""
    return eta


def inverse_sqrt(eta, i):
    """eta_i = eta / sqrt(i)."""
    return eta / math.sqrt(i)


def invscaling(eta, i, power_t):
    """eta_i = eta / i**power_t (scikit-learn's "invscaling")."""
    return eta / i ** power_t


def step(eta, i, step_every, gamma):
    """eta_i = eta * gamma**((i - 1) // step_every): multiplied by gamma every ``step_every`` steps."""
    return eta * gamma ** ((i - 1) // step_every)


def cosine(eta, i, total):
    """eta_i = eta * (1 + cos(pi (i - 1) / total)) / 2: from eta down towards 0 at i = total + 1."""
    return eta * 0.5 * (1.0 + math.cos(math.pi * (i - 1) / total))


def _check_positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        op = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {op}; got {value!r}")
    return float(value)


def _check_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__") or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


class _Checked:
    """A user's callable i -> eta_i, checked (finite, > 0) at each use."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, i):
        eta = self.fn(i)
        try:
            ok = math.isfinite(eta) and eta > 0
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"schedule({i}) returned {eta!r}; a step size eta_i must be a finite number > 0")
        return float(eta)

    def __repr__(self):
        return f"schedule({getattr(self.fn, '__name__', repr(self.fn))})"


def get_schedule(schedule="constant", step_size=0.1, *, power_t=0.5, step_every=1000, gamma=0.5,
                 total=None) -> Callable[[int], float]:
    """The function i -> eta_i for a schedule name, or a user's callable checked at each use.

    ``total`` (the number of iterations tau) is needed by "cosine" only.

    >>> eta = get_schedule("inverse_sqrt", 0.5)
    >>> eta(1), eta(4)
    (0.5, 0.25)
    """
    if callable(schedule):
        return _Checked(schedule)
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} or a callable i -> eta_i; got {schedule!r}")
    eta = _check_positive(step_size, "step_size")
    if schedule == "constant":
        return lambda i: constant(eta, i)
    if schedule == "inverse_sqrt":
        return lambda i: inverse_sqrt(eta, i)
    if schedule == "invscaling":
        p = _check_positive(power_t, "power_t", allow_zero=True)
        return lambda i: invscaling(eta, i, p)
    if schedule == "step":
        every = _check_int(step_every, "step_every")
        if isinstance(gamma, bool) or not isinstance(gamma, Real) or not 0 < gamma <= 1:
            raise ValueError(f"gamma must be a number in (0, 1]; got {gamma!r}")
        return lambda i: step(eta, i, every, float(gamma))
    if total is None:
        raise ValueError("schedule='cosine' needs total (the number of iterations); got total=None")
    n = _check_int(total, "total")
    return lambda i: cosine(eta, i, n)
