"""CROWN (Zhang et al. 2018, 1811.00866) and alpha-CROWN (Xu et al. 2021, 2011.13824).

Backward linear bound propagation: a specification ``A`` (rows, B, *shape) on a node is pushed
back to the input through the transpose of every affine op and through a linear relaxation of
every ReLU (Sec. 3.2: upper line through ``(l, 0)`` and ``(u, u)``; lower slope ``alpha``, by
default CROWN's adaptive choice 1 if ``u > -l`` else 0, as auto_LiRPA's ``upper_d > 0.5``) and
MaxPool (lower: the input of largest lower bound; upper: that input when its lower bound beats
every other upper bound, else the constant largest upper bound, as auto_LiRPA). The result is
concretised over the input domain (Sec. 3.3, Hölder's inequality).

Intermediate bounds are full CROWN, layer by layer (auto_LiRPA ``method="CROWN"``), but only for
neurons that IBP (intersected with any known bounds) leaves unstable in some example of the batch
(auto_LiRPA's ``sparse_intermediate_bounds``): stable neurons, pruned ones included, are relaxed
exactly whatever their bounds, so they need no rows. Every CROWN bound is intersected with IBP's.
Pre-activations that are an affine image of the input box (the first layer) keep their IBP
interval, which is already exact for Linf.

alpha-CROWN (:func:`optimize_bounds`) optimises a separate lower slope for every (bounded node,
ReLU) pair (2011.13824 Sec. 3.1: the optimal slopes differ per bounded neuron): one per (row,
example, neuron) for the output specification and for every intermediate pre-activation that is
refined (its unstable neurons' lower and upper rows), all jointly against the sum of the output
bounds; each step recomputes the intermediate bounds with their slopes, so the gradient reaches
them through the relaxations of later ReLUs (auto_LiRPA's ``compute_bounds(method="alpha-CROWN")``
without given intermediate bounds). Adam with auto_LiRPA's defaults (``optimize_bound_args``:
20 iterations, lr_alpha 0.5, lr_beta 0.05, exponential decay 0.98), slopes initialised to
CROWN's. The slopes are projected onto [0, 1] *after* each step, outside the graph: the bound
never differentiates a clamp at its ends, whose gradient there changed between torch 2.13.0
(1) and 2.14.1 (0) and with CROWN's 0/1 start would make every gradient zero. The best bound of
every row seen is kept (CROWN's included). Every step's intermediate bounds are intersected with
CROWN's (auto_LiRPA's reference bounds; intersecting with the tightest seen instead cuts the
gradient of every neuron that is not improving and ends looser); the tightest seen are kept
(each is sound), returned and used in the last pass.

beta-CROWN (Wang et al. 2021, 2103.06624, Sec. 3.1, Thm. 3.1): on a BaB sub-domain with split
constraints ``s_j z_j >= 0`` (``s = +1``: active, ``z >= 0``; ``-1``: inactive), the bound of
``f`` is the bound of ``f - sum_j beta_j s_j z_j`` with ``beta >= 0`` (a Lagrangian: smaller than
``f`` on the sub-domain), i.e. ``-beta * s`` is added to the coefficients of every split
pre-activation during the backward pass. The betas (one per bounded node, row, example and
split neuron) are optimised jointly with the alphas and projected onto ``beta >= 0``, in as many
steps again after alpha-CROWN's, warm-started from its slopes (as alpha-beta-CROWN's BaB starts
from the parent's optimised slopes, with its lr_alpha 0.01 and lr_beta 0.05): beta = 0 there, so
every row's bound is never looser than alpha-CROWN's at equal steps. In BaB the sub-problems
start from their parent's optimised output slopes and multipliers instead (``warm``), and run
the joint steps only.

Grafted neurons (:class:`~sparta.certify.grafting.GraftedReLU`) are linear: both relaxations are
their own line ``slope * x + intercept``, so they are exact, never unstable, need no intermediate
rows and no alpha; the bounds stay differentiable in ``slope`` and ``intercept``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F

from sparta.certify import patches
from sparta.certify.domain import InputDomain
from sparta.certify.graph import Graph, Interval, MaxPoolOp, ReLUOp, unsupported
from sparta.certify.patches import Patches

ROW_BUDGET = 2**25  # floats per backward chunk of intermediate rows (128 MiB in float32)
# auto_LiRPA's optimize_bound_args defaults (optimized_bounds.py): iteration, lr_alpha,
# lr_decay, lr_beta
ALPHA_STEPS, ALPHA_LR, ALPHA_DECAY, BETA_LR = 20, 0.5, 0.98, 0.05
WARM_LR = 0.01  # alpha-beta-CROWN's BaB lr_alpha for warm-started slopes (with lr_beta 0.05)
PATCHES = True  # patches mode for the rows of feature maps (False: dense, for comparison)
PER_EXAMPLE = True  # CROWN's feature-map rows per (example, neuron) (False: per neuron)


def relu_relaxation(
    lo: torch.Tensor, up: torch.Tensor, alpha: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lower slope, upper slope, upper intercept)`` of ReLU on ``[lo, up]`` (CROWN Sec. 3.2).

    ``alpha`` (lower slopes of unstable neurons) must lie in [0, 1]: it is used as it is (no
    clamp in the graph, see :func:`optimize_bounds`)."""
    lr, ur = lo.clamp(max=0), up.clamp(min=0)
    ur = torch.maximum(ur, lr + 1e-8)
    upper_d = ur / (ur - lr)
    upper_b = -lr * upper_d
    active, unstable = lo >= 0, (lo < 0) & (up > 0)
    lower_d = (upper_d > 0.5).to(lo.dtype) if alpha is None else alpha
    lower_d = torch.where(unstable, lower_d, active.to(lo.dtype))
    return lower_d, upper_d, upper_b


