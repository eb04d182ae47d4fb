"""The card's pillars: scorers registered in :data:`PILLARS`, one per question asked of a model.

A scorer is ``(ctx, model, variant, sparsity, seed) -> PillarScore`` (flat metrics, a
paragraph of what was measured, warnings). Its registry entry declares ``metrics`` (key ->
label, better, format; the card's columns, known before anything runs) and ``options`` (the
CardOptions fields it reads, recorded with every score) and a relative ``cost`` (parallel
executors start the costly cells first). Images are chosen by the card seed,
so every variant is scored on the same ones; the cell seed drives the method's randomness.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta.experiments.card.cells import CellContext, PillarScore
from sparta.models.timing import latency_by_batch
from sparta.registry import Registry

PILLARS: Registry[Any] = Registry(
    "pillars", populate="sparta.experiments.card.pillars", label="pillar"
)

#: display order of the pillars (registration order of this module)
ORDER = (
    "accuracy",
    "efficiency",
    "robustness",
    "corruption",
    "certification",
    "unlearning",
    "backdoor",
)


def metric(label: str, better: str | None, format: str) -> dict[str, Any]:
    """A column's description: label, ``"higher"``/``"lower"``/None, and its format."""
    return {"label": label, "better": better, "format": format}


def all_metrics(pillars: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every metric key of ``pillars`` (default all) with its pillar and description."""
    out: dict[str, dict[str, Any]] = {}
    for name in pillars or pillar_names():
        for key, desc in PILLARS.get(name).meta["metrics"].items():
            out[key] = {"pillar": PILLARS.resolve(name), **desc}
    return out


def pillar_names() -> list[str]:
    """Registered pillars, the six built-in ones first in display order."""
    names = PILLARS.names()
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def _test_subset(ctx: CellContext, n: int) -> Any:
    test = ctx.splits().test
    return test if n >= len(test) else test.take(n, seed=ctx.options.seed)


# ------------------------------------------------------------------ accuracy
@PILLARS.register(
    "accuracy",
    cost=1,
    metrics={"test_acc": metric("test acc", "higher", "pct")},
    options=("test_subset",),
)
def accuracy(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """Clean accuracy on the card's test set."""
    from sparta.train import evaluate

    res = evaluate(model, ctx.splits().test)
    return PillarScore(
        {"test_acc": res["acc"]},
        f"Clean accuracy on {res['n']:,} test images of {ctx.options.dataset}.",
    )


# ------------------------------------------------------------------ efficiency
def _exports(model: nn.Module) -> dict[str, nn.Module]:
    """The exported forms of ``model`` to time: compact (channels removed, BatchNorm folded),
    CSR, BSR."""
    from sparta.sparsity import compact, masks_of, to_sparse
    from sparta.sparsity.export import SHAPES_ATTR, channel_fraction
    from sparta.sparsity.masks import detach_masks

    if not masks_of(model):
        return {"dense": model}
    out: dict[str, nn.Module] = {}
    try:
        if channel_fraction(model) > 0:
            out["compact"] = compact(model, fold_bn=True)
    except ValueError:
        pass
    if "compact" not in out and getattr(model, SHAPES_ATTR, None):
        small = copy.deepcopy(model)  # already physically smaller (Chase): itself, unmasked
        detach_masks(small)
        out["compact"] = small
    for fmt in ("csr", "bsr"):
        try:
            out[fmt] = to_sparse(model, format=fmt, blocksize=4)
        except (ValueError, RuntimeError):
            continue
    return {k: m.eval() for k, m in out.items()} or {"dense": model}


@PILLARS.register(
    "efficiency",
    cost=2,
    metrics={
        "weight_sparsity": metric("weight sparsity", None, "pct"),
        "channel_sparsity": metric("channel sparsity", None, "pct"),
        "params": metric("params kept", "lower", "int"),
        "macs": metric("MACs kept", "lower", "int"),
        "size_bytes": metric("size on disk (B)", "lower", "int"),
        "export_format": metric("export", None, "text"),
        "latency_b1_ms": metric("latency b1 (ms)", "lower", "float"),
        "latency_b256_ms": metric("latency b256 (ms)", "lower", "float"),
        "speedup_b1": metric("speedup b1", "higher", "float"),
        "speedup_b256": metric("speedup b256", "higher", "float"),
    },
    options=("latency_repeats",),
)
def efficiency(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """Sparsity, kept parameters and MACs, size of the exported model, measured CPU latency
    of the fastest export against the dense model at batch 1 and 256 (medians)."""
    from sparta.io import save
    from sparta.sparsity import report
    from sparta.sparsity.export import (
        SHAPES_ATTR,
        channel_fraction,
        choose_inference,
        for_inference,
    )
    from sparta.sparsity.groups import channel_groups

    g = report(model)["global"]
    try:
        chan = channel_fraction(model)
    except ValueError:
        chan = 0.0
    dense = ctx.dense().eval()
    weight_sparsity = float(g["sparsity"])
    if getattr(model, SHAPES_ATTR, None):  # already physically smaller (Chase): of the dense
        full = sum(r["numel"] for r in report(dense)["layers"])
        weight_sparsity = 1.0 - (1.0 - weight_sparsity) * g["masked_numel"] / full
        sizes = [sum(grp.size for grp in channel_groups(m)) for m in (model, dense)]
        chan = 1.0 - (1.0 - chan) * sizes[0] / sizes[1]
    exports = _exports(model.eval())
    test = ctx.splits().test
    reps = ctx.options.latency_repeats
    # the compact export runs in its fastest CPU mode (eager, channels-last, jit), chosen on
    # its own timing run before the reported one
    runs = dict(exports)
    if "compact" in exports:
        choose_inference(exports["compact"], test.x[:256], max(2, reps // 4))
        runs["compact"] = for_inference(exports["compact"])
    lat = latency_by_batch({"__dense__": dense, **runs}, test.x[:256], (1, 256), reps)
    # the export with the best geometric-mean ratio to the dense model over both batch sizes
    best = min(
        exports, key=lambda k: lat[1][k] / lat[1]["__dense__"] * lat[256][k] / lat[256]["__dense__"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        size = save(exports[best], Path(tmp) / "model.safetensors").stat().st_size
    metrics = {
        "weight_sparsity": weight_sparsity,
        "channel_sparsity": float(chan),
        "params": int(g["params_kept"]),
        "macs": int(g.get("macs_kept", 0)),
        "size_bytes": int(size),
        "export_format": best
        if best != "compact"
        else f"compact ({exports[best].sparta_inference['mode']})",
        "latency_b1_ms": lat[1][best],
        "latency_b256_ms": lat[256][best],
        "speedup_b1": lat[1]["__dense__"] / lat[1][best],
        "speedup_b256": lat[256]["__dense__"] / lat[256][best],
    }
    desc = (
        "Weight sparsity over prunable weights, channels removed, kept parameters and MACs "
        "(one image); size of the exported model's safetensors file; CPU latency (torch "
        f"threads: {torch.get_num_threads()}) of the fastest export (compact, CSR or BSR; "
        "compact with BatchNorm folded, in its fastest of eager, channels-last and torch.jit) "
        "and of "
        f"the dense model at batch 1 and 256, interleaved, median of {reps} repeats. "
        "Latencies depend on the machine and its load; the speedup is the ratio in one process."
    )
    return PillarScore(metrics, desc)


# ------------------------------------------------------------------ robustness
@PILLARS.register(
    "robustness",
    cost=2,
    metrics={
        "clean_acc": metric("clean acc (attacked set)", "higher", "pct"),
        "robust_acc": metric("robust acc", "higher", "pct"),
        "masking_warnings": metric("masking warnings", "lower", "int"),
    },
    options=("eps", "suite", "robust_n"),
)
def robustness(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """Robust accuracy under the attack suite at the card's eps with gradient-masking checks."""
    from sparta import attacks

    o = ctx.options
    sub = _test_subset(ctx, o.robust_n)
    rep = attacks.evaluate(model, (sub.x, sub.y), eps=o.eps, suite=o.suite, seed=seed)
    label = f"{variant} {sparsity:.0%}" if sparsity else variant
    desc = (
        f"Robust accuracy under the {o.suite} attack suite ({', '.join(rep.attacks)}) at L-inf "
        f"eps={o.eps:g} on {rep.n:,} test images (seeded by the card seed), with the "
        "evaluation's gradient-masking checks."
    )
    return PillarScore(
        {
            "clean_acc": rep.clean_acc,
            "robust_acc": rep.robust_acc,
            "masking_warnings": len(rep.warnings),
        },
        desc,
        [f"robustness: {label}: {w}" for w in rep.warnings],
    )


# ------------------------------------------------------------------ corruption
def _corruption_key(kind: str) -> str:
    return f"corruption_{kind.replace('-', '_')}_acc"


def _corruption_metrics() -> dict[str, dict[str, Any]]:
    from sparta.data.corruptions import CORRUPTIONS

    out = {
        "corruption_acc": metric("mean corruption acc", "higher", "pct"),
        "corruption_s5_acc": metric("severity 5 acc", "higher", "pct"),
    }
    out.update({_corruption_key(k): metric(k, "higher", "pct") for k in CORRUPTIONS})
    return out


@PILLARS.register("corruption", cost=2, metrics=_corruption_metrics(), options=("corruption_n",))
def corruption(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """Mean accuracy over six common corruptions at five severities (Fashion-MNIST-C style)."""
    from sparta.data.corruptions import CONSTANTS
    from sparta.train import evaluate_corruptions

    o = ctx.options
    sub = _test_subset(ctx, o.corruption_n or len(ctx.splits().test))
    rep = evaluate_corruptions(model, sub, seed=o.seed)
    metrics = {
        "corruption_acc": rep["corruption_acc"],
        "corruption_s5_acc": rep["by_severity"][5],
    }
    metrics.update({_corruption_key(k): v for k, v in rep["by_kind"].items()})
    desc = (
        f"Accuracy on {rep['n']:,} test images (chosen and corrupted with the card seed) "
        f"under {', '.join(CONSTANTS)}, each at severities 1-5 with CIFAR-10-C's constants "
        "adapted to the image size (Hendrycks & Dietterich 2019; sparta.data.corruptions): "
        "the mean over the 30 sets, the mean at severity 5, and the mean per corruption."
    )
    return PillarScore(metrics, desc)


# ------------------------------------------------------------------ certification
def _crown(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, o: Any, label: str, warnings: list[str]
) -> tuple[float | None, int]:
    """CROWN verified accuracy, one image at a time; None when an image takes longer than
    ``o.crown_cap_s`` or the model has a layer CROWN does not support."""
    from sparta import certify

    verified = 0
    for i in range(len(y)):
        try:
            r = certify.verified_accuracy(model, (x[i : i + 1], y[i : i + 1]), o.cert_eps, "crown")
        except certify.UnsupportedLayerError as e:
            warnings.append(f"certification: {label}: CROWN not supported: {e}")
            return None, len(y)
        if r["time_s"] > o.crown_cap_s:
            warnings.append(
                f"certification: {label}: CROWN left out ({r['time_s']:.1f}s for one image > "
                f"cap {o.crown_cap_s:g}s)"
            )
            return None, len(y)
        verified += r["verified"]
    return verified / len(y), len(y)


@PILLARS.register(
    "certification",
    cost=4,
    metrics={
        "ibp_verified_acc": metric("IBP verified", "higher", "pct"),
        "crown_verified_acc": metric("CROWN verified", "higher", "pct"),
        "smooth_cert_acc": metric("smoothing certified", "higher", "pct"),
    },
    options=(
        "cert_eps",
        "cert_n",
        "crown_n",
        "crown_cap_s",
        "sigma",
        "radius",
        "smooth_n",
        "smooth_samples",
    ),
)
def certification(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """IBP and CROWN verified accuracy at the card's cert eps; smoothing certified accuracy."""
    from sparta import certify

    o = ctx.options
    label = f"{variant} {sparsity:.0%}" if sparsity else variant
    sub = _test_subset(ctx, o.cert_n)
    warnings: list[str] = []
    ibp = certify.verified_accuracy(model, (sub.x, sub.y), o.cert_eps, method="ibp")
    crown, n_crown = _crown(model, sub.x[: o.crown_n], sub.y[: o.crown_n], o, label, warnings)
    smooth_sub = _test_subset(ctx, o.smooth_n)
    sm = certify.certify_dataset(
        model,
        smooth_sub,
        o.sigma,
        n0=min(100, o.smooth_samples),
        n=o.smooth_samples,
        radii=[o.radius],
        seed=seed,
    )
    metrics = {
        "ibp_verified_acc": ibp["verified_acc"],
        "crown_verified_acc": crown,
        "smooth_cert_acc": sm[f"certified_acc_r{o.radius:g}"],
    }
    desc = (
        f"IBP verified accuracy at L-inf eps={o.cert_eps:g} on {len(sub):,} test images, "
        f"CROWN on the first {n_crown} of them (one image at a time, left out when one takes "
        f"over {o.crown_cap_s:g}s); randomized smoothing "
        f"(sigma={o.sigma:g}, {o.smooth_samples} Monte-Carlo samples, alpha=0.001) certified "
        f"accuracy at L2 radius {o.radius:g} on {len(smooth_sub):,} test images. The models "
        "were not trained for certification (except where the variant says so)."
    )
    return PillarScore(metrics, desc, warnings)


# ------------------------------------------------------------------ unlearning
UNLEARN_METHODS = ("salun", "ft")
UNLEARN_KEYS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap")
_BETTER = {"ua": None, "ra": "higher", "ta": "higher", "mia_efficacy": None, "avg_gap": "lower"}


@PILLARS.register(
    "unlearning",
    cost=8,
    metrics={
        f"{m}_{k}": metric(f"{m} {k.replace('_', ' ')}", _BETTER[k], "pct")
        for m in UNLEARN_METHODS
        for k in UNLEARN_KEYS
    },
    options=("unlearn_subset", "unlearn_epochs"),
)
def unlearning(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """SalUn and FT on a random 10% forget set against Retrain of the same variant."""
    from sparta import unlearn

    o = ctx.options
    train = ctx.splits().train
    train = train if o.unlearn_subset >= len(train) else train.take(o.unlearn_subset, o.seed)
    test = ctx.splits().test
    setting = unlearn.make_setting(train, test, "random:0.1", seed=o.seed)
    opts = unlearn.UnlearnOptions(
        epochs=o.unlearn_epochs, retrain_epochs=o.unlearn_epochs, seed=seed
    )
    cfg = ctx.train_config(o.unlearn_epochs, seed)
    kw = {"options": opts, "train_config": cfg, "setting": setting}
    ref = unlearn.run(model, train, test, "retrain", **kw).summary
    metrics: dict[str, Any] = {}
    for m in UNLEARN_METHODS:
        s = unlearn.run(model, train, test, m, reference=ref, **kw).summary
        metrics.update({f"{m}_{k}": s[k] for k in UNLEARN_KEYS})
    desc = (
        f"SalUn and FT ({o.unlearn_epochs} epochs) forget a random 10% of {len(train):,} "
        f"training images (seeded by the card seed); UA, RA, TA ({len(test):,} test images), "
        "MIA efficacy, and the Avg. Gap to Retrain of the same variant (masks kept, "
        f"{o.unlearn_epochs} epochs on the retain set)."
    )
    return PillarScore(metrics, desc)


# ------------------------------------------------------------------ backdoor
def trojan_scan(model: nn.Module, data: Any, options: dict[str, Any]) -> Any:
    """The Trojan-ticket scan (one import to repoint when detection moves)."""
    from sparta.experiments.trojan import DetectOptions, detect

    return detect(model, data, DetectOptions(**options))


@PILLARS.register(
    "backdoor",
    cost=10,
    metrics={
        "trojan": metric("trojan flagged", None, "bool"),
        "trojan_target": metric("suspected target", None, "text"),
        "trojan_score": metric("trojan score", None, "float"),
    },
    options=("backdoor_rounds", "backdoor_subset", "backdoor_recover_steps"),
)
def backdoor(ctx: CellContext, model: nn.Module, variant: str, sparsity: float, seed: int):
    """The Trojan-ticket scan's verdict, suspected target and score."""
    o = ctx.options
    train = ctx.splits().train
    data = train if o.backdoor_subset >= len(train) else train.take(o.backdoor_subset, o.seed)
    res = trojan_scan(
        model,
        data,
        {
            "rounds": o.backdoor_rounds,
            "recover_steps": o.backdoor_recover_steps,
            "seed": seed,
        },
    )
    metrics = {
        "trojan": bool(res.trojan),
        "trojan_target": None if res.target is None else str(res.target),
        "trojan_score": float(res.score),
    }
    desc = (
        f"Trojan-ticket scan: {o.backdoor_rounds} IMP rounds on {len(data):,} defender images, "
        f"trigger recovery ({o.backdoor_recover_steps} steps per label) on the dense model and "
        "the winning ticket; the verdict flags a label whose recovered trigger is anomalous. "
        "The library's defaults are 10 rounds and 300 steps; with small budgets the verdict "
        "is noisy (clean models may be flagged)."
    )
    return PillarScore(metrics, desc)
