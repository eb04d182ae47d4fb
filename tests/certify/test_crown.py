"""CROWN and alpha-CROWN: sound, never looser than IBP (resp. CROWN), margins via C."""

import pytest
import torch

from sparta.certify import bounds, verify

from .helpers import ARCHS, check_sound, pgd_extremes, samples, small_model

EPS = 0.03


@pytest.fixture(scope="module", params=ARCHS, ids=[a[0] for a in ARCHS])
def problem(request):
    name, shape, width = request.param
    model, ds = small_model(name, shape, width)
    x, y = ds.x[:4], ds.y[:4]
    methods = ("ibp", "crown", "alpha-crown")  # 5 alpha steps: the conv nets' time
    found = {m: bounds(model, x, EPS, method=m, y=y, alpha_steps=5) for m in methods}
    return model, x, y, found


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_bounds_contain_samples_corners_and_pgd(problem, method):
    model, x, y, found = problem
    check_sound(model, samples(x, EPS, 1000, seed=1), y, found[method])
    check_sound(model, pgd_extremes(model, x, EPS, steps=5), y, found[method])


def test_crown_never_looser_than_ibp_and_alpha_never_looser_than_crown(problem):
    _, _, _, found = problem
    for loose, tight in (("ibp", "crown"), ("crown", "alpha-crown")):
        a, b = found[loose], found[tight]
        assert (b.lower >= a.lower - 1e-6).all() and (b.upper <= a.upper + 1e-6).all()
        assert (b.margin_lower >= a.margin_lower - 1e-6).all()
        for name, (lo, up) in b.preact.items():
            assert (lo >= a.preact[name][0] - 1e-6).all() and (up <= a.preact[name][1] + 1e-6).all()
    # on these networks CROWN is strictly tighter somewhere
    assert (found["crown"].upper - found["crown"].lower).sum() < (
        found["ibp"].upper - found["ibp"].lower
    ).sum()


def test_crown_margin_at_least_logit_difference():
    model, ds = small_model("lenet5", (1, 8, 8), 0.25)
    x, y = ds.x[:4], ds.y[:4]
    b = bounds(model, x, EPS, method="crown", y=y)
    naive = b.lower.gather(1, y[:, None]) - b.upper
    assert (b.margin_lower >= naive - 1e-6).all()


def test_crown_is_exact_at_eps_zero():
    model, ds = small_model("resnet20", (1, 8, 8), 0.25)
    x = ds.x[:2]
    b = bounds(model, x, 0.0, method="crown")
    with torch.no_grad():
        z = model(x)
    assert torch.allclose(b.lower, z, atol=1e-4) and torch.allclose(b.upper, z, atol=1e-4)


def test_verified_examples_resist_pgd():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    x, y = ds.x, model(ds.x).argmax(1).detach()  # label = prediction: all clean-correct
    eps = 0.005
    res = verify(model, x, y, eps, method="crown")
    assert res.counts()["verified"] > 0
    ok = torch.tensor([s == "verified" for s in res.status])
    from sparta.attacks import create

    adv = create("pgd", model, eps=eps, steps=30, restarts=2)(x[ok], y[ok])
    assert not adv.success.any()
