"""Step sizes eta_i, i = 1, 2, ..., tau of the book's SGD (SSBD 20.6).

``get_schedule`` turns a name (or a callable i -> eta_i) into a function of the iteration i
(counted from 1, as in the book). Every named schedule starts at ``eta_1 = step_size``.
"""

from __future__ import annotations

import math
from typing import Callable

from ._checks import check_int, check_real

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
    eta = check_real(step_size, "step_size", low=0, low_open=True)
    if schedule == "constant":
        return lambda i: constant(eta, i)
    if schedule == "inverse_sqrt":
        return lambda i: inverse_sqrt(eta, i)
    if schedule == "invscaling":
        p = check_real(power_t, "power_t", low=0)
        return lambda i: invscaling(eta, i, p)
    if schedule == "step":
        every = check_int(step_every, "step_every", index_like=True)
        g = check_real(gamma, "gamma", 0, 1, low_open=True)
        return lambda i: step(eta, i, every, g)
    if total is None:
        raise ValueError("schedule='cosine' needs total (the number of iterations); got total=None")
    n = check_int(total, "total", index_like=True)
    return lambda i: cosine(eta, i, n)
