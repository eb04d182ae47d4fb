"""Linearity grafting: grafted neurons are linear, the others keep their ReLU."""

import copy

import pytest
import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.certify import preact_bounds
from sparta.certify.grafting import GraftedReLU, graft, grafted_units, init_from_bounds
from sparta.certify.stability import stability_scores


def test_grafted_neurons_are_linear_and_the_others_relu():
    mask = torch.tensor([True, False, True, False])
    unit = GraftedReLU(mask, torch.tensor([0.5, 9.0, -2.0, 9.0]), torch.tensor([0.1, 9, 0.3, 9]))
    x = torch.randn(32, 4)
    out = unit(x)
    assert torch.allclose(out[:, 0], 0.5 * x[:, 0] + 0.1)
    assert torch.allclose(out[:, 2], -2.0 * x[:, 2] + 0.3)
    assert torch.equal(out[:, [1, 3]], torch.relu(x[:, [1, 3]]))
    # linear on grafted neurons: f(x1) + f(x2) - f(0) = f(x1 + x2)
    x1, x2, zero = torch.randn(4, 4), torch.randn(4, 4), torch.zeros(4, 4)
    lhs, rhs = unit(x1) + unit(x2) - unit(zero), unit(x1 + x2)
    assert torch.allclose(lhs[:, mask], rhs[:, mask])
    out.sum().backward()
    assert torch.equal(unit.slope.grad[~mask], torch.zeros(2))
    assert unit.slope.grad[mask].abs().sum() > 0


def test_per_channel_mask_on_feature_maps_and_exact_interval():
    unit = GraftedReLU(torch.tensor([True, False]), torch.tensor([-1.0, 1]), torch.tensor([0.5, 0]))
    x = torch.randn(3, 2, 4, 4)
    out = unit(x)
    assert torch.allclose(out[:, 0], 0.5 - x[:, 0])
    assert torch.equal(out[:, 1], torch.relu(x[:, 1]))
    lo, up = x - 0.3, x + 0.3
    ilo, iup = unit.interval(lo, up)
    pts = lo + torch.rand(50, *x.shape) * 0.6
    vals = torch.stack([unit(p) for p in pts])
    assert bool((vals >= ilo - 1e-6).all() and (vals <= iup + 1e-6).all())
    assert torch.allclose(ilo[:, 0], 0.5 - up[:, 0]) and torch.allclose(iup[:, 0], 0.5 - lo[:, 0])


def test_zonotope_init_balances_the_error_at_the_ends_and_zero():
    lo, up = torch.tensor([-1.0, 0.5, -2.0]), torch.tensor([3.0, 2.0, -0.5])
    a, b = init_from_bounds(lo, up)
    assert a.tolist() == [0.75, 1.0, 0.0] and b[1:].tolist() == [0.0, 0.0]
    err_l, err_0, err_u = a[0] * lo[0] + b[0], b[0], a[0] * up[0] + b[0] - up[0]
    assert float(err_0) == pytest.approx(-float(err_l)) == pytest.approx(-float(err_u))


def _mlp():
    torch.manual_seed(0)
    data = sdata.load("synthetic", "train", n=64, shape=(1, 6, 6), num_classes=4, seed=0)
    return models.create("lenet300", dataset=data.info, hidden=(16, 8)), data


def test_grafting_stably_active_neurons_keeps_outputs_and_replaces_modules():
    model, data = _mlp()
    x, eps = data.x[:8], 0.01
    before = model(x).detach()
    lo, _ = preact_bounds(model, x, eps)["relu1"]
    active = (lo >= 0).all(0)  # stably active on these inputs: init is the identity
    inactive = (preact_bounds(model, x, eps)["relu1"][1] <= 0).all(0)
    chosen = active | inactive
    assert chosen.any()
    units = graft(model, neurons={"relu1": chosen}, data=x, eps=eps)
    assert isinstance(model.relu1, GraftedReLU) and isinstance(model.relu2, nn.ReLU)
    assert set(units) == {"relu1"} and torch.equal(units["relu1"].mask, chosen)
    # exact where grafted neurons equal the ReLU on these inputs; untouched elsewhere
    assert torch.allclose(model(x), before, atol=1e-6)
    assert set(grafted_units(copy.deepcopy(model))) == {"relu1"}
    state = model.state_dict()
    assert "relu1.mask" in state and "relu1.slope" in state


