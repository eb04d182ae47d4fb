"""Channel groups: producers, BatchNorms and consumers found by tracing every registry model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparta import models
from sparta.data.base import DatasetInfo
from sparta.sparsity.groups import ChannelGroup, Consumer, channel_groups

INFO = DatasetInfo("tiny-rgb", (3, 16, 16), 10, (0.5,), (0.25,))


def _by_producer(groups: list[ChannelGroup]) -> dict[str, ChannelGroup]:
    return {p: g for g in groups for p in g.producers}


@pytest.mark.parametrize("name", models.names())
def test_every_registry_model_has_consistent_groups(name: str) -> None:
    model = models.create(name, INFO, width=0.25)
    groups = channel_groups(model, include_fixed=True)
    mods = dict(model.named_modules())
    assert any(g.prunable for g in groups), name
    for g in groups:
        for p in g.producers:
            w = mods[p].weight
            assert w.shape[0] == g.size
        for n in g.norms:
            assert mods[n].num_features == g.size
        for c in g.consumers:
            assert mods[c.module].weight.shape[1] == g.size * c.inner
    # the output logits and the network input are never prunable
    head = [g for g in groups if "feeds the output" in g.reason]
    assert head and all(not g.prunable for g in head)
    assert any(g.reason == "network input" and not g.producers for g in groups)
    # every Linear/Conv is a producer of exactly one group
    producers = [p for g in groups for p in g.producers]
    assert len(producers) == len(set(producers))
    weighted = {n for n, m in mods.items() if isinstance(m, nn.Linear | nn.Conv2d)}
    assert set(producers) == weighted


def test_flatten_feeds_a_linear_with_h_times_w_columns_per_channel() -> None:
    model = models.create("lenet5", INFO)  # 16x16 input: conv2 gives 16 maps of 4x4
    g = _by_producer(channel_groups(model))["conv2"]
    assert g.consumers == (Consumer("fc1", 16),)
    assert g.prunable


def test_resnet_stage_is_one_group_with_shortcut_and_stem() -> None:
    model = models.create("resnet20", INFO, width=0.25)
    groups = _by_producer(channel_groups(model))
    stem = groups["conv1"]
    assert set(stem.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    assert {"bn1", "layer1.0.bn2"} <= set(stem.norms)
    assert {"layer2.0.conv1", "layer2.0.shortcut.conv"} <= {c.module for c in stem.consumers}
    stage2 = groups["layer2.0.shortcut.conv"]
    assert "layer2.0.conv2" in stage2.producers and "layer2.0.shortcut.bn" in stage2.norms
    inner = groups["layer1.0.conv1"]
    assert inner.producers == ("layer1.0.conv1",) and inner.norms == ("layer1.0.bn1",)
    assert inner.consumers == (Consumer("layer1.0.conv2"),)
    last = groups["layer3.2.conv2"]
    assert Consumer("fc") in last.consumers


def test_wrn_preactivation_bn_reads_the_stream() -> None:
    model = models.create("wrn16-4", INFO, width=0.25)
    groups = _by_producer(channel_groups(model))
    assert "layer1.0.bn1" in groups["conv1"].norms
    assert "bn" in groups["layer3.1.conv2"].norms


def test_vit_groups_mlp_hidden_and_fixes_the_embedding() -> None:
    model = models.create("vit-tiny", INFO, width=0.5)
    groups = channel_groups(model, include_fixed=True)
    prunable = [g for g in groups if g.prunable]
    assert {g.producers for g in prunable} == {(f"blocks.{i}.mlp.fc1",) for i in range(4)}
    assert all(g.consumers[0].module.endswith("mlp.fc2") for g in prunable)
    stream = _by_producer(groups)["blocks.0.attn.proj"]
    assert not stream.prunable and "blocks.3.mlp.fc2" in stream.producers


def test_repr_is_readable() -> None:
    g = _by_producer(channel_groups(models.create("vgg11", INFO, width=0.25)))["conv1"]
    text = repr(g)
    assert text.startswith("ChannelGroup(16 channels") and "bn1" in text and "prunable" in text


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc2(self.fc2(self.fc1(x).relu())))


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_any_module_and_reused_modules_are_fixed() -> None:
    groups = channel_groups(_Twice(), (4,), include_fixed=True)
    by = _by_producer(groups)
    assert not by["fc2"].prunable and "called 2 times" in by["fc2"].reason
    assert not by["fc1"].prunable  # read by fc2 as well


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="torch.fx"):
        channel_groups(_Untraceable(), (4,))
    with pytest.raises(ValueError, match="input_shape is needed"):
        channel_groups(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="input_shape"):
        channel_groups(models.create("lenet300", INFO), (0, 3))


def test_tracing_restores_train_mode_and_bn_statistics() -> None:
    model = models.create("resnet20", INFO, width=0.25).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    channel_groups(model)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
