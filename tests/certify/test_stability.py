"""Stability scores count straddling pre-activation bounds; pruning removes unstable neurons."""

import pytest
import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.certify import bounds
from sparta.certify.stability import (
    count_unstable,
    finetune,
    prune_unstable,
    relu_producers,
    stability_scores,
)
from sparta.sparsity.masks import pruned_are_zero
from sparta.train import TrainConfig


def hand_net() -> nn.Sequential:
    """2 inputs -> 3 ReLUs -> 2 logits, with weights chosen by hand."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]))
        net[1].bias.copy_(torch.tensor([-0.5, -0.6, 0.0]))
        net[3].weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.5]]))
        net[3].bias.zero_()
    return net


def test_scores_count_straddles_exactly_on_a_hand_made_net():
    net, eps = hand_net(), 0.1
    pts = torch.tensor([[0.45, 0.19], [0.8, 0.27], [0.3, 0.35], [0.55, 0.5], [0.2, 0.33]])
    x = pts.view(-1, 1, 1, 2)
    # by hand: pre-activation centre W x + b, radius eps * sum|w| (no [0,1] clipping here)
    w, b = net[1].weight.detach(), net[1].bias.detach()
    centre, radius = pts @ w.t() + b, eps * w.abs().sum(1)
    straddle = (centre - radius < 0) & (centre + radius > 0)
    # centres: neuron 0 (radius 0.1) -0.05 0.3 -0.2 0.05 -0.3: 2 straddle; neuron 1 (radius
    # 0.2) -0.22 -0.06 0.1 0.4 0.06: 3; neuron 2 (radius 0.2) 0.26 0.53 -0.05 0.05 -0.13: 3
    expected = straddle.sum(0).double() / len(pts)
    scores = stability_scores(net, x, eps)
    assert list(scores) == ["2"]
    assert torch.equal(scores["2"], expected)
    assert expected.tolist() == [2 / 5, 3 / 5, 3 / 5]
    counts = count_unstable(net, x, eps)
    assert counts["total"] == pytest.approx(int(straddle.sum()) / len(pts))
    assert counts["n"] == 5 and set(counts["by_layer"]) == {"2"}


def test_conv_scores_are_per_channel_means_of_straddles():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )
    x = torch.rand(7, 1, 6, 6)
    scores = stability_scores(net, x, 0.05, batch_size=3)
    lo, up = bounds(net, x, 0.05).preact["1"]
    expected = ((lo < 0) & (up > 0)).double().mean(dim=(0, 2, 3))
    assert scores["1"].shape == (4,)
    assert torch.allclose(scores["1"], expected)


def _trained_mlp():
    torch.manual_seed(0)
    data = sdata.load("synthetic", "train", n=256, shape=(1, 6, 6), num_classes=4, seed=0)
    model = models.create("lenet300", dataset=data.info, hidden=(32, 16))
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, val_fraction=0.0, seed=0)
    finetune(model, None, data, cfg)
    return model, data


def test_pruning_unstable_neurons_reduces_unstable_count_and_masks_are_exact():
    model, data = _trained_mlp()
    eps = 0.02
    before = count_unstable(model, data, eps)
    scores = stability_scores(model, data, eps)
    assert before["total"] > 0
    handle = prune_unstable(model, data, eps, sparsity=0.5)
    after = count_unstable(model, data, eps)
    assert after["total"] < before["total"]
    masks = handle.masks
    # fc1 rows and bias of the pruned neurons, fc2's columns for them
    kept = masks["fc1.bias"]
    assert int(kept.sum()) == 16
    assert torch.equal(masks["fc1.weight"], kept[:, None].expand_as(masks["fc1.weight"]))
    assert torch.equal(
        masks["fc2.weight"][:, ~kept], torch.zeros_like(masks["fc2.weight"][:, ~kept])
    )
    # the pruned neurons are the most unstable ones of relu1
    s = scores["relu1"]
    assert float(s[~kept].min()) >= float(s[kept].max()) or float(s[~kept].min()) == 0
    # their pre-activation is exactly zero, hence stable
    lo, up = bounds(model, data.x[:32], eps).preact["relu1"]
    assert torch.equal(lo[:, ~kept], torch.zeros_like(lo[:, ~kept]))
    assert torch.equal(up[:, ~kept], torch.zeros_like(up[:, ~kept]))
    # fine-tuning keeps them pruned
    finetune(model, handle, data, TrainConfig(epochs=1, batch_size=64, val_fraction=0.0))
    assert pruned_are_zero(model)


def test_ties_go_by_l1_norm_and_global_scope_keeps_one_per_layer():
    model, data = _trained_mlp()
    l1 = model.fc1.weight.detach().abs().sum(1)
    handle = prune_unstable(model, data, 0.0, sparsity=0.25)  # eps 0: nothing unstable
    kept = handle.masks["fc1.bias"]
    assert torch.equal(
        torch.sort(torch.nonzero(~kept).flatten()).values,
        torch.sort(torch.argsort(l1, stable=True)[:8]).values,
    )
    model2, _ = _trained_mlp()
    h2 = prune_unstable(model2, data, 0.05, sparsity=0.9, scope="global")
    assert int(h2.masks["fc1.bias"].sum()) >= 1 and int(h2.masks["fc2.bias"].sum()) >= 1
    assert int(h2.masks["fc1.bias"].sum() + h2.masks["fc2.bias"].sum()) == round(0.1 * 48)


def test_relu_producers_and_bad_values():
    model, data = _trained_mlp()
    assert relu_producers(model) == {"relu1": "fc1", "relu2": "fc2"}
    with pytest.raises(ValueError, match="eps="):
        stability_scores(model, data, -0.1)
    with pytest.raises(ValueError, match="method="):
        stability_scores(model, data, 0.1, method="lp")
    with pytest.raises(ValueError, match="sparsity="):
        prune_unstable(model, data, 0.1, sparsity=1.0)


def test_count_unstable_ignores_grafted_neurons():
    import torch

    from sparta import models
    from sparta.certify import count_unstable, graft
    from sparta.data import DatasetInfo

    torch.manual_seed(0)
    info = DatasetInfo("synthetic", (1, 8, 8), 4, (0.5,), (0.25,))
    model = models.create("lenet300", dataset=info, width=0.1).eval()
    x = torch.rand(16, 1, 8, 8)
    before = count_unstable(model, x, 0.1)
    graft(model, fraction=1.0, data=x, eps=0.1)
    after = count_unstable(model, x, 0.1)
    assert before["total"] > 0 and after["total"] == 0
