"""Stability pruning for certification: the most unstable neurons go, masks are exact."""

import pytest
import torch

from sparta import data as sdata
from sparta import models
from sparta.certify import bounds
from sparta.certify.stability import count_unstable, stability_scores
from sparta.experiments.stability import finetune, prune_unstable, relu_producers
from sparta.sparsity.masks import pruned_are_zero
from sparta.train import TrainConfig


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
    with pytest.raises(ValueError, match="scope="):
        prune_unstable(model, data, 0.1, sparsity=0.5, scope="erk")
    with pytest.raises(ValueError, match="sparsity="):
        prune_unstable(model, data, 0.1, sparsity=1.0)
