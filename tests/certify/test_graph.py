"""Tracing models into bound-ready graphs: equal forward, clear errors for unsupported layers."""

import pytest
import torch
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
