"""Trigger recovery without clean data: Neural Cleanse with TABOR-style regularisers.

For each candidate label ``c``, optimise a mask ``m = sigmoid(a)`` (``H x W``, shared by
the channels) and a pattern ``p = sigmoid(b)`` (``C x H x W``) so that
``(1 - m) * x + m * p`` goes to ``c`` on about 100 uniform-noise images ``x`` (the seed,
arXiv 2205.11819 Sec. 3.3, recovers triggers from the winning Trojan ticket with random
noise images, no clean data). The loss is

    CE(f(x'), c) + cost * |m|_1                                    (Neural Cleanse, Sec. IV-B)
      + large * (|m|_2^2 + |(1 - m) p|_1 + |(1 - m) p|_2^2)        (TABOR R1: overly large)
      + scatter * (TV(m) + TV((1 - m) p))                          (TABOR R2: scattered)

(Wang et al., S&P 2019; Guo et al., arXiv 1908.01763, Sec. 4.2). ``cost`` follows Neural
Cleanse's schedule: every ``patience`` steps it is multiplied by 1.5 when the attack
succeeded on at least ``success`` of the images throughout, else divided by 1.5 ** 1.5;
the smallest successful mask is kept. The target is the label whose mask L1 norm is
anomalously small: anomaly index ``(median - n_c) / (1.4826 * MAD)`` over the labels'
norms, flagged above 2 (Neural Cleanse Sec. IV-C: the 1.4826 consistency constant makes
MAD estimate the standard deviation; an index above 2 is an outlier with > 95%
probability).

Two departures from Neural Cleanse, both for recovery from noise rather than clean data:

* ``scale="log"`` (default) takes the index on ``log(1 + n_c)``. Mask norms are scale
  quantities that spread over an order of magnitude across the labels of a clean model, so
  on the linear scale a 25x smaller target mask (2 vs a median of 50) scored below 2 on our
  Trojaned LeNet-5s; on the log scale it is a clear outlier while clean models stay below 2
  (BENCHMARKS.md, "Backdoors"). ``scale="linear"`` is Neural Cleanse's index.
* Noise images are not a class-balanced sample: a model may put most of them in one class,
  whose trigger is then trivially small. Each label is therefore optimised on ``n`` images
  drawn from a pool of ``pool * n`` that the model does not already classify as that label
  (Neural Cleanse flips images of the other classes), topped up by the least confident.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta import progress
from sparta.io import read_checkpoint, write_checkpoint
from sparta.options import Options, option, require
from sparta.train.evaluate import frozen

log = logging.getLogger(__name__)
MAD_CONSTANT = 1.4826  # Neural Cleanse Sec. IV-C (normal consistency constant)
SCALES = ("log", "linear")


@dataclass
class RecoverOptions(Options):
    """Options of trigger recovery (their fields are ``sparta backdoor recover`` flags)."""

    n: int = option(100, "uniform-noise images the trigger is optimised on (seed: ~100)")
    steps: int = option(300, "optimisation steps per candidate label (full batch)")
    lr: float = option(0.1, "Adam learning rate (Neural Cleanse: 0.1, betas 0.5, 0.9)")
    init_cost: float = option(1e-3, "initial weight of the mask L1 norm (Neural Cleanse)")
    patience: int = option(10, "steps between adjustments of the L1 weight")
    success: float = option(0.99, "attack success a mask must reach to count (Neural Cleanse)")
    large: float = option(1e-3, "TABOR weight of the overly-large-trigger terms")
    scatter: float = option(1e-2, "TABOR weight of the scattered-trigger (total variation) terms")
    threshold: float = option(2.0, "anomaly index above which a label is flagged (NC: 2)")
    scale: str = option("log", "anomaly index on log or linear mask norms", choices=SCALES)
    pool: int = option(10, "noise pool, in multiples of n, to draw images not yet in a label")
    labels: str = option("", "candidate labels, comma-separated ('' for all)")
    seed: int = option(0, "seed of the noise images and of the initial mask and pattern")
    device: str = option("cpu", "device: cpu, cuda, ...")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.scale in SCALES, "scale", self.scale, f"one of {SCALES}")
        for name in ("n", "steps", "patience", "pool"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.init_cost >= 0, "init_cost", self.init_cost, "a number >= 0")
        require(0 < self.success <= 1, "success", self.success, "a number in (0, 1]")
        for name in ("large", "scatter", "threshold"):
            require(getattr(self, name) >= 0, name, getattr(self, name), "a number >= 0")

    def label_list(self, num_classes: int) -> list[int]:
        """The candidate labels (all by default); a label out of range is a ValueError."""
        if not self.labels.strip():
            return list(range(num_classes))
        try:
            labels = sorted({int(s) for s in self.labels.split(",") if s.strip()})
        except ValueError:
            raise ValueError(
                f"labels={self.labels!r} is not allowed; expected comma-separated integers"
            ) from None
        bad = [c for c in labels if not 0 <= c < num_classes]
        require(not bad, "labels", self.labels, f"labels in 0..{num_classes - 1}")
        return labels


@dataclass(frozen=True)
class RecoveredTrigger:
    """A mask (``H x W`` in [0, 1]) and pattern (``C x H x W``): ``(1 - m) x + m p``."""

    mask: torch.Tensor
    pattern: torch.Tensor

    def check(self, shape: tuple[int, int, int]) -> None:
        """Raise ValueError when the images are not of the trigger's shape."""
        if tuple(shape) != tuple(self.pattern.shape):
            raise ValueError(
                f"recovered trigger has shape {tuple(self.pattern.shape)}, images {tuple(shape)}"
            )

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        m, p = self.mask.to(x.device, x.dtype), self.pattern.to(x.device, x.dtype)
        return (1 - m) * x + m * p


