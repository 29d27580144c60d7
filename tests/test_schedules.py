"""Step sizes eta_i (schedules.py)."""

import math

import pytest

from layerprop.schedules import get_schedule


@pytest.mark.parametrize("name, kw, expected", [
    ("constant", {}, [0.2, 0.2, 0.2, 0.2]),
    ("inverse_sqrt", {}, [0.2, 0.2 / math.sqrt(2), 0.2 / math.sqrt(3), 0.1]),
    ("invscaling", {"power_t": 0.25}, [0.2, 0.2 / 2 ** 0.25, 0.2 / 3 ** 0.25, 0.2 / 4 ** 0.25]),
    ("invscaling", {"power_t": 0.0}, [0.2, 0.2, 0.2, 0.2]),
    ("step", {"step_every": 2, "gamma": 0.5}, [0.2, 0.2, 0.1, 0.1]),
    ("cosine", {"total": 4}, [0.2, 0.2 * 0.5 * (1 + math.cos(math.pi / 4)), 0.1,
                               0.2 * 0.5 * (1 + math.cos(3 * math.pi / 4))]),
])
def test_named_schedule_values(name, kw, expected):
    eta = get_schedule(name, 0.2, **kw)
    assert [eta(i) for i in (1, 2, 3, 4)] == pytest.approx(expected, rel=1e-15)


def test_default_is_constant():
    assert get_schedule()(7) == 0.1


def test_callable_used_as_is():
    eta = get_schedule(lambda i: 1.0 / (i + 1))
    assert eta(1) == 0.5 and eta(3) == 0.25


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_callable_checked_at_use(bad):
    eta = get_schedule(lambda i: bad)
    with pytest.raises(ValueError, match="schedule"):
        eta(1)


@pytest.mark.parametrize("kw, argname", [
    ({"schedule": "linear"}, "schedule"),
    ({"schedule": 3}, "schedule"),
    ({"step_size": 0.0}, "step_size"),
    ({"step_size": -0.1}, "step_size"),
    ({"step_size": float("nan")}, "step_size"),
    ({"step_size": True}, "step_size"),
    ({"schedule": "invscaling", "power_t": -1.0}, "power_t"),
    ({"schedule": "step", "step_every": 0}, "step_every"),
    ({"schedule": "step", "step_every": 1.5}, "step_every"),
    ({"schedule": "step", "gamma": 0.0}, "gamma"),
    ({"schedule": "step", "gamma": 1.5}, "gamma"),
    ({"schedule": "cosine"}, "total"),
    ({"schedule": "cosine", "total": 0}, "total"),
])
def test_bad_values_name_the_argument(kw, argname):
    with pytest.raises(ValueError, match=argname):
        get_schedule(**kw)
