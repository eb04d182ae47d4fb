import pytest

from sparta.registry import KINDS, Registry, canonical, get_registry


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


def test_meta_filters_aliases_and_remove():
    reg: Registry[object] = Registry("test-filtered", label="thing")
    reg.add("one", 1, aliases=("uno",), odd=True)
    reg.add("two", 2, odd=False)
    assert reg.names(odd=True) == ["one"] and reg.names("t*", odd=False) == ["two"]
    assert reg.names(None) == ["one", "two"] and reg.aliases() == ["one", "two", "uno"]
    with pytest.raises(ValueError, match="thing 'three' is not known; allowed: one, two"):
        reg.get("three")
    assert reg.remove("UNO").name == "one" and "uno" not in reg and reg.names() == ["two"]


# one alias (or other spelling) per kind and the canonical name it resolves to
SPELLINGS = {
    "attacks": ("APGD_CE", "apgd-ce"),
    "certify": ("Alpha_CROWN", "alpha-crown"),
    "criteria": ("BN", "bn-scale"),
    "datasets": ("Fashion_MNIST", "fashion-mnist"),
    "dst": ("RigL", "rigl"),
    "models": ("mlp", "lenet300"),
    "objectives": ("pgd", "pgd-at"),
    "unlearn": ("l1_sparse", "l1-sparse"),
    "variants": ("PGD_AT_GMP", "pgd-at-gmp"),
    "pillars": ("Unlearning", "unlearning"),
}
EXPECTED = {
    "attacks": {"pgd", "fgsm", "apgd-ce", "apgd-t", "fab-t", "square", "zo-rge", "mi-fgsm"},
    "certify": {"ibp", "crown", "alpha-crown", "bab", "smooth"},
    "criteria": {"magnitude", "snip", "synflow", "random", "l1", "l2", "bn-scale"},
    "datasets": {"digits", "fashion-mnist", "synthetic", "cifar10"},
    "dst": {"set", "rigl", "chase"},
    "models": {"lenet300", "lenet5", "resnet18", "vgg11", "vit-tiny", "wrn16-4"},
    "objectives": {"standard", "pgd-at", "trades", "fast", "wot", "ibp", "gaussian"},
    "unlearn": {"retrain", "ft", "ga", "rl", "l1-sparse", "salun"},
    "variants": {"dense", "oneshot", "gmp", "lottery", "rigl", "channel", "stability", "pgd-at"},
    "pillars": {"accuracy", "efficiency", "robustness", "certification", "unlearning", "backdoor"},
}


def test_kinds_map_is_complete():
    assert set(KINDS) == set(SPELLINGS)
    for kind, module in KINDS.items():
        reg = get_registry(kind)
        assert reg.kind == kind and module in reg.populate


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_registry_lists_resolves_and_rejects(kind):
    reg = get_registry(kind)
    names = reg.names()
    assert EXPECTED[kind] <= set(names) and names == sorted(names)
    assert all(n == canonical(n) for n in names)
    alias, name = SPELLINGS[kind]
    assert reg.resolve(alias) == name and reg[alias] is reg[name]
    with pytest.raises(
        ValueError, match=f"'no-such-name' is not known; allowed: {', '.join(names)}$"
    ):
        reg.get("no-such-name")


def test_registry_metadata_filters_per_kind():
    from sparta.attacks import names as attack_names
    from sparta.certify.api import METHODS, check_method
    from sparta.certify.verify import VERIFY_METHODS
    from sparta.sparsity.dst import create_dst
    from sparta.train import create_objective, objective_names

    assert attack_names(black_box=True) == ["square", "zo-cge", "zo-rge"]
    assert objective_names(adversarial=True) == ["fast", "pgd-at", "trades", "wot"]
    assert METHODS == ("alpha-crown", "crown", "ibp") and VERIFY_METHODS == (*METHODS, "bab")
    assert check_method("IBP") == "ibp"
    with pytest.raises(ValueError, match="method='bab' is not allowed; expected one of alpha"):
        check_method("bab")
    assert type(create_objective("pgd", eps=0.1)) is type(create_objective("PGD_AT", eps=0.1))
    with pytest.raises(
        ValueError, match="DST method 'magic' is not known; allowed: chase, rigl, set"
    ):
        create_dst("magic", None, 0.5)  # type: ignore[arg-type]