@dataclass
class RecoveryResult:
    """Per candidate label: mask L1 norm, anomaly index, success; the flagged target."""

    labels: list[int]
    norms: list[float]
    anomaly: list[float]
    success: list[float]
    masks: torch.Tensor  # K x H x W
    patterns: torch.Tensor  # K x C x H x W
    threshold: float = 2.0
    flagged: list[int] = field(default_factory=list)

    @property
    def target(self) -> int | None:
        """The flagged label with the largest anomaly index (None: nothing flagged)."""
        if not self.flagged:
            return None
        return max(self.flagged, key=lambda c: self.anomaly[self.labels.index(c)])

    def trigger(self, label: int) -> RecoveredTrigger:
        """The recovered trigger of ``label``."""
        i = self.labels.index(label)
        return RecoveredTrigger(self.masks[i], self.patterns[i])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the masks and patterns (``.safetensors``) and every field (its JSON sidecar),
        so the triggers can be drawn again later (``sparta.report``)."""
        fields = {
            "labels": self.labels, "norms": self.norms, "anomaly": self.anomaly,
            "success": self.success, "threshold": self.threshold, "flagged": self.flagged,
        }  # fmt: skip
        tensors = {"masks": self.masks, "patterns": self.patterns}
        return write_checkpoint(path, tensors, {"recovery": fields})

    @classmethod
    def load(cls, path: str | os.PathLike) -> RecoveryResult:
        """The result :meth:`save` wrote to ``path``."""
        tensors, meta = read_checkpoint(path)
        if "recovery" not in meta or set(tensors) != {"masks", "patterns"}:
            raise ValueError(f"{path} is not a trigger-recovery result (RecoveryResult.save)")
        return cls(masks=tensors["masks"], patterns=tensors["patterns"], **meta["recovery"])

    def to_dict(self) -> dict[str, Any]:
        target = self.target
        return {
            "target": target,
            "trojan": target is not None,
            "mask_l1": self.norms[self.labels.index(target)] if target is not None else None,
            "anomaly_index": max(self.anomaly) if self.anomaly else 0.0,
            "flagged": self.flagged,
            "labels": self.labels,
            "norms": self.norms,
            "anomaly": self.anomaly,
            "label_success": self.success,
        }


# ------------------------------------------------------------------ anomaly index
def anomaly_index(norms: Sequence[float], scale: str = "linear") -> list[float]:
    """``(median - n) / (1.4826 * MAD)`` per norm: large for anomalously *small* norms,
    negative above the median. With MAD = 0, norms below the median get +inf.
    Both medians are the standard one (the mean of the two middle values for an even
    count), as Neural Cleanse's MAD. ``scale="log"`` computes it on ``log(n + 1)``."""
    x = torch.as_tensor(list(norms), dtype=torch.float64)
    if scale == "log":
        x = torch.log1p(x.clamp_min(0))
    med = x.quantile(0.5)  # torch's median() would take the lower middle value
    mad = MAD_CONSTANT * (x - med).abs().quantile(0.5)
    if float(mad) == 0.0:
        return [float("inf") if v < med else 0.0 if v == med else float("-inf") for v in x]
    return ((med - x) / mad).tolist()


def flag(norms: Sequence[float], threshold: float = 2.0, scale: str = "linear") -> list[int]:
    """Positions whose anomaly index exceeds ``threshold`` (small side only)."""
    return [i for i, a in enumerate(anomaly_index(norms, scale)) if a > threshold]


