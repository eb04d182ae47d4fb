"""Robust accuracy under an ensemble of attacks, AutoAttack style, with sanity checks.

``evaluate(model, data, eps)`` runs the attacks of a suite one after another; each later
attack only sees the examples that are still robust (correctly classified and not broken
by any earlier attack), so the final robust accuracy is the per-example worst case over
the ensemble (Croce & Hein 2020, arXiv 2003.01690, Sec. 5). It also warns, as AutoAttack's
``checks.py`` does, on signs of gradient masking or a broken evaluation.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta import progress
from sparta.attacks.base import _ATTACKS, check_eps, check_norm, create, frozen
from sparta.checks import check_int
from sparta.data import ImageDataset, as_dataset
from sparta.models.utils import device_of

log = logging.getLogger(__name__)

AttackSpec = str | tuple[str, dict[str, Any]]

# The "standard" AutoAttack suite (2003.01690, Sec. 5 and the reference code's
# version="standard"): APGD-CE (100 iterations, no restarts), APGD-T with the DLR loss over
# the 9 top non-true classes, FAB-T over 9 target classes, Square with 5000 queries. The
# order matters: cheap strong white-box attacks first, the black-box check last.
SUITES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "standard": [
        ("apgd-ce", {"steps": 100, "restarts": 1}),
        ("apgd-t", {"steps": 100, "n_target_classes": 9}),
        ("fab-t", {"steps": 100, "n_target_classes": 9}),
        ("square", {"queries": 5000}),
    ],
    # A quick look (an upper bound on the standard suite's robust accuracy): APGD-CE and
    # APGD-T with 20 iterations each and only the 3 most likely target classes.
    "fast": [
        ("apgd-ce", {"steps": 20, "restarts": 1}),
        ("apgd-t", {"steps": 20, "n_target_classes": 3}),
    ],
}
SUITE_NAMES = (*SUITES, "custom")


@dataclass
class RobustReport:
    """Outcome of :func:`evaluate` on ``n`` examples (fractions in [0, 1], times in s)."""

    eps: float
    norm: str
    n: int
    clean_acc: float
    robust_acc: float  # worst case over the ensemble, per example
    robust_acc_by_attack: dict[str, float]  # cumulative: after this attack and all before
    attack_time_s: dict[str, float]
    clean: torch.Tensor  # bool (n,): correctly classified without attack
    robust: torch.Tensor  # bool (n,): correct and unbroken by every attack (AND over attacks)
    broken_by: torch.Tensor  # long (n,): index of the attack that broke it, -1 if none did
    attacks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    suite: str = "custom"

    def summary(self) -> dict[str, Any]:
        """Flat snake_case keys for summary.json (``robust_acc_apgd_ce`` etc.)."""
        out: dict[str, Any] = {
            "clean_acc": self.clean_acc,
            "robust_acc": self.robust_acc,
            "n": self.n,
            "eps": self.eps,
            "norm": self.norm,
            "suite": self.suite,
            "attacks": list(self.attacks),
        }
        for name, acc in self.robust_acc_by_attack.items():
            out[f"robust_acc_{_key(name)}"] = acc
        for name, t in self.attack_time_s.items():
            out[f"time_{_key(name)}_s"] = t
        out["warnings"] = list(self.warnings)
        return out


def _key(name: str) -> str:
    return name.replace("-", "_")


# ------------------------------------------------------------------ suites and options
# canonical option -> the names attacks may give it (first accepted one wins)
_ALIASES = {
    "steps": ("steps", "n_iter", "iterations"),
    "queries": ("n_queries", "queries", "max_queries"),
    "restarts": ("restarts", "n_restarts"),
    "n_target_classes": ("n_target_classes", "n_targets"),
}


def _accepts(name: str) -> set[str]:
    """Keyword options the attack class takes (following ``**options`` up the MRO)."""
    found: set[str] = set()
    for cls in _ATTACKS[name].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        found |= {p.name for p in params.values() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return found


def _translate(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Canonical option names (steps, queries, restarts, n_target_classes) to the attack's
    own; a canonical option the attack does not take is left out (e.g. restarts)."""
    accepts = _accepts(name)
    out = {}
    for key, value in opts.items():
        if key in accepts:
            out[key] = value
            continue
        alias = next((a for a in _ALIASES.get(key, ()) if a in accepts), None)
        if alias is not None:
            out[alias] = value
        elif key not in _ALIASES:
            out[key] = value  # unknown to us: let the attack reject it by name
    return out


