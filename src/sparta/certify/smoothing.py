"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019, arXiv 1902.02918).

The smoothed classifier is ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)``.

* PREDICT (Sec. 3.2, pseudocode): count the base classifier's votes over ``n`` noisy
  copies; return the top class unless a two-sided binomial test of its count ``nA`` against
  ``nA + nB`` (the runner-up) at p = 1/2 has a p-value above ``alpha`` (then abstain, -1).
  The probability of returning a wrong answer is at most ``alpha`` (Theorem 2).
* CERTIFY (Sec. 3.2, pseudocode): ``n0`` votes pick the class ``cA``; ``n`` fresh votes give
  ``pA_lower``, the one-sided ``1 - alpha`` Clopper-Pearson lower bound on its probability;
  if ``pA_lower > 1/2`` return ``cA`` with L2 radius ``sigma * Phi^-1(pA_lower)`` (Theorem 1
  with ``pB = 1 - pA``), else abstain.

Defaults follow Sec. 4 of the paper: ``n0 = 100``, ``n = 100,000``, ``alpha = 0.001``. Noise is
added in pixel units and the noisy image is not clipped to [0, 1], as in the paper's code.
Noise comes from an explicit ``torch.Generator`` (one per :class:`Smoothed`), in batches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scipy.stats import beta, binomtest, norm
from torch import nn

from sparta import progress
from sparta.certify.methods import register_certify_method
from sparta.data import ImageDataset, as_dataset
from sparta.io import write_json
from sparta.models.utils import device_of, eval_mode
from sparta.options import require
from sparta.train.objectives import Objective, register_objective

ABSTAIN = -1
DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def check_sigma(sigma: float) -> float:
    """``sigma`` as a float; ValueError unless it is a number > 0."""
    require(isinstance(sigma, (int, float)) and sigma > 0, "sigma", sigma, "a number > 0")
    return float(sigma)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float; ValueError unless it lies in (0, 1)."""
    require(isinstance(alpha, (int, float)) and 0 < alpha < 1, "alpha", alpha, "a number in (0, 1)")
    return float(alpha)


def _check_count(name: str, value: int) -> int:
    require(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
    return value


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound on p from ``k`` successes in ``n``.

    It is the ``alpha`` quantile of Beta(k, n - k + 1) (0 when ``k = 0``); for ``k = n`` this
    is ``alpha ** (1 / n)``.
    """
    check_alpha(alpha)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} is not allowed; expected an integer in [0, n={n}]")
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def radius_of(p_lower: float, sigma: float) -> float:
    """Certified L2 radius ``sigma * Phi^-1(p_lower)`` (Theorem 1); 0 when p_lower <= 1/2."""
    return sigma * float(norm.ppf(p_lower)) if p_lower > 0.5 else 0.0


