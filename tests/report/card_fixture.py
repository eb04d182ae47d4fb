"""A realistic synthetic report card (schema 1): 3 variants x 3 sparsities plus dense, all six
pillars, numbers shaped like a LeNet-5 on Fashion-MNIST."""

from __future__ import annotations

import copy
from typing import Any

SPARSITIES = (0.5, 0.8, 0.95)
VARIANTS = {
    "dense": "the trained dense model",
    "gmp": "gradual magnitude pruning during training",
    "lottery": "lottery ticket: IMP with rewinding to epoch 1",
    "pgd-at-gmp": "PGD adversarial training with gradual pruning (sparse robust)",
}


def _m(pillar: str, label: str, better: str | None, fmt: str) -> dict[str, Any]:
    return {"pillar": pillar, "label": label, "better": better, "format": fmt}


METRICS = {
    "test_acc": _m("accuracy", "test acc", "higher", "pct"),
    "weight_sparsity": _m("efficiency", "sparsity", None, "pct"),
    "params": _m("efficiency", "params", "lower", "int"),
    "latency_b1_ms": _m("efficiency", "latency b1 (ms)", "lower", "float"),
    "latency_b256_ms": _m("efficiency", "latency b256 (ms)", "lower", "float"),
    "robust_acc": _m("robustness", "robust acc", "higher", "pct"),
    "ibp_verified_acc": _m("certification", "IBP verified", "higher", "pct"),
    "crown_verified_acc": _m("certification", "CROWN verified", "higher", "pct"),
    "smooth_cert_acc": _m("certification", "smoothing cert", "higher", "pct"),
    "salun_ua": _m("unlearning", "SalUn UA", None, "pct"),
    "salun_avg_gap": _m("unlearning", "SalUn Avg. Gap", "lower", "pct"),
    "ft_avg_gap": _m("unlearning", "FT Avg. Gap", "lower", "pct"),
    "trojan": _m("backdoor", "trojan flagged", None, "bool"),
    "suspected_target": _m("backdoor", "suspected target", None, "text"),
}

PILLARS = {
    "accuracy": "Clean accuracy on the 10,000 test images.",
    "efficiency": "Weight sparsity, parameters and median CPU latency of the exported model "
    "(batch 1 and 256, 1 thread, 30 interleaved repeats).",
    "robustness": "Robust accuracy under the fast suite (APGD-CE, Square) at eps 0.1 (Linf), "
    "1,000 test images, seed 0.",
    "certification": "IBP and CROWN verified accuracy at eps 0.01 on 200 images (CROWN capped "
    "at 2 s per image); randomized smoothing at r 0.25, sigma 0.25, n 1,000.",
    "unlearning": "SalUn and FT on a random 10% forget set; Avg. Gap against Retrain of the "
    "same variant, 1 seed.",
    "backdoor": "Trojan-ticket scan: trigger recovery on the model and its winning ticket.",
}


def make_card() -> dict[str, Any]:
    """The fixture card; values vary smoothly with sparsity and differ per variant."""
    rows = []
    base = {"dense": 0.905, "gmp": 0.899, "lottery": 0.902, "pgd-at-gmp": 0.842}
    rob = {"dense": 0.21, "gmp": 0.17, "lottery": 0.19, "pgd-at-gmp": 0.64}
    for variant in VARIANTS:
        for s in (0.0,) if variant == "dense" else SPARSITIES:
            k = s**3
            acc = base[variant] - 0.08 * k
            values = {
                "test_acc": round(acc, 4),
                "weight_sparsity": s,
                "params": round(61706 * (1 - s)),
                "latency_b1_ms": round(0.31 * (1 - 0.6 * s) + 0.02 * len(variant) / 10, 4),
                "latency_b256_ms": round(14.2 * (1 - 0.7 * s), 3),
                "robust_acc": round(rob[variant] - 0.1 * k, 4),
                "ibp_verified_acc": round(0.05 + 0.25 * s, 4),
                "crown_verified_acc": None if variant == "lottery" else round(0.12 + 0.3 * s, 4),
                "smooth_cert_acc": round(0.6 - 0.1 * k, 4),
                "salun_ua": round(0.08 + 0.02 * s, 4),
                "salun_avg_gap": round(0.03 - 0.015 * s, 4),
                "ft_avg_gap": round(0.06 - 0.02 * s, 4),
                "trojan": variant == "lottery" and s >= 0.8,
                "suspected_target": 3 if variant == "lottery" and s >= 0.8 else None,
            }
            tag = f"{variant}-{s:.2f}"
            rows.append(
                {
                    "variant": variant,
                    "sparsity": s,
                    "label": variant if variant == "dense" else f"{variant} {100 * s:.0f}%",
                    "values": values,
                    "sources": {
                        key: f"cells/{tag}/{METRICS[key]['pillar']}.json" for key in values
                    },
                }
            )
    return {
        "schema": 1,
        "title": "lenet5 on fashion-mnist <demo & test>",
        "dataset": "fashion-mnist",
        "model": "lenet5",
        "created": "2026-11-29T20:00:00Z",
        "options": {"sparsities": list(SPARSITIES), "eps": 0.1, "cert_eps": 0.01, "seed": 0},
        "pillars": {
            p: {"description": d, "options": {"seed": 0}, "wall_s": 12.5 + i}
            for i, (p, d) in enumerate(PILLARS.items())
        },
        "metrics": copy.deepcopy(METRICS),
        "variants": {v: {"description": d} for v, d in VARIANTS.items()},
        "rows": rows,
        "warnings": ["robustness: gmp 95%: gradient masking suspected (black-box beat white-box)"],
    }
