"""Checks of number arguments, shared by ``sgd``, ``schedules`` and ``optim``.

Each function returns the value as a plain ``int`` or ``float``, or raises ``ValueError`` with a
message that names the parameter and the value given, e.g.
``"batch_size must be an integer in [1, 10]; got 0"`` or ``"gamma must be a number in (0, 1]; got 2"``.
A bool is never taken for a number.
"""

from __future__ import annotations

import math
from numbers import Integral, Real


def check_int(value, name, low=1, high=None, *, index_like=False) -> int:
    """``int(value)`` for an integer ``low <= value`` (``<= high`` when ``high`` is given).

    An integer is a ``numbers.Integral`` (Python or NumPy integers), not a bool. ``index_like``
    also takes any other object with ``__index__`` (a 0-d array, a torch tensor), converted by
    ``int()``, as ``schedules.get_schedule`` always has.

    >>> check_int(3, "n"), check_int(0, "seed", 0)
    (3, 0)
    """
    if index_like:
        ok = not isinstance(value, bool) and (isinstance(value, int) or hasattr(value, "__index__"))
    else:
        ok = not isinstance(value, bool) and isinstance(value, Integral)
    if not ok or int(value) < low or (high is not None and int(value) > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {rng}; got {value!r}")
    return int(value)


def check_real(value, name, low=None, high=None, low_open=False, high_open=False) -> float:
    """``float(value)`` for a real number (a ``numbers.Real``, not a bool) within the bounds given:
    ``value > low`` (``low_open``) or ``>= low``, and ``value < high`` (``high_open``) or ``<= high``.

    With both bounds the range itself excludes NaN and inf, and the message reads
    ``"must be a number in [low, high)"``; with at most one bound the value must also be finite
    (``"must be a finite number > low"``). Bounds are printed as given (pass ``0``, not ``0.0``).

    >>> check_real(0.5, "gamma", 0, 1, low_open=True), check_real(0, "l2", low=0)
    (0.5, 0.0)
    """
    bounded = low is not None and high is not None
    ok = not isinstance(value, bool) and isinstance(value, Real) and (bounded or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low  # written so that NaN fails
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if bounded:
            rng = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            rng = f"a finite number {'>' if low_open else '>='} {low}"
        elif high is not None:
            rng = f"a finite number {'<' if high_open else '<='} {high}"
        else:
            rng = "a finite number"
        raise ValueError(f"{name} must be {rng}; got {value!r}")
    return float(value)
