"""Branch and bound on unstable ReLUs with beta-CROWN bounds on every sub-problem.

A sub-domain is the input domain plus split constraints: for a chosen unstable neuron, the
"active" child sets its pre-activation lower bound to 0, the "inactive" child its upper bound
to 0. Children are bounded together as one batch: their split bounds are passed as reference
bounds to full CROWN, which recomputes every later layer's bounds under the constraints (sound:
on the sub-domain the split ReLU is exactly linear). A child is pruned when every margin
``z_y - z_j`` is provably positive or its bounds are empty (l > u: an infeasible split); a child
bound never drops below its parent's (the sub-domain is a subset).

Branching (``branching``): "intercept" (default) is BaBSR's intercept score (Bunel et al.
2020, 1909.06588, Sec. 5.1): ``min(a, 0) * (-l u / (u - l))``, with ``a`` the coefficient of the
worst margin row on that ReLU's output: how much the upper relaxation's intercept costs the
bound; "babsr" adds BaBSR's bias term (:func:`_scores`); "fsb" is filtered smart branching (De
Palma et al. 2021, 2104.06718, Sec. 5; alpha-beta-CROWN's default): the top ``fsb_k`` of both
scores are each scored by their children's bounds with the intermediate bounds fixed
(:meth:`BaB._branch`), the best wins. Falsification: the minimiser of each child's linear
bound over the input box (the relaxation's worst-case point) is checked by a forward pass.
Domains are processed best-first (lowest bound first), ``batch`` at a time. Grafted neurons
(:class:`~sparta.certify.grafting.GraftedReLU`) are linear: never split, and no sign constraint
in the leaf LP.

Bounds (``bound``): "beta-crown" (default; Wang et al. 2021, 2103.06624, Sec. 3): every batch
of sub-problems is bounded by alpha-CROWN with beta-CROWN's multipliers for the split
constraints (:func:`~sparta.certify.crown.optimize_bounds`), the output's slopes and the
multipliers optimised; the root by alpha-CROWN with the slopes of every intermediate layer.
A sub-problem's intermediate bounds are CROWN's under the split constraints intersected with its
parent's (so with the root's alpha-CROWN bounds) and stay fixed while the output's slopes and the
multipliers are optimised (auto_LiRPA's ``fix_interm_bounds``; beta-CROWN's multipliers carry
the split constraints that intermediate bounds would otherwise have to: 2103.06624 Sec. 3.1).
"alpha-crown" optimises the slopes only and "crown" is plain CROWN (the split constraints then
enter only through the intermediate bounds). Betas are on the output's bound only: the
intermediate bounds of a sub-problem are CROWN's under its splits (beta-CROWN's intermediate
betas are alpha-beta-CROWN's ``enable_opt_interm_bounds``, off by default in its BaB, and would
cost a gradient pass through every intermediate layer's rows per step, 12x the output's on
LeNet-300-100, see BENCHMARKS.md).

Cost per batch (alpha-beta-CROWN's BaB practice, 2103.06624 Sec. 3, and its ``beta_crown``
solver): every child first gets CROWN's bound under its splits; only the children CROWN leaves
open (and that are feasible) are optimised, warm-started from the parent's optimised output
slopes and multipliers (alpha-beta-CROWN keeps them per domain and hands them to both children;
the new split's multiplier starts at 0), with ``steps`` joint steps (lr 0.01 / 0.05 for warm
slopes / multipliers, alpha-beta-CROWN's BaB rates) that stop as soon as every open child is
verified; each child keeps the slopes and multipliers of its best step for its own children.

The relaxation ignores the split constraints on the input (beta-CROWN enforces them only at its
optimum), so a domain whose ReLUs are all decided can still have a negative bound. Such a leaf is
closed exactly by a linear program (SciPy HiGHS): with every ReLU fixed the network is affine on
the leaf, the leaf is a polytope (the box and one sign constraint per neuron), and the LP's
minimiser is a counterexample candidate checked by a forward pass. This makes BaB complete for
ReLU networks under Linf. With MaxPool the leaf's constraints and objective are CROWN's linear
lower bounds of the (signed) pre-activations and margins on the leaf: the LP's polytope contains
the leaf, so a positive minimum still verifies it (sound), and where every pool window's maximum
is decided by the leaf's bounds (one input's lower bound beats the others' upper bounds) they
are exact, so the LP decides the leaf; a leaf with an undecided window that the LP neither
verifies nor falsifies stays "unknown" (MaxPool windows are not branched on). Other norms:
"unknown". An LP minimum must exceed ``LP_TOL`` to count as verified (solver tolerances).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import time
from dataclasses import dataclass

import torch

from sparta.certify.crown import (
    backward,
    intermediate_bounds,
    optimize_bounds,
    output_bounds,
    pool_decided,
)
from sparta.certify.domain import InputDomain
from sparta.certify.graph import Graph, Interval
from sparta.certify.ibp import interval, spec_matrix

LP_TOL = 1e-5
# alpha/beta steps per batch of sub-problems (and at the root): warm-started from the parent's, 3
# steps verify as many of 30 validation images at eps 0.03 (LeNet-300-100, Fashion-MNIST, 600
# branches each) as 5 steps, at 6% less CPU time (2 steps: one image fewer); cold, 5 steps
# bounded a batch within 0.001 of 20 steps' bound at a quarter of the time
BAB_STEPS = 3
BOUNDS = ("beta-crown", "alpha-crown", "crown")  # sub-problem bounds, tightest first
BRANCHING = ("fsb", "babsr", "intercept")
FSB_K = 3  # candidates per score (alpha-beta-CROWN's bab.branching.candidates default)
_log = logging.getLogger(__name__)


@dataclass
class BabResult:
    """Outcome for one example: ``status`` verified / falsified / unknown."""

    status: str
    branches: int
    x_cex: torch.Tensor | None = None
    lower: float = float("nan")  # best proven lower bound on min_j (z_y - z_j)


@dataclass
class _Domain:
    lower: torch.Tensor  # (rows,) margin lower bounds
    ref: dict[str, Interval]  # bounds of every ReLU/MaxPool input, without batch dim
    score: dict[str, torch.Tensor]  # ReLU input name -> flat BaBSR scores (-1: not unstable)
    icp: dict[str, torch.Tensor]  # ReLU input name -> flat intercept scores (<= 0)
    splits: dict[str, torch.Tensor]  # ReLU input name -> split signs (+1 active, -1 inactive, 0)
    warm: dict[str, dict[str, torch.Tensor]]  # "alpha"/"beta" -> ReLU name -> (rows, *shape)


def _margin_rows(y: int, k: int, n: int, device: torch.device) -> torch.Tensor:
    """Rows ``e_y - e_j`` for ``j != y``, shaped (K-1, n, K)."""
    c = spec_matrix(torch.tensor([y], device=device), k)[0]
    keep = torch.arange(k, device=device) != y
    return c[keep].unsqueeze(1).expand(k - 1, n, k)


def _pre_bias(graph: Graph, name: str) -> torch.Tensor | float:
    """Bias of the affine op that computes pre-activation ``name`` (flat), else 0."""
    node = graph.by_name[name]
    if node.op is None or node.op.kind != "affine":  # type: ignore[union-attr]
        return 0.0
    b = node.op.bias()  # type: ignore[union-attr]
    return 0.0 if b is None else b.expand(1, *node.shape).flatten().detach()


def _scores(
    graph: Graph, bounds: dict[str, Interval], record: dict[str, torch.Tensor], worst: torch.Tensor
) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Per domain: (BaBSR scores, intercept scores) of every ReLU input's neurons, flat (Bunel et
    al. 2020, 1909.06588, Sec. 5.1, from the worst margin row's coefficients ``a`` on the ReLU
    output). BaBSR: ``|max(a b (s - 1), a b s) + min(a, 0) t|`` with ``s = u / (u - l)`` the
    upper slope, ``t = -l s`` its intercept and ``b`` the pre-activation's bias (-1 where not
    unstable); intercept: ``min(a, 0) t - 1e-6 t`` (more negative is better; 0 where not
    unstable)."""
    n = worst.numel()
    out: list = [({}, {}) for _ in range(n)]
    for relu in graph.relus():
        name = relu.inputs[0]
        lo, up = (t.flatten(1) for t in bounds[name])
        a = record[relu.name].flatten(2)[worst, torch.arange(n, device=worst.device)]  # (n, numel)
        unstable = (lo < 0) & (up > 0)
        linear = relu.op.grafted(relu.shape)  # type: ignore[union-attr]
        if linear is not None:
            unstable = unstable & ~linear.flatten()
        slope = torch.where(unstable, up / (up - lo).clamp_min(1e-12), 0.0)
        icp = torch.where(unstable, a.clamp(max=0) * -lo * slope, 0.0)
        ab = a * _pre_bias(graph, name)
        babsr = (torch.maximum(ab * (slope - 1), ab * slope) + icp).abs()
        icp = icp + 1e-6 * lo * slope  # ties (a >= 0) break on the intercept alone
        babsr = torch.where(unstable, babsr, -1.0)
        for i in range(n):
            out[i][0][name] = babsr[i]
            out[i][1][name] = icp[i]
    return out


