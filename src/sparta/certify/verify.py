"""Per-example verification (bounds, a falsifier, branch and bound) and verified accuracy.

The falsifier (an attack that looks for counterexamples before branching) is passed in as a
callable, so certification does not import the attacks; the recipe with the attack
library's PGD is :func:`sparta.experiments.verify.verify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from sparta import progress
from sparta.certify.api import METHODS, bounds, check_method
from sparta.certify.bab import BOUNDS, BRANCHING, BaB
from sparta.certify.domain import check_eps, check_norm
from sparta.certify.graph import trace
from sparta.certify.methods import CERTIFY, register_certify_method
from sparta.data import as_dataset
from sparta.models.utils import frozen

Falsifier = Callable[[nn.Module, torch.Tensor, torch.Tensor, float, str], torch.Tensor]
"""``(model, x, y, eps, norm) -> x_adv``: candidate counterexamples, one per example; those
inside the ball and misclassified count as falsified."""

STATUSES = ("verified", "falsified", "unknown", "wrong")


@dataclass
class VerifyResult:
    """Per example: ``status`` (verified / falsified / unknown / wrong = misclassified clean),
    ``branches`` (BaB sub-problems bounded), ``counterexamples`` (index -> x_cex (1, *shape),
    inside the ball ∩ [0, 1] and misclassified by the model), ``time_s``."""

    status: list[str]
    branches: torch.Tensor
    counterexamples: dict[int, torch.Tensor] = field(default_factory=dict)
    time_s: float = 0.0

    def counts(self) -> dict[str, int]:
        return {s: self.status.count(s) for s in STATUSES}


def _in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    inside = (x_adv >= 0).flatten(1).all(1) & (x_adv <= 1).flatten(1).all(1)
    return inside & (size <= eps * (1 + 1e-5) + 1e-6)


def _falsify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    falsifier: Falsifier | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if falsifier is None or eps == 0 or len(x) == 0:
        return x, torch.zeros(len(x), dtype=torch.bool)
    x_adv = falsifier(model, x, y, eps, norm)
    with torch.no_grad():
        wrong = model(x_adv).argmax(1) != y
    return x_adv, wrong & _in_ball(x_adv, x, eps, norm)


def verify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    method: str = "bab",
    timeout: float = 60.0,
    norm: str = "linf",
    max_branches: int = 100_000,
    falsifier: Falsifier | None = None,
    batch: int = 64,
    bab_bound: str = "beta-crown",
    bab_branching: str = "intercept",
) -> VerifyResult:
    """Verify every example of ``(x, y)`` against ``||x' - x||_norm <= eps`` ∩ [0, 1].

    Order: clean check, then bounds of ``method`` ("bab" starts from CROWN) for the whole batch,
    then ``falsifier`` (if given) on the rest, then, for "bab", branch and bound per example
    with ``timeout`` seconds and ``max_branches`` sub-problems each, its sub-problems bounded
    by ``bab_bound`` (:data:`~sparta.certify.bab.BOUNDS`: beta-CROWN by default) and split on
    the neuron ``bab_branching`` picks (:data:`~sparta.certify.bab.BRANCHING`). Incomplete
    methods leave what neither proves nor breaks as "unknown".
    """
    method = check_method(method, VERIFY_METHODS)
    eps, norm = check_eps(eps), check_norm(norm)
    if timeout <= 0:
        raise ValueError(f"timeout={timeout!r} is not allowed; expected seconds > 0")
    if bab_bound not in BOUNDS:
        raise ValueError(f"bab_bound={bab_bound!r} is not allowed; expected one of {BOUNDS}")
    if bab_branching not in BRANCHING:
        raise ValueError(
            f"bab_branching={bab_branching!r} is not allowed; expected one of {BRANCHING}"
        )
    start = time.perf_counter()
    y = y.long()
    status = ["unknown"] * len(y)
    branches = torch.zeros(len(y), dtype=torch.long)
    cex: dict[int, torch.Tensor] = {}
    with frozen(model), torch.no_grad():
        graph = trace(model, tuple(x.shape[1:]), "crown" if method == "bab" else method)
        correct = model(x).argmax(1) == y
        ok = correct.nonzero().squeeze(1)
        for i in (~correct).nonzero().squeeze(1).tolist():
            status[i] = "wrong"
        if len(ok):
            b = bounds(model, x[ok], eps, norm, "crown" if method == "bab" else method, y[ok])
            for i in ok[b.verified].tolist():
                status[i] = "verified"
    rest = torch.tensor([i for i, s in enumerate(status) if s == "unknown"], dtype=torch.long)
    with frozen(model):
        x_adv, broken = _falsify(model, x[rest], y[rest], eps, norm, falsifier)
    for j, i in enumerate(rest.tolist()):
        if broken[j]:
            status[i], cex[i] = "falsified", x_adv[j : j + 1].detach()
    if method == "bab":
        bab = BaB(graph, eps, norm, batch, bab_bound, branching=bab_branching)
        with frozen(model):
            todo = [i for i, s in enumerate(status) if s == "unknown"]
            for i in progress.bar(todo, desc="bab examples"):
                res = bab.run(x[i : i + 1], int(y[i]), timeout, max_branches)
                branches[i] = res.branches
                if res.status == "falsified" and _confirmed(
                    model, res.x_cex, x[i], y[i], eps, norm
                ):
                    status[i], cex[i] = "falsified", res.x_cex
                elif res.status == "verified":
                    status[i] = "verified"
    return VerifyResult(status, branches, cex, time.perf_counter() - start)


register_certify_method(
    "bab",
    partial(verify, method="bab"),
    "complete",
    "branch and bound on ReLU splits over beta-CROWN bounds, PGD falsifier: complete given time",
)
#: the methods :func:`verify` takes: the bound methods and the complete ones
VERIFY_METHODS: tuple[str, ...] = (*METHODS, *CERTIFY.names(family="complete"))


def _confirmed(model, x_cex, x, y, eps: float, norm: str) -> bool:
    with torch.no_grad():
        wrong = bool(model(x_cex).argmax(1)[0] != y)
    return wrong and bool(_in_ball(x_cex, x[None], eps, norm)[0])


def verified_accuracy(
    model: nn.Module,
    data,
    eps: float,
    method: str = "crown",
    timeout: float = 60.0,
    n: int | None = None,
    norm: str = "linf",
    batch_size: int = 100,
    seed: int = 0,
    **options,
) -> dict:
    """Verify ``n`` examples of ``data`` (any dataset or DataLoader of ``(x, y)``, or an
    ``(x, y)`` pair of tensors) in batches.

    Returns flat keys: ``n``, ``verified``, ``falsified``, ``unknown``, ``wrong``,
    ``verified_acc``, ``clean_acc``, ``upper_acc`` (1 - (falsified + wrong) / n), ``branches``,
    ``time_s``, ``time_per_image_s``, ``method``, ``eps``, ``norm``.
    """
    if isinstance(data, tuple):
        x_all, y_all = data
    else:
        data = as_dataset(data)
        if n is not None and n < len(data):
            data = data.take(n, seed=seed)
        x_all, y_all = data.x, data.y
    if n is not None:
        x_all, y_all = x_all[:n], y_all[:n]
    counts = dict.fromkeys(STATUSES, 0)
    total_branches, elapsed = 0, 0.0
    for i in progress.bar(range(0, len(y_all), batch_size), desc=f"{method} batches"):
        res = verify(
            model,
            x_all[i : i + batch_size],
            y_all[i : i + batch_size],
            eps,
            method,
            timeout,
            norm,
            **options,
        )
        for k, v in res.counts().items():
            counts[k] += v
        total_branches += int(res.branches.sum())
        elapsed += res.time_s
    total = max(1, len(y_all))
    return {
        "n": len(y_all),
        **counts,
        "verified_acc": counts["verified"] / total,
        "clean_acc": 1 - counts["wrong"] / total,
        "upper_acc": 1 - (counts["falsified"] + counts["wrong"]) / total,
        "branches": total_branches,
        "time_s": elapsed,
        "time_per_image_s": elapsed / total,
        "method": method,
        "eps": eps,
        "norm": norm,
    }
