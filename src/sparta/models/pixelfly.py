"""Pixelated Butterfly (Chen, Dao et al., 2112.00029): a fixed block-sparse + low-rank linear layer.

``W = B + U V^T`` where ``B`` is a *flat block butterfly* matrix: on the grid of ``block x
block`` tiles, tile ``(i, j)`` is non-zero when ``i XOR j`` is 0 or a power of two below the
maximum stride (the support of ``I + B_1 + B_2 + ... + B_f``, the sum, not the product, of the
first ``f`` butterfly factors: the paper's flat butterfly and its block version, Sec. 3), and
``U V^T`` a low-rank term that the paper adds because the flat butterfly alone misses the
global, low-rank part of a weight (Sec. 3 and Sec. 4, "Pixelfly": flat block butterfly + low
rank as one fixed pattern for the whole training).

:class:`PixelflyLinear` stores only the non-zero tiles: a ``(row_blocks, block, K * block)``
weight (``K`` tiles per block row) and a ``(row_blocks, K)`` index of their column blocks, so
the forward is one gather of input blocks and one batched matmul, and the backward (two
batched matmuls and a scatter-add, written out in :class:`_PixelflyMatmul`) costs the same,
in proportion to the kept tiles. :func:`pixelfly_` swaps the eligible ``nn.Linear`` layers
of a model for it; a model so changed saves and loads with :func:`sparta.save` /
:func:`sparta.load` (the ``pixelfly`` extra of the checkpoint sidecar names the swapped
layers and their settings).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.io import register_extra

#: share of a layer's parameter budget given to the low-rank term when ``rank`` is not set.
#: The paper splits a budget between the two terms (Sec. 4) but fixes no single ratio; 1/4 is
#: this library's default.
LOWRANK_SHARE = 0.25


def flat_butterfly_layout(rows: int, cols: int, factors: int) -> torch.Tensor:
    """Boolean ``(rows, cols)`` block layout of a flat block butterfly with ``factors`` factors.

    On a square grid of ``n`` blocks (``n`` a power of two), tile ``(i, j)`` is kept when
    ``i XOR j`` is 0 or ``2^k`` with ``k < factors``: ``factors=0`` is the block diagonal,
    ``factors=log2(n)`` keeps ``1 + log2(n)`` tiles per row (max stride ``n/2``). A non-square
    or non-power-of-two grid is the ``n x n`` pattern (``n`` the largest power of two
    ``<= min(rows, cols)``) stretched over it: row ``i`` is butterfly row ``i * n // rows``,
    column ``j`` butterfly column ``j * n // cols`` (the reference code's "stretch").
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"a block layout needs rows, cols >= 1, got {rows} x {cols}")
    if factors < 0:
        raise ValueError(f"factors must be >= 0, got {factors}")
    n = 1 << (min(rows, cols).bit_length() - 1)
    i = torch.arange(rows) * n // rows
    j = torch.arange(cols) * n // cols
    x = i[:, None] ^ j[None, :]
    power_of_two = (x & (x - 1)) == 0
    return (x == 0) | (power_of_two & (x < (1 << factors)))


def max_factors(rows: int, cols: int) -> int:
    """The number of butterfly factors of a full flat butterfly on this grid: ``log2(n)``."""
    return min(rows, cols).bit_length() - 1


