"""Pixelated Butterfly layers: the mask pattern, the block-sparse forward/backward, the swap,
checkpoints and counting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparta import io
from sparta.data.base import DatasetInfo
from sparta.models import count_flops, create
from sparta.models.pixelfly import (
    PixelflyLinear,
    flat_butterfly_layout,
    parse_pixelfly,
    pixelfly_,
    plan_layer,
)
from sparta.sparsity import report

INFO = DatasetInfo("digits", (1, 8, 8), 10, (0.3,), (0.37,))


def grid(rows: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r] for r in rows.split()])


def test_flat_butterfly_matches_the_hand_drawn_4x4_block_pattern():
    # factors=0: the block diagonal; 1: + the stride-1 butterfly factor (i XOR j = 1);
    # 2: + stride 2 (i XOR j = 2), i.e. the support of I + B_1 + B_2 (not the product)
    assert torch.equal(flat_butterfly_layout(4, 4, 0), grid("1000 0100 0010 0001"))
    assert torch.equal(flat_butterfly_layout(4, 4, 1), grid("1100 1100 0011 0011"))
    assert torch.equal(flat_butterfly_layout(4, 4, 2), grid("1110 1101 1011 0111"))
    assert torch.equal(flat_butterfly_layout(4, 4, 5), flat_butterfly_layout(4, 4, 2))


def test_a_non_square_grid_is_the_square_pattern_stretched():
    # 8 row blocks over a 4 x 4 butterfly: rows 2i and 2i+1 are butterfly row i
    expected = grid("1100 1100 1100 1100 0011 0011 0011 0011")
    assert torch.equal(flat_butterfly_layout(8, 4, 1), expected)
    assert torch.equal(flat_butterfly_layout(4, 8, 1), expected.t())


def dense_masked_reference(layer: PixelflyLinear, x: torch.Tensor):
    """The same layer as a dense masked computation with its own leaf tensors."""
    w = (layer.dense_weight() - (layer.u @ layer.v.t() if layer.rank else 0)).detach()
    w = w.clone().requires_grad_()
    u = layer.u.detach().clone().requires_grad_() if layer.rank else None
    v = layer.v.detach().clone().requires_grad_() if layer.rank else None
    b = layer.bias.detach().clone().requires_grad_() if layer.bias is not None else None
    xr = x.detach().clone().requires_grad_()
    y = xr @ (w * layer.mask()).t()
    if layer.rank:
        y = y + (xr @ v) @ u.t()
    if b is not None:
        y = y + b
    return y, xr, w, u, v, b


@pytest.mark.parametrize(
    "in_f,out_f,block,factors,rank,bias",
    [
        (64, 64, 16, 2, 3, True),  # square, uniform
        (64, 192, 16, 1, 2, True),  # the ViT's qkv shape
        (100, 44, 8, 2, 0, False),  # sizes not multiples of the block: padding, ragged rows
        (70, 45, 8, 1, 4, True),
    ],
)
def test_sparse_forward_and_backward_equal_the_dense_masked_computation(
    in_f, out_f, block, factors, rank, bias
):
    torch.manual_seed(0)
    layer = PixelflyLinear(in_f, out_f, block, factors, rank, bias)
    x = torch.randn(3, 5, in_f, requires_grad=True)  # a token dimension, as in the ViT
    y = layer(x)
    ref, xr, w, u, v, b = dense_masked_reference(layer, x)
    assert y.shape == (3, 5, out_f)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    gy = torch.randn_like(y)
    y.backward(gy)
    ref.backward(gy)
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-5, rtol=1e-5)
    # the tile gradient is the dense gradient restricted to the mask, tile by tile
    tiles = PixelflyLinear(in_f, out_f, block, factors, rank, bias)
    with torch.no_grad():
        tiles.weight.copy_(layer.weight.grad)
        if rank:
            tiles.u.zero_()
    torch.testing.assert_close(tiles.dense_weight(), w.grad * layer.mask(), atol=1e-5, rtol=1e-5)
    if rank:
        torch.testing.assert_close(layer.u.grad, u.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(layer.v.grad, v.grad, atol=1e-5, rtol=1e-5)
    if bias:
        torch.testing.assert_close(layer.bias.grad, b.grad, atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences():
    torch.manual_seed(1)
    layer = PixelflyLinear(20, 12, 4, 1, 2).double()
    x = torch.randn(3, 20, dtype=torch.double, requires_grad=True)
    params = (layer.weight, layer.u, layer.v, layer.bias)

    def f(x, *p):
        return layer(x)

    assert torch.autograd.gradcheck(f, (x, *params))


def test_spare_slots_of_ragged_rows_stay_exactly_zero_through_training():
    torch.manual_seed(0)
    layer = PixelflyLinear(100, 44, 8, 2, 3)
    spare = ~layer.slot_mask()
    assert spare.any() and not layer.weight[spare].any()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(16, 100)).square().mean().backward()
        assert not layer.weight.grad[spare].any()
        opt.step()
    assert not layer.weight[spare].any()
    assert layer.weight[~spare].any()


def test_the_budget_plan_fills_density_with_butterfly_then_low_rank():
    # 1024 x 1024, block 32: a 32 x 32 grid, rank = 1/4 of the budget / (in + out) = 32;
    # the rest, 0.1875 of the weights, is 6 tiles per row: factors 5 (strides 1..16)
    assert plan_layer(1024, 1024, 32, 0.25) == (5, 32)
    layer = PixelflyLinear(1024, 1024, 32, 5, 32)
    assert layer.density() == pytest.approx(0.25)
    assert layer.nonzero_params() == 32 * 6 * 32 * 32 + 32 * 2048
    assert plan_layer(1024, 1024, 32, 0.25, rank=0) == (5, 0)
    assert plan_layer(256, 256, 32, 0.05, rank=0) == (0, 0)  # never below the diagonal


def test_pixelfly_swaps_the_hidden_layers_of_the_mlp_and_the_vit_projections():
    torch.manual_seed(0)
    mlp = create("mlp-wide", INFO, width=0.125)  # 128 units
    names = pixelfly_(mlp, block=16, density=0.3)
    assert names == ["fc1", "fc2", "fc3"]
    assert isinstance(mlp.fc4, nn.Linear)  # the 10-class classifier stays dense
    assert mlp(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    vit = create("vit-tiny", INFO)
    names = pixelfly_(vit, block=16, density=0.3)
    assert sorted({n.rsplit(".", 1)[1] for n in names}) == ["fc1", "fc2", "proj", "qkv"]
    assert len(names) == 16 and isinstance(vit.head, nn.Linear)
    assert vit(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="block=128"):
        pixelfly_(create("lenet300", INFO), block=128)


def test_a_pixelfly_model_saves_and_loads_with_sparta_load(tmp_path):
    torch.manual_seed(0)
    model = create("mlp-wide", INFO, width=0.125)
    pixelfly_(model, block=16, density=0.3, rank=2)
    x = torch.rand(4, 1, 8, 8)
    path = io.save(model, tmp_path / "m.safetensors")
    back = io.load(path)
    assert isinstance(back.fc2, PixelflyLinear) and back.fc2.rank == 2
    assert torch.equal(back(x), model.eval()(x))


def test_report_and_flops_count_the_kept_weights_only():
    torch.manual_seed(0)
    model = create("mlp-wide", INFO, width=0.125)
    pixelfly_(model, block=16, density=0.3, rank=2)
    fly = [m for m in model.modules() if isinstance(m, PixelflyLinear)]
    kept = sum(m.nonzero_params() for m in fly)
    rep = report(model)["global"]
    dense_numel = sum(m.dense_numel for m in fly) + 128 * 10
    assert rep["sparsity"] == pytest.approx(1 - (kept + 128 * 10) / dense_numel)
    assert rep["macs"] == dense_numel  # one sample: every dense weight is one MAC
    assert rep["macs_kept"] == pytest.approx(kept + 128 * 10)
    assert count_flops(model, (1, 8, 8)) == kept + 128 * 10


@pytest.mark.parametrize(
    "text,needle",
    [
        ("block=0", "block must be"),
        ("density=1.5", "density must be"),
        ("rank=-1", "rank must be"),
        ("size=3", "'size=3'"),
        ("block=x", "block='x'"),
    ],
)
def test_bad_pixelfly_settings_name_the_value(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_pixelfly(text)
    assert parse_pixelfly("on") == {}
    assert parse_pixelfly("block=16, density=0.1,rank=4") == {
        "block": 16,
        "density": 0.1,
        "rank": 4,
    }


def test_restoring_into_a_model_that_already_has_the_layers_keeps_its_parameters(tmp_path):
    # a resumed run restores its checkpoint into the model its optimizer already holds
    torch.manual_seed(0)
    model = create("mlp-wide", INFO, width=0.125)
    pixelfly_(model, block=16, density=0.3)
    path = io.save(model, tmp_path / "m.safetensors")
    with torch.no_grad():
        model.fc2.weight.zero_()
    before = [id(p) for p in model.parameters()]
    tensors, meta = io.read_checkpoint(path)
    io.restore_model(model, tensors, meta)
    assert [id(p) for p in model.parameters()] == before
    assert model.fc2.weight.any()  # the checkpoint's weights were loaded into them