class Smoothed:
    """The smoothed classifier of ``model`` at noise level ``sigma`` (see the module doc).

    ``seed`` seeds the generator that draws all the noise, so results are reproducible.
    The model runs in eval mode under ``no_grad``; its modes are restored afterwards.
    """

    def __init__(self, model: nn.Module, sigma: float, seed: int = 0) -> None:
        self.model = model
        self.sigma = check_sigma(sigma)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def _gen(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    @torch.no_grad()
    def counts(self, x: torch.Tensor, num: int, batch: int = 1000) -> torch.Tensor:
        """Votes of the base classifier over ``num`` noisy copies of one input ``x`` (C, H, W):
        an int64 tensor of length num_classes."""
        _check_count("num", num)
        _check_count("batch", batch)
        device = device_of(self.model)
        x = x.to(device)
        g = self._gen(device)
        votes: torch.Tensor | None = None
        with eval_mode(self.model):
            for start in range(0, num, batch):
                b = min(batch, num - start)
                noise = torch.randn((b, *x.shape), generator=g, device=device) * self.sigma
                logits = self.model(x.unsqueeze(0) + noise)
                c = torch.bincount(logits.argmax(1), minlength=logits.shape[1])
                votes = c if votes is None else votes + c
        assert votes is not None
        return votes.cpu()

    def predict(
        self, x: torch.Tensor, n: int = 100_000, alpha: float = 0.001, batch: int = 1000
    ) -> int:
        """PREDICT: the smoothed class of ``x``, or -1 (abstain) when the top two vote counts
        are not significantly different at level ``alpha``."""
        check_alpha(alpha)
        votes = self.counts(x, _check_count("n", n), batch)
        top = torch.topk(votes, min(2, votes.numel()))
        n_a = int(top.values[0])
        n_b = int(top.values[1]) if votes.numel() > 1 else 0
        if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
            return ABSTAIN
        return int(top.indices[0])

    def certify(
        self,
        x: torch.Tensor,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch: int = 1000,
    ) -> tuple[int, float]:
        """CERTIFY: ``(class, L2 radius)``, or ``(-1, 0.0)`` when ``pA_lower <= 1/2``."""
        check_alpha(alpha)
        _check_count("n0", n0)
        c_a = int(self.counts(x, n0, batch).argmax())
        n_a = int(self.counts(x, _check_count("n", n), batch)[c_a])
        p_lower = lower_confidence_bound(n_a, n, alpha)
        if p_lower <= 0.5:
            return ABSTAIN, 0.0
        return c_a, radius_of(p_lower, self.sigma)


def smooth(model: nn.Module, sigma: float, seed: int = 0) -> Smoothed:
    """The smoothed classifier of ``model`` under Gaussian noise of std ``sigma`` (pixels)."""
    return Smoothed(model, sigma, seed)


@dataclass
class SmoothingReport:
    """Per-example CERTIFY results on a dataset: predictions (-1 = abstain), radii, labels."""

    sigma: float
    n0: int
    n: int
    alpha: float
    predictions: torch.Tensor
    radii: torch.Tensor
    labels: torch.Tensor
    time_s: float = 0.0

    def accuracy_at(self, radius: float) -> float:
        """Fraction of examples predicted correctly with certified radius >= ``radius`` (at
        radius 0: the smoothed classifier's accuracy, abstentions counting as wrong)."""
        ok = (self.predictions == self.labels) & (self.radii >= radius)
        return int(ok.sum()) / len(ok) if len(ok) else 0.0

    def curve(self, radii: Sequence[float]) -> list[float]:
        """Certified accuracy at each radius of ``radii``."""
        return [self.accuracy_at(r) for r in radii]

    def summary(self, radii: Sequence[float] = DEFAULT_RADII) -> dict[str, Any]:
        """Flat figures: ``certified_acc_r{r}`` for each radius, abstain rate, mean radius."""
        correct = self.predictions == self.labels
        out: dict[str, Any] = {f"certified_acc_r{r:g}": self.accuracy_at(r) for r in radii}
        out.update(
            smooth_acc=int(correct.sum()) / max(len(correct), 1),
            abstain_rate=int((self.predictions == ABSTAIN).sum()) / max(len(correct), 1),
            mean_radius=float(torch.where(correct, self.radii, 0.0).mean()),
            sigma=self.sigma,
            n0=self.n0,
            n=self.n,
            alpha=self.alpha,
            n_examples=len(self.labels),
            certify_time_s=self.time_s,
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values (per-example lists)."""
        return {
            "sigma": self.sigma,
            "n0": self.n0,
            "n": self.n,
            "alpha": self.alpha,
            "predictions": self.predictions.tolist(),
            "radii": self.radii.tolist(),
            "labels": self.labels.tolist(),
            "time_s": self.time_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SmoothingReport:
        """The report :meth:`to_dict` wrote."""
        return cls(
            float(d["sigma"]), int(d["n0"]), int(d["n"]), float(d["alpha"]),
            torch.tensor(d["predictions"], dtype=torch.long),
            torch.tensor(d["radii"], dtype=torch.float64),
            torch.tensor(d["labels"], dtype=torch.long), float(d.get("time_s", 0.0)),
        )  # fmt: skip


def certify_examples(
    model: nn.Module,
    data: ImageDataset,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    seed: int = 0,
) -> SmoothingReport:
    """Run CERTIFY on every example of ``data`` (any dataset or DataLoader of ``(x, y)``);
    returns the per-example report."""
    data = as_dataset(data)
    g = smooth(model, sigma, seed)
    check_alpha(alpha)
    if len(data) == 0:
        raise ValueError("cannot certify an empty dataset")
    start = time.perf_counter()
    results = [g.certify(x, n0, n, alpha, batch) for x in progress.bar(data.x, desc="smoothing")]
    preds = torch.tensor([c for c, _ in results], dtype=torch.long)
    radii = torch.tensor([r for _, r in results], dtype=torch.float64)
    return SmoothingReport(
        g.sigma, n0, n, alpha, preds, radii, data.y.clone(), time.perf_counter() - start
    )


def certified_accuracy(
    model: nn.Module,
    data: ImageDataset,
    sigma: float,
    radii: Sequence[float] = DEFAULT_RADII,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    seed: int = 0,
) -> dict[float, float]:
    """Certified accuracy of the smoothed ``model`` at each L2 radius of ``radii``."""
    report = certify_examples(model, data, sigma, n0, n, alpha, batch, seed)
    return dict(zip(radii, report.curve(radii), strict=True))


def certify_dataset(
    model: nn.Module,
    data: ImageDataset,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    radii: Sequence[float] = DEFAULT_RADII,
    seed: int = 0,
    examples: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """CERTIFY every example of ``data`` and summarise (for ``sparta certify --method smooth``).

    Returns flat keys ``certified_acc_r0``, ``certified_acc_r0.25``, ... (one per radius),
    ``smooth_acc``, ``abstain_rate``, ``mean_radius`` (over all examples, 0 where wrong or
    abstained), ``sigma``, ``n0``, ``n``, ``alpha``, ``n_examples``, ``certify_time_s``.
    With ``examples``, also writes the per-example report there as JSON
    (:meth:`SmoothingReport.to_dict`), from which ``sparta.report`` draws the curve.
    """
    check_sigma(sigma)
    check_alpha(alpha)
    report = certify_examples(model, data, sigma, n0, n, alpha, batch, seed)
    summary = report.summary(radii)
    if examples is not None:
        write_json(examples, report.to_dict())
    return summary


class GaussianAugmentation:
    """Objective: cross-entropy at ``x + sigma * N(0, I)`` (Cohen et al. Sec. 4: train the base
    classifier under the noise it will be smoothed with; the noisy image is not clipped).

    Returns the logits of the noisy batch, so the loop's ``train_acc`` is the noisy accuracy.
    """

    def __init__(self, sigma: float = 0.25, seed: int = 0, label_smoothing: float = 0.0) -> None:
        self.sigma = check_sigma(sigma)
        self.seed = seed
        self.label_smoothing = label_smoothing
        self._generator: torch.Generator | None = None

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=self._generator, device=x.device, dtype=x.dtype)
        logits = model(x + self.sigma * noise)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits


register_certify_method(
    "smooth",
    certify_dataset,
    "smoothing",
    "randomized smoothing (Cohen et al. 2019): certified L2 radius with probability 1 - alpha",
)


@register_objective("gaussian", summary="cross-entropy under Gaussian noise (for smoothing)")
def _gaussian(
    sigma: float = 0.25, seed: int = 0, label_smoothing: float = 0.0, **_: Any
) -> Objective:
    return GaussianAugmentation(sigma, seed, label_smoothing)


__all__ = [
    "ABSTAIN",
    "GaussianAugmentation",
    "Smoothed",
    "SmoothingReport",
    "certified_accuracy",
    "certify_dataset",
    "certify_examples",
    "check_alpha",
    "check_sigma",
    "lower_confidence_bound",
    "radius_of",
    "smooth",
]
