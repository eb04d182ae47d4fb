"""Batch augmentations in plain torch: whole N x C x H x W batches, explicit generators.

Each augmentation is a callable ``aug(x, generator) -> x`` drawing one random choice per
sample in a single vectorised step (no per-sample Python loop), so the same generator
state gives the same output on CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=device)


def _check_batch(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} expects an N x C x H x W batch, got shape {tuple(x.shape)}")


class RandomCrop:
    """Zero-pad by ``padding`` on every side, then crop each sample at a random offset.

    ``size`` (int or ``(h, w)``) defaults to the input's own height and width.
    """

    def __init__(self, size: int | tuple[int, int] | None = None, padding: int = 4) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if isinstance(size, int):
            size = (size, size)
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"crop size must be a positive int or (h, w), got {size}")
        self.size = size
        self.padding = int(padding)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x, "RandomCrop")
        n, c, h, w = x.shape
        ch, cw = self.size if self.size is not None else (h, w)
        p = self.padding
        hp, wp = h + 2 * p, w + 2 * p
        if ch > hp or cw > wp:
            raise ValueError(f"crop size {(ch, cw)} exceeds the padded image {(hp, wp)}")
        xp = F.pad(x, (p, p, p, p)) if p else x
        # one offset per sample, uniform over the valid positions
        oy = (_rand(n, generator) * (hp - ch + 1)).long().clamp_(max=hp - ch).to(x.device)
        ox = (_rand(n, generator) * (wp - cw + 1)).long().clamp_(max=wp - cw).to(x.device)
        rows = (oy[:, None] + torch.arange(ch, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(cw, device=x.device))[:, None, None, :]
        ni = torch.arange(n, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        return xp[ni, ci, rows, cols]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class HorizontalFlip:
    """Mirror each sample left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x, "HorizontalFlip")
        flip = (_rand(len(x), generator) < self.p).to(x.device)
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def __repr__(self) -> str:
        return f"HorizontalFlip(p={self.p})"


class Compose:
    """Apply augmentations in order, all drawing from the same generator."""

    def __init__(self, augments: Sequence[Augment]) -> None:
        self.augments = list(augments)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for aug in self.augments:
            x = aug(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.augments)

    def __repr__(self) -> str:
        return f"Compose({self.augments!r})"


def _crop(arg: str | None) -> Augment:
    return RandomCrop(padding=4 if arg is None else int(arg))


def _flip(arg: str | None) -> Augment:
    return HorizontalFlip(0.5 if arg is None else float(arg))


_PARSERS: dict[str, tuple[Callable[[str | None], Augment], str]] = {
    "crop": (_crop, "crop[:padding]"),
    "flip": (_flip, "flip[:p]"),
}


def parse_augment(spec: str | None) -> Compose | None:
    """Build augmentations from a CLI string such as ``"crop:4,flip"``.

    ``"none"``, ``""`` and ``None`` mean no augmentation (returns ``None``).
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    augments = []
    allowed = ", ".join(form for _, form in _PARSERS.values())
    for item in spec.split(","):
        item = item.strip()
        key, _, arg = item.partition(":")
        key = key.strip().lower()
        if key not in _PARSERS:
            raise ValueError(f"unknown augmentation {item!r} in {spec!r}; allowed: {allowed}")
        try:
            augments.append(_PARSERS[key][0](arg.strip() if arg else None))
        except ValueError as e:
            raise ValueError(f"bad augmentation {item!r} (form {_PARSERS[key][1]}): {e}") from e
    return Compose(augments)
