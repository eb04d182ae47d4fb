"""Poisoning: BadNets patch triggers and blended triggers, and poisoned dataset wrappers.

BadNets (Gu et al. 2017, arXiv 1708.06733): a small patch (here white, checkerboard or a
seeded random pattern) is stamped at a fixed position and the label is flipped to the
target. Blended (Chen et al. 2017, arXiv 1712.05526): the whole image is mixed with a
trigger image, ``(1 - alpha) * x + alpha * t``. A seeded share ``ratio`` of the eligible
training samples (those whose label is not the target) is poisoned; clean-label poisoning
(off by default) stamps target-class samples only and keeps their labels.

A poisoning is written as a spec string, as ``sparta train --poison`` takes it::

    badnets:ratio=0.05,target=0[,size=3,pos=br,pattern=white,seed=0]
    blended:ratio=0.05,target=0,alpha=0.1[,pattern=random]
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Protocol

import torch

from sparta.data import DatasetInfo, ImageDataset, as_dataset
from sparta.options import Options, option, require

KINDS = ("badnets", "blended")
POSITIONS = ("br", "bl", "tr", "tl", "center")
PATTERNS = ("white", "checkerboard", "random")
DEFAULT_PATTERN = {"badnets": "white", "blended": "random"}


def make_pattern(pattern: str, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """A ``C x H x W`` pattern in [0, 1]: all ones, a checkerboard (1 where row+col is
    even), or uniform noise drawn from ``seed``."""
    require(pattern in PATTERNS, "pattern", pattern, f"one of {PATTERNS}")
    c, h, w = shape
    if pattern == "white":
        return torch.ones(shape)
    if pattern == "checkerboard":
        rows, cols = torch.arange(h).view(-1, 1), torch.arange(w).view(1, -1)
        return ((rows + cols) % 2 == 0).float().expand(c, h, w).clone()
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


class Trigger(Protocol):
    """Anything that stamps a trigger on a batch of images (N x C x H x W in [0, 1])."""

    def apply(self, x: torch.Tensor) -> torch.Tensor: ...

    def check(self, shape: tuple[int, int, int]) -> None: ...


@dataclass(frozen=True)
class PatchTrigger:
    """A ``size x size`` patch of ``pattern`` at ``pos`` (a corner, the centre, or an explicit
    ``(row, col)`` of its top-left pixel); every other pixel is left untouched."""

    size: int = 3
    pos: str | tuple[int, int] = "br"
    pattern: str = "white"
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.size >= 1, "size", self.size, "an integer >= 1")
        if isinstance(self.pos, str):
            require(self.pos in POSITIONS, "pos", self.pos, f"one of {POSITIONS} or (row, col)")
        require(self.pattern in PATTERNS, "pattern", self.pattern, f"one of {PATTERNS}")

    def origin(self, h: int, w: int) -> tuple[int, int]:
        """Row and column of the patch's top-left pixel in an ``h x w`` image."""
        s = self.size
        if not isinstance(self.pos, str):
            return int(self.pos[0]), int(self.pos[1])
        return {
            "br": (h - s, w - s),
            "bl": (h - s, 0),
            "tr": (0, w - s),
            "tl": (0, 0),
            "center": ((h - s) // 2, (w - s) // 2),
        }[self.pos]

    def check(self, shape: tuple[int, int, int]) -> None:
        """Raise ValueError when the patch does not fit in a ``C x H x W`` image."""
        _, h, w = shape
        if self.size > min(h, w):
            raise ValueError(
                f"size={self.size} is not allowed: the trigger is larger than the {h}x{w} image; "
                f"expected a size <= {min(h, w)}"
            )
        r, c = self.origin(h, w)
        if not (0 <= r <= h - self.size and 0 <= c <= w - self.size):
            raise ValueError(
                f"pos={self.pos!r} is not allowed: a {self.size}x{self.size} patch there leaves "
                f"the {h}x{w} image"
            )

    def mask(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """``H x W`` boolean: True on the patch."""
        self.check(shape)
        _, h, w = shape
        r, c = self.origin(h, w)
        m = torch.zeros(h, w, dtype=torch.bool)
        m[r : r + self.size, c : c + self.size] = True
        return m

    def image(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """``C x H x W``: the pattern on the patch, zero elsewhere."""
        m = self.mask(shape)
        c = shape[0]
        full = torch.zeros(shape)
        patch = make_pattern(self.pattern, (c, self.size, self.size), self.seed)
        full[:, m] = patch.reshape(c, -1)
        return full

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A copy of ``x`` with the patch pixels set to the pattern exactly."""
        shape = tuple(x.shape[1:])
        m = self.mask(shape).to(x.device)
        return torch.where(m, self.image(shape).to(x.device, x.dtype), x)


@dataclass(frozen=True)
class BlendTrigger:
    """The whole image mixed with a trigger image ``t``: ``(1 - alpha) * x + alpha * t``."""

    alpha: float = 0.1
    pattern: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        require(0 < self.alpha <= 1, "alpha", self.alpha, "a number in (0, 1]")
        require(self.pattern in PATTERNS, "pattern", self.pattern, f"one of {PATTERNS}")

    def check(self, shape: tuple[int, int, int]) -> None:
        """Any image size fits."""

    def image(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """The ``C x H x W`` trigger image ``t``."""
        return make_pattern(self.pattern, shape, self.seed)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``(1 - alpha) * x + alpha * t``, computed in that order."""
        t = self.image(tuple(x.shape[1:])).to(x.device, x.dtype)
        return (1 - self.alpha) * x + self.alpha * t


@dataclass
class PoisonConfig(Options):
    """One poisoning: trigger type and parameters, share of samples, target label."""

    kind: str = option("badnets", "trigger type", choices=KINDS)
    ratio: float = option(0.05, "share of the eligible (non-target) training samples poisoned")
    target: int = option(0, "the label poisoned samples are flipped to")
    size: int = option(3, "badnets: side of the square patch in pixels")
    pos: str = option("br", "badnets: patch position", choices=POSITIONS)
    pattern: str = option("", "white, checkerboard or random ('': white badnets, random blended)")
    alpha: float = option(0.1, "blended: weight of the trigger image")
    clean_label: bool = option(False, "poison target-class samples only, without flipping labels")
    seed: int = option(0, "seed of the poisoned subset and of random patterns")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown trigger type {self.kind!r}; allowed: {', '.join(KINDS)}")
        require(0 < self.ratio <= 1, "ratio", self.ratio, "a number in (0, 1]")
        require(self.target >= 0, "target", self.target, "a class label >= 0")
        self.trigger()  # validates size, pos, pattern and alpha

    @property
    def pattern_name(self) -> str:
        return self.pattern or DEFAULT_PATTERN[self.kind]

    def trigger(self) -> PatchTrigger | BlendTrigger:
        """The trigger these options describe."""
        if self.kind == "badnets":
            return PatchTrigger(self.size, self.pos, self.pattern_name, self.seed)
        return BlendTrigger(self.alpha, self.pattern_name, self.seed)

    def check(self, info: DatasetInfo | ImageDataset) -> None:
        """Raise ValueError when the target or the trigger does not fit the dataset."""
        n = info.num_classes
        require(0 <= self.target < n, "target", self.target, f"a class label in 0..{n - 1}")
        self.trigger().check(tuple(info.input_shape))

    def spec(self) -> str:
        """The canonical spec string (round-trips through :func:`parse_poison`)."""
        keys = ["ratio", "target", "seed", "clean_label"]
        keys += ["size", "pos", "pattern"] if self.kind == "badnets" else ["alpha", "pattern"]
        values = {**self.to_dict(), "pattern": self.pattern_name}
        return f"{self.kind}:" + ",".join(f"{k}={values[k]}" for k in keys)


def parse_poison(spec: str | PoisonConfig) -> PoisonConfig:
    """Parse ``badnets:ratio=0.05,target=0,size=3`` (see the module docstring)."""
    if isinstance(spec, PoisonConfig):
        return spec
    kind, _, rest = str(spec).strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown trigger type {kind!r}; allowed: {', '.join(KINDS)}")
    hints = typing.get_type_hints(PoisonConfig)
    values: dict[str, object] = {"kind": kind}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in hints or key == "kind":
            allowed = ", ".join(f.name for f in dataclasses.fields(PoisonConfig)[1:])
            raise ValueError(
                f"poison option {item!r} is not allowed; expected key=value, key among {allowed}"
            )
        values[key] = _convert(key, raw.strip(), hints[key])
    return PoisonConfig.from_dict(values)


def _convert(key: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not allowed; expected a {kind.__name__}") from None


# ------------------------------------------------------------------ datasets
@dataclass
class PoisonedData:
    """A poisoned copy of a dataset and which of its samples were poisoned.

    ``positions`` index ``data`` (and the clean dataset it was made from); ``indices`` are
    the same samples' positions in the original split (``ImageDataset.indices``).
    """

    data: ImageDataset
    positions: torch.Tensor
    config: PoisonConfig

    @property
    def indices(self) -> torch.Tensor:
        return self.data.indices[self.positions]

    @property
    def trigger(self) -> PatchTrigger | BlendTrigger:
        return self.config.trigger()

    def to_dict(self) -> dict[str, object]:
        """What ``poisoned_indices.json`` holds."""
        return {
            "poison": self.config.spec(),
            "dataset": self.data.name,
            "n_train": len(self.data),
            "n_poisoned": len(self.positions),
            "indices": self.indices.tolist(),
        }


def stamp(data: ImageDataset, trigger: Trigger) -> ImageDataset:
    """Every sample of ``data`` with the trigger stamped on; labels unchanged."""
    data = as_dataset(data)
    trigger.check(tuple(data.input_shape))
    return dataclasses.replace(data, x=trigger.apply(data.x))


def poison(data: ImageDataset, config: PoisonConfig | str) -> PoisonedData:
    """Stamp the trigger on a seeded ``round(ratio * eligible)`` of the eligible samples.

    Eligible: samples whose label is not the target (their labels become the target), or
    with ``clean_label`` the target-class samples (labels kept). Other samples, and the
    input dataset, are left untouched.
    """
    cfg = parse_poison(config)
    data = as_dataset(data)
    cfg.check(data)
    y = data.y.cpu()
    eligible = torch.nonzero((y == cfg.target) if cfg.clean_label else (y != cfg.target)).flatten()
    k = int(round(cfg.ratio * len(eligible)))
    if k == 0:
        raise ValueError(
            f"ratio={cfg.ratio!r} of {len(eligible)} eligible samples poisons nothing; "
            "expected a larger ratio or dataset"
        )
    g = torch.Generator().manual_seed(cfg.seed)
    positions = eligible[torch.randperm(len(eligible), generator=g)[:k]].sort().values
    x, labels = data.x.clone(), data.y.clone()
    idx = positions.to(x.device)
    x[idx] = cfg.trigger().apply(x[idx])
    if not cfg.clean_label:
        labels[positions.to(labels.device)] = cfg.target
    return PoisonedData(dataclasses.replace(data, x=x, y=labels), positions, cfg)
