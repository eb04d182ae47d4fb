"""Denoised smoothing (first-order) and ZO-AE-DS: the black box is only queried, queries are
counted exactly, the zeroth-order gradient points where the true one does, and the composed
model trains, saves, reloads and certifies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparta import data, io, models
from sparta.certify.smoothing import certify_dataset
from sparta.defenses import (
    DenoiserObjective,
    DenoiserValidation,
    freeze_classifier,
    mse_pretrain,
    noisy_accuracy,
    prepare,
)
from sparta.models import BlackBoxGradientError
from sparta.train import TrainConfig, Trainer


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Trap(torch.autograd.Function):
    """Identity whose backward raises: any gradient through the classifier is caught."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("a gradient reached the black-box classifier")


class Trapped(nn.Sequential):
    def forward(self, x):
        return super().forward(_Trap.apply(x))


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").take(96, seed=0)


def _pipeline(latent: int) -> models.DenoisedClassifier:
    torch.manual_seed(0)
    clf = models.create("lenet300", "digits", width=0.25)
    net = models.create_denoised(clf, depth=3, latent=latent, width=0.25)
    return freeze_classifier(net)


def _cfg(epochs: int = 1) -> TrainConfig:
    return TrainConfig(
        dataset="digits",
        model="lenet300",
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        schedule="constant",
    )


@pytest.mark.parametrize("latent", [0, 6])
def test_zeroth_order_training_only_queries_the_classifier(latent, digits):
    net = _pipeline(latent)
    net.classifier = Trapped(net.classifier)  # its backward would raise
    frozen = {k: v.clone() for k, v in net.state_dict().items()}
    q = 5
    objective = DenoiserObjective(0.25, black_box=True, q=q, mu=0.01, seed=3)
    Trainer(net, digits, _cfg(), objective=objective, quiet=True).fit()
    # per batch of N: N clean labels + N at the code + q N directions, nothing more
    assert objective.queries == len(digits) * (2 + q)
    state = net.state_dict()
    fixed = ("classifier.", "decoder.")
    assert all(torch.equal(state[k], v) for k, v in frozen.items() if k.startswith(fixed))
    moved = [k for k in frozen if not k.startswith(fixed) and not torch.equal(state[k], frozen[k])]
    assert any(k.startswith("denoiser.") for k in moved)
    assert any(k.startswith("encoder.") for k in moved) == bool(latent)


def test_first_order_training_does_backpropagate_through_the_classifier(digits):
    net = _pipeline(0)
    net.classifier = Trapped(net.classifier)
    objective = DenoiserObjective(0.25, black_box=False)
    with pytest.raises(AssertionError, match="reached the black-box"):
        Trainer(net, digits, _cfg(), objective=objective, quiet=True).fit()
    assert objective.queries == 0


def test_black_box_objective_cannot_be_differentiated_by_mistake(digits):
    net = _pipeline(6)
    objective = DenoiserObjective(0.25, black_box=True, q=2)
    objective(net, digits.x[:4], digits.y[:4])
    with pytest.raises(BlackBoxGradientError):  # a forgotten detach would fail, not cheat
        objective._oracle(digits.x[:4].requires_grad_()).sum().backward()


def test_zeroth_order_gradient_agrees_with_the_true_one(digits):
    """Sphere RGE with many directions at a small radius ~ the autograd gradient at the code
    (ZO-AE-DS Sec. 3); a wrong sign or scale would fail."""
    net = _pipeline(6)
    x, y = digits.x[:8], digits.y[:8]
    grads = []
    for black_box in (True, False):
        objective = DenoiserObjective(0.25, black_box=black_box, q=4000, mu=1e-3, seed=5)
        code = {}

        def keep(module, inputs, out, code=code):
            out.retain_grad()
            code["z"] = out

        net.encoder.register_forward_hook(keep)
        net.zero_grad()
        loss, _ = objective(net, x, y)
        (loss * len(x)).backward()  # the per-example gradients of the summed loss
        net.encoder._forward_hooks.clear()
        grads.append(code["z"].grad.clone())
    zo, fo = grads
    cos = F.cosine_similarity(zo, fo, dim=1)
    assert (cos > 0.8).all(), cos
    ratio = zo.norm(dim=1) / fo.norm(dim=1)
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio


def test_reported_loss_is_the_stability_loss(digits):
    net = _pipeline(6)
    x, y = digits.x[:10], digits.y[:10]
    objective = DenoiserObjective(0.5, black_box=True, q=3, seed=1)
    loss, logits = objective(net, x, y)
    g = torch.Generator().manual_seed(1)  # the objective's first noise draw
    noisy = x + 0.5 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        expected = F.cross_entropy(net(noisy), net.classifier(x).argmax(1))
        torch.testing.assert_close(logits, net(noisy))
    torch.testing.assert_close(loss.detach(), expected)


def test_mse_pretraining_lowers_the_denoising_error(digits):
    net = _pipeline(0)

    def err() -> float:
        g = torch.Generator().manual_seed(9)
        noisy = digits.x + 0.25 * torch.randn(digits.x.shape, generator=g)
        with torch.no_grad():
            return float(F.mse_loss(net.denoiser(noisy), digits.x))

    before = err()
    mse_pretrain(net.denoiser, digits, 0.25, epochs=3, lr=3e-3, batch_size=16, quiet=True)
    assert err() < 0.8 * before


def test_prepare_freezes_the_fixed_side_only(digits):
    torch.manual_seed(0)
    net = models.create_denoised(models.create("lenet300", "digits", width=0.25), 3, 6, 0.25)
    clf = {k: v.clone() for k, v in net.classifier.state_dict().items()}
    prepare(net, digits, 0.25, epochs=1, batch_size=32, quiet=True)
    assert not any(p.requires_grad for p in net.classifier.parameters())
    assert not any(p.requires_grad for p in net.decoder.parameters())
    assert all(p.requires_grad for p in net.denoiser.parameters())
    assert all(p.requires_grad for p in net.encoder.parameters())
    assert all(torch.equal(net.classifier.state_dict()[k], v) for k, v in clf.items())


def test_composed_model_trains_saves_loads_and_certifies(digits, tmp_path):
    net = _pipeline(6)
    objective = DenoiserObjective(0.25, black_box=True, q=4)
    val = DenoiserValidation(digits, 0.25, n=40)
    history = Trainer(net, digits, _cfg(), objective=objective, callbacks=[val], quiet=True).fit()
    assert history[-1]["queries"] == objective.queries == len(digits) * 6
    assert 0 <= history[-1]["val_noisy_acc"] <= 1
    io.save(net, tmp_path / "m.safetensors")
    back = io.load(tmp_path / "m.safetensors")
    assert noisy_accuracy(back, digits, 0.25, seed=2) == noisy_accuracy(net, digits, 0.25, seed=2)
    a = certify_dataset(back, digits.take(4, seed=0), 0.25, n0=10, n=50, alpha=0.01)
    b = certify_dataset(net, digits.take(4, seed=0), 0.25, n0=10, n=50, alpha=0.01)
    assert a["certified_acc_r0"] == b["certified_acc_r0"] and a["n_examples"] == 4


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="sigma"):
        DenoiserObjective(0.0)
    with pytest.raises(ValueError, match="q="):
        DenoiserObjective(0.25, black_box=True, q=0)
    with pytest.raises(ValueError, match="DenoisedClassifier"):
        DenoiserObjective(0.25)(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1).long())
