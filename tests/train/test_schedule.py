import math

import pytest

from sparta.train.schedule import lr_factor


def test_constant_is_one_after_warmup():
    assert [lr_factor(s, 10, "constant", warmup_steps=4) for s in range(6)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
        1.0,
    ]


def test_step_schedule_multiplies_at_milestones():
    got = [lr_factor(s, 10, "step", milestones=[3, 6], gamma=0.1) for s in (0, 2, 3, 5, 6, 9)]
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_hits_half_at_midpoint_and_zero_at_end():
    assert lr_factor(0, 100, "cosine") == 1.0
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.0)
    # after a warm-up of 10 steps the cosine spans the remaining 90
    assert lr_factor(55, 100, "cosine", warmup_steps=10) == pytest.approx(0.5)


def test_onecycle_rises_then_falls():
    f = [lr_factor(s, 100, "onecycle") for s in range(100)]
    peak = max(range(100), key=f.__getitem__)
    assert 25 <= peak <= 35 and f[0] < 0.1 and f[-1] < 0.01
    assert math.isclose(f[peak], 1.0)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="'linear'.*allowed"):
        lr_factor(0, 10, "linear")
