"""The model helpers every layer uses: modes, flags, wrappers, device, input shape, sparsity."""

import pytest
import torch
from torch import nn

from sparta import models
from sparta.data.base import DatasetInfo
from sparta.models import (
    bare,
    device_of,
    dtype_of,
    eval_mode,
    frozen,
    grad_flags,
    input_shape_of,
    train_mode,
    weight_sparsity,
)

INFO = DatasetInfo("digits", (1, 8, 8), 10, (0.3,), (0.4,))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Dropout(0.5), nn.Linear(8, 3))


def test_eval_mode_and_frozen_restore_mixed_modes_and_flags_even_on_error():
    net = _net().train()
    net[2].eval()  # a mixed state must come back as it was
    net[1].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"), frozen(net):
        assert not any(m.training for m in net.modules())
        assert not any(p.requires_grad for p in net.parameters())
        raise RuntimeError("inside")
    assert [m.training for m in net.modules()] == [True, True, True, False, True]
    assert [p.requires_grad for p in net.parameters()] == [False, True, True, True]
    with eval_mode(net):
        assert not net.training
    net.eval()
    with train_mode(net):
        assert all(m.training for m in net.modules())
    assert not any(m.training for m in net.modules())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile imports jit
def test_bare_strips_data_parallel_and_compile_wrappers_however_nested():
    net = _net()
    assert bare(net) is net
    assert bare(nn.DataParallel(net)) is net
    assert bare(torch.compile(net)) is net  # lazy: nothing is compiled until called
    assert bare(nn.DataParallel(torch.compile(net))) is net


class _Holder(nn.Module):
    """A module with a submodule attribute named ``module`` is not a wrapper."""

    def __init__(self) -> None:
        super().__init__()
        self.module = nn.Linear(2, 2)


def test_bare_keeps_a_model_whose_submodule_is_called_module():
    holder = _Holder()
    assert bare(holder) is holder


def test_device_and_dtype_of_models_with_and_without_parameters():
    assert device_of(nn.ReLU()) == torch.device("cpu") and dtype_of(nn.ReLU()) == torch.float32
    bn = nn.BatchNorm1d(3, affine=False).double()  # buffers only
    assert not list(bn.parameters()) and dtype_of(bn) == torch.float64
    assert device_of(_net()) == torch.device("cpu")


def test_input_shape_from_the_spec_or_given():
    model = models.create("lenet300", INFO)
    assert input_shape_of(model) == (1, 8, 8)
    assert input_shape_of(nn.DataParallel(model)) == (1, 8, 8)
    assert input_shape_of(_net(), (1, 8, 8)) == (1, 8, 8)
    with pytest.raises(ValueError, match="input_shape is needed"):
        input_shape_of(_net())
    with pytest.raises(ValueError, match="positive sizes"):
        input_shape_of(_net(), (1, 0, 8))


def test_weight_sparsity_counts_zero_weights_of_linear_and_conv_layers_only():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        net[0].weight.zero_()  # 18 of 18 + 16 weights; biases do not count
        net[0].bias.zero_()
        net[2].weight[0].zero_()  # 8 more
    assert weight_sparsity(net) == pytest.approx(26 / 34)
    assert weight_sparsity(nn.ReLU()) == 0.0
    # among the named weights only (SparsityHandle passes the masked ones)
    assert weight_sparsity(net, only={"0.weight"}) == 1.0
    assert weight_sparsity(net, only={"2.weight"}) == pytest.approx(8 / 16)
    assert weight_sparsity(net, only=set()) == 0.0


def test_grad_flags_restores_requires_grad_even_on_error():
    net = _net()
    net[1].bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"), grad_flags(net):
        for p in net.parameters():
            p.requires_grad_(not p.requires_grad)
        raise RuntimeError("inside")
    assert [p.requires_grad for p in net.parameters()] == [True, False, True, True]
