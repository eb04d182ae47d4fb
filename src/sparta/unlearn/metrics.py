"""Unlearning metrics: UA, RA, TA, MIA-efficacy and the average gap to Retrain.

- UA = 1 - acc(forget), RA = acc(retain), TA = acc(test) (fractions in [0, 1]).
- MIA-efficacy (2304.04934 App. C.3; SalUn 2310.12508 Sec. 5.1): a membership classifier,
  scikit-learn's ``SVC(C=3, gamma="auto", kernel="rbf")`` as in the seeds' code, is fit on
  one per-sample feature of retain samples (members, label 1) against test samples
  (non-members, label 0), then applied to the forget set; the efficacy is the share of the
  forget set it calls non-member. The default feature is the true-class confidence;
  ``entropy``, ``m_entropy`` (Song & Mittal's modified entropy) and ``loss`` are variants.
- Avg. Gap = mean of ``|metric - Retrain's metric|`` over UA, RA, TA and MIA-efficacy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.train.evaluate import evaluate, predict

FEATURES = ("confidence", "entropy", "m_entropy", "loss")
GAP_KEYS = ("ua", "ra", "ta", "mia_efficacy")
_TINY = 1e-30


def mia_features(
    probs: torch.Tensor, labels: torch.Tensor, feature: str = "confidence"
) -> np.ndarray:
    """One membership feature per sample from softmax ``probs`` (N x K) and true ``labels``."""
    if feature not in FEATURES:
        raise ValueError(f"MIA feature {feature!r} is not known; allowed: {', '.join(FEATURES)}")
    p = probs.double().clamp_min(0.0)
    py = p.gather(1, labels.long().view(-1, 1)).flatten()
    if feature == "confidence":
        out = py
    elif feature == "loss":
        out = -py.clamp_min(_TINY).log()
    elif feature == "entropy":
        out = -(p * p.clamp_min(_TINY).log()).sum(1)
    else:  # modified entropy: -(1-p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
        other = p * (1 - p).clamp_min(_TINY).log()
        other = other.sum(1) - other.gather(1, labels.long().view(-1, 1)).flatten()
        out = -(1 - py) * py.clamp_min(_TINY).log() - other
    return out.cpu().numpy().reshape(-1, 1)


def _probs(model: nn.Module, data: ImageDataset, batch_size: int) -> torch.Tensor:
    return torch.softmax(predict(model, data.x, batch_size).float(), dim=1).cpu()


def _fit_svc(members: np.ndarray, nonmembers: np.ndarray):
    from sklearn.svm import SVC

    x = np.concatenate([members, nonmembers])
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    return SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)


def svc_mia(members: np.ndarray, nonmembers: np.ndarray, targets: np.ndarray) -> float:
    """Fit the SVC on members (1) vs non-members (0); share of ``targets`` called non-member."""
    if len(members) == 0 or len(nonmembers) == 0 or len(targets) == 0:
        raise ValueError("MIA needs non-empty member, non-member and target sets")
    clf = _fit_svc(members, nonmembers)
    return float(1.0 - clf.predict(targets).mean())


def svc_attack_accuracy(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Balanced held-out accuracy of the SVC separating ``a`` (1) from ``b`` (0).

    Each set is halved at random; the SVC is fit on the first halves and scored on the
    second. About 0.5 means the feature carries no membership signal.
    """
    rng = np.random.default_rng(seed)
    ia, ib = rng.permutation(len(a)), rng.permutation(len(b))
    ha, hb = len(a) // 2, len(b) // 2
    clf = _fit_svc(a[ia[:ha]], b[ib[:hb]])
    hit_a = clf.predict(a[ia[ha:]]).mean()
    hit_b = 1.0 - clf.predict(b[ib[hb:]]).mean()
    return float((hit_a + hit_b) / 2)


def _sample(n: int, cap: int, gen: torch.Generator) -> torch.Tensor:
    if cap <= 0 or n <= cap:
        return torch.arange(n)
    return torch.randperm(n, generator=gen)[:cap].sort().values


def mia_efficacy(
    model: nn.Module,
    retain: ImageDataset,
    test: ImageDataset,
    forget: ImageDataset,
    features: Sequence[str] = FEATURES,
    max_n: int = 5000,
    seed: int = 0,
    batch_size: int = 1000,
) -> dict[str, float]:
    """MIA-efficacy on ``forget`` per feature (``{feature: share called non-member}``).

    Members are retain samples, as many as there are test samples (the seeds' code uses a
    retain subset the size of the test set); ``max_n`` (0: no cap) caps each side, drawn
    with ``seed``, to bound the SVC's quadratic cost.
    """
    gen = torch.Generator().manual_seed(seed)
    n_non = len(_sample(len(test), max_n, gen))
    test_part = test.subset(_sample(len(test), n_non, gen))
    retain_part = retain.subset(_sample(len(retain), n_non, gen))
    parts = {"r": retain_part, "t": test_part, "f": forget}
    probs = {k: (_probs(model, d, batch_size), d.y.cpu()) for k, d in parts.items()}
    out = {}
    for feat in features:
        f = {k: mia_features(p, y, feat) for k, (p, y) in probs.items()}
        out[feat] = svc_mia(f["r"], f["t"], f["f"])
    return out


def accuracies(
    model: nn.Module,
    forget: ImageDataset,
    retain: ImageDataset,
    test: ImageDataset,
    batch_size: int = 1000,
) -> dict[str, float]:
    """``{"ua", "ra", "ta"}``: 1 - forget accuracy, retain accuracy, test accuracy."""
    return {
        "ua": 1.0 - evaluate(model, forget, batch_size)["acc"],
        "ra": evaluate(model, retain, batch_size)["acc"],
        "ta": evaluate(model, test, batch_size)["acc"],
    }


def avg_gap(metrics: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Mean absolute difference to ``reference`` (Retrain) over UA, RA, TA, MIA-efficacy."""
    missing = [k for k in GAP_KEYS if k not in metrics or k not in reference]
    if missing:
        raise ValueError(f"avg_gap needs {', '.join(GAP_KEYS)}; missing {missing[0]!r}")
    return float(sum(abs(metrics[k] - reference[k]) for k in GAP_KEYS) / len(GAP_KEYS))
