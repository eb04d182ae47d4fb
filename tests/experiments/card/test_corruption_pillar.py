"""The corruption pillar's numbers on a hand-checked case: a brightness-threshold classifier
on constant grey images."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sparta import data
from sparta.experiments.card import pillars
from sparta.experiments.card.options import CardOptions
from sparta.train import evaluate_corruptions


class Threshold(nn.Module):
    """Class 1 when the image's mean pixel exceeds 0.5, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1)


def _grey_set() -> data.ImageDataset:
    x = torch.cat([torch.full((10, 1, 28, 28), 0.4), torch.full((10, 1, 28, 28), 0.6)])
    y = torch.cat([torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    return data.ImageDataset(x, y, data.info("fashion-mnist"), "test")


# By hand: constant images are fixed points of contrast, blur and pixelate; the two noises
# move the mean of 784 pixels by ~0.004 (never across 0.5); brightness adds 0.05 ... 0.3,
# so the 0.4-images cross 0.5 from severity 3 on (0.55, 0.6, 0.7) and half the set is wrong.
BRIGHTNESS = [1.0, 1.0, 0.5, 0.5, 0.5]
MEAN = (5 * 1.0 + sum(BRIGHTNESS) / 5) / 6  # 0.95
S5 = (5 * 1.0 + 0.5) / 6


def test_evaluate_corruptions_hand_checked():
    rep = evaluate_corruptions(Threshold(), _grey_set(), seed=0)
    assert rep["acc"]["brightness"] == BRIGHTNESS
    assert all(v == [1.0] * 5 for k, v in rep["acc"].items() if k != "brightness")
    assert rep["corruption_acc"] == pytest.approx(MEAN)
    assert rep["by_severity"][5] == pytest.approx(S5) and rep["by_severity"][1] == 1.0
    assert rep["by_kind"]["brightness"] == pytest.approx(0.7) and rep["n"] == 20


def test_corruption_pillar_hand_checked():
    ds = _grey_set()
    ctx = SimpleNamespace(
        options=CardOptions(corruption_n=0), splits=lambda: SimpleNamespace(test=ds)
    )
    score = pillars.corruption(ctx, Threshold(), "dense", 0.0, 0)
    assert score.metrics["corruption_acc"] == pytest.approx(MEAN)
    assert score.metrics["corruption_s5_acc"] == pytest.approx(S5)
    assert score.metrics["corruption_brightness_acc"] == pytest.approx(0.7)
    assert score.metrics["corruption_pixelate_acc"] == 1.0
    assert set(score.metrics) == set(pillars.PILLARS.get("corruption").meta["metrics"])
    assert "20 test images" in score.description
