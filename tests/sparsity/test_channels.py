"""Channel scores, selection and mask layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparta import models
from sparta.data.base import DatasetInfo
from sparta.sparsity.channels import (
    channel_masks,
    channel_scores,
    masks_for,
    prune_channels,
    select_channels,
)
from sparta.sparsity.groups import channel_groups
from tests.sparsity.test_export import randomize

INFO = DatasetInfo("tiny-rgb", (3, 16, 16), 10, (0.5,), (0.25,))


def test_l1_l2_and_bn_scores_on_hand_values() -> None:
    model = models.create("vgg11", INFO, width=0.125)
    groups = channel_groups(model)
    g0 = groups[0]
    conv = model.get_submodule(g0.producers[0])
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1, 0, 0, 0] = -3.0
        conv.weight[1, 0, 0, 1] = 4.0
    l1 = channel_scores(model, groups, "l1")[0]
    l2 = channel_scores(model, groups, "l2")[0]
    assert l1[1] == 7.0 and l2[1] == 5.0 and l1[0] == 0.0
    bn = model.get_submodule(g0.norms[0])
    with torch.no_grad():
        bn.weight.copy_(torch.arange(g0.size, dtype=torch.float32) - 2)
    assert torch.equal(channel_scores(model, groups, "bn")[0], (bn.weight.detach().abs()))


def test_bn_score_needs_a_batchnorm() -> None:
    model = models.create("lenet5", INFO)
    with pytest.raises(ValueError, match="BatchNorm"):
        channel_masks(model, 0.5, "bn")


def test_layer_scope_removes_the_fraction_of_every_group_and_keeps_one() -> None:
    scores = [torch.tensor([3.0, 1.0, 2.0, 0.0]), torch.tensor([5.0]), torch.arange(10.0)]
    keeps = select_channels(scores, 0.5, "layer")
    assert keeps[0].tolist() == [True, False, True, False]
    assert keeps[1].tolist() == [True]
    assert keeps[2].sum() == 5 and keeps[2][5:].all()
    assert all(k.sum() >= 1 for k in select_channels(scores, 0.99, "layer"))


def test_global_scope_normalises_per_group_and_counts_exactly() -> None:
    # the second group's scores are 100x larger but equally spread: both lose alike
    scores = [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([100.0, 200.0, 300.0, 400.0])]
    keeps = select_channels(scores, 0.5, "global")
    assert [k.tolist() for k in keeps] == [[False, False, True, True]] * 2
    scores = [torch.rand(7), torch.rand(13), torch.rand(2)]
    keeps = select_channels(scores, 0.6, "global")
    assert sum(int(k.sum()) for k in keeps) == 22 - round(22 * 0.6)
    assert all(k.any() for k in keeps)


def test_masks_layout_and_exact_sparsity_on_resnet() -> None:
    model = models.create("resnet20", INFO, width=0.5)
    masks = channel_masks(model, 0.5, "random", seed=3)
    groups = channel_groups(model)
    for g in groups:
        rows = masks[f"{g.producers[0]}.weight"].flatten(1).any(1)
        assert int(rows.sum()) == max(1, round(g.size * 0.5))
        for n in g.norms:
            assert torch.equal(masks[f"{n}.weight"], rows) and torch.equal(masks[f"{n}.bias"], rows)
        for p in g.producers:
            assert torch.equal(masks[f"{p}.weight"].flatten(1).any(1), rows)
    # a conv's input columns follow the group it reads
    g = next(g for g in groups if g.producers == ("layer1.0.conv1",))
    rows = masks["layer1.0.conv1.weight"].flatten(1).any(1)
    cols = masks["layer1.0.conv2.weight"].transpose(0, 1).flatten(1).any(1)
    assert torch.equal(rows, cols) and g.consumers[0].module == "layer1.0.conv2"


@pytest.mark.parametrize("name", ["resnet20", "lenet5", "wrn16-4", "vit-tiny"])
def test_masked_channels_are_exactly_zero_after_each_layer(name: str) -> None:
    model = models.create(name, INFO, width=0.25)
    randomize(model)
    prune_channels(model, 0.5, "random", seed=1)
    model.eval()
    groups = channel_groups(model)
    masks = dict(model.named_buffers())
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o))
        for n, m in model.named_modules()
        if n
    ]
    model(torch.rand(2, *INFO.input_shape))
    for h in hooks:
        h.remove()
    checked = 0
    for g in groups:
        removed = ~masks[f"{g.producers[0]}.weight_mask"].flatten(1).any(1)
        for n in (*g.producers, *g.norms):
            out = seen[n]
            dim = 1 if out.dim() == 4 or out.dim() == 2 else -1
            assert torch.all(out.index_select(dim, removed.nonzero().flatten()) == 0), n
            checked += int(removed.any())
    assert checked > 0


def test_criteria_registry_scores_are_aggregated_per_channel() -> None:
    pytest.importorskip("sparta.sparsity.criteria")
    model = models.create("conv2", INFO, width=0.25)
    groups = channel_groups(model)
    mag = channel_scores(model, groups, "magnitude")
    l1 = channel_scores(model, groups, "l1")
    assert all(torch.allclose(a, b) for a, b in zip(mag, l1, strict=True))


def test_bad_inputs_are_clear_errors() -> None:
    model = models.create("lenet300", INFO, width=0.25)
    with pytest.raises(ValueError, match="sparsity"):
        channel_masks(model, 1.0)
    with pytest.raises(ValueError, match="not known"):
        channel_masks(model, 0.5, "l7")
    with pytest.raises(ValueError, match="erk"):
        channel_masks(model, 0.5, scope="erk")
    with pytest.raises(ValueError, match="distribution='diagonal' is not allowed"):
        channel_masks(model, 0.5, scope="diagonal")
    groups = channel_groups(model)
    with pytest.raises(ValueError, match="keep vector"):
        masks_for(model, groups, [torch.ones(3, dtype=torch.bool)] * len(groups))
    with pytest.raises(ValueError, match="no prunable channel group"):
        channel_masks(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 0.5, input_shape=(4,))
