"""Tracing models into bound-ready graphs: equal forward, clear errors for unsupported layers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparta import data, models
from sparta.certify import UnsupportedLayerError, bounds, trace
from sparta.models import Normalize

from .helpers import small_model

ALL = [
    ("lenet300", (1, 8, 8)),
    ("lenet5", (1, 8, 8)),
    ("conv2", (1, 8, 8)),
    ("conv4", (3, 8, 8)),
    ("conv6", (3, 8, 8)),
    ("vgg11", (3, 8, 8)),
    ("vgg16", (3, 8, 8)),
    ("resnet20", (3, 8, 8)),
    ("resnet18", (3, 8, 8)),
    ("wrn16-4", (3, 8, 8)),
]


@pytest.mark.parametrize("name,shape", ALL)
def test_every_registry_model_but_vit_traces_and_bounds_with_ibp(name, shape):
    model, ds = small_model(name, shape, 0.1)
    x = ds.x[:3]
    graph = trace(model, x.shape[1:])
    with torch.no_grad():
        assert torch.allclose(graph.forward(x), model(x), atol=1e-5)
        b = bounds(model, x, 0.01, method="ibp", y=ds.y[:3])
    assert b.lower.shape == (3, 4) and (b.lower <= b.upper).all()
    assert all(lo.shape == up.shape and lo.shape[0] == 3 for lo, up in b.preact.values())


def test_preact_names_are_relu_modules():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    b = bounds(model, ds.x[:2], 0.01, method="crown")
    assert list(b.preact) == ["relu1", "relu2"]
    assert b.preact["relu1"][0].shape == (2, 30)


def test_vit_is_refused_naming_the_layer():
    ds = data.load("synthetic", "train", n=4, shape=(3, 8, 8), num_classes=4, seed=0)
    model = models.create("vit-tiny", dataset=ds.info)
    with pytest.raises(UnsupportedLayerError, match="LayerNorm"):
        bounds(model, ds.x, 0.01, method="crown")


def test_unsupported_layer_names_type_and_position():
    model = nn.Sequential(Normalize(0.5, 0.2), nn.Flatten(), nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(ValueError, match=r"layer '3' \(Tanh\)"):
        bounds(model, torch.rand(2, 1, 2, 2), 0.1)


def test_overlapping_maxpool_ibp_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(3, stride=1), nn.Flatten())
    x = torch.rand(2, 1, 6, 6)
    bounds(model, x, 0.1, method="ibp")
    with pytest.raises(UnsupportedLayerError, match="MaxPool2d"):
        bounds(model, x, 0.1, method="crown")


def test_bad_arguments():
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="eps"):
        bounds(model, ds.x[:1], -0.1)
    with pytest.raises(ValueError, match="method"):
        bounds(model, ds.x[:1], 0.1, method="deeppoly")
    with pytest.raises(ValueError, match="norm"):
        bounds(model, ds.x[:1], 0.1, norm="l1")


# ------------------------------------------------------------------ functional user models
class ModuleNet(nn.Module):
    """A small CNN written with modules: conv, relu, maxpool, conv, avgpool, flatten, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize((0.5,), (0.25,))
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=1, padding=1)
        self.fc1 = nn.Linear(6 * 2 * 2, 12)
        self.fc2 = nn.Linear(12, 3)
        self.body = nn.Sequential(
            self.norm, self.conv1, nn.ReLU(), nn.MaxPool2d(2), self.conv2, nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(), self.fc1, nn.ReLU(), self.fc2,
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


class FunctionalNet(nn.Module):
    """The same network with functional ops on parameter attributes, views and reshapes."""

    def __init__(self, ref: ModuleNet) -> None:
        super().__init__()
        self.norm = ref.norm
        self.w1, self.b1 = ref.conv1.weight, ref.conv1.bias
        self.conv2 = ref.conv2
        self.fc1 = ref.fc1
        self.w2, self.b2 = ref.fc2.weight, ref.fc2.bias

    def forward(self, x):
        x = self.norm(x)
        x = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        x = F.max_pool2d(x, 2)
        x = torch.relu(self.conv2(x))
        x = F.avg_pool2d(x, kernel_size=2)
        x = x.view(x.size(0), -1)
        x = x.reshape(-1, 6, 4)  # batch first as -1
        x = torch.flatten(x, 1)
        x = x.reshape(x.shape[0], 24)
        x = F.relu(self.fc1(x))
        return F.linear(x, self.w2, self.b2)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_functional_ops_bound_like_the_same_net_written_with_modules(method):
    from .helpers import check_sound, samples

    torch.manual_seed(0)
    ref = ModuleNet().eval()
    fun = FunctionalNet(ref).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.allclose(trace(fun, x.shape[1:]).forward(x), ref(x), atol=1e-6)
    eps = 0.02
    a = bounds(ref, x, eps, method=method, y=y)
    b = bounds(fun, x, eps, method=method, y=y)
    assert torch.allclose(a.lower, b.lower, atol=1e-5) and torch.allclose(
        a.upper, b.upper, atol=1e-5
    )
    assert torch.allclose(a.margin_lower, b.margin_lower, atol=1e-5)
    check_sound(fun, samples(x, eps, 200), y, b)


def test_functional_graph_follows_training():
    ref = ModuleNet().eval()
    fun = FunctionalNet(ref).eval()
    x = torch.rand(2, 1, 8, 8)
    before = bounds(fun, x, 0.01, method="ibp").lower.clone()
    with torch.no_grad():
        ref.fc2.bias.add_(1.0)  # fun reads the same parameter
    after = bounds(fun, x, 0.01, method="ibp").lower
    assert torch.allclose(after, before + 1.0, atol=1e-5)


def test_unsupported_functional_op_names_the_op_and_its_line():
    class Gelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(F.gelu(x.flatten(1)))  # the line the error names

    with pytest.raises(UnsupportedLayerError, match=r"'gelu'.* at .*test_graph\.py:\d+: return"):
        trace(Gelu(), (1, 2, 2))

    class BatchMixing(nn.Module):
        def forward(self, x):
            return x.view(-1)

    with pytest.raises(UnsupportedLayerError, match="batch dimension first"):
        trace(BatchMixing(), (1, 2, 2))

    class ScaledWeight(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, 4))

        def forward(self, x):
            return F.linear(x.flatten(1), self.w * 2)

    with pytest.raises(UnsupportedLayerError, match="outside a layer"):
        trace(ScaledWeight(), (1, 2, 2))
