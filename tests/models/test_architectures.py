from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models import Normalize, count_params, create, from_spec, names, spec_of
from sparta.models.vit import default_patch_size

from .conftest import ALL_INFOS, CIFAR, DIGITS, FASHION

MODELS = names()
# the large models are built at a reduced width where the test does not depend on width
# (their full-width forward pass is covered by test_full_width_large_models)
SMALL_WIDTH = {"resnet18": 0.25, "vgg16": 0.25, "vgg11": 0.25, "wrn16-4": 0.25}


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_on_all_inputs(name: str, info: DatasetInfo) -> None:
    torch.manual_seed(0)
    model = create(name, info, width=SMALL_WIDTH.get(name, 1.0))
    out = model(torch.rand(2, *info.input_shape))
    assert out.shape == (2, info.num_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_first_module_is_normalize_with_dataset_stats(name: str) -> None:
    model = create(name, CIFAR, width=SMALL_WIDTH.get(name, 1.0))
    first = next(model.children())
    assert isinstance(first, Normalize)
    torch.testing.assert_close(first.mean.flatten(), torch.tensor(CIFAR.mean))
    torch.testing.assert_close(first.std.flatten(), torch.tensor(CIFAR.std))


@pytest.mark.parametrize("name", MODELS)
def test_half_width_has_fewer_params(name: str) -> None:
    assert count_params(create(name, DIGITS, width=0.5)) < count_params(create(name, DIGITS))


@pytest.mark.parametrize("name", MODELS)
def test_deepcopy_gives_same_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = create(name, DIGITS, width=SMALL_WIDTH.get(name, 1.0)).eval()
    clone = copy.deepcopy(model)
    x = torch.rand(2, *DIGITS.input_shape)
    assert torch.equal(model(x), clone(x))
    assert spec_of(clone) == spec_of(model)


@pytest.mark.parametrize("name", MODELS)
def test_from_spec_loads_state_dict_strictly(name: str) -> None:
    torch.manual_seed(0)
    model = create(name, FASHION, width=SMALL_WIDTH.get(name, 0.5)).eval()
    rebuilt = from_spec(spec_of(model)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, *FASHION.input_shape)
    assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("name", MODELS)
def test_width_scaling_small_widths_work(name: str) -> None:
    model = create(name, DIGITS, width=0.01)  # every hidden width rounds up to at least 1
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_lenet300_layers() -> None:
    model = create("lenet300", FASHION)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 300), (300, 100), (100, 10)]


@pytest.mark.parametrize(
    ("info", "flat"), [(FASHION, 16 * 5 * 5), (CIFAR, 16 * 5 * 5), (DIGITS, 64)]
)
def test_lenet5_flatten_size(info: DatasetInfo, flat: int) -> None:
    model = create("lenet5", info)
    assert model.fc1.in_features == flat
    assert (model.conv1.out_channels, model.conv2.out_channels) == (6, 16)
    assert (model.fc1.out_features, model.fc2.out_features) == (120, 84)


def test_lenet5_classic_param_count_on_mnist() -> None:
    assert count_params(create("lenet5", FASHION)) == 61706


@pytest.mark.parametrize(
    ("name", "convs", "params"),
    # conv2/4/6 on CIFAR-10 (Frankle & Carbin 2019, Figure 2: 4.3M, 2.4M, 1.7M weights)
    [
        ("conv2", [64, 64], 4301642),
        ("conv4", [64, 64, 128, 128], 2425930),
        ("conv6", [64, 64, 128, 128, 256, 256], 2262602),
    ],
)
def test_conv_n_matches_lottery_ticket_paper(name: str, convs: list[int], params: int) -> None:
    model = create(name, CIFAR)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == convs
    fcs = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert fcs == [256, 256, 10]
    assert count_params(model) == params


def test_known_param_counts() -> None:
    assert count_params(create("resnet20", CIFAR)) == 272474  # ~0.27M (He et al.)
    assert count_params(create("resnet18", CIFAR)) == 11173962
    assert count_params(create("wrn16-4", CIFAR)) == 2748890  # ~2.7M (Zagoruyko et al.)


def test_batchnorm_only_where_the_paper_has_it() -> None:
    for name in ("lenet300", "lenet5", "conv2", "conv4", "conv6", "vit-tiny"):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in create(name, CIFAR).modules())
    for name in ("vgg11", "resnet20", "wrn16-4"):
        assert any(isinstance(m, nn.BatchNorm2d) for m in create(name, CIFAR).modules())


def test_resnet_shortcuts() -> None:
    model = create("resnet20", CIFAR)
    assert isinstance(model.layer1[0].shortcut, nn.Identity)
    proj = model.layer2[0].shortcut
    assert isinstance(proj.conv, nn.Conv2d) and proj.conv.kernel_size == (1, 1)
    assert isinstance(proj.bn, nn.BatchNorm2d)
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [3, 3, 3]
    r18 = create("resnet18", CIFAR, width=0.25)
    assert r18.conv1.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in r18.modules())


def test_wrn_options() -> None:
    model = create("wrn16-4", CIFAR, dropout=0.3)
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [2, 2, 2]
    assert model.fc.in_features == 256
    assert isinstance(model.layer1[0].dropout, nn.Dropout)
    assert isinstance(create("wrn16-4", DIGITS, width=0.25).layer1[0].dropout, nn.Identity)


@pytest.mark.parametrize(("size", "patch"), [(28, 4), (32, 4), (8, 2), (30, 2), (7, 1)])
def test_vit_patch_size(size: int, patch: int) -> None:
    assert default_patch_size(size, size) == patch


def test_vit_options() -> None:
    model = create("vit-tiny", CIFAR)
    assert model.patch_size == 4 and model.pos_embed.shape == (1, 65, 64)
    assert len(model.blocks) == 4 and model.blocks[0].attn.heads == 4
    assert model.blocks[0].mlp.fc1.out_features == 128
    half = create("vit-tiny", DIGITS, width=0.5, depth=2, patch_size=4)
    assert half.pos_embed.shape == (1, 5, 32) and len(half.blocks) == 2
    with pytest.raises(ValueError, match="patch_size 3"):
        create("vit-tiny", DIGITS, patch_size=3)


def test_non_square_inputs() -> None:
    info = DatasetInfo("wide", (3, 16, 24), 5, (0.5,) * 3, (0.5,) * 3)
    for name in ("lenet300", "lenet5", "conv6", "vit-tiny", "resnet20"):
        assert create(name, info).eval()(torch.rand(2, 3, 16, 24)).shape == (2, 5)


def test_models_are_plain_modules_without_hooks() -> None:
    for info in ALL_INFOS:
        model = create("resnet20", info, width=0.25)
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", sorted(SMALL_WIDTH))
def test_full_width_large_models(name: str) -> None:
    model = create(name, CIFAR)
    assert model(torch.rand(2, *CIFAR.input_shape)).shape == (2, 10)


@pytest.mark.parametrize("name", MODELS)
def test_fx_traceable_with_explicit_residuals(name: str) -> None:
    model = create(name, DIGITS, width=0.25).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.rand(2, *DIGITS.input_shape)
    torch.testing.assert_close(traced(x), model(x))
    adds = [n for n in traced.graph.nodes if n.op == "call_function" and "add" in str(n.target)]
    if name.startswith(("resnet", "wrn", "vit")):
        assert adds, "residual additions should appear in the traced graph"