def relaxation(
    op: ReLUOp, lo: torch.Tensor, up: torch.Tensor, alpha: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(lower slope, upper slope, upper intercept, exact intercept)`` of a ReLU-like op: as
    :func:`relu_relaxation`, except on grafted neurons, where both slopes are the line's slope,
    the upper intercept is 0 and ``exact intercept`` (added to both bounds; None without grafted
    neurons) is the line's intercept."""
    lower_d, upper_d, upper_b = relu_relaxation(lo, up, alpha)
    line = op.line(lo)
    if line is None:
        return lower_d, upper_d, upper_b, None
    m, slope, intercept = line
    lower_d = torch.where(m, slope, lower_d)
    upper_d = torch.where(m, slope, upper_d)
    upper_b = torch.where(m, 0.0, upper_b)
    exact_b = torch.where(m, intercept, 0.0).expand_as(lo)
    return lower_d, upper_d, upper_b, exact_b


def _free(op: ReLUOp, lo: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Where :func:`relaxation` uses ``alpha``: unstable neurons that are not grafted."""
    free = (lo < 0) & (up > 0)
    line = op.line(lo)
    return free if line is None else free & ~line[0]


def _sum_rest(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(2).sum(-1)


def _dot(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``sum(a * v)`` over the per-example dims: (rows, B, *shape) x (B, *shape) -> (rows, B)."""
    return torch.einsum("sbn,bn->sb", a.flatten(2), v.flatten(1))


def _maxpool_back(
    op: MaxPoolOp, a: torch.Tensor | Patches, bounds: Interval, in_shape: tuple
) -> tuple[torch.Tensor | Patches, torch.Tensor]:
    m = op.m
    ks, st = m.kernel_size, m.stride if m.stride else m.kernel_size
    if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)) or ks != st or m.ceil_mode:
        raise unsupported(
            "MaxPool2d with padding, dilation, ceil_mode or stride != kernel", "crown"
        )
    lo, up = bounds
    max_lo, idx = F.max_pool2d(lo, ks, st, return_indices=True)
    others = up.flatten(2).scatter(2, idx.flatten(2), float("-inf")).view_as(up)
    max_other = F.max_pool2d(others, ks, st)
    exact = (max_lo >= max_other).to(lo.dtype)
    max_up = F.max_pool2d(up, ks, st)
    if isinstance(a, Patches):
        exact_w = a.windows(exact)
        neg = a.k.clamp(max=0)
        coef = a.k.clamp(min=0) + neg * exact_w
        bias = (neg * (1 - exact_w) * a.windows(max_up)).flatten(2).sum(-1)
        onehot = torch.zeros_like(lo).flatten(2).scatter(2, idx.flatten(2), 1.0).view_as(lo)
        pair = torch.nn.modules.utils._pair
        return patches.maxpool_back(a, coef, onehot, pair(st), in_shape), bias
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    coef = (pos + neg * exact).flatten(3)  # (S, B, C, Ho*Wo)
    s, b = coef.shape[:2]
    a_in = torch.zeros(
        (s, b, in_shape[0], in_shape[1] * in_shape[2]), dtype=a.dtype, device=a.device
    )
    a_in = a_in.to(a.device).scatter_add(3, idx.flatten(2).expand(s, -1, -1, -1), coef)
    bias = _sum_rest(neg * (1 - exact) * max_up)
    return a_in.view(s, b, *in_shape), bias


