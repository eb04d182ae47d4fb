"""Stability scores count straddling pre-activation bounds (pruning: tests/experiments)."""

import pytest
import torch
from torch import nn

from sparta.certify import bounds
from sparta.certify.stability import count_unstable, stability_scores


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


def test_bad_values_name_the_value():
    net = hand_net()
    x = torch.rand(4, 1, 1, 2)
    with pytest.raises(ValueError, match="eps="):
        stability_scores(net, x, -0.1)
    with pytest.raises(ValueError, match="method="):
        stability_scores(net, x, 0.1, method="lp")


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
