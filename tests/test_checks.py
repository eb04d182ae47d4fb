"""One rule per value: eps, norm, counts and positive sizes (sparta.checks)."""

import math

import pytest

from sparta.checks import NORMS, check_eps, check_int, check_norm, check_positive


@pytest.mark.parametrize("eps", [-0.1, math.inf, math.nan, "0.1", None, True])
def test_bad_eps_is_named(eps):
    with pytest.raises(ValueError, match=f"eps={eps!r}"):
        check_eps(eps)


def test_good_values_come_back_normalised():
    assert check_eps(0) == 0.0 and isinstance(check_eps(1), float)
    assert check_eps(0.5, "radius") == 0.5
    assert [check_norm(n) for n in NORMS] == ["linf", "l2"]
    assert check_int("steps", 3) == 3 and check_int("steps", 0, low=0) == 0
    assert check_positive("alpha", None) is None and check_positive("alpha", 2) == 2.0


def test_bad_values_are_named_with_what_is_allowed():
    with pytest.raises(ValueError, match="radius=-1 .*>= 0"):
        check_eps(-1, "radius")
    with pytest.raises(ValueError, match="'l3'.*allowed: linf, l2"):
        check_norm("l3")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="steps=.*integer >= 1"):
            check_int("steps", bad)
    for bad in (0, -1.0, math.inf):
        with pytest.raises(ValueError, match="alpha=.*> 0"):
            check_positive("alpha", bad)
    with pytest.raises(ValueError, match="eta=None"):
        check_positive("eta", None, allow_none=False)
