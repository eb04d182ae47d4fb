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
