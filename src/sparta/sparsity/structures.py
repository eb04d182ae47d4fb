"""Sparsity structures: which groups of weights are kept or pruned together.

* ``unstructured``: any single weight.
* ``nm:N:M``: in every group of ``M`` consecutive weights along the input dimension, exactly
  ``N`` are kept (e.g. ``nm:2:4`` for sparse tensor cores). A Linear weight ``[out, in]``
  has groups of ``M`` consecutive inputs in each row; a convolution ``[O, I, kh, kw]`` has
  groups of ``M`` consecutive input channels at each ``(o, kh, kw)`` (``I % M == 0``). The
  layer sparsity is therefore fixed at ``1 - N/M``: the requested sparsity and the
  distribution (global, uniform, erk) are ignored.
* ``block:b``: ``b x b`` tiles of the 2-D view ``[out, in * kh * kw]`` are kept or pruned
  whole; a tile's score is the sum of its entries' scores and tiles are ranked by the same
  top-k as single weights (by the distribution), then expanded to entries.
* ``channel``: whole output channels with their dependants (handled by
  :mod:`sparta.sparsity.channels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from sparta.sparsity.allocation import DISTRIBUTIONS, allocate, check_distribution
from sparta.sparsity.topk import check_sparsity, global_masks, layer_masks

KINDS = ("unstructured", "nm:N:M", "block:b", "channel")
SCOPES = DISTRIBUTIONS  # the old name of the distribution vocabulary


@dataclass(frozen=True)
class Structure:
    """A parsed structure string (see the module doc)."""

    kind: str
    n: int = 0
    m: int = 0
    block: int = 0

    def __str__(self) -> str:
        if self.kind == "nm":
            return f"nm:{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.block}"
        return self.kind

    @property
    def density(self) -> float | None:
        """The fixed density of the pattern (``N/M`` for N:M), else None."""
        return self.n / self.m if self.kind == "nm" else None

    def check(self, shapes: Mapping[str, torch.Size]) -> None:
        """Raise ValueError if a parameter's shape does not fit the pattern."""
        for name, shape in shapes.items():
            if self.kind in ("nm", "block") and len(shape) < 2:
                raise ValueError(
                    f"structure {self} needs weights with 2 or more dims; {name} has shape "
                    f"{tuple(shape)} (exclude it)"
                )
            if self.kind == "nm" and shape[1] % self.m:
                raise ValueError(
                    f"structure {self}: {name} has {shape[1]} inputs, not a multiple of "
                    f"M={self.m} (exclude it or pick M dividing {shape[1]})"
                )
            if self.kind == "block":
                rows, cols = _view2d(shape)
                if rows % self.block or cols % self.block:
                    raise ValueError(
                        f"structure {self}: block size {self.block} does not divide the "
                        f"2-D view ({rows}, {cols}) of {name} (exclude it or pick a divisor)"
                    )

    def units(self, score: torch.Tensor) -> torch.Tensor:
        """Scores of the units that are kept or pruned whole (entries, or tile sums)."""
        if self.kind != "block":
            return score
        rows, cols = _view2d(score.shape)
        b = self.block
        return score.reshape(rows // b, b, cols // b, b).sum(dim=(1, 3))

    def expand(self, unit_mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The entry mask of ``shape`` from a mask over units."""
        if self.kind != "block":
            return unit_mask
        b = self.block
        return unit_mask.repeat_interleave(b, 0).repeat_interleave(b, 1).reshape(shape)


def _view2d(shape: torch.Size | tuple[int, ...]) -> tuple[int, int]:
    rows = int(shape[0])
    return rows, int(torch.Size(shape).numel()) // max(rows, 1)


def _positive_int(text: str, what: str, structure: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"structure {structure!r}: {what}={text!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"structure {structure!r}: {what}={value} must be >= 1")
    return value


def parse_structure(text: str | Structure) -> Structure:
    """Parse ``unstructured``, ``nm:N:M``, ``block:b`` or ``channel``; bad input is a
    ValueError naming the value and what is allowed."""
    if isinstance(text, Structure):
        return text
    parts = str(text).strip().lower().split(":")
    if parts == ["unstructured"] or parts == ["channel"]:
        return Structure(parts[0])
    if parts[0] == "nm" and len(parts) == 3:
        n, m = (_positive_int(v, k, text) for v, k in zip(parts[1:], "NM", strict=True))
        if n > m:
            raise ValueError(f"structure {text!r}: N={n} > M={m}; N:M needs 1 <= N <= M")
        return Structure("nm", n=n, m=m)
    if parts[0] == "block" and len(parts) == 2:
        return Structure("block", block=_positive_int(parts[1], "b", text))
    raise ValueError(f"structure {text!r} is not known; allowed: {', '.join(KINDS)}")


def check_scope(scope: str) -> str:
    """:func:`check_distribution` under the old option name ``scope`` (``sparta prune
    --scope``); returns the canonical distribution."""
    return check_distribution(scope, what="scope")


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest of every ``m`` consecutive entries along dim 1 (the inputs)."""
    x = score.detach().float().movedim(1, -1)
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // m, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, groups.topk(n, dim=-1).indices, True)
    return keep.reshape(x.shape).movedim(-1, 1).contiguous()


def select(
    structure: str | Structure,
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    distribution: str | Mapping[str, float] = "global",
) -> dict[str, torch.Tensor]:
    """Boolean masks (True = keep) from ``scores`` for a structure and a distribution.

    ``distribution``: ``global`` (one threshold over all units), ``uniform`` (alias
    ``layer``: every layer at ``sparsity``), ``erk`` (Erdos-Renyi-Kernel densities from the
    parameter shapes), or a mapping of explicit per-layer densities (``sparsity`` unused).
    N:M ignores ``sparsity`` and ``distribution``.
    """
    st = parse_structure(structure)
    check_sparsity(sparsity)
    if st.kind == "channel":
        raise ValueError("structure 'channel' is selected by sparta.sparsity.channels")
    st.check({n: s.shape for n, s in scores.items()})
    if st.kind == "nm":
        return {n: nm_mask(s, st.n, st.m) for n, s in scores.items()}
    units = {n: st.units(s) for n, s in scores.items()}
    if isinstance(distribution, Mapping):
        kept = layer_masks(units, distribution)
    elif check_distribution(distribution) == "global":
        kept = global_masks(units, sparsity)
    else:
        shapes = {n: s.shape for n, s in scores.items()}
        kept = layer_masks(units, allocate(distribution, shapes, sparsity))
    return {n: st.expand(kept[n], s.shape) for n, s in scores.items()}
