import pytest

from sparta.registry import Registry, canonical, get_registry


def test_canonical_names_fold_case_and_underscores():
    assert canonical(" L1_Sparse ") == "l1-sparse"


def test_register_get_aliases_and_patterns():
    reg: Registry[object] = Registry("test-things")

    @reg.register("Alpha_One", aliases=("a1",), summary="first")
    def alpha():
        """Alpha's doc."""

    @reg.register("beta")
    def beta():
        """Beta's doc line.

        More."""

    assert (
        reg["alpha-one"] is alpha
        and reg["A1"] is alpha
        and reg.get("ALPHA_ONE").name == "alpha-one"
    )
    assert reg.names() == ["alpha-one", "beta"]
    assert reg.names("a*") == ["alpha-one"]
    assert reg.names("a1") == ["alpha-one"]  # aliases match patterns too
    assert reg.get("beta").doc == "Beta's doc line." and reg.get("a1").doc == "first"
    assert "beta" in reg and "gamma" not in reg
    with pytest.raises(ValueError, match="'gamma' is not known; allowed: alpha-one, beta"):
        reg.get("gamma")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a1", beta)
    reg.add("beta", beta)  # the same object again is a no-op


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match="allowed: .*models"):
        get_registry("nonsense")
