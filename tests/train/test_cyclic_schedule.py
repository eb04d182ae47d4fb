"""Sup-tickets' cyclic learning rate: the plan of the cycles and the cosine within a cycle."""

import math

import pytest

from sparta.train.schedule import cycle_plan, cyclic_factor


def test_cycle_plan_ends_at_the_last_step_with_equal_cycles():
    assert cycle_plan(100, 4, 0.2) == (80, 5)  # floor(0.2 * 100 / 4) = 5 steps per cycle
    assert cycle_plan(103, 4, 0.2) == (83, 5)  # int(20.6) = 20 -> 5; the cycles end at 103
    assert cycle_plan(10, 3, 1.0) == (1, 3)
    assert cycle_plan(10, 10, 1.0) == (0, 1)  # no pre-cycle phase


@pytest.mark.parametrize(
    "args,needle",
    [((100, 0, 0.2), "cycles=0"), ((100, 2, 0.0), "fraction=0.0"), ((3, 4, 1.0), "do not fit")],
)
def test_cycle_plan_rejects(args, needle):
    with pytest.raises(ValueError, match=needle):
        cycle_plan(*args)


def test_cyclic_factor_hand_computed():
    high, low = 0.5, 0.1
    # cycles of 5 steps from step 10: i = 0..4, t = i / 4, low + (high - low)/2 (1 + cos(pi t))
    expected = [
        0.5,
        0.1 + 0.2 * (1 + math.cos(math.pi / 4)),
        0.3,
        0.1 + 0.2 * (1 - math.cos(math.pi / 4)),
        0.1,
    ]
    got = [cyclic_factor(s, 10, 5, high, low) for s in range(10, 20)]
    assert got == pytest.approx(expected * 2, abs=1e-12)
    assert got[4] == low and got[5] == high  # the ticket at the low rate, then a restart
    assert cyclic_factor(7, 7, 1, high, low) == low  # one-step cycles sit at the low rate
    with pytest.raises(ValueError, match="before the first cycle"):
        cyclic_factor(9, 10, 5, high, low)
