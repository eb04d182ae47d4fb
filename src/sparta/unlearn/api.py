"""``run``: unlearn with one method, measure; and writing its run folder.

Pruning first is a recipe of ``sparta.experiments.prune_unlearn``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset, as_dataset
from sparta.models.count import weight_sparsity
from sparta.runs import Run
from sparta.train import TrainConfig
from sparta.unlearn.methods import get_method, run_method
from sparta.unlearn.metrics import accuracies, avg_gap, mia_efficacy
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import ForgetSpec, Setting, make_setting

log = logging.getLogger(__name__)


@dataclass
class UnlearnResult:
    """The unlearned model, its setting and figures.

    ``summary`` holds exactly ``ua``, ``ra``, ``ta``, ``mia_efficacy``, ``rte_s`` (and
    ``avg_gap`` when a Retrain reference was given); ``details`` the rest (every MIA
    feature, sparsity, set sizes, per-epoch history).
    """

    model: nn.Module
    setting: Setting
    method: str
    summary: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def check_dataset(model: nn.Module, data: ImageDataset, check_name: bool = True) -> None:
    """Raise ValueError when ``model`` (built by sparta) was trained on another dataset
    (another input shape or class count; with ``check_name`` also another dataset name)."""
    spec = getattr(model, "sparta_spec", None)
    if not isinstance(spec, dict) or "dataset" not in spec:
        return
    ds = spec["dataset"]
    name = ds.get("name")
    shape = tuple(ds.get("input_shape", data.input_shape))
    classes = ds.get("num_classes", data.num_classes)
    other = check_name and name != data.name
    if other or shape != tuple(data.input_shape) or classes != data.num_classes:
        raise ValueError(
            f"the checkpoint was trained on {name} (inputs {shape}, {classes} classes), not "
            f"on the requested dataset {data.name}; use --dataset {name} or another checkpoint"
        )


def measure(
    model: nn.Module, setting: Setting, options: UnlearnOptions
) -> tuple[dict[str, float], dict[str, float]]:
    """``({"ua", "ra", "ta", "mia_efficacy"}, {MIA feature: efficacy})`` of ``model``."""
    forget, retain = setting.forget, setting.retain
    acc = accuracies(model, forget, retain, setting.test)
    mia = mia_efficacy(
        model, retain, setting.test, forget, max_n=options.mia_max, seed=options.seed
    )
    return {**acc, "mia_efficacy": mia["confidence"]}, mia


def run(
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    method: str = "salun",
    forget: str | ForgetSpec = "random:0.1",
    options: UnlearnOptions | Mapping[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    reference: Mapping[str, float] | None = None,
    setting: Setting | None = None,
    quiet: bool = True,
) -> UnlearnResult:
    """Unlearn ``forget`` from a copy of ``model`` (trained on ``train``) with ``method``.

    Masks already on the model (a pruned checkpoint; pruning first is
    :func:`sparta.experiments.prune_unlearn.prune_then_unlearn`) are kept through
    unlearning. ``train_config`` is the original training's recipe (Retrain uses it;
    default ``TrainConfig()``); ``reference`` holds Retrain's
    ``ua``/``ra``/``ta``/``mia_efficacy`` for ``avg_gap``; ``setting`` (from
    :func:`make_setting`) fixes the forget set instead of ``forget``. The caller's model is
    never modified. RTE counts the method's own work (SalUn's saliency included),
    not evaluation.
    """
    opts = options if isinstance(options, UnlearnOptions) else UnlearnOptions(**(options or {}))
    get_method(method)
    base = train_config or TrainConfig()
    named = isinstance(train, ImageDataset)  # a Dataset of yours has no registry name to check
    train = as_dataset(train)
    test = as_dataset(test, split="test", info=train.info)
    check_dataset(model, train, check_name=named)
    setting = setting or make_setting(train, test, forget, seed=opts.seed)
    work = copy.deepcopy(model).to(opts.device)
    device = torch.device(opts.device)
    start = time.perf_counter()
    work, plan, history = run_method(work, setting, method, opts, base, quiet=quiet)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rte = time.perf_counter() - start
    metrics, mia = measure(work, setting, opts)
    summary = {**metrics, "rte_s": rte}
    if reference is not None:
        summary["avg_gap"] = avg_gap(metrics, reference)
    details = {
        "method": get_method(method).name,
        "forget": str(setting.spec),
        "sparsity": weight_sparsity(work),
        "n_forget": len(setting.forget_pos),
        "n_retain": len(setting.retain_pos),
        "n_test": len(setting.test),
        "mia": mia,
        **({"reference": dict(reference)} if reference is not None else {}),
    }
    log.info("%s: %s", method, " ".join(f"{k}={v:.4f}" for k, v in summary.items()))
    return UnlearnResult(
        work, setting, get_method(method).name, summary, details, history, plan.info
    )


def write_result(result: UnlearnResult, run: Run) -> None:
    """Write ``model.safetensors``, ``sets.json``, ``summary.json`` and ``metrics.jsonl``."""
    from sparta.io import save

    for record in result.history:
        run.log(record)
    run.log({"details": result.details})
    result.setting.save(run.path)
    save(result.model, run.file("model.safetensors"), **result.summary)
    run.write_summary(result.summary)
