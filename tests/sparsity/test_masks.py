import copy

import pytest
import torch
from torch import nn

from sparta.sparsity.masks import (
    apply_masks,
    attach,
    detach_masks,
    mask_gradients,
    masks_of,
    prunable_parameters,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 3))


def test_prunable_parameters_default_include_exclude():
    net = _net()
    assert list(prunable_parameters(net)) == ["0.weight", "3.weight"]
    assert list(prunable_parameters(net, include="*.bias")) == ["0.bias", "1.bias", "3.bias"]
    assert list(prunable_parameters(net, exclude=["3.*"])) == ["0.weight"]
    with pytest.raises(ValueError, match="nomatch"):
        prunable_parameters(net, include="nomatch*")
    with pytest.raises(ValueError, match="nothing prunable"):
        prunable_parameters(net, exclude=["*"])


def test_attach_zeros_pruned_entries_and_masks_are_live_buffers():
    net = _net()
    mask = torch.rand(3, 16) > 0.5
    attach(net, {"3.weight": mask})
    assert torch.equal(net[3].weight == 0, ~mask)
    live = masks_of(net)["3.weight"]
    assert live is net[3].weight_mask and "3.weight_mask" in net.state_dict()
    attach(net, {"3.weight": torch.ones(3, 16, dtype=torch.bool)})  # replace, same buffer name
    assert bool(masks_of(net)["3.weight"].all())


def test_attach_errors():
    net = _net()
    with pytest.raises(ValueError, match="shape"):
        attach(net, {"3.weight": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="nope"):
        attach(net, {"nope": torch.ones(1, dtype=torch.bool)})


def test_mask_gradients_apply_and_detach():
    net = _net()
    mask = torch.rand(3, 16) > 0.5
    attach(net, {"3.weight": mask})
    net(torch.rand(2, 1, 4, 4)).sum().backward()
    mask_gradients(net)
    assert bool((net[3].weight.grad[~mask] == 0).all())
    with torch.no_grad():
        net[3].weight.add_(1.0)
    apply_masks(net)
    assert bool((net[3].weight[~mask] == 0).all()) and bool((net[3].weight[mask] != 0).all())
    removed = detach_masks(net)
    assert torch.equal(removed["3.weight"], mask) and masks_of(net) == {}
    assert bool((net[3].weight[~mask] == 0).all())


def test_masks_survive_deepcopy():
    net = _net()
    attach(net, {"0.weight": torch.rand(4, 1, 3, 3) > 0.5})
    clone = copy.deepcopy(net)
    assert torch.equal(masks_of(clone)["0.weight"], masks_of(net)["0.weight"])
    assert masks_of(clone)["0.weight"] is not masks_of(net)["0.weight"]


def test_mask_factors_follow_every_mask_change():
    """apply_masks/mask_gradients cache float masks; every way a mask changes is seen."""
    from sparta.train.masks import mask_factors

    net = _net()
    first = torch.rand(3, 16) > 0.5
    attach(net, {"3.weight": first})
    f = mask_factors(net)
    assert mask_factors(net) is f and f.factors[0].dtype == torch.float32
    cached = f.factors[0]
    assert mask_factors(net).factors[0] is cached  # nothing changed: no rebuild
    # an in-place edit of the buffer (what DST and GMP do)
    second = torch.rand(3, 16) > 0.5
    masks_of(net)["3.weight"].copy_(second)
    with torch.no_grad():
        net[3].weight.fill_(1.0)
    apply_masks(net)
    assert torch.equal(net[3].weight != 0, second)
    # a new mask on another layer
    conv = torch.rand(4, 1, 3, 3) > 0.5
    attach(net, {"0.weight": conv})
    net(torch.rand(2, 1, 4, 4)).sum().backward()
    mask_gradients(net)
    assert bool((net[0].weight.grad[~conv] == 0).all()) and bool(net[0].weight.grad[conv].any())
    assert bool((net[3].weight.grad[~second] == 0).all())
    # a cast of the model: factors follow the dtype
    net.double()
    with torch.no_grad():
        net[3].weight.fill_(2.0)
    apply_masks(net)
    assert mask_factors(net).factors[0].dtype == torch.float64
    assert net[3].weight.dtype == torch.float64 and torch.equal(net[3].weight != 0, second)
    # masks removed: nothing left to apply
    detach_masks(net)
    assert mask_factors(net).params == []
    apply_masks(net)


def test_masking_gradients_is_exact_multiplication():
    """Kept gradient entries are bit-identical, pruned ones exactly zero."""
    net = _net()
    mask = torch.rand(3, 16) > 0.3
    attach(net, {"3.weight": mask})
    net(torch.rand(2, 1, 4, 4)).sum().backward()
    before = net[3].weight.grad.clone()
    mask_gradients(net)
    assert torch.equal(net[3].weight.grad, torch.where(mask, before, torch.zeros(())))


def test_mask_factors_follow_a_replaced_module():
    """A module swapped for another with its own mask buffer (no attach) is honoured."""
    net = _net()
    attach(net, {"3.weight": torch.ones(3, 16, dtype=torch.bool)})
    apply_masks(net)
    new = nn.Linear(16, 3)
    keep = torch.rand(3, 16) > 0.5
    new.register_buffer("weight_mask", keep)
    net[3] = new
    apply_masks(net)
    assert torch.equal(net[3].weight != 0, keep)