class PixelflyLinear(nn.Module):
    """``y = x B^T + (x V) U^T + bias``, ``B`` flat block butterfly (only its tiles stored).

    ``block``: tile size; ``factors``: butterfly factors (max stride ``2^(factors-1)`` tiles);
    ``rank``: rank of the low-rank term (0: none). Feature counts need not be multiples of
    ``block``: the input is padded with zeros and the output cropped. Rows of a stretched
    layout with fewer tiles than the widest row point their spare slots at an all-zero input
    block, so those weight entries get an exactly zero gradient and stay zero.
    """

    index: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        block: int = 32,
        factors: int | None = None,
        rank: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if min(in_features, out_features, block) < 1:
            raise ValueError(
                f"PixelflyLinear needs positive sizes, got in={in_features}, "
                f"out={out_features}, block={block}"
            )
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.in_features, self.out_features, self.block = in_features, out_features, block
        self.col_blocks = math.ceil(in_features / block)
        self.row_blocks = math.ceil(out_features / block)
        top = max_factors(self.row_blocks, self.col_blocks)
        self.factors = top if factors is None else min(int(factors), top)
        self.rank = int(rank)
        layout = flat_butterfly_layout(self.row_blocks, self.col_blocks, self.factors)
        per_row = layout.sum(1)
        k = int(per_row.max())
        # spare slots of shorter rows point at block ``col_blocks``: the zero padding block
        index = torch.full((self.row_blocks, k), self.col_blocks, dtype=torch.long)
        for r in range(self.row_blocks):
            cols = layout[r].nonzero().flatten()
            index[r, : len(cols)] = cols
        self.register_buffer("index", index, persistent=False)
        self.ragged = bool((per_row != k).any())
        self.padded_in = self.col_blocks * block + (block if self.ragged else 0)
        self.weight = nn.Parameter(torch.empty(self.row_blocks, block, k * block))
        self.u = nn.Parameter(torch.empty(out_features, self.rank)) if self.rank else None
        self.v = nn.Parameter(torch.empty(in_features, self.rank)) if self.rank else None
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    # ---------------------------------------------------------------- structure
    @property
    def layout(self) -> torch.Tensor:
        """Boolean ``(row_blocks, col_blocks)`` tile layout of ``B``."""
        out = torch.zeros(self.row_blocks, self.col_blocks + 1, dtype=torch.bool)
        out.scatter_(1, self.index.cpu(), True)
        return out[:, : self.col_blocks]

    def mask(self) -> torch.Tensor:
        """Boolean ``(out, in)`` element mask of ``B`` (the tiles cropped to the layer's size)."""
        b = self.block
        m = self.layout.repeat_interleave(b, 0).repeat_interleave(b, 1)
        return m[: self.out_features, : self.in_features]

    def slot_mask(self) -> torch.Tensor:
        """Boolean mask of ``weight``'s real entries (spare slots and padding are False)."""
        b, r, k = self.block, self.row_blocks, self.index.shape[1]
        valid_in = torch.zeros((self.col_blocks + 1) * b, dtype=torch.bool)
        valid_in[: self.in_features] = True  # the spare block ``col_blocks`` is all False
        per_slot = valid_in.view(-1, b)[self.index.cpu()]  # (R, K, b)
        valid_out = (torch.arange(r * b) < self.out_features).view(r, b)
        return valid_out[:, :, None] & per_slot.view(r, 1, k * b)

    @property
    def dense_numel(self) -> int:
        """Entries of the dense weight this layer stands for: ``in * out``."""
        return self.in_features * self.out_features

    def butterfly_params(self) -> int:
        """Kept entries of ``B`` (``weight`` minus its spare, always-zero slots)."""
        return int(self.mask().sum())

    def nonzero_params(self) -> int:
        """Weights the layer really uses: kept entries of ``B`` plus ``rank * (in + out)``."""
        return self.butterfly_params() + self.rank * (self.in_features + self.out_features)

    def density(self) -> float:
        """:meth:`nonzero_params` over the dense ``in * out``."""
        return self.nonzero_params() / self.dense_numel

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense ``(out, in)`` weight ``B + U V^T`` (for tests and export)."""
        b, r, k = self.block, self.row_blocks, self.index.shape[1]
        full = self.weight.new_zeros(r, b, self.col_blocks + 1, b)
        tiles = self.weight.detach().view(r, b, k, b)
        full.scatter_(2, self.index.view(r, 1, k, 1).expand(r, b, k, b), tiles)
        w = full.view(r * b, -1)[: self.out_features, : self.in_features]
        if self.rank:
            w = w + self.u.detach() @ self.v.detach().t()
        return w

    # ---------------------------------------------------------------- init
    def reset_parameters(self, dense_std: float | None = None) -> None:
        """Initialise so that the output variance matches a dense layer's whose weights have
        standard deviation ``dense_std`` (default: ``nn.Linear``'s, ``1 / sqrt(3 in)``), split
        between the two terms in proportion to their parameter counts."""
        std = dense_std if dense_std is not None else 1.0 / math.sqrt(3 * self.in_features)
        valid = self.slot_mask()
        n_sparse = int(self.mask().sum())
        n_low = self.rank * (self.in_features + self.out_features)
        share = n_sparse / (n_sparse + n_low)
        fan_in = n_sparse / self.out_features  # average inputs per output through B
        with torch.no_grad():
            s = std * math.sqrt(share * self.in_features / fan_in)
            self.weight.normal_(0.0, s).mul_(valid)
            if self.rank:
                self.v.normal_(0.0, 1.0 / math.sqrt(self.in_features))
                self.u.normal_(0.0, std * math.sqrt((1 - share) * self.in_features / self.rank))
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias.uniform_(-bound, bound)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = _PixelflyMatmul.apply(
            x.reshape(-1, self.in_features), self.weight, self.u, self.v, self.bias,
            self.index, self.padded_in, self.out_features,
        )  # fmt: skip
        return y.reshape(*lead, self.out_features)

    def extra_macs(self, x: torch.Tensor) -> int:
        """Multiply-accumulates of the kept tiles and the low-rank term for input ``x``
        (read by :func:`sparta.models.count_flops`)."""
        rows = x.numel() // self.in_features
        return rows * self.nonzero_params()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"block={self.block}, factors={self.factors}, rank={self.rank}, "
            f"bias={self.bias is not None}, density={self.density():.3f}"
        )

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "block": self.block,
            "factors": self.factors,
            "rank": self.rank,
            "bias": self.bias is not None,
        }

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, block: int = 32, density: float = 0.25, rank: int | None = None
    ) -> PixelflyLinear:
        """A Pixelfly layer in place of ``linear`` within a parameter budget of ``density``
        times the dense weight (butterfly tiles + low rank), initialised at the scale of
        ``linear``'s weights (see :func:`plan_layer`)."""
        factors, r = plan_layer(linear.in_features, linear.out_features, block, density, rank)
        layer = cls(
            linear.in_features, linear.out_features, block, factors, r, linear.bias is not None
        )
        layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
        layer.reset_parameters(dense_std=float(linear.weight.detach().std()))
        if linear.bias is not None:
            with torch.no_grad():
                layer.bias.copy_(linear.bias)
        return layer


class _PixelflyMatmul(torch.autograd.Function):
    """``x B^T + (x V) U^T + bias`` for a flat block butterfly ``B`` stored as ``(R, b, K b)``
    tiles, computed in the transposed ``(features, N)`` layout throughout.

    Forward: the input, transposed to ``(in, N)`` and contiguous so its blocks are rows, is
    gathered into ``(R, K b, N)`` (one ``index_select``) and multiplied by the tiles in one
    ``bmm``; the low-rank term and the bias are added into that ``(out, N)`` buffer, which is
    returned as a transposed view (a following Pixelfly layer reads it without a copy).
    Backward: the tile gradient is ``bmm(g_out, gathered^T)`` and the input gradient
    ``bmm(tiles^T, g_out)`` scattered back with ``index_add_`` (both in proportion to the kept
    tiles), the low-rank input gradient accumulated into the same buffer. Written out rather
    than left to autograd so every operand has one layout: ``bmm`` on a transposed output
    gradient, and sums of differently laid-out gradients, are several times slower on CPU.
    """

    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, weight: torch.Tensor, u: torch.Tensor | None,
                v: torch.Tensor | None, bias: torch.Tensor | None, index: torch.Tensor,
                padded_in: int, out_features: int) -> torch.Tensor:  # fmt: skip
        n, in_features = x2.shape
        r, b, kb = weight.shape
        pad = padded_in - in_features
        xt = F.pad(x2.t(), (0, 0, 0, pad)) if pad else x2.t().contiguous()
        blocks = xt.view(-1, b, n)  # (C [+1 zero block], b, N)
        flat = index.flatten()
        gathered = blocks.index_select(0, flat).view(r, kb, n)
        out = torch.bmm(weight, gathered).view(r * b, n)[:out_features]
        low = None
        if u is not None:
            low = v.t() @ xt[:in_features]  # (rank, N)
            out = out.addmm_(u, low)
        if bias is not None:
            out = out.add_(bias[:, None])
        ctx.save_for_backward(weight, gathered, flat, xt, u, v, low)
        ctx.shape = (blocks.shape[0], in_features)
        return out.t()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, gathered, flat, xt, u, v, low = ctx.saved_tensors
        r, b, _ = weight.shape
        blocks, in_features = ctx.shape
        n, out_features = grad.shape
        g_t = grad.t().contiguous()  # (out, N)
        if r * b != out_features:
            g_t = F.pad(g_t, (0, 0, 0, r * b - out_features))
        g_out = g_t.view(r, b, n)
        g_t = g_t[:out_features]
        need = ctx.needs_input_grad
        g_x = g_w = g_u = g_v = g_bias = None
        if need[1]:
            g_w = torch.bmm(g_out, gathered.transpose(1, 2))
        if u is not None and (need[0] or need[3]):
            g_low = u.t() @ g_t  # (rank, N)
        if need[0]:
            g_gathered = torch.bmm(weight.transpose(1, 2), g_out).view(-1, b, n)
            g_blocks = g_gathered.new_zeros(blocks, b, n).index_add_(0, flat, g_gathered)
            g_xt = g_blocks.view(blocks * b, n)[:in_features]
            if u is not None:
                g_xt.addmm_(v, g_low)
            g_x = g_xt.t()
        if u is not None and need[2]:
            g_u = g_t @ low.t()
        if u is not None and need[3]:
            g_v = xt[:in_features] @ g_low.t()
        if need[4]:
            g_bias = g_t.sum(1)
        return g_x, g_w, g_u, g_v, g_bias, None, None, None