def resolve_attacks(
    suite: str = "standard",
    attacks: Sequence[AttackSpec] | None = None,
    num_classes: int | None = None,
    steps: int | None = None,
    queries: int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The ``(name, options)`` list a suite (or a custom list) stands for.

    ``steps``/``queries`` (>= 1) override the iterations of gradient attacks and the query
    budget of black-box ones; targeted attacks get at most ``num_classes - 1`` targets.
    """
    if suite not in SUITE_NAMES:
        raise ValueError(f"suite {suite!r} is not known; allowed: {', '.join(SUITE_NAMES)}")
    for what, value in (("steps", steps), ("queries", queries)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{what}={value!r} is not allowed; expected an integer >= 1")
    if suite == "custom":
        if not attacks:
            raise ValueError("suite 'custom' needs a list of attacks (e.g. --attacks pgd,square)")
        specs = [(a, {}) if isinstance(a, str) else (a[0], dict(a[1])) for a in attacks]
    else:
        if attacks:
            raise ValueError(f"attacks are given with suite {suite!r}; use suite 'custom'")
        specs = [(n, dict(o)) for n, o in SUITES[suite]]
    specs = [(_ATTACKS.resolve(name), opts) for name, opts in specs]  # `PGD` is pgd
    out = []
    for name, opts in specs:
        if steps is not None and not _ATTACKS[name].black_box:
            opts["steps"] = steps
        if queries is not None and _ATTACKS[name].black_box:
            opts["queries"] = queries
        if num_classes is not None and "n_target_classes" in opts:
            opts["n_target_classes"] = max(1, min(opts["n_target_classes"], num_classes - 1))
        out.append((name, _translate(name, opts)))
    return out


# ------------------------------------------------------------------ checks
@torch.no_grad()
def _forward_checks(model: nn.Module, x: torch.Tensor, caller_training: bool) -> list[str]:
    """Randomness (2003.01690's check_randomized) and softmax outputs (check_range_output)."""
    found = []
    if caller_training:
        # in the caller's (train) mode dropout shows; BatchNorm buffers are put back after
        saved = [(b, b.detach().clone()) for b in model.buffers()]
        differ = not torch.equal(model(x), model(x))
        for buf, value in saved:
            buf.copy_(value)
        found.append(
            "the model was in train mode"
            + (" and its outputs differ between two calls in that mode" if differ else "")
            + "; it was evaluated in eval mode (call model.eval() first; the caller's mode "
            "is restored)"
        )
    with frozen(model):
        a, b = model(x), model(x)
        if not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
            found.append(
                "the model's output differs between two forward passes on the same input "
                "(randomness in the model): gradient-based attacks may be unreliable; use EOT"
            )
        if a.min() >= 0 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4):
            found.append(
                "the model's outputs look like probabilities (non-negative rows summing to "
                "1): attacks need logits; remove the final softmax"
            )
    return found


def _zero_gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """Examples whose input gradient of the cross-entropy is exactly zero (check_zero_gradients)."""
    with frozen(model), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
    zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
    if zero:
        return [
            f"{zero} of {len(x)} checked examples have an exactly zero input gradient: "
            "gradient masking; white-box attacks cannot move them"
        ]
    return []


def _black_box_check(
    attack: str, gained: int, n: int, white_box_before: bool, share: float = 0.002
) -> list[str]:
    """A black-box attack breaking points every white-box attack failed on (check_square_sr)."""
    if white_box_before and n and gained / n > share:
        return [
            f"black-box attack {attack} broke {gained} of {n} examples that every white-box "
            "attack before it failed on: a sign of gradient masking"
        ]
    return []


# ------------------------------------------------------------------ evaluation
def _as_tensors(
    data: ImageDataset | tuple[torch.Tensor, torch.Tensor], n: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of the data; ``n`` picks a seeded random subset of a dataset, or the first
    ``n`` of a plain ``(x, y)`` pair."""
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n={n!r} is not allowed; expected an integer >= 1")
    if not isinstance(data, tuple):
        data = as_dataset(data)
        if n is not None and n < len(data):
            data = data.take(n, seed=seed)
        return data.x, data.y
    x, y = data
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y


def evaluate(
    model: nn.Module,
    data: ImageDataset | tuple[torch.Tensor, torch.Tensor],
    eps: float,
    norm: str = "linf",
    attacks: Sequence[AttackSpec] | None = None,
    suite: str | None = None,
    batch_size: int = 500,
    seed: int = 0,
    n: int | None = None,
    steps: int | None = None,
    queries: int | None = None,
    checks: bool = True,
) -> RobustReport:
    """Clean and robust accuracy of ``model`` on ``data`` at ``eps`` under an attack ensemble.

    ``suite`` is "standard" (AutoAttack), "fast" or "custom" (default: "custom" when
    ``attacks`` are given, else "standard"); ``attacks`` are names or ``(name, options)``.
    Attacks run in order, each only on the examples still robust. With ``checks`` the
    gradient-masking checks run and their warnings are logged and kept in the report.
    """
    eps, norm = check_eps(eps), check_norm(norm)
    check_int("batch_size", batch_size)
    suite = suite or ("custom" if attacks else "standard")
    x_all, y_all = _as_tensors(data, n, seed)
    if len(y_all) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = device_of(model)
    caller_training = model.training
    warnings: list[str] = []

    with frozen(model), torch.no_grad():
        logits = torch.cat(
            [model(x_all[i : i + batch_size].to(device)) for i in range(0, len(y_all), batch_size)]
        )
    num_classes = logits.shape[1]
    clean = logits.argmax(1).cpu() == y_all.cpu()
    robust = clean.clone()
    broken_by = torch.full((len(y_all),), -1, dtype=torch.long)
    runs = []
    for name, opts in resolve_attacks(suite, attacks, num_classes, steps, queries):
        try:
            atk = create(
                name, model, eps=eps, norm=norm, seed=seed, num_classes=num_classes, **opts
            )
        except ValueError as e:
            if suite == "custom" or "norm" not in str(e):
                raise
            warnings.append(f"{name} left out of the {suite} suite: {e}")
            continue
        runs.append((name, atk))

    if checks:
        xb = x_all[: min(len(y_all), batch_size, 256)].to(device)
        yb = y_all[: len(xb)].to(device)
        warnings += _forward_checks(model, xb, caller_training)
        if any(not atk.black_box for _, atk in runs):
            warnings += _zero_gradient_check(model, xb, yb)

    by_attack: dict[str, float] = {}
    times: dict[str, float] = {}
    white_box_ran = False
    for k, (name, atk) in enumerate(runs):
        todo = robust.nonzero().flatten()
        start = time.perf_counter()
        for i in progress.bar(range(0, len(todo), batch_size), desc=f"{name} eps={eps:g}"):
            idx = todo[i : i + batch_size]
            xb, yb = x_all[idx].to(device), y_all[idx].to(device)
            res = atk(xb, yb)
            with frozen(model), torch.no_grad():  # count what the model does, not the claim
                fooled = model(res.x_adv).argmax(1) != yb
            hit = idx[fooled.cpu()]
            robust[hit] = False
            broken_by[hit] = k
        label = name if name not in times else f"{name}#{k}"
        times[label] = time.perf_counter() - start
        by_attack[label] = float(robust.float().mean())
        gained = int((broken_by == k).sum())
        if checks and atk.black_box:
            warnings += _black_box_check(name, gained, len(y_all), white_box_ran)
        white_box_ran = white_box_ran or not atk.black_box
        log.info(
            "%s: robust_acc=%.4f (%d of %d still robust, %.1fs)",
            label,
            by_attack[label],
            int(robust.sum()),
            len(todo),
            times[label],
        )
    for w in warnings:
        log.warning(w)
    return RobustReport(
        eps=eps,
        norm=norm,
        n=len(y_all),
        clean_acc=float(clean.float().mean()),
        robust_acc=float(robust.float().mean()),
        robust_acc_by_attack=by_attack,
        attack_time_s=times,
        clean=clean,
        robust=robust,
        broken_by=broken_by,
        attacks=list(by_attack),
        warnings=warnings,
        suite=suite,
    )


def robust_curve(
    model: nn.Module,
    data: ImageDataset | tuple[torch.Tensor, torch.Tensor],
    eps_list: Sequence[float],
    norm: str = "linf",
    **kwargs: Any,
) -> list[RobustReport]:
    """One :func:`evaluate` report per eps of ``eps_list`` (sorted, same examples)."""
    if not eps_list:
        raise ValueError("eps_list is empty; give at least one eps")
    eps_sorted = sorted(check_eps(e) for e in eps_list)
    return [evaluate(model, data, e, norm, **kwargs) for e in progress.bar(eps_sorted, desc="eps")]