def test_graft_whole_layers_and_by_instability():
    model, data = _mlp()
    units = graft(model, ["relu2"], init="identity", data=data.x[:2])
    assert units["relu2"].mask.all() and units["relu2"].mask.shape == (8,)
    z = torch.randn(5, 8)
    assert torch.equal(model.relu2(z), z)  # identity init: a linear layer
    model, data = _mlp()
    scores = stability_scores(model, data.x, 0.05)
    units = graft(model, fraction=0.25, data=data.x, eps=0.05, scope="layer")
    for name, unit in units.items():
        k = round(0.25 * unit.mask.numel())
        assert int(unit.mask.sum()) == k
        s = scores[name]
        assert float(s[unit.mask].min()) >= float(s[~unit.mask].max())


def test_graft_errors():
    model, data = _mlp()
    with pytest.raises(ValueError, match="exactly one"):
        graft(model, ["relu1"], fraction=0.5, data=data.x)
    with pytest.raises(ValueError, match="'fc1' is not an nn.ReLU"):
        graft(model, ["fc1"], data=data.x)
    with pytest.raises(ValueError, match="needs data"):
        graft(model, fraction=0.5)
    with pytest.raises(ValueError, match="fraction=2"):
        graft(model, fraction=2, data=data.x)


# ----------------------------------------------------------------------------- bound methods
def _grafted_lenet(eps_data: int = 8):
    """lenet300 (hidden 30, 10) on 8x8 inputs with about half of each layer grafted to random
    lines (slopes in [-1.5, 1.5], intercepts in [-0.3, 0.3])."""
    from .helpers import small_model

    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    g = torch.Generator().manual_seed(3)
    neurons = {n: torch.rand(k, generator=g) < 0.5 for n, k in (("relu1", 30), ("relu2", 10))}
    units = graft(model, neurons=neurons, init="identity", data=ds.x[:2])
    with torch.no_grad():
        for u in units.values():
            u.slope.copy_(torch.rand(u.slope.shape, generator=g) * 3 - 1.5)
            u.intercept.copy_(torch.rand(u.intercept.shape, generator=g) * 0.6 - 0.3)
    return model, ds.x[:eps_data], ds.y[:eps_data], units


GRAFT_EPS = 0.05


def test_bounds_of_grafted_model_are_sound_and_ordered():
    from sparta.attacks import create
    from sparta.certify import bounds

    from .helpers import check_sound, pgd_extremes, samples

    model, x, y, _ = _grafted_lenet()
    found = {
        m: bounds(model, x, GRAFT_EPS, method=m, y=y, alpha_steps=5)
        for m in ("ibp", "crown", "alpha-crown")
    }
    adv = create("pgd", model, eps=GRAFT_EPS, steps=10)(x, y).x_adv
    points = torch.cat(
        [samples(x, GRAFT_EPS, 400, seed=1), pgd_extremes(model, x, GRAFT_EPS, 5), adv[None]]
    )
    for b in found.values():
        check_sound(model, points, y, b)
    for loose, tight in (("ibp", "crown"), ("crown", "alpha-crown")):
        a, b = found[loose], found[tight]
        assert (b.lower >= a.lower - 1e-6).all() and (b.upper <= a.upper + 1e-6).all()
        assert (b.margin_lower >= a.margin_lower - 1e-6).all()
    assert set(found["crown"].preact) == {"relu1", "relu2"}
    width = {m: float((b.upper - b.lower).detach().sum()) for m, b in found.items()}
    assert width["crown"] < width["ibp"]


