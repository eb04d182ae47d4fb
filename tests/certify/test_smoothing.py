"""Randomized smoothing on toys whose noisy-vote probabilities are known in closed form."""

import json
import math

import pytest
import torch
from scipy.stats import norm
from torch import nn

from sparta import data as sdata
from sparta.certify.smoothing import (
    ABSTAIN,
    GaussianAugmentation,
    certified_accuracy,
    certify_dataset,
    lower_confidence_bound,
    smooth,
)
from sparta.report.certify import plot_certified_curve
from sparta.train import create_objective
from tests.data.helpers import TORCH_FORMS, torch_form


class Constant(nn.Module):
    """Always votes for ``cls`` among ``k`` classes."""

    def __init__(self, cls: int = 2, k: int = 4) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(k))
        with torch.no_grad():
            self.logits[cls] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


class Linear2D(nn.Module):
    """Binary classifier on a 1x1x2 image: class 1 iff w.x + b > 0, with ||w|| = 1, so
    P(f(x + N(0, s^2 I)) = 1) = Phi((w.x + b) / s) and the exact L2 radius is |w.x + b|."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.6, 0.8]]))
            self.fc.bias.fill_(-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x.flatten(1))
        return torch.cat([torch.zeros_like(z), z], 1)

    def margin(self, x: torch.Tensor) -> float:
        return float(self.fc(x.flatten().unsqueeze(0)).detach())


def test_constant_model_radius_is_closed_form_exactly():
    sigma, n, alpha = 0.5, 1000, 0.001
    cls, radius = smooth(Constant(), sigma).certify(torch.zeros(1, 3, 3), 10, n, alpha, batch=300)
    p_lower = alpha ** (1 / n)  # Clopper-Pearson lower bound of n votes out of n
    assert cls == 2
    assert lower_confidence_bound(n, n, alpha) == pytest.approx(p_lower, rel=1e-12)
    assert radius == pytest.approx(sigma * norm.ppf(p_lower), rel=1e-9)


def test_linear_model_radius_matches_clopper_pearson_and_distance():
    model, sigma, n0, n, alpha = Linear2D(), 0.5, 100, 20_000, 0.001
    x = torch.tensor([0.5, 0.75]).view(1, 1, 2)  # margin 0.6*0.5 + 0.8*0.75 - 0.5 = 0.4
    m = model.margin(x)
    cls, radius = smooth(model, sigma, seed=3).certify(x, n0, n, alpha, batch=4096)
    # the same draws again: the radius is exactly sigma * Phi^-1(CP bound of the vote count)
    twin = smooth(model, sigma, seed=3)
    twin.counts(x, n0, 4096)
    n_a = int(twin.counts(x, n, 4096)[1])
    assert cls == 1
    assert radius == pytest.approx(sigma * norm.ppf(lower_confidence_bound(n_a, n, alpha)))
    # and within sampling tolerance of the exact distance to the decision boundary
    assert n_a / n == pytest.approx(norm.cdf(m / sigma), abs=0.015)
    assert m - 0.1 * sigma < radius < m


def test_abstains_on_the_boundary_and_predicts_away_from_it():
    model, sigma = Linear2D(), 0.25
    on = torch.tensor([0.5, 0.25]).view(1, 1, 2)  # margin 0
    assert abs(model.margin(on)) < 1e-6
    g = smooth(model, sigma, seed=1)
    assert g.predict(on, n=2000, alpha=0.001) == ABSTAIN
    assert g.certify(on, 100, 2000, 0.001) == (ABSTAIN, 0.0)
    far = torch.tensor([1.0, 1.0]).view(1, 1, 2)  # margin 0.9
    assert g.predict(far, n=500, alpha=0.001) == 1
    far_neg = torch.tensor([0.0, 0.0]).view(1, 1, 2)  # margin -0.5
    assert g.predict(far_neg, n=500, alpha=0.001) == 0


@pytest.mark.parametrize("sigma", [0, -0.1, float("nan")])
def test_bad_sigma_is_an_error_naming_it(sigma):
    with pytest.raises(ValueError, match="sigma="):
        smooth(Constant(), sigma)
    with pytest.raises(ValueError, match="sigma="):
        GaussianAugmentation(sigma)


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.01])
def test_bad_alpha_is_an_error_naming_it(alpha):
    g = smooth(Constant(), 0.25)
    x = torch.zeros(1, 2, 2)
    with pytest.raises(ValueError, match=f"alpha={alpha!r}"):
        g.certify(x, 10, 10, alpha)
    with pytest.raises(ValueError, match="alpha="):
        g.predict(x, 10, alpha)


def test_noise_is_reproducible_from_the_seed():
    model, x = Linear2D(), torch.tensor([0.5, 0.3]).view(1, 1, 2)
    a = smooth(model, 0.5, seed=7).counts(x, 999, batch=100)
    b = smooth(model, 0.5, seed=7).counts(x, 999, batch=100)
    assert torch.equal(a, b) and int(a.sum()) == 999


def test_certify_dataset_summary_and_plot(tmp_path):
    data = sdata.load("synthetic", "test", n=6, shape=(1, 3, 3), num_classes=4, seed=0)
    data.y[:] = 2
    data.y[0] = 1  # one example the constant model gets wrong
    s = certify_dataset(
        Constant(2), data, 0.25, n0=10, n=200, alpha=0.01, examples=tmp_path / "examples.json"
    )
    r = 0.25 * norm.ppf(0.01 ** (1 / 200))
    assert s["certified_acc_r0"] == pytest.approx(5 / 6)
    assert s["certified_acc_r0.25"] == pytest.approx(5 / 6 if r >= 0.25 else 0.0)
    assert s["certified_acc_r1"] == 0.0 and s["abstain_rate"] == 0.0
    assert s["mean_radius"] == pytest.approx(r * 5 / 6)
    ex = json.loads((tmp_path / "examples.json").read_text())
    assert ex["labels"] == data.y.tolist() and ex["predictions"] == [2] * 6
    assert ex["radii"] == pytest.approx([r] * 6) and ex["sigma"] == 0.25 and ex["n"] == 200
    assert plot_certified_curve(ex, tmp_path / "curve.png").stat().st_size > 0
    acc = certified_accuracy(
        Constant(2), data, 0.25, radii=(0.0, r - 1e-9, r + 1e-9), n=200, alpha=0.01
    )
    assert list(acc.values()) == pytest.approx([5 / 6, 5 / 6, 0.0])


def test_gaussian_objective_is_registered_and_adds_noise():
    model = Linear2D()
    x, y = torch.rand(64, 1, 1, 2), torch.randint(0, 2, (64,))
    obj = create_objective("gaussian", sigma=0.5, seed=0)
    loss, logits = obj(model, x, y)
    clean = model(x)
    assert not torch.allclose(logits, clean)
    loss.backward()
    assert model.fc.weight.grad is not None and math.isfinite(loss.item())
    again, _ = create_objective("gaussian", sigma=0.5, seed=0)(model, x, y)
    assert again.item() == loss.item()


def test_cli_noise_sigma_trains_with_gaussian_noise(tmp_path, capsys):
    import yaml

    from sparta.cli import main

    quick = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--epochs", "1"]
    quick += ["--train-subset", "300", "--noise-sigma", "0.25"]
    code = main(["--quiet", "train", *quick, "--out", str(tmp_path), "--name", "n"])
    assert code == 0, capsys.readouterr()
    config = yaml.safe_load((tmp_path / "n" / "config.yaml").read_text())
    assert config["noise_sigma"] == 0.25


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_certify_dataset_takes_a_torch_dataset_or_loader(kind):
    data = sdata.load("synthetic", "test", n=6, shape=(1, 3, 3), num_classes=4, seed=0)
    data.y[:] = 2
    data.y[0] = 1
    ref = certify_dataset(Constant(2), data, 0.25, n0=10, n=100, alpha=0.01)
    got = certify_dataset(Constant(2), torch_form(data, kind), 0.25, n0=10, n=100, alpha=0.01)
    assert got["certified_acc_r0"] == ref["certified_acc_r0"] == pytest.approx(5 / 6)
    assert got["mean_radius"] == ref["mean_radius"]
