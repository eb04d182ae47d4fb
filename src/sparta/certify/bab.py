"""Branch and bound on unstable ReLUs with beta-CROWN bounds on every sub-problem.

A sub-domain is the input domain plus split constraints: for a chosen unstable neuron, the
"active" child sets its pre-activation lower bound to 0, the "inactive" child its upper bound
to 0. Children are bounded together as one batch: their split bounds are passed as reference
bounds to full CROWN, which recomputes every later layer's bounds under the constraints (sound:
on the sub-domain the split ReLU is exactly linear). A child is pruned when every margin
``z_y - z_j`` is provably positive or its bounds are empty (l > u: an infeasible split); a child
bound never drops below its parent's (the sub-domain is a subset).

Branching (Bunel et al. 2020, 1909.06588, Sec. 5.1, BaBSR's intercept score, simplified): the
score of an unstable neuron is ``max(-a, 0) * (-l u / (u - l))``, with ``a`` the coefficient of
the worst margin row on that ReLU's output: how much the upper relaxation's intercept costs the
bound. Ties break on the intercept alone. Falsification: the minimiser of each child's linear
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
enter only through the intermediate bounds). The slopes start from CROWN's on every
sub-problem (no warm start from the parent's, whose rows differ per batch).

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

import logging
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
# alpha/beta steps per batch of sub-problems (and at the root): on LeNet-300-100 (Fashion-MNIST,
# eps 0.02) 5 steps bound a batch of 64 children within 0.001 of 20 steps' bound at a quarter
# of the time (0.48 s vs 2.0 s of CPU; plain CROWN: 0.18 s), so BaB branches more per second
BAB_STEPS = 5
BOUNDS = ("beta-crown", "alpha-crown", "crown")  # sub-problem bounds, tightest first
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
    score: dict[str, torch.Tensor]  # ReLU input name -> flat branching scores
    splits: dict[str, torch.Tensor]  # ReLU input name -> split signs (+1 active, -1 inactive, 0)
    warm: dict[str, dict[str, torch.Tensor]]  # "alpha"/"beta" -> ReLU name -> (rows, *shape)


def _margin_rows(y: int, k: int, n: int, device: torch.device) -> torch.Tensor:
    """Rows ``e_y - e_j`` for ``j != y``, shaped (K-1, n, K)."""
    c = spec_matrix(torch.tensor([y], device=device), k)[0]
    keep = torch.arange(k, device=device) != y
    return c[keep].unsqueeze(1).expand(k - 1, n, k)


def _scores(
    graph: Graph, bounds: dict[str, Interval], record: dict[str, torch.Tensor], worst: torch.Tensor
) -> list[dict[str, torch.Tensor]]:
    n = worst.numel()
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    for relu in graph.relus():
        name = relu.inputs[0]
        lo, up = (t.flatten(1) for t in bounds[name])
        a = record[relu.name].flatten(2)[worst, torch.arange(n, device=worst.device)]  # (n, numel)
        unstable = (lo < 0) & (up > 0)
        linear = relu.op.grafted(relu.shape)  # type: ignore[union-attr]
        if linear is not None:
            unstable = unstable & ~linear.flatten()
        intercept = torch.where(unstable, -lo * up / (up - lo).clamp_min(1e-12), 0.0)
        s = (-a).clamp(min=0) * intercept + 1e-6 * intercept
        s = torch.where(unstable, s, -1.0)
        for i in range(n):
            out[i][name] = s[i]
    return out


def _pick(d: _Domain) -> tuple[str, int] | None:
    best: tuple[float, str, int] | None = None
    for name, s in d.score.items():
        v, i = s.max(0)
        if float(v) >= 0 and (best is None or float(v) > best[0]):
            best = (float(v), name, int(i))
    return None if best is None else best[1:]  # type: ignore[return-value]


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
    ) -> None:
        if bound not in BOUNDS:
            raise ValueError(f"bound={bound!r} is not allowed; expected one of {', '.join(BOUNDS)}")
        self.graph, self.eps, self.norm, self.batch = graph, eps, norm, batch
        self.bound, self.steps = bound, steps

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
        root = _Domain(low[:, 0], keep, scores[0], {}, warm[0] or {})
        domains = [root] if low.min() <= 0 else []
        branches, exhausted = 0, 0
        while domains:
            if time.perf_counter() > deadline or branches >= max_branches:
                break
            domains.sort(key=lambda d: float(d.lower.min()))
            todo, domains = domains[: self.batch], domains[self.batch :]
            refs, signs, parents = [], [], []
            for d in todo:
                pick = _pick(d)
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
            if not refs:
                break
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
                domains.append(_Domain(low[:, j], ref, scores[j], signs[j], warm[j] or {}))
        if not domains and not exhausted:
            return BabResult("verified", branches, None, 0.0)
        worst = min([float(d.lower.min()) for d in domains] or [float("nan")])
        return BabResult("unknown", branches, None, worst)