def _candidates(d: _Domain, k: int, by: str = "both") -> list[tuple[str, int]]:
    """FSB's candidates (De Palma et al. 2021, 2104.06718, Sec. 5: the top ``k`` of BaBSR's
    score, then the top ``k`` of the intercept score; ``by`` "babsr" / "intercept": one score's
    only), unstable neurons only; [] for a leaf."""
    names = list(d.score)
    sizes = [d.score[n].numel() for n in names]
    babsr = torch.cat([d.score[n] for n in names])
    icp = torch.cat([d.icp[n] for n in names])
    free = babsr >= 0
    m = int(free.sum())
    if m == 0:
        return []
    picks = babsr.topk(min(k, m)).indices.tolist() if by != "intercept" else []
    if by != "babsr":
        picks += torch.where(free, -icp, -math.inf).topk(min(k, m)).indices.tolist()
    starts = [0, *itertools.accumulate(sizes)]
    out: list[tuple[str, int]] = []
    for flat in dict.fromkeys(picks):  # unique, in order
        j = bisect.bisect_right(starts, flat) - 1
        out.append((names[j], flat - starts[j]))
    return out


def _children(
    d: _Domain, name: str, i: int
) -> list[tuple[dict[str, Interval], dict[str, torch.Tensor]]]:  # the warm start is d.warm
    """(reference bounds, split signs) of the active and the inactive child."""
    kids = []
    for active in (True, False):
        ref = dict(d.ref)
        lo, up = (t.clone().flatten() for t in d.ref[name])
        if active:
            lo[i] = 0.0
        else:
            up[i] = 0.0
        ref[name] = (lo.view_as(d.ref[name][0]), up.view_as(d.ref[name][1]))
        splits = dict(d.splits)
        sign = splits.get(name, torch.zeros_like(d.ref[name][0])).clone()
        sign.view(-1)[i] = 1.0 if active else -1.0
        splits[name] = sign
        kids.append((ref, splits))
    return kids