# ------------------------------------------------------------------ optimisation
def noise_outside(probs: torch.Tensor, label: int, n: int) -> torch.Tensor:
    """Indices of ``n`` pool images for ``label``: those not yet classified as it, in pool
    order, topped up (when fewer than ``n``) by those least confidently in it."""
    inside = probs.argmax(1) == label
    key = torch.where(inside, 1.0 + probs[:, label], torch.zeros_like(probs[:, label]))
    return torch.sort(key, stable=True).indices[:n]


def total_variation(t: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation over the last two (spatial) dimensions."""
    rows = (t[..., 1:, :] - t[..., :-1, :]).abs().sum()
    return rows + (t[..., :, 1:] - t[..., :, :-1]).abs().sum()


def regularisers(m: torch.Tensor, p: torch.Tensor, opts: RecoverOptions) -> torch.Tensor:
    """TABOR's overly-large (R1) and scattered (R2) trigger penalties."""
    outside = (1 - m) * p
    large = (m**2).sum() + outside.abs().sum() + (outside**2).sum()
    scatter = total_variation(m) + total_variation(outside)
    return opts.large * large + opts.scatter * scatter


def reverse_engineer(
    model: nn.Module, x: torch.Tensor, label: int, opts: RecoverOptions
) -> tuple[RecoveredTrigger, float]:
    """The smallest trigger found that sends ``x`` to ``label``, and its success rate."""
    g = torch.Generator().manual_seed(opts.seed * 1009 + label)
    _, c, h, w = x.shape
    a = torch.randn((h, w), generator=g).to(x.device).requires_grad_()
    b = torch.randn((c, h, w), generator=g).to(x.device).requires_grad_()
    optimizer = torch.optim.Adam([a, b], lr=opts.lr, betas=(0.5, 0.9))
    y = torch.full((len(x),), label, dtype=torch.long, device=x.device)
    cost, window_ok = opts.init_cost, True
    best: tuple[float, torch.Tensor, torch.Tensor, float] | None = None
    last = (torch.sigmoid(a).detach(), torch.sigmoid(b).detach(), 0.0)
    for step in range(1, opts.steps + 1):
        m, p = torch.sigmoid(a), torch.sigmoid(b)
        logits = model((1 - m) * x + m * p)
        l1 = m.sum()
        loss = F.cross_entropy(logits, y) + cost * l1 + regularisers(m, p, opts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rate = float((logits.argmax(1) == y).float().mean())
        last = (m.detach(), p.detach(), rate)
        ok = rate >= opts.success
        window_ok &= ok
        if ok and (best is None or float(l1.detach()) < best[0]):
            best = (float(l1.detach()), m.detach().clone(), p.detach().clone(), rate)
        if step % opts.patience == 0:  # Neural Cleanse's cost schedule
            cost = (cost * 1.5 if window_ok else cost / 1.5**1.5) if cost > 0 else opts.init_cost
            window_ok = True
    if best is None:  # never successful: report the final, unsuccessful trigger
        m, p, rate = last
        return RecoveredTrigger(m.cpu(), p.cpu()), rate
    _, m, p, rate = best
    return RecoveredTrigger(m.cpu(), p.cpu()), rate


def recover(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    num_classes: int,
    options: RecoverOptions | None = None,
    images: torch.Tensor | None = None,
) -> RecoveryResult:
    """Recover a trigger per candidate label on ``n`` noise images and flag the target.
    ``images`` (pixel space) replaces the noise pool by the defender's own images."""
    opts = options or RecoverOptions()
    labels = opts.label_list(num_classes)
    g = torch.Generator().manual_seed(opts.seed)
    if images is None:
        pool = torch.rand((opts.n * opts.pool, *input_shape), generator=g).to(opts.device)
    else:
        pool = images.to(opts.device)
    model = model.to(opts.device)
    triggers, rates = [], []
    with frozen(model):
        probs = torch.cat([model(chunk).softmax(1) for chunk in pool.split(1000)])
        for label in progress.bar(labels, desc="trigger recovery", unit="label"):
            x = pool[noise_outside(probs, label, opts.n)]
            trig, rate = reverse_engineer(model, x, label, opts)
            triggers.append(trig)
            rates.append(rate)
            log.info("label %d: mask L1 %.2f, success %.3f", label, float(trig.mask.sum()), rate)
    # an unsuccessful label cannot be the target: its norm counts as the whole image
    norms = [float(t.mask.sum()) if r >= opts.success else float(t.mask.numel())
             for t, r in zip(triggers, rates, strict=True)]  # fmt: skip
    index = anomaly_index(norms, opts.scale)
    flagged = [labels[i] for i in flag(norms, opts.threshold, opts.scale)]
    return RecoveryResult(
        labels, norms, index, rates,
        torch.stack([t.mask for t in triggers]), torch.stack([t.pattern for t in triggers]),
        opts.threshold, flagged,
    )  # fmt: skip
