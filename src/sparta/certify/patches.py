"""Patches mode: CROWN's A matrix on a feature map kept as one small kernel per row.

Back-substituting the bounds of a conv layer's neurons (Xu et al. 2020, 2002.12920, Sec. 3 and
App. A; auto_LiRPA's ``Patches``) through a dense Jacobian costs ``rows x C x H x W`` per
layer, although row ``r`` (one neuron at ``(h, w)``) only reaches a window of the earlier
feature maps: its receptive field. A :class:`Patches` keeps, for every row, the kernel on that
window and the window's top-left corner. Through a conv layer the window grows by the kernel
(a transposed conv of the kernels, no padding: the window may stick out of the map, where the
entries are kept at zero since padding is a constant 0); through a ReLU or an elementwise op the
relaxation's slopes are read on each row's window; through a ``k x k`` MaxPool (stride ``k``)
the window grows ``k``-fold. Any other op (Linear, Flatten, average pools, reshapes) turns the
patches into the dense matrix (:meth:`Patches.dense`), as does a window no smaller than the map.
The bounds are the dense ones up to float rounding (tests: 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from sparta.certify.graph import ConvOp, Diag, Graph, Op, Reshape, View, conv_transpose


@dataclass
class Patches:
    """Rows ``(R, B or 1, C, kh, kw)`` of coefficients on windows of a ``(C, H, W)`` map:
    row ``r`` covers ``[oh[r], oh[r] + kh) x [ow[r], ow[r] + kw)``; entries outside the map are
    zero. With ``ex`` (R,), row ``r`` belongs to example ``ex[r]`` of a batch of ``batch`` alone
    (``k`` is ``(R, 1, C, kh, kw)``): per-example rows, for neurons unstable in some examples
    only; it reads that example's slopes and bounds, and is zero on the others."""

    k: torch.Tensor
    oh: torch.Tensor  # (R,) long
    ow: torch.Tensor  # (R,) long
    shape: tuple[int, ...]
    ex: torch.Tensor | None = None  # (R,) long
    batch: int = 1
    pads: tuple[int, int, int, int] = field(init=False)  # left, right, top, bottom

    def __post_init__(self) -> None:
        kh, kw = self.k.shape[-2:]
        h, w = self.shape[1:]
        self.pads = (
            max(0, -int(self.ow.min())),
            max(0, int(self.ow.max()) + kw - w),
            max(0, -int(self.oh.min())),
            max(0, int(self.oh.max()) + kh - h),
        )

    @classmethod
    def unit(
        cls,
        idx: torch.Tensor,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        ex: torch.Tensor | None = None,
        batch: int = 1,
    ) -> Patches:
        """Rows ``e_i`` then ``-e_i`` for the flat neuron indices ``idx`` of a (C, H, W) map
        (with ``ex``: of example ``ex[j]`` of ``batch`` for ``idx[j]``)."""
        c, h, w = shape
        n = idx.numel()
        ch, rest = idx // (h * w), idx % (h * w)
        k = torch.zeros((2 * n, 1, c, 1, 1), dtype=dtype, device=idx.device)
        rows = torch.arange(2 * n, device=idx.device)
        sign = torch.cat([torch.ones(n), -torch.ones(n)]).to(k)
        k[rows, 0, ch.repeat(2), 0, 0] = sign
        ex = None if ex is None else ex.repeat(2)
        return cls(k, (rest // w).repeat(2), (rest % w).repeat(2), tuple(shape), ex, batch)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.k.shape[-2:])  # type: ignore[return-value]

    def windows(self, t: torch.Tensor) -> torch.Tensor:
        """Each row's window of ``t``: ``(B', C, H, W)`` or ``(R or 1, B', C, H, W)`` ->
        ``(R, B', C, kh, kw)``, zero outside the map."""
        if t.dim() == 5 and t.shape[0] == 1:
            t = t[0]
        kh, kw = self.size
        left, _, top, _ = self.pads
        u = F.pad(t, self.pads).unfold(-2, kh, 1).unfold(-2, kw, 1)
        oh, ow = self.oh + top, self.ow + left
        if self.ex is not None:  # each row reads its own example: (R, 1, C, kh, kw)
            ex = self.ex if t.shape[-4] > 1 else torch.zeros_like(self.ex)
            if t.dim() == 4:
                return u[ex, :, oh, ow].unsqueeze(1)
            rows = torch.arange(len(oh), device=oh.device)
            return u[rows, ex, :, oh, ow].unsqueeze(1)
        if t.dim() == 4:  # (B', C, Hn, Wn, kh, kw) -> (B', C, R, kh, kw)
            return u[:, :, oh, ow].permute(2, 0, 1, 3, 4)
        rows = torch.arange(len(oh), device=oh.device)
        return u[rows, :, :, oh, ow]

    def masked(self) -> Patches:
        """Zero the entries outside the map (after a conv's window grew past its border)."""
        if not any(self.pads):
            return self
        c, h, w = self.shape
        one = torch.ones((1, 1, h, w), dtype=self.k.dtype, device=self.k.device)
        self.k = self.k * self.windows(one)
        return self

    def dense(self) -> torch.Tensor:
        """The dense coefficients ``(R, B, C, H, W)`` (per-example rows: zero on the other
        examples)."""
        r_, b, c, kh, kw = self.k.shape
        h, w = self.shape[1:]
        left, right, top, bottom = self.pads
        out = self.k.new_zeros((r_, b, c, h + top + bottom, w + left + right))
        dev = self.k.device
        rows = torch.arange(r_, device=dev)[:, None, None]
        hh = (self.oh + top)[:, None, None] + torch.arange(kh, device=dev)[None, :, None]
        ww = (self.ow + left)[:, None, None] + torch.arange(kw, device=dev)[None, None, :]
        out[rows, :, :, hh, ww] = self.k.permute(0, 3, 4, 1, 2)
        out = out[..., top : top + h, left : left + w]
        if self.ex is None:
            return out
        full = out.new_zeros((r_, self.batch, c, h, w))
        full[torch.arange(r_, device=dev), self.ex] = out[:, 0]
        return full

    def select(self, rows: torch.Tensor) -> Patches:
        """The rows ``rows`` (a long index), on their own windows."""
        ex = None if self.ex is None else self.ex[rows]
        return Patches(self.k[rows], self.oh[rows], self.ow[rows], self.shape, ex, self.batch)

    def dot(self, t: torch.Tensor) -> torch.Tensor:
        """``sum(a * t)`` per row and example, ``t`` as in :meth:`windows` -> (R, B)."""
        return (self.k * self.windows(t)).flatten(2).sum(-1)

    def too_big(self) -> bool:
        """The window covers the whole map: dense is no larger."""
        kh, kw = self.size
        return kh * kw >= self.shape[1] * self.shape[2]


def keeps(op: Op) -> bool:
    """Whether ``op`` maps patches to patches (else the caller densifies first)."""
    if op.kind in ("relu", "add", "maxpool"):
        return True
    if isinstance(op, ConvOp):
        return not isinstance(op.m.padding, str)
    if isinstance(op, Diag):
        return op.ndim == 4
    return isinstance(op, Reshape) and not isinstance(op, View) and op.start_dim is None


def affine_back(
    a: Patches, op: Op, in_shape: tuple[int, ...]
) -> tuple[Patches | torch.Tensor, torch.Tensor | None]:
    """``(a @ J, a . bias)`` for an affine op that :func:`keeps` patches."""
    if isinstance(op, Reshape):  # Dropout, Identity
        return a, None
    bias = op.bias()  # type: ignore[attr-defined]
    b_dot = None if bias is None else (a.k.sum((-2, -1)) * bias.reshape(1, 1, -1)).sum(-1)
    if isinstance(op, Diag):
        scale = op.params()[0].reshape(1, 1, -1, 1, 1)
        return replace(a, k=a.k * scale), b_dot
    m = op.m  # type: ignore[attr-defined]
    r_, b, c, kh, kw = a.k.shape
    k = conv_back(a.k.reshape(r_ * b, c, kh, kw), m)
    s, p = m.stride, m.padding
    k = k.view(r_, b, *k.shape[1:])
    out = replace(a, k=k, oh=a.oh * s[0] - p[0], ow=a.ow * s[1] - p[1], shape=in_shape)
    out = out.masked()
    return (out.dense() if out.too_big() else out), b_dot


MATRIX_NUMEL = 1024  # largest per-row output window that conv_back computes as a matmul


def conv_back(flat: torch.Tensor, m: torch.nn.Conv2d) -> torch.Tensor:
    """The transposed conv (no padding) of windows ``flat`` (N, C_out, kh, kw) -> (N, C_in,
    kh', kw'). When the output window is small (at most :data:`MATRIX_NUMEL`) and the rows many,
    as one matrix product with the conv's matrix on these windows (built by pushing the unit
    windows through, so it stays differentiable in the weights): CPU conv kernels are slow
    with few output channels (LeNet-5's conv1, one input channel: 6x slower than the matmul)."""

    def go(t: torch.Tensor) -> torch.Tensor:
        return conv_transpose(t, m.weight, m.stride, (0, 0), (0, 0), m.groups, m.dilation)

    n, c, kh, kw = flat.shape
    pair = torch.nn.modules.utils._pair
    # from the weight, not the module's attributes: a functional conv2d has no ``kernel_size``
    c_in, ks = m.weight.shape[1] * m.groups, tuple(m.weight.shape[2:])
    st, dil = pair(m.stride), pair(m.dilation)
    out = [((kh, kw)[i] - 1) * st[i] + dil[i] * (ks[i] - 1) + 1 for i in range(2)]
    size = c * kh * kw
    if c_in * out[0] * out[1] > MATRIX_NUMEL or n < 4 * size:
        return go(flat)
    eye = torch.eye(size, dtype=flat.dtype, device=flat.device).view(size, c, kh, kw)
    mat = go(eye)
    return (flat.reshape(n, size) @ mat.reshape(size, -1)).view(n, *mat.shape[1:])


def maxpool_back(
    a: Patches,
    coef: torch.Tensor,
    onehot: torch.Tensor,
    stride: tuple[int, int],
    in_shape: tuple[int, ...],
) -> Patches | torch.Tensor:
    """Patches on a MaxPool's input: each output's coefficient ``coef`` (R, B, C, kh, kw) sent
    to the input that ``onehot`` (B, C, H, W; one 1 per pooling window) marks."""
    sh, sw = stride
    k = coef.repeat_interleave(sh, -2).repeat_interleave(sw, -1)
    out = replace(a, k=k, oh=a.oh * sh, ow=a.ow * sw, shape=in_shape)
    out.k = out.k * out.windows(onehot)
    return out.dense() if out.too_big() else out


def concretize_linf(a: Patches, bias: torch.Tensor, box: tuple[torch.Tensor, torch.Tensor]):
    """Minimum of ``a . x + bias`` over the box ``(lo, up)`` (B, C, H, W) -> (R, B)."""
    lo, up = box
    c, r = (up + lo) / 2, (up - lo) / 2
    return a.dot(c) - (a.k.abs() * a.windows(r)).flatten(2).sum(-1) + bias


def widest_window(graph: Graph, name: str, dense: int = 1) -> int:
    """An upper bound on the per-row, per-example numel of the coefficients on any node that
    patches-mode back-substitution from the map ``name`` reaches (for chunking rows); where they
    turn dense, a node's numel times ``dense`` (per-example rows: the batch size)."""
    size: dict[str, tuple[int, int] | None] = {name: (1, 1)}  # None: dense
    widest = 1
    for node in reversed(graph.nodes):
        if node.name not in size or node.op is None:
            continue
        s, op = size.pop(node.name), node.op
        shape = graph.by_name[node.inputs[0]].shape
        if s is not None and keeps(op) and len(shape) == 3:
            if isinstance(op, ConvOp):
                m, pair = op.m, torch.nn.modules.utils._pair
                st, dil, ks = pair(m.stride), pair(m.dilation), pair(m.kernel_size)
                s = tuple((s[i] - 1) * st[i] + dil[i] * (ks[i] - 1) + 1 for i in range(2))
            elif op.kind == "maxpool":
                st = torch.nn.modules.utils._pair(op.m.stride or op.m.kernel_size)
                s = (s[0] * st[0], s[1] * st[1])
            if s[0] * s[1] >= shape[1] * shape[2]:
                s = None
        else:
            s = None
        widest = max(widest, math.prod(shape) * dense if s is None else shape[0] * s[0] * s[1])
        for i in node.inputs:
            if i in size:  # a join: the union of two windows is at most their sum
                t = size[i]
                s = None if s is None or t is None else (s[0] + t[0], s[1] + t[1])
            size[i] = s
    return widest


def to_dense(a: Patches | torch.Tensor) -> torch.Tensor:
    return a.dense() if isinstance(a, Patches) else a


def select(a: Patches | torch.Tensor, rows: torch.Tensor) -> Patches | torch.Tensor:
    """Rows ``rows`` of dense or patches coefficients (or slopes)."""
    return a.select(rows) if isinstance(a, Patches) else a[rows]


def add(x: Patches | torch.Tensor, y: Patches | torch.Tensor) -> Patches | torch.Tensor:
    """Sum of two coefficient sets on one node (a residual join): patches when both are
    patches on windows at a fixed offset of each other (padded to their union), else dense."""
    if isinstance(x, Patches) and isinstance(y, Patches):
        dh, dw = y.oh - x.oh, y.ow - x.ow
        if bool((dh == dh[0]).all()) and bool((dw == dw[0]).all()):
            (xh, xw), (yh, yw) = x.size, y.size
            dh0, dw0 = int(dh[0]), int(dw[0])
            top, left = min(0, dh0), min(0, dw0)
            h = max(xh, dh0 + yh) - top
            w = max(xw, dw0 + yw) - left
            kx = F.pad(x.k, (-left, w - xw + left, -top, h - xh + top))
            ky = F.pad(y.k, (dw0 - left, w - yw - dw0 + left, dh0 - top, h - yh - dh0 + top))
            return replace(x, k=kx + ky, oh=x.oh + top, ow=x.ow + left)
    return to_dense(x) + to_dense(y)