def backward(
    graph: Graph,
    start: str,
    a: torch.Tensor | Patches,
    bounds: dict[str, Interval],
    alphas: dict[str, torch.Tensor] | None = None,
    record: dict[str, torch.Tensor] | None = None,
    frontier: bool = False,
    betas: dict[str, torch.Tensor] | None = None,
    splits: dict[str, torch.Tensor] | None = None,
    windows: dict[str, Patches] | None = None,
) -> tuple[torch.Tensor | Patches, torch.Tensor, str]:
    """Push ``a`` (rows, B, *shape of ``start``) back: ``(A, bias, node)`` with ``A`` the
    coefficients on ``node``, the input (or, with ``frontier``, the first node that is an
    elementwise affine image of the input, e.g. Normalize's output, whose box is exact).

    ``a`` may be :class:`~sparta.certify.patches.Patches` (patches mode, for the rows of a
    feature map): it stays patches through convs, elementwise ops, ReLUs and MaxPools and turns
    dense at any other op; ``A`` is then patches too, or dense (its batch dim may be 1).
    ``bounds`` holds the pre-activation bounds of every ReLU/MaxPool input; ``alphas`` maps a
    ReLU name to lower slopes broadcastable to ``(rows, B, *shape)``, or to
    :class:`~sparta.certify.patches.Patches` of slopes ``(rows, B, C, kh, kw)`` on the rows'
    windows there (patches mode: the slopes of neurons outside a row's receptive field do not
    matter; as ``windows`` recorded them); ``windows`` receives the patches arriving at each
    ReLU in patches mode (their geometry); ``record`` receives the
    (dense) coefficients on each ReLU's output (for branching scores). ``splits`` maps a ReLU
    name to the split signs of its input (B, *shape; +1 active, -1 inactive, 0 not split) and
    ``betas`` to their multipliers (>= 0, broadcastable to ``(rows, B, *shape)``): beta-CROWN's term
    ``-beta * s`` on the pre-activation's coefficients (2103.06624 Sec. 3.1).
    """
    k = a.k if isinstance(a, Patches) else a
    acc: dict[str, torch.Tensor | Patches] = {start: a}
    bias = torch.zeros(k.shape[:2], dtype=k.dtype, device=k.device)
    for node in reversed(graph.nodes):
        if node.name not in acc:
            continue
        a = acc.pop(node.name)
        op = node.op
        if op is None or (frontier and node.diag and not acc):
            return a, bias, node.name
        in_shape = graph.by_name[node.inputs[0]].shape
        if isinstance(a, Patches) and not patches.keeps(op):
            a = a.dense()
        if op.kind == "affine" and isinstance(a, Patches):
            a_in, b = patches.affine_back(a, op, in_shape)
            outs, bias = [a_in], bias if b is None else bias + b
        elif op.kind == "affine":
            rows, batch = a.shape[:2]
            a_in = op.back(a.reshape(rows * batch, *node.shape)).view(rows, batch, *in_shape)
            b = op.bias()
            if b is not None:
                bias = bias + _dot(a, b.expand(batch, *node.shape))
            outs = [a_in]
        elif op.kind == "relu":
            lo, up = bounds[node.inputs[0]]
            alpha = None if alphas is None else alphas.get(node.name)
            if windows is not None and isinstance(a, Patches):
                windows[node.name] = a
            if record is not None:
                record[node.name] = patches.to_dense(a)
            beta = None if betas is None or splits is None else betas.get(node.name)
            if isinstance(a, Patches) and beta is not None:
                a = patches.to_dense(a)  # beta-CROWN's split term is a dense map
            if isinstance(alpha, Patches) and not isinstance(a, Patches):
                alpha = alpha.dense()  # zero off the windows, where ``a`` is zero too
            lower_w = None
            if isinstance(alpha, Patches):  # slopes on each row's window: no dense slopes
                lower_d, upper_d, upper_b, exact_b = relaxation(op, lo, up)  # type: ignore[arg-type]
                free = a.windows(_free(op, lo, up))  # type: ignore[union-attr]
                lower_w = torch.where(free, alpha.k, a.windows(lower_d))  # type: ignore[union-attr]
            else:
                lower_d, upper_d, upper_b, exact_b = relaxation(op, lo, up, alpha)  # type: ignore[arg-type]
            if isinstance(a, Patches):  # the relaxation on each row's window
                neg = a.k.clamp(max=0)
                if lower_w is None:
                    lower_w = a.windows(lower_d)
                k = a.k * lower_w + neg * (a.windows(upper_d) - lower_w)
                outs = [dataclasses.replace(a, k=k)]
                bias = bias + (neg * a.windows(upper_b)).flatten(2).sum(-1)
                if exact_b is not None:
                    bias = bias + a.dot(exact_b)
            else:
                neg = a.clamp(max=0)  # pos * lower_d + neg * upper_d, with one temporary
                a_in = a * lower_d + neg * (upper_d - lower_d)
                if beta is not None:
                    a_in = a_in - beta * splits[node.name]  # type: ignore[index]
                outs = [a_in]
                bias = bias + _dot(neg, upper_b)
                if exact_b is not None:
                    bias = bias + _dot(a, exact_b)
        elif op.kind == "maxpool":
            a_in, b = _maxpool_back(op, a, bounds[node.inputs[0]], in_shape)  # type: ignore[arg-type]
            outs, bias = [a_in], bias + b
        else:  # add
            outs = [a, a]
        for name, a_in in zip(node.inputs, outs, strict=True):
            acc[name] = patches.add(acc[name], a_in) if name in acc else a_in
    raise RuntimeError(f"node {start!r} is not connected to the input")


