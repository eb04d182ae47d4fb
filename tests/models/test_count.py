from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparta.models import count_flops, count_nonzero, count_params, create

from .conftest import CIFAR, FASHION


def test_lenet300_exact_params_and_macs() -> None:
    model = create("lenet300", FASHION)
    assert count_params(model) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 == 266610
    assert count_flops(model, (1, 28, 28)) == 784 * 300 + 300 * 100 + 100 * 10 == 266200
    assert count_flops(model, (4, 1, 28, 28)) == 4 * 266200


def test_single_conv_macs_hand_computed() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (3, 32, 32)) == 32 * 32 * 8 * 3 * 3 * 3
    grouped = nn.Conv2d(4, 8, 3, stride=2, groups=2)
    assert count_flops(grouped, (4, 9, 9)) == 4 * 4 * 8 * (4 // 2) * 9


@settings(max_examples=25, deadline=None)
@given(
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 4),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    size=st.integers(3, 9),
)
def test_conv_macs_formula(c_in: int, c_out: int, k: int, stride: int, pad: int, size: int) -> None:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad)
    out = (size + 2 * pad - k) // stride + 1
    assert count_flops(conv, (c_in, size, size)) == out * out * c_out * c_in * k * k


def test_vit_counts_attention_matmuls() -> None:
    model = create("vit-tiny", CIFAR, depth=1)
    tokens, dim = 65, 64
    linear = 3 * 4 * 4 * 64 * 8 * 8  # patch conv: 8x8 positions, 64 maps, 3x4x4 kernel
    linear += tokens * (dim * 3 * dim + dim * dim + dim * 128 + 128 * dim) + dim * 10
    assert count_flops(model, (3, 32, 32)) == linear + 2 * tokens * tokens * dim


def test_count_flops_restores_mode_and_removes_hooks() -> None:
    model = create("resnet20", CIFAR, width=0.25).train()
    model.layer1.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_flops(model, CIFAR.input_shape) > 0
    assert model.training and not model.layer1.training and model.layer2.training
    assert not any(m._forward_hooks for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats untouched


def test_count_flops_bad_shape() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(nn.Linear(2, 2), (2,))


def test_count_params_trainable_only_and_shared() -> None:
    model = create("lenet300", FASHION)
    model.fc1.weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 266610 - 784 * 300
    shared = nn.Linear(3, 3)
    assert count_params(nn.Sequential(shared, shared)) == 12


def test_count_nonzero() -> None:
    model = create("lenet300", FASHION)
    assert count_nonzero(model) == 266610 - sum(int((p == 0).sum()) for p in model.parameters())
    with torch.no_grad():
        model.fc1.weight[:, :100].zero_()
        model.fc3.bias.zero_()
    weights = 784 * 300 + 300 * 100 + 100 * 10
    assert count_nonzero(model, weights_only=True) == weights - 300 * 100
    assert count_nonzero(model) == count_nonzero(model, weights_only=True) + 400