def test_fully_grafted_one_layer_net_is_affine_and_crown_is_exact():
    from sparta.certify import bounds

    torch.manual_seed(0)
    data = sdata.load("synthetic", "train", n=8, shape=(1, 8, 8), num_classes=4, seed=0)
    model = models.create("lenet300", dataset=data.info, hidden=(12,)).eval()
    unit = graft(model, ["relu1"], init="identity", data=data.x[:2])["relu1"]
    with torch.no_grad():
        unit.slope.copy_(torch.randn(12))
        unit.intercept.copy_(torch.randn(12) * 0.3)
    x, y, eps = data.x[:4], data.y[:4], 0.1
    # the model is affine: f(x) = J x + f(0), J from one Jacobian
    jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], torch.zeros(1, 8, 8))
    jac = jac.detach().flatten(1)  # (K, 64)
    with torch.no_grad():
        c = model(torch.zeros(1, 1, 8, 8))[0]
    lo_x, up_x = ((x - eps).clamp(0, 1).flatten(1), (x + eps).clamp(0, 1).flatten(1))

    def true_min(w, b):  # min of w . x + b over the box, per example
        return torch.minimum(w * lo_x[:, None], w * up_x[:, None]).sum(-1) + b

    true_lo, true_up = true_min(jac, c), -true_min(-jac, -c)
    diff = jac[y][:, None] - jac[None]  # (B, K, 64): rows of z_y - z_j
    true_margin = torch.minimum(diff * lo_x[:, None], diff * up_x[:, None]).sum(-1)
    true_margin = true_margin + (c[y][:, None] - c[None])
    for method in ("crown", "alpha-crown"):
        b = bounds(model, x, eps, method=method, y=y, alpha_steps=3)
        assert torch.allclose(b.lower, true_lo, atol=1e-4), method
        assert torch.allclose(b.upper, true_up, atol=1e-4), method
        assert torch.allclose(b.margin_lower, true_margin, atol=1e-4), method
        assert not b.unstable()["relu1"].any()


def test_grafted_neurons_are_never_unstable_and_bab_never_splits_them():
    from sparta.certify import bounds
    from sparta.certify.bab import BaB
    from sparta.certify.graph import trace

    model, x, y, units = _grafted_lenet(4)
    for method in ("ibp", "crown"):
        b = bounds(model, x, GRAFT_EPS, method=method, y=y)
        for name, unit in units.items():
            lo, up = b.preact[name]
            straddle = (lo < 0) & (up > 0)
            assert straddle[:, unit.mask].any()  # the test means something
            assert not b.unstable()[name][:, unit.mask].any()
            assert torch.equal(b.unstable()[name][:, ~unit.mask], straddle[:, ~unit.mask])
            assert torch.equal(b.grafted[name], unit.mask)
    # fully grafted: affine, so BaB decides at the root (LP leaf) without a branch
    for unit in units.values():
        unit.mask.fill_(True)
    graph = trace(model, (1, 8, 8))
    for i in range(2):
        res = BaB(graph, GRAFT_EPS).run(x[i : i + 1], int(y[i]), timeout=20)
        assert res.branches == 0 and res.status in ("verified", "falsified")


def test_bound_gradients_reach_slopes_and_intercepts():
    from sparta.certify import bounds

    model, x, y, units = _grafted_lenet(4)
    for method in ("ibp", "crown"):
        model.zero_grad()
        bounds(model, x, GRAFT_EPS, method=method, y=y).margin_lower.sum().backward()
        for unit in units.values():
            for p in (unit.slope, unit.intercept):
                assert p.grad is not None and p.grad[unit.mask].abs().sum() > 0, method
                assert torch.equal(p.grad[~unit.mask], torch.zeros(int((~unit.mask).sum())))


def test_trace_cache_follows_module_replacement():
    from sparta.certify.graph import GraftedReLUOp, ReLUOp, trace

    model, data = _mlp()
    before = trace(model, (1, 6, 6))
    assert trace(model, (1, 6, 6)) is before  # cached while the modules stay
    assert type(before.by_name["relu1"].op) is ReLUOp
    graft(model, ["relu1"], init="identity", data=data.x[:2])
    after = trace(model, (1, 6, 6))
    assert after is not before and isinstance(after.by_name["relu1"].op, GraftedReLUOp)
    model.relu1 = nn.ReLU()  # back to a plain ReLU: re-traced again
    assert type(trace(model, (1, 6, 6)).by_name["relu1"].op) is ReLUOp