def unstable_index(
    lo: torch.Tensor, up: torch.Tensor, linear: torch.Tensor | None = None
) -> torch.Tensor:
    """Flat indices of neurons unstable (``lo < 0 < up``) in at least one example, except the
    ``linear`` ones (per-example shape: grafted neurons, whose relaxation needs no bounds)."""
    found = ((lo < 0) & (up > 0)).flatten(1).any(0)
    if linear is not None:
        found = found & ~linear.flatten()
    return found.nonzero().squeeze(1)


def pool_decided(op: MaxPoolOp, lo: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(B, C, Ho, Wo) bool: the window's maximum is one input (its lower bound is no smaller
    than every other upper bound), where the MaxPool relaxation is exact."""
    ks = op.m.kernel_size
    max_lo, idx = F.max_pool2d(lo, ks, return_indices=True)
    others = up.flatten(2).scatter(2, idx.flatten(2), float("-inf")).view_as(up)
    return max_lo >= F.max_pool2d(others, ks)


def _pool_index(graph: Graph, name: str, lo: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(per-example shape) bool: :func:`_pool_need` in some example."""
    return _pool_need(graph, name, lo, up).any(0)


def _pool_need(graph: Graph, name: str, lo: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(B, *shape) bool: neurons of ``name`` whose bounds a MaxPool's relaxation reads
    (directly or after a ReLU; not dead ones then) in a window it does not yet decide. Their
    bounds matter even when they are stable (auto_LiRPA's sparse rows skip them, which makes its
    pool bounds looser and batch-dependent), so CROWN tightens them too."""
    need = torch.zeros(lo.shape, dtype=torch.bool, device=lo.device)
    users = [n for n in graph.nodes if name in n.inputs and n.op is not None]
    for user in users:
        reads = [(user, (lo, up))] if user.op.kind == "maxpool" else []  # type: ignore[union-attr]
        if user.op.kind == "relu":  # type: ignore[union-attr]
            after = user.op.interval((lo, up))  # type: ignore[union-attr]
            reads = [(n, after) for n in graph.nodes[1:] if user.name in n.inputs]
        for pool, (p_lo, p_up) in reads:
            if pool.op.kind != "maxpool":  # type: ignore[union-attr]
                continue
            open_ = ~pool_decided(pool.op, p_lo, p_up)  # type: ignore[arg-type]
            ks = torch.nn.modules.utils._pair(pool.op.m.kernel_size)  # type: ignore[union-attr]
            open_ = open_.repeat_interleave(ks[0], -2).repeat_interleave(ks[1], -1)
            h, w = lo.shape[-2:]
            open_ = F.pad(open_, (0, w - open_.shape[-1], 0, h - open_.shape[-2]))
            alive = p_up > 0 if user.op.kind == "relu" else True  # type: ignore[union-attr]
            need = need | (open_ & alive)
    return need


def refine(
    graph: Graph,
    domain: InputDomain,
    name: str,
    bounds: dict[str, Interval],
    known: Interval,
    idx: torch.Tensor | None = None,
    alphas: dict[str, torch.Tensor] | None = None,
    betas: dict[str, torch.Tensor] | None = None,
    splits: dict[str, torch.Tensor] | None = None,
) -> Interval:
    """CROWN bounds of node ``name`` on neurons ``idx`` (default: unstable ones, grafted neurons
    excepted), ∩ ``known``. ``alphas``/``betas`` (ReLU name -> ``(2 * len(idx), B, *shape)``:
    the lower-bound rows of ``idx``, then its upper-bound rows) and ``splits`` as in
    :func:`backward`."""
    lo, up = known
    if idx is None and PATCHES and PER_EXAMPLE and lo.dim() == 4 and domain.norm == "linf":
        if not alphas and not betas:  # CROWN: rows per (example, neuron) that needs them
            return _refine_per_example(graph, domain, name, bounds, known)
    if idx is None:
        idx = unstable_index(lo, up, graph.linear_neurons(name))
        if lo.dim() == 4 and any(n.op.kind == "maxpool" for n in graph.nodes[1:]):  # type: ignore[union-attr]
            need = _pool_index(graph, name, lo, up).flatten()
            need[idx] = True
            idx = need.nonzero().squeeze(1)
    n, batch, numel = idx.numel(), lo.shape[0], lo[0].numel()
    if n == 0:
        return known
    widest = max(math.prod(nd.shape) for nd in graph.nodes)
    chunk = max(1, ROW_BUDGET // (2 * batch * widest))
    use_patches = PATCHES and len(lo.shape) == 4
    if use_patches:  # rows of a feature map (Xu et al. 2020, App. A): per-row windows
        chunk = max(1, ROW_BUDGET // (2 * batch * patches.widest_window(graph, name)))
    lows, ups = [], []

    def rows_of(found: dict[str, Any] | None, i: int, c: int) -> dict | None:
        if not found:
            return None
        sel = torch.arange(i, i + c, device=idx.device)
        sel = torch.cat([sel, sel + n])
        return {k: patches.select(v, sel) for k, v in found.items()}

    for i in range(0, n, chunk):
        part = idx[i : i + chunk]
        c = part.numel()
        if use_patches:
            a: torch.Tensor | Patches = Patches.unit(part, tuple(lo.shape[1:]), lo.dtype)
        else:
            eye = torch.zeros((c, numel), dtype=lo.dtype, device=lo.device)
            eye[torch.arange(c, device=lo.device), part] = 1
            rows = torch.cat([eye, -eye]).unsqueeze(1).expand(2 * c, batch, numel)
            a = rows.reshape(2 * c, batch, *lo.shape[1:])
        linf = domain.norm == "linf" and graph.input.name in bounds
        al, be = rows_of(alphas, i, c), rows_of(betas, i, c)
        found = backward(graph, name, a, bounds, al, frontier=linf, betas=be, splits=splits)
        low, _ = concretize(graph, domain, found, bounds)
        lows.append(low[:c].t())
        ups.append(-low[c:].t())
    lo_f, up_f = lo.flatten(1), up.flatten(1)
    new_lo = torch.maximum(lo_f[:, idx], torch.cat(lows, 1))
    new_up = torch.minimum(up_f[:, idx], torch.cat(ups, 1))
    lo_f = lo_f.index_copy(1, idx, new_lo)
    up_f = up_f.index_copy(1, idx, new_up)
    return lo_f.view_as(lo), up_f.view_as(up)


def _refine_per_example(
    graph: Graph, domain: InputDomain, name: str, bounds: dict[str, Interval], known: Interval
) -> Interval:
    """:func:`refine` of a feature map with a patches row per (example, neuron) unstable or
    read by an undecided MaxPool window *in that example*, not per neuron for the whole batch:
    the union over a batch of 100 Fashion-MNIST images covers all 1600 neurons of LeNet-5's
    conv2, each image needs about 440 (auto_LiRPA computes the union). Equal bounds."""
    lo, up = known
    batch = lo.shape[0]
    mask = (lo < 0) & (up > 0)
    linear = graph.linear_neurons(name)
    if linear is not None:
        mask = mask & ~linear
    if any(n.op.kind == "maxpool" for n in graph.nodes[1:]):  # type: ignore[union-attr]
        mask = mask | _pool_need(graph, name, lo, up)
    ex, neuron = mask.flatten(1).nonzero(as_tuple=True)
    n = ex.numel()
    if n == 0:
        return known
    chunk = max(1, ROW_BUDGET // (2 * patches.widest_window(graph, name, batch)))
    linf = graph.input.name in bounds
    lows, ups = [], []
    for i in range(0, n, chunk):
        e, j = ex[i : i + chunk], neuron[i : i + chunk]
        c = e.numel()
        a = Patches.unit(j, tuple(lo.shape[1:]), lo.dtype, e, batch)
        found = backward(graph, name, a, bounds, frontier=linf)
        low, _ = concretize(graph, domain, found, bounds)
        if low.shape[1] > 1:  # turned dense: each row's own example
            low = low.gather(1, torch.cat([e, e]).unsqueeze(1))
        lows.append(low[:c, 0])
        ups.append(-low[c:, 0])
    lo_f, up_f = lo.flatten(1), up.flatten(1)
    at = (ex, neuron)
    lo_f = lo_f.index_put(at, torch.maximum(lo_f[at], torch.cat(lows)))
    up_f = up_f.index_put(at, torch.minimum(up_f[at], torch.cat(ups)))
    return lo_f.view_as(lo), up_f.view_as(up)


def refined_nodes(graph: Graph, domain: InputDomain) -> list[str]:
    """The nodes whose bounds :func:`intermediate_bounds` computes by CROWN (:func:`refine`)."""
    out = []
    for name in graph.needs_bounds():
        node = graph.by_name[name]
        if node.op.kind != "relu" and not (node.exact_ibp and domain.norm == "linf"):  # type: ignore[union-attr]
            out.append(name)
    return out


def intermediate_bounds(
    graph: Graph,
    domain: InputDomain,
    ibp: dict[str, Interval],
    ref: dict[str, Interval] | None = None,
    alphas: dict[str, dict[str, torch.Tensor]] | None = None,
    betas: dict[str, dict[str, torch.Tensor]] | None = None,
    splits: dict[str, torch.Tensor] | None = None,
    idx: dict[str, torch.Tensor] | None = None,
) -> dict[str, Interval]:
    """Bounds of every ReLU/MaxPool input: CROWN ∩ IBP ∩ ``ref`` (e.g. BaB split constraints).

    With ``alphas``/``betas`` (bounded node -> ReLU name -> rows, see :func:`refine`) and
    ``idx`` (bounded node -> the neurons those rows bound): alpha/beta-CROWN bounds."""
    bounds: dict[str, Interval] = {graph.input.name: domain.box()}
    if domain.norm == "linf":  # exact boxes of the frontier (see ``backward``)
        bounds.update({n.name: ibp[n.name] for n in graph.nodes[1:] if n.diag})
    refined = set(refined_nodes(graph, domain))
    for name in graph.needs_bounds():
        node = graph.by_name[name]
        lo, up = ibp[name]
        if ref is not None and name in ref:
            lo, up = torch.maximum(lo, ref[name][0]), torch.minimum(up, ref[name][1])
        if name in refined:
            at = None if idx is None else idx[name]
            al = None if alphas is None else alphas.get(name)
            be = None if betas is None else betas.get(name)
            lo, up = refine(graph, domain, name, bounds, (lo, up), at, al, be, splits)
        elif node.op.kind == "relu":  # type: ignore[union-attr]  (read by a MaxPool)
            lo_in, up_in = node.op.interval(bounds[node.inputs[0]])  # type: ignore[union-attr]
            lo, up = torch.maximum(lo, lo_in), torch.minimum(up, up_in)
        bounds[name] = (lo, up)
    return bounds


def output_bounds(
    graph: Graph,
    domain: InputDomain,
    spec: torch.Tensor,
    bounds: dict[str, Interval],
    alphas: dict[str, torch.Tensor] | None = None,
    record: dict[str, torch.Tensor] | None = None,
    point: bool = False,
    betas: dict[str, torch.Tensor] | None = None,
    splits: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lower bounds ``(rows, B)`` of ``spec @ logits`` for ``spec`` (rows, B, K); with
    ``point``, also the minimiser of each row's linear bound over the input box."""
    found = backward(
        graph,
        graph.output,
        spec,
        bounds,
        alphas,
        record,
        frontier=not point and domain.norm == "linf",
        betas=betas,
        splits=splits,
    )
    return concretize(graph, domain, found, bounds, point)


def concretize(
    graph: Graph,
    domain: InputDomain,
    found: tuple[torch.Tensor, torch.Tensor, str],
    bounds: dict[str, Interval],
    point: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Minimum of a linear bound over the domain; at a frontier node (Linf only) over its
    exact box ``bounds[node]``."""
    a, bias, name = found
    if isinstance(a, Patches):
        if domain.norm == "linf" and not point:
            box = bounds[name] if name != graph.input.name else domain.box()
            return patches.concretize_linf(a, bias, box), None
        a = a.dense()
    batch = domain.x.shape[0]
    if a.shape[1] != batch:  # patches made dense before any per-example op
        a, bias = a.expand(-1, batch, *a.shape[2:]), bias.expand(-1, batch)
    if name == graph.input.name or domain.norm != "linf":
        return domain.concretize(a, bias, point)
    return domain.concretize(a, bias, point, box=bounds[name])


def _ancestors(graph: Graph, name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for i in graph.by_name[todo.pop()].inputs:
            if i not in seen:
                seen.add(i)
                todo.append(i)
    return seen


def _unstable(b: Interval) -> torch.Tensor:
    return (b[0] < 0) & (b[1] > 0)


def _row_windows(
    graph: Graph, domain: InputDomain, name: str, idx: torch.Tensor, bounds: dict[str, Interval]
) -> dict[str, Patches]:
    """ReLU name -> the patches (their rows' windows) that :func:`refine`'s rows of ``name`` on
    neurons ``idx`` (lower, then upper rows) reach it as; empty outside patches mode. One
    CROWN pass of those rows, whose slopes then live on these windows (auto_LiRPA keeps a dense
    slope per row and neuron: 8x larger on LeNet-5's second conv, and the unfold of that
    dense tensor dominated alpha-CROWN's time)."""
    lo = bounds[name][0]
    seen: dict[str, Patches] = {}
    if PATCHES and lo.dim() == 4 and idx.numel():
        linf = domain.norm == "linf" and graph.input.name in bounds
        a = Patches.unit(idx, tuple(lo.shape[1:]), lo.dtype)
        with torch.no_grad():
            backward(graph, name, a, bounds, frontier=linf, windows=seen)
    return seen


def optimize_bounds(
    graph: Graph,
    domain: InputDomain,
    spec: torch.Tensor,
    bounds: dict[str, Interval],
    splits: dict[str, torch.Tensor] | None = None,
    steps: int = ALPHA_STEPS,
    lr: float = ALPHA_LR,
    lr_beta: float = BETA_LR,
    intermediate: bool = True,
    record: dict[str, torch.Tensor] | None = None,
    point: bool = False,
    warm: dict[str, dict[str, torch.Tensor]] | None = None,
    stop: bool = False,
    known: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Interval], torch.Tensor | None]:
    """alpha-CROWN, or beta-CROWN with ``splits``: lower bounds ``(rows, B)`` of
    ``spec @ logits``, never below CROWN's, the tightest intermediate bounds seen, and (with
    ``point``) the minimisers of the final pass's linear bounds.

    ``bounds``: CROWN's intermediate bounds (:func:`intermediate_bounds`, split constraints
    included). ``splits``: ReLU input name -> split signs (B, *shape; +1 active, -1 inactive, 0
    free): beta-CROWN's multipliers for them, optimised with the slopes in ``steps`` more steps
    after alpha-CROWN's ``steps``. ``intermediate=False`` keeps the intermediate
    bounds fixed and optimises the output's slopes only. ``record`` receives the final pass's
    coefficients on each ReLU output (see :func:`backward`).

    ``warm`` (BaB's warm start): ``{"alpha": {ReLU name: (rows, B, *shape)}, "beta": {...}}``,
    the output specification's slopes and multipliers to start from instead of CROWN's slopes
    and zeros (a missing ReLU starts cold); when it is not empty the alpha-only phase is
    skipped and the ``steps`` are joint alpha/beta steps. On return (also when it was given
    empty) it holds each example's output slopes and multipliers of its best step (the final
    pass, with the last step's parameters, included). ``stop``: end the optimisation
    as soon as every row of every example is positive (auto_LiRPA's stop criterion in BaB).
    ``known``: CROWN's lower bounds ``(rows, B)`` when the caller has them (BaB): their pass is
    skipped (the points then come from the final pass).
    """
    bounds = {k: (lo.detach(), up.detach()) for k, (lo, up) in bounds.items()}
    spec = spec.detach()
    warm_start = bool(warm)
    sign = {}
    for r in graph.relus():
        s = None if splits is None else splits.get(r.inputs[0])
        if s is not None and bool((s != 0).any()):
            sign[r.name] = s.to(spec.dtype)
    if known is None:
        with torch.no_grad():
            best, points = output_bounds(graph, domain, spec, bounds, None, record, point)
    else:
        best, points = known.detach(), None
    refined = refined_nodes(graph, domain) if intermediate else []
    idx = {n: unstable_index(*bounds[n], graph.linear_neurons(n)) for n in refined}
    rows = {graph.output: spec.shape[0], **{n: 2 * idx[n].numel() for n in refined}}
    loose = {r.name for r in graph.relus() if bool(_unstable(bounds[r.inputs[0]]).any())}
    geometry = {n: _row_windows(graph, domain, n, idx[n], bounds) for n in refined}
    alphas: dict[str, dict[str, Any]] = {}
    betas: dict[str, dict[str, torch.Tensor]] = {}
    for target, n_rows in rows.items():
        if n_rows == 0:
            continue
        above = _ancestors(graph, target)
        for r in graph.relus():
            if r.name not in above:
                continue
            start = warm if warm_start and target == graph.output else {}
            if r.name in loose:  # CROWN's slopes (auto_LiRPA init_alpha) or the warm start's
                init = relu_relaxation(*bounds[r.inputs[0]])[0]
                geo = geometry.get(target, {}).get(r.name)
                if geo is not None:  # patches mode: slopes on each row's window only
                    t = geo.windows(init).clone(memory_format=torch.contiguous_format)
                    p = Patches(t.requires_grad_(True), geo.oh, geo.ow, geo.shape)
                    alphas.setdefault(target, {})[r.name] = p
                    continue
                init = start.get("alpha", {}).get(r.name, init.expand(n_rows, *init.shape))
                alphas.setdefault(target, {})[r.name] = init.clone().requires_grad_(True)
            if r.name in sign:
                t = torch.zeros((n_rows, *sign[r.name].shape), dtype=spec.dtype)
                t = start.get("beta", {}).get(r.name, t.to(spec.device))
                betas.setdefault(target, {})[r.name] = t.clone().requires_grad_(True)
    a_params = [t.k if isinstance(t, Patches) else t for d in alphas.values() for t in d.values()]
    b_params = [t for d in betas.values() for t in d.values()]
    if steps <= 0 or not (a_params or b_params) or (stop and bool((best > 0).all())):
        return best, bounds, points
    # each example's best parameters, for the warm start only (no copies otherwise)
    keep = [t.detach().clone() for t in a_params + b_params] if warm is not None else []
    kept = torch.full_like(best[0], -math.inf)

    init, bounds = bounds, dict(bounds)  # CROWN's (the reference of every step), the best seen

    def evaluate(joint: bool, ref: dict, rec=None, pt=False) -> tuple[torch.Tensor, dict, Any]:
        be = betas if joint else {}
        cur = ref
        if refined:  # recomputed with the slopes, ∩ ``ref``
            cur = intermediate_bounds(graph, domain, ref, None, alphas, be, sign, idx)
        out = graph.output
        low, pts = output_bounds(
            graph, domain, spec, cur, alphas.get(out), rec, pt, be.get(out), sign
        )
        return low, cur, pts

    # alpha-CROWN's steps; with splits, then as many joint alpha/beta steps warm-started there
    # (the parent's optimised slopes in alpha-beta-CROWN's BaB, with its lr_alpha 0.01 and
    # lr_beta 0.05): every row's bound is at least alpha-CROWN's at equal steps
    joint_phase = (True, [{"params": a_params, "lr": WARM_LR}, {"params": b_params, "lr": lr_beta}])
    phases = [] if warm_start else [(False, [{"params": a_params, "lr": lr}])]
    if b_params or warm_start:
        phases.append(joint_phase)
    done = False
    for joint, groups in phases:
        groups = [g for g in groups if g["params"]]
        if not groups:
            continue
        opt = torch.optim.Adam(groups, foreach=True)  # one multi-tensor update (CPU too)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, ALPHA_DECAY)
        params = [t for g in groups for t in g["params"]]
        for _ in range(steps):
            if done:
                break
            with torch.enable_grad():
                low, cur, _ = evaluate(joint, init)
                grads = torch.autograd.grad(-low.sum(), params, allow_unused=True)
            best = torch.maximum(best, low.detach())
            if keep:
                total = low.detach().sum(0)
                better = total > kept
                kept = torch.where(better, total, kept)
                for v, k in zip(a_params + b_params, keep, strict=True):
                    k[:, better] = v.detach()[:, better]
            done = stop and bool((best > 0).all())
            for k, (lo, up) in cur.items():  # the tightest seen (each is sound)
                bounds[k] = (
                    torch.maximum(bounds[k][0], lo.detach()),
                    torch.minimum(bounds[k][1], up.detach()),
                )
            for v, g in zip(params, grads, strict=True):  # not .backward(): model .grad untouched
                v.grad = torch.zeros_like(v) if g is None else g
            opt.step()
            sched.step()
            with torch.no_grad():  # projection after the step, outside the graph
                for v in a_params:
                    v.clamp_(0, 1)
                for v in b_params:
                    v.clamp_(min=0)
    with torch.no_grad():
        if record is not None:
            record.clear()
        low, cur, pts = evaluate(bool(b_params), bounds, record, point)
        if warm is not None:  # each example's best parameters (the final pass's included)
            better = low.sum(0) > kept
            for v, k in zip(a_params + b_params, keep, strict=True):
                k[:, better] = v[:, better]
            best_of = {id(v): k for v, k in zip(a_params + b_params, keep, strict=True)}
            out = graph.output
            warm["alpha"] = {n: best_of[id(v)] for n, v in alphas.get(out, {}).items()}
            warm["beta"] = {n: best_of[id(v)] for n, v in betas.get(out, {}).items()}
    return torch.maximum(best, low), cur, points if pts is None else pts


def optimize_alphas(
    graph: Graph,
    domain: InputDomain,
    spec: torch.Tensor,
    bounds: dict[str, Interval],
    steps: int = ALPHA_STEPS,
    lr: float = ALPHA_LR,
) -> torch.Tensor:
    """alpha-CROWN lower bounds ``(rows, B)`` of ``spec @ logits``, never below CROWN's (the
    first value of :func:`optimize_bounds`)."""
    return optimize_bounds(graph, domain, spec, bounds, steps=steps, lr=lr)[0]
