"""Compact export and CSR/BSR sparse inference: same outputs, smaller models, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sparta
from sparta import models
from sparta.data.base import DatasetInfo
from sparta.sparsity.channels import prune_channels
from sparta.sparsity.export import (
    SparseConv2d,
    SparseLinear,
    compact,
    compact_report,
    kept_channels,
    sparse_size_bytes,
    to_sparse,
)
from sparta.sparsity.groups import channel_groups
from sparta.sparsity.masks import attach, masks_of
from sparta.sparsity.topk import global_masks

RGB = DatasetInfo("tiny-rgb", (3, 16, 16), 10, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
GRAY = DatasetInfo("tiny-gray", (1, 12, 12), 10, (0.3,), (0.4,))


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and biases, so dropped entries would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
            elif isinstance(m, nn.Linear | nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)


def _pruned(name: str, info: DatasetInfo, sparsity: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    model = models.create(name, info, width=0.25 if name != "lenet300" else 0.5)
    randomize(model)
    prune_channels(model, sparsity, "random", seed=7)
    return model.eval()


@pytest.mark.parametrize("name", models.names())
def test_compact_equals_masked_on_every_registry_model(name: str, tmp_path) -> None:
    info = GRAY if name in ("lenet300", "lenet5") else RGB
    model = _pruned(name, info)
    groups = channel_groups(model)
    small = compact(model)
    x = torch.rand(3, *info.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = model(x), small(x)
    assert (ref - out).abs().max() <= 1e-5
    # exactly the expected channel counts
    mods = dict(small.named_modules())
    for g in groups:
        k = max(1, round(g.size * 0.5))
        assert all(mods[p].weight.shape[0] == k for p in g.producers)
        assert all(mods[n].num_features == k for n in g.norms)
        assert all(mods[c.module].weight.shape[1] == k * c.inner for c in g.consumers)
    rep = compact_report(model, small)
    assert rep["params"] < rep["params_dense"] and rep["macs"] < rep["macs_dense"]
    assert not masks_of(small)
    # the checkpoint alone rebuilds the small model
    sparta.save(small, tmp_path)
    again = sparta.load(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(x), out)
    assert models.count_params(again) == rep["params"]


def test_compact_in_train_mode_matches_too() -> None:
    model = _pruned("resnet20", RGB).train()
    small = compact(model).train()
    x = torch.rand(8, *RGB.input_shape)
    assert (model(x) - small(x)).abs().max() <= 1e-5


def test_compact_without_channel_masks_is_an_error() -> None:
    model = models.create("lenet5", GRAY)
    with pytest.raises(ValueError, match="no channel masks"):
        compact(model)
    # unstructured masks that happen to zero rows do not remove channels
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n.endswith("weight")}
    attach(model, global_masks(scores, 0.5))
    with pytest.raises(ValueError, match="structure='channel'"):
        compact(model)


def test_compacted_model_with_new_masks_round_trips(tmp_path) -> None:
    small = compact(_pruned("vgg11", RGB))
    scores = {n: p.detach().abs() for n, p in small.named_parameters() if n.endswith("weight")}
    attach(small, global_masks(scores, 0.8))
    sparta.save(small, tmp_path / "m.safetensors")
    again = sparta.load(tmp_path / "m.safetensors")
    x = torch.rand(2, *RGB.input_shape)
    with torch.no_grad():
        assert torch.equal(again(x), small.eval()(x))
    assert set(masks_of(again)) == set(masks_of(small))


def test_compact_twice_keeps_all_shapes(tmp_path) -> None:
    small = compact(_pruned("conv4", RGB))
    prune_channels(small, 0.5, "l1")
    smaller = compact(small)
    assert smaller.conv1.out_channels == small.conv1.out_channels // 2
    sparta.save(smaller, tmp_path)
    x = torch.rand(2, *RGB.input_shape)
    with torch.no_grad():
        assert torch.equal(sparta.load(tmp_path)(x), smaller.eval()(x))


def test_kept_channels_reads_the_masks() -> None:
    model = _pruned("resnet20", RGB)
    groups = channel_groups(model)
    keeps = kept_channels(model, groups)
    for g, k in zip(groups, keeps, strict=True):
        assert int(k.sum()) == max(1, round(g.size * 0.5))


@pytest.mark.parametrize("fmt,block", [("csr", 16), ("bsr", 2)])
def test_sparse_inference_equals_masked_dense(fmt: str, block: int, tmp_path) -> None:
    torch.manual_seed(0)
    model = models.create("lenet5", GRAY)
    weights = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    attach(model, global_masks({n: p.detach().abs() for n, p in weights.items()}, 0.9))
    model.eval()
    sparse = to_sparse(model, fmt, blocksize=block)
    kinds = {type(m) for m in sparse.modules()}
    assert SparseLinear in kinds and SparseConv2d in kinds
    x = torch.rand(5, *GRAY.input_shape)
    with torch.no_grad():
        assert (sparse(x) - model(x)).abs().max() <= 1e-5
    for name, m in sparse.named_modules():
        if isinstance(m, SparseLinear | SparseConv2d):
            dense = model.get_submodule(name).weight.detach().flatten(1)
            assert torch.equal(m.to_dense_weight(), dense)
    sparta.save(sparse, tmp_path)
    again = sparta.load(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(x), sparse(x))
    if fmt == "csr":  # a few index bytes per non-zero: far below the dense 4 bytes x all
        assert sparse_size_bytes(sparse) < 0.3 * sparse_size_bytes(model)


def test_sparse_linear_on_token_inputs_and_macs() -> None:
    model = models.create("vit-tiny", RGB, width=0.5).eval()
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n.endswith("weight")}
    attach(model, global_masks(scores, 0.75))
    sparse = to_sparse(model, "csr", include_conv=False)
    x = torch.rand(2, *RGB.input_shape)
    with torch.no_grad():
        assert (sparse(x) - model(x)).abs().max() <= 1e-5
    shape = RGB.input_shape
    assert models.count_flops(sparse, shape) < models.count_flops(model, shape)


def test_bsr_keeps_undivisible_layers_dense_and_bad_inputs_raise() -> None:
    model = models.create("lenet300", GRAY, width=0.5)  # 144 -> 150 -> 50 -> 10
    scores = {n: p.detach().abs() for n, p in model.named_parameters() if n.endswith("weight")}
    attach(model, global_masks(scores, 0.5))
    sparse = to_sparse(model, "bsr", blocksize=(2, 4))  # 4 divides 144 but not 150 or 50
    assert isinstance(sparse.fc1, SparseLinear) and isinstance(sparse.fc3, nn.Linear)
    assert "weight_mask" in dict(sparse.fc3.named_buffers())
    with pytest.raises(ValueError, match="sparse format"):
        to_sparse(model, "coo")
    with pytest.raises(ValueError, match="blocksize"):
        to_sparse(model, "bsr", blocksize=0)
    with pytest.raises(ValueError, match="no masked Linear"):
        to_sparse(models.create("lenet300", GRAY), "csr")
    with pytest.raises(ValueError, match="kept dense"):
        to_sparse(model, "bsr", blocksize=7)


# ------------------------------------------------------------------ BatchNorm folding
def test_fold_batchnorm_by_hand() -> None:
    """One Conv (no bias) + BN: W' = W * gamma / sqrt(var + eps), b' = beta - mean * scale."""
    from sparta.sparsity.export import batchnorm_pairs, fold_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU()).eval()
    randomize(net)
    bn = net[1]
    assert batchnorm_pairs(net) == [("0", "1")]
    folded = fold_batchnorm(net)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(folded[0].weight, net[0].weight * scale.view(3, 1, 1, 1), atol=0)
    assert torch.allclose(folded[0].bias, bn.bias - bn.running_mean * scale, atol=1e-7)
    assert isinstance(folded[1], nn.Identity) and folded.sparta_folded == {"1": "0"}
    assert isinstance(net[1], nn.BatchNorm2d) and net[0].bias is None  # original untouched
    x = torch.rand(4, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-6)


def test_batchnorm_is_not_folded_where_it_would_change_outputs() -> None:
    """A conv output read by BN and by something else, a BN in train-only mode
    (no running stats) and an untraceable model are left alone."""
    from sparta.sparsity.export import batchnorm_pairs, fold_batchnorm

    class TwoUsers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    class Untraceable(nn.Sequential):
        def forward(self, x):
            return super().forward(x) if x.sum() > 0 else x

    assert batchnorm_pairs(TwoUsers()) == []
    no_stats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    assert batchnorm_pairs(no_stats) == []
    odd = Untraceable(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert batchnorm_pairs(odd) == []
    assert isinstance(fold_batchnorm(odd)[1], nn.BatchNorm2d)


def test_fold_keeps_masks_and_pruned_zeros() -> None:
    from sparta.sparsity.export import fold_batchnorm

    model = _pruned("resnet20", RGB)
    folded = fold_batchnorm(model)
    bn_masks = {n for n in masks_of(model) if ".bn" in n or n.startswith("bn")}
    assert bn_masks and set(masks_of(folded)) == set(masks_of(model)) - bn_masks
    for name, mask in masks_of(folded).items():
        w = folded.get_parameter(name)
        assert bool((w[~mask] == 0).all()), name
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(3, *RGB.input_shape)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "lenet5", "conv4"])
def test_compact_fold_bn_matches_and_round_trips(name: str, tmp_path) -> None:
    """compact(fold_bn=True) equals the masked model in eval mode up to float rounding
    (tolerance 1e-5: folding reorders the BN arithmetic), and reloads bit-identically."""
    info = GRAY if name == "lenet5" else RGB
    model = _pruned(name, info)
    small = compact(model, fold_bn=True).eval()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(getattr(small, "sparta_folded", {})) == n_bn
    assert not any(isinstance(m, nn.BatchNorm2d) for m in small.modules())
    x = torch.rand(4, *info.input_shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        assert (small(x) - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    sparta.save(small, tmp_path / "m.safetensors")
    back = sparta.load(tmp_path / "m.safetensors")
    with torch.no_grad():
        assert torch.equal(back(x), small(x))
    assert models.count_params(back) == models.count_params(small)


# ------------------------------------------------------------------ inference modes
def test_inference_modes_match_and_the_choice_is_saved(tmp_path) -> None:
    from sparta.sparsity.export import INFERENCE_MODES, choose_inference, for_inference

    model = _pruned("resnet20", RGB)
    small = compact(model, fold_bn=True).eval()
    x = torch.rand(8, *RGB.input_shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = model(x)
        for mode in INFERENCE_MODES:
            assert torch.allclose(for_inference(small, mode)(x), ref, atol=1e-5), mode
    assert for_inference(small) is small  # nothing chosen yet: eager, the model itself
    best = choose_inference(small, x, repeats=1)
    rec = small.sparta_inference
    assert best == rec["mode"] and set(rec["ms"]) == set(INFERENCE_MODES)
    assert rec["ms"][best] == min(rec["ms"].values())
    sparta.save(small, tmp_path / "m.safetensors")
    back = sparta.load(tmp_path / "m.safetensors")
    assert back.sparta_inference == rec
    with torch.no_grad():
        assert torch.allclose(for_inference(back)(x), ref, atol=1e-5)


def test_choose_inference_skips_channels_last_without_convs_and_rejects_bad_modes() -> None:
    from sparta.sparsity.export import choose_inference, for_inference

    mlp = models.create("lenet300", GRAY, width=0.25).train()
    choose_inference(mlp, torch.rand(4, *GRAY.input_shape), repeats=1)
    assert set(mlp.sparta_inference["ms"]) == {"eager", "jit"}
    assert mlp.training  # timed in eval mode, the caller's mode restored
    with pytest.raises(ValueError, match="allowed"):
        for_inference(mlp, "tensorrt")
    with pytest.raises(ValueError, match="not all known"):
        choose_inference(mlp, torch.rand(4, *GRAY.input_shape), modes=["fast"])