def plan_layer(
    in_features: int, out_features: int, block: int, density: float, rank: int | None = None
) -> tuple[int, int]:
    """``(factors, rank)`` of a Pixelfly layer within ``density * in * out`` parameters.

    The low-rank term gets ``rank`` (default: :data:`LOWRANK_SHARE` of the budget, as a rank);
    the butterfly gets the most factors whose tiles fit in the rest (at least the block
    diagonal, ``factors=0``, so the budget may be exceeded at very low densities).
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    budget = density * in_features * out_features
    if rank is None:
        rank = int(LOWRANK_SHARE * budget // (in_features + out_features))
    rows, cols = math.ceil(out_features / block), math.ceil(in_features / block)
    left = budget - rank * (in_features + out_features)
    factors = 0
    for f in range(1, max_factors(rows, cols) + 1):
        tiles = int(flat_butterfly_layout(rows, cols, f).sum())
        if tiles * block * block > left:
            break
        factors = f
    return factors, int(rank)


def eligible(name: str, module: nn.Module, block: int, skip: Iterable[str] = ()) -> bool:
    """Whether :func:`pixelfly_` replaces ``module``: an ``nn.Linear`` with at least two
    blocks of inputs and of outputs (so the classifier of a 10-class model stays dense),
    not named in ``skip``."""
    return (
        isinstance(module, nn.Linear)
        and name not in set(skip)
        and module.in_features >= 2 * block
        and module.out_features >= 2 * block
    )


def pixelfly_(
    model: nn.Module,
    block: int = 32,
    density: float = 0.25,
    rank: int | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """Replace, in place, every eligible ``nn.Linear`` of ``model`` (see :func:`eligible`)
    by a :class:`PixelflyLinear` within ``density`` of its parameters; returns the replaced
    names. The MLPs' hidden layers and the ViT's ``qkv``/``proj``/``fc1``/``fc2`` qualify
    when wide enough for two blocks. Raises ``ValueError`` when nothing qualifies."""
    if block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block}")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if rank is not None and rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    skip = tuple(skip)
    names = [n for n, m in model.named_modules() if eligible(n, m, block, skip)]
    if not names:
        raise ValueError(
            f"no nn.Linear layer of {type(model).__name__} has at least {2 * block} inputs and "
            f"outputs; use a smaller block (got block={block})"
        )
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, PixelflyLinear.from_linear(getattr(owner, attr), block, density, rank))
    return names


PIXELFLY_KEYS = ("block", "density", "rank")


def parse_pixelfly(text: str) -> dict[str, Any]:
    """``"block=32,density=0.25,rank=16"`` -> keyword arguments of :func:`pixelfly_`
    (every key optional; ``""`` or ``"on"`` means the defaults)."""
    out: dict[str, Any] = {}
    text = text.strip()
    if text in ("", "on", "true"):
        return out
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in PIXELFLY_KEYS:
            raise ValueError(
                f"pixelfly setting {item.strip()!r} is not key=value with a key among "
                f"{', '.join(PIXELFLY_KEYS)} (e.g. 'block=32,density=0.25,rank=16')"
            )
        try:
            out[key] = float(value) if key == "density" else int(value)
        except ValueError:
            raise ValueError(f"pixelfly {key}={value.strip()!r} is not a number") from None
    if out.get("block", 1) < 1:
        raise ValueError(f"pixelfly block must be an integer >= 1, got {out['block']}")
    if not 0 < out.get("density", 0.5) <= 1:
        raise ValueError(f"pixelfly density must be in (0, 1], got {out['density']}")
    if out.get("rank", 0) < 0:
        raise ValueError(f"pixelfly rank must be an integer >= 0, got {out['rank']}")
    return out


# ---------------------------------------------------------------- checkpoints
def _describe(model: nn.Module) -> dict[str, Any] | None:
    layers = {n: m.settings() for n, m in model.named_modules() if isinstance(m, PixelflyLinear)}
    return layers or None


def _restore(model: nn.Module, tensors: dict[str, torch.Tensor], layers: Any) -> None:
    for name, settings in layers.items():
        parent, _, attr = name.rpartition(".")
        try:
            owner = model.get_submodule(parent) if parent else model
            current = getattr(owner, attr)
        except AttributeError:
            raise ValueError(
                f"checkpoint names a Pixelfly layer {name!r} the model lacks"
            ) from None
        if isinstance(current, PixelflyLinear) and current.settings() == settings:
            continue  # already in place (a resumed run): keep the optimizer's parameters
        setattr(owner, attr, PixelflyLinear(**settings))


register_extra("pixelfly", _describe, _restore)