def _stack(refs: list[dict[str, Interval]]) -> dict[str, Interval]:
    return {
        k: (torch.stack([r[k][0] for r in refs]), torch.stack([r[k][1] for r in refs]))
        for k in refs[0]
    }


def _stack_warm(
    graph: Graph, warm: list[dict[str, dict[str, torch.Tensor]]], rows: int
) -> dict[str, dict[str, torch.Tensor]]:
    """Warm starts of a batch of domains, ``(rows, n, *shape)`` per ReLU (zeros where a domain
    has none: its neurons there are all stable, or it has no split there)."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for kind in ("alpha", "beta"):
        names = {k for w in warm for k in w.get(kind, {})}
        for k in names:
            like = next(w[kind][k] for w in warm if k in w.get(kind, {}))
            zero = torch.zeros(
                (rows, *graph.by_name[k].shape), dtype=like.dtype, device=like.device
            )
            parts = [w[kind][k] if k in w.get(kind, {}) else zero for w in warm]
            out.setdefault(kind, {})[k] = torch.stack(parts, 1)
    return out


def _unstack(
    warm: dict[str, dict[str, torch.Tensor]], j: int
) -> dict[str, dict[str, torch.Tensor]]:
    return {kind: {k: v[:, j] for k, v in d.items()} for kind, d in warm.items()}


def _stack_splits(
    signs: list[dict[str, torch.Tensor]], like: dict[str, Interval]
) -> dict[str, torch.Tensor]:
    """Split signs of a batch of domains (zeros where a domain has no split on a node)."""
    names = {k for s in signs for k in s}
    return {
        k: torch.stack([s[k] if k in s else torch.zeros_like(like[k][0]) for s in signs])
        for k in names
    }


class BaB:
    """Branch and bound for one graph; :meth:`run` verifies one example.

    ``bound``: how sub-problems are bounded, one of :data:`BOUNDS`; ``steps``: alpha/beta
    optimisation steps per batch of sub-problems."""

    def __init__(
        self,
        graph: Graph,
        eps: float,
        norm: str = "linf",
        batch: int = 64,
        bound: str = "beta-crown",
        steps: int = BAB_STEPS,
        branching: str = "intercept",
        fsb_k: int = FSB_K,
    ) -> None:
        if bound not in BOUNDS:
            raise ValueError(f"bound={bound!r} is not allowed; expected one of {', '.join(BOUNDS)}")
        if branching not in BRANCHING:
            raise ValueError(
                f"branching={branching!r} is not allowed; expected one of {', '.join(BRANCHING)}"
            )
        self.graph, self.eps, self.norm, self.batch = graph, eps, norm, batch
        self.bound, self.steps, self.branching, self.fsb_k = bound, steps, branching, fsb_k

    def _bound(
        self,
        x: torch.Tensor,
        y: int,
        ibp: dict[str, Interval],
        ref: dict[str, Interval] | None,
        splits: dict[str, torch.Tensor] | None = None,
        warm: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict], dict[str, Interval], torch.Tensor, list]:
        """Bounds for ``n`` copies of ``x`` under reference bounds, split signs and warm starts
        (stacked, see :func:`_stack_warm`): ``(lower (rows, n), worst points (n, *shape),
        scores, bounds, infeasible (n,), warm starts (n dicts; None where not optimised))``.

        Sub-problems first get CROWN's bound under their splits; only those it does not close
        (and that are feasible) are optimised (alpha/beta-CROWN), warm-started from ``warm``
        and stopped as soon as all of them are verified (alpha-beta-CROWN's BaB: the parent's
        optimised slopes and multipliers, a new split's multiplier 0, then few joint steps)."""
        n = 1 if ref is None else next(iter(ref.values()))[0].shape[0]
        dom = InputDomain(x.expand(n, *x.shape[1:]), self.eps, self.norm)
        ibp_n = {
            k: (lo.expand(n, *lo.shape[1:]), up.expand(n, *up.shape[1:]))
            for k, (lo, up) in ibp.items()
        }
        bnds = intermediate_bounds(self.graph, dom, ibp_n, ref)
        record: dict[str, torch.Tensor] = {}
        k = ibp[self.graph.output][0].shape[1]
        spec = _margin_rows(y, k, n, x.device)
        bad = torch.zeros(n, dtype=torch.bool, device=x.device)
        for name, (lo, up) in bnds.items():
            if name != self.graph.input.name:
                bad |= (lo > up).flatten(1).any(1)
        warm_out: list = [None] * n
        if ref is None and self.bound != "crown":  # the root: every layer's slopes, cold
            found: dict[str, dict[str, torch.Tensor]] = {}
            low, bnds, pts = optimize_bounds(
                self.graph, dom, spec, bnds, None, self.steps, record=record, point=True,
                warm=found,
            )  # fmt: skip
            warm_out = [_unstack(found, 0)]
        else:
            low, pts = output_bounds(self.graph, dom, spec, bnds, None, record, True)
            open_ = ((low <= 0).any(0) & ~bad).nonzero().squeeze(1)
            if self.bound != "crown" and open_.numel():
                sub = {key: (lo[open_], up[open_]) for key, (lo, up) in bnds.items()}
                found = {kind: {key: v[:, open_] for key, v in d.items()}
                         for kind, d in (warm or {}).items()}  # fmt: skip
                beta = None
                if self.bound == "beta-crown" and splits is not None:
                    beta = {key: v[open_] for key, v in splits.items()}
                rec: dict[str, torch.Tensor] = {}
                low_o, _, pts_o = optimize_bounds(
                    self.graph,
                    InputDomain(x.expand(open_.numel(), *x.shape[1:]), self.eps, self.norm),
                    spec[:, open_],
                    sub,
                    beta,
                    self.steps,
                    intermediate=False,  # sub-problems: the root's optimised bounds, fixed
                    record=rec,
                    point=True,
                    warm=found,
                    stop=True,
                    known=low[:, open_],
                )
                low[:, open_] = low_o
                if pts_o is not None:  # None when no step ran (the CROWN points stay)
                    pts[:, open_] = pts_o  # type: ignore[index]
                for key, v in rec.items():
                    record[key][:, open_] = v
                for j, i in enumerate(open_.tolist()):
                    warm_out[i] = _unstack(found, j)
        worst = low.argmin(0)
        points = pts[worst, torch.arange(n, device=x.device)]  # type: ignore[index]
        scores = _scores(self.graph, bnds, record, worst)
        return low, points, scores, bnds, bad, warm_out

    def _falsify(self, points: torch.Tensor, y: int) -> int | None:
        pred = self.graph.forward(points).argmax(1)
        hit = (pred != y).nonzero()
        return None if hit.numel() == 0 else int(hit[0])

    def _leaf(self, x: torch.Tensor, y: int, d: _Domain) -> tuple[str, torch.Tensor | None]:
        """Decide a domain whose ReLUs are all stable by one LP per margin row."""
        from scipy.optimize import linprog

        graph = self.graph
        if self.norm != "linf":
            return "unknown", None
        dom = InputDomain(x, self.eps, self.norm)
        box = dom.box()
        bnds = {graph.input.name: box, **{k: (lo[None], up[None]) for k, (lo, up) in d.ref.items()}}
        rows, rhs = [], []
        for relu in graph.relus():
            name = relu.inputs[0]
            lo, up = (t.flatten() for t in d.ref[name])
            sign = torch.where(lo >= 0, -1.0, 1.0).to(x.dtype)  # active: -z <= 0; inactive: z <= 0
            eye = torch.diag(sign).unsqueeze(1)
            # the linear lower bound L(x) <= sign * z: the LP's constraint L(x) <= 0 is implied by
            # sign * z <= 0, and equals it when every MaxPool window is decided (below)
            a, b, _ = backward(graph, name, eye.reshape(lo.numel(), 1, *d.ref[name][0].shape), bnds)
            linear = relu.op.grafted(relu.shape)  # type: ignore[union-attr]
            keep = slice(None) if linear is None else ~linear.flatten()  # grafted: no constraint
            rows.append(a.flatten(1)[keep])
            rhs.append((-b[:, 0])[keep])
        k = graph.by_name[graph.output].shape[0]
        a_out, b_out, _ = backward(graph, graph.output, _margin_rows(y, k, 1, x.device), bnds)
        rows, rhs = [r for r in rows if len(r)], [r for r in rhs if len(r)]
        a_ub = torch.cat(rows).double().cpu().numpy() if rows else None
        b_ub = torch.cat(rhs).double().cpu().numpy() if rows else None
        limits = list(zip(box[0].flatten().tolist(), box[1].flatten().tolist(), strict=True))
        for j in range(k - 1):
            c = a_out[j, 0].flatten().double().cpu().numpy()
            res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=limits, method="highs")
            if res.status == 2:  # infeasible leaf: empty
                return "verified", None
            if res.status != 0:
                return "unknown", None
            if res.fun + float(b_out[j, 0]) <= LP_TOL:
                point = torch.tensor(res.x, dtype=x.dtype, device=x.device).view_as(x)
                point = torch.minimum(torch.maximum(point, box[0]), box[1])
                if self._falsify(point, y) is not None:
                    return "falsified", point
                if not self._pools_decided(d):
                    _log.info("BaB leaf unknown: a MaxPool window's maximum is undecided there")
                return "unknown", None
        return "verified", None

    def _pools_decided(self, d: _Domain) -> bool:
        """Every MaxPool window's maximum is one input on the leaf (its lower bound beats every
        other upper bound): the network is then affine on the leaf and the LP exact."""
        for node in self.graph.nodes[1:]:
            if node.op.kind == "maxpool":  # type: ignore[union-attr]
                lo, up = (t[None] for t in d.ref[node.inputs[0]])
                if not pool_decided(node.op, lo, up).all():  # type: ignore[arg-type]
                    return False
        return True

    def _branch(self, x: torch.Tensor, y: int, ds: list[_Domain]) -> list[tuple[str, int] | None]:
        """The neuron to split in each domain (None: a leaf). FSB (De Palma et al. 2021,
        2104.06718, Sec. 5; alpha-beta-CROWN's default ``kfsb``): each of up to ``2 k``
        candidates (:func:`_candidates`) is scored by the worse of its two children's bounds
        (min over margin rows) from one batched backward pass with the domain's intermediate
        bounds fixed except the split neuron's (and its slopes and multipliers, if any); the best
        wins. ``branching="babsr"``: BaBSR's top score alone."""
        if self.branching != "fsb":  # the top BaBSR / intercept score
            return [next(iter(_candidates(d, 1, self.branching)), None) for d in ds]
        cands = [_candidates(d, self.fsb_k) for d in ds]
        refs, signs, warm = [], [], []
        for d, cs in zip(ds, cands, strict=True):
            for c in cs:
                for ref, sign in _children(d, *c):
                    refs.append(ref)
                    signs.append(sign)
                    warm.append(d.warm)
        if not refs:
            return [None] * len(ds)
        n, rows = len(refs), len(ds[0].lower)
        dom = InputDomain(x.expand(n, *x.shape[1:]), self.eps, self.norm)
        bnds = {self.graph.input.name: dom.box(), **_stack(refs)}
        w = _stack_warm(self.graph, warm, rows)
        k = self.graph.by_name[self.graph.output].shape[0]
        spec = _margin_rows(y, k, n, x.device)
        split = _stack_splits(signs, refs[0])
        sign = {r.name: split[r.inputs[0]] for r in self.graph.relus() if r.inputs[0] in split}
        beta = {k: v for k, v in w.get("beta", {}).items() if k in sign}
        low, _ = output_bounds(
            self.graph, dom, spec, bnds, w.get("alpha"), None, False, beta, sign
        )  # fmt: skip
        kid = low.min(0).values.view(-1, 2).min(1).values  # per candidate: the worse child
        out: list[tuple[str, int] | None] = []
        at = 0
        for cs in cands:
            if not cs:
                out.append(None)
                continue
            out.append(cs[int(kid[at : at + len(cs)].argmax())])
            at += len(cs)
        return out

    @torch.no_grad()
    def run(
        self, x: torch.Tensor, y: int, timeout: float = 60.0, max_branches: int = 100_000
    ) -> BabResult:
        """Verify ``x`` (1, *shape) with label ``y``."""
        deadline = time.perf_counter() + timeout
        ibp = interval(self.graph, InputDomain(x, self.eps, self.norm))
        low, points, scores, bnds, _, warm = self._bound(x, y, ibp, None)
        if (i := self._falsify(points, y)) is not None:
            return BabResult("falsified", 0, points[i : i + 1], float(low.min()))
        keep = {k: (lo[0], up[0]) for k, (lo, up) in bnds.items() if k != self.graph.input.name}
        root = _Domain(low[:, 0], keep, *scores[0], {}, warm[0] or {})
        domains = [root] if low.min() <= 0 else []
        branches, exhausted = 0, 0
        while domains:
            if time.perf_counter() > deadline or branches >= max_branches:
                break
            domains.sort(key=lambda d: float(d.lower.min()))
            todo, domains = domains[: self.batch], domains[self.batch :]
            refs, signs, parents = [], [], []
            for d, pick in zip(todo, self._branch(x, y, todo), strict=True):
                if pick is None:
                    status, x_cex = self._leaf(x, y, d)
                    if status == "falsified":
                        return BabResult(status, branches, x_cex, float(d.lower.min()))
                    exhausted += status == "unknown"
                    continue
                for ref, sign in _children(d, *pick):
                    refs.append(ref)
                    signs.append(sign)
                parents += [d, d]
            if not refs:  # only leaves in this batch
                continue
            branches += len(refs)
            rows = len(parents[0].lower)
            low, points, scores, bnds, bad, warm = self._bound(
                x,
                y,
                ibp,
                _stack(refs),
                _stack_splits(signs, refs[0]),
                _stack_warm(self.graph, [p.warm for p in parents], rows),
            )
            if (i := self._falsify(points, y)) is not None:
                return BabResult("falsified", branches, points[i : i + 1], float(low[:, i].min()))
            low = torch.maximum(low, torch.stack([p.lower for p in parents], 1))
            for j in range(len(refs)):
                if bad[j] or low[:, j].min() > 0:
                    continue
                ref = {k: (lo[j], up[j]) for k, (lo, up) in bnds.items() if k in keep}
                domains.append(_Domain(low[:, j], ref, *scores[j], signs[j], warm[j] or {}))
        if not domains and not exhausted:
            return BabResult("verified", branches, None, 0.0)
        worst = min([float(d.lower.min()) for d in domains] or [float("nan")])
        return BabResult("unknown", branches, None, worst)
