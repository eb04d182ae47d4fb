"""Denoiser, autoencoder, the composed DenoisedClassifier and the BlackBox wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparta import io, models
from sparta.models import BlackBox, BlackBoxGradientError, DenoisedClassifier, create_denoised
from sparta.models.denoise import ConvDecoder, ConvEncoder, DnCNN

from .conftest import CIFAR, DIGITS, FASHION


def test_dncnn_subtracts_the_predicted_noise():
    torch.manual_seed(0)
    net = DnCNN(1, depth=3, features=8)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(net(x), x - net.body(x))
    last = net.body[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    assert torch.equal(net(x), x)  # a zero noise estimate is the identity, exactly
    with pytest.raises(ValueError, match="depth=1"):
        DnCNN(1, depth=1)


@pytest.mark.parametrize("info", [DIGITS, FASHION, CIFAR], ids=lambda i: i.name)
def test_autoencoder_shapes_and_pixel_range(info):
    torch.manual_seed(0)
    enc, dec = ConvEncoder(info.input_shape, 12), ConvDecoder(info.input_shape, 12)
    x = torch.rand(3, *info.input_shape)
    z = enc(x)
    assert z.shape == (3, 12)
    out = dec(z * 50)  # large codes still decode into [0, 1]
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_odd_sizes_are_cropped_back():
    shape = (1, 30, 27)
    assert ConvDecoder(shape, 4)(torch.randn(2, 4)).shape == (2, *shape)


def _classifier() -> nn.Module:
    torch.manual_seed(1)
    return models.create("lenet300", FASHION, width=0.25).eval()


@pytest.mark.parametrize("latent", [0, 8])
def test_composed_model_copies_the_classifier_and_reloads(latent, tmp_path):
    clf = _classifier()
    net = create_denoised(clf, depth=3, latent=latent, width=0.25)
    assert isinstance(net, DenoisedClassifier) and net.has_autoencoder == bool(latent)
    for key, value in clf.state_dict().items():
        assert torch.equal(net.classifier.state_dict()[key], value)
    x = torch.rand(4, *FASHION.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.back(net.front(x)))
        torch.testing.assert_close(net(x), clf(net.restore(x)))
    io.save(net, tmp_path / "m.safetensors")
    back = io.load(tmp_path / "m.safetensors")
    assert isinstance(back, DenoisedClassifier)
    with torch.no_grad():
        assert torch.equal(back(x), net.eval()(x))
    assert models.spec_of(back)["kwargs"]["classifier"]["name"] == "lenet300"


def test_classifier_of_another_shape_is_refused():
    spec = models.spec_of(_classifier())
    with pytest.raises(ValueError, match="shape"):
        models.create("sparta.models.denoise:denoised", CIFAR, classifier=spec)
    with pytest.raises(ValueError, match="classifier"):
        models.create("sparta.models.denoise:denoised", FASHION)


def test_black_box_counts_rows_and_refuses_gradients():
    clf = _classifier().train()
    box = BlackBox(clf, max_batch=3)
    assert list(box.parameters()) == []  # the wrapped weights are hidden from optimizers
    x = torch.rand(7, *FASHION.input_shape, requires_grad=True)
    out = box(x)
    with torch.no_grad():
        torch.testing.assert_close(out, clf.eval()(x))
    clf.train()
    box(x[:2])
    assert box.queries == 9 and clf.training  # rows counted, mode restored
    with pytest.raises(BlackBoxGradientError):
        out.sum().backward()
    assert x.grad is None and all(p.grad is None for p in clf.parameters())
