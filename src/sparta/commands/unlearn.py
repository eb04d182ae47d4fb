"""``sparta unlearn`` and ``sparta unlearn-bench``: forget part of a model's training set.

``unlearn`` runs one method and writes ``summary.json`` (``ua``, ``ra``, ``ta``,
``mia_efficacy``, ``rte_s``, and ``avg_gap`` with ``--retrain-ref RUN`` or
``--compute-retrain``), ``sets.json`` (forget/retain/test indices) and the unlearned
``model.safetensors``. ``unlearn-bench`` runs every method (Retrain first, as the
reference) dense and pruned to ``--prune``, and writes ``table.md``, ``table.csv`` and
``table.png``. The training and test sets are those of the checkpoint's run folder
(``config.yaml``: the same subset and validation split), or the dataset's full splits.
The checkpoint itself is only read.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sparta.cli import Command
from sparta.options import Options, option


@dataclass
class UnlearnSource(Options):
    """The trained model and what it should forget."""

    ckpt: str = option("", "run folder or .safetensors of a trained model", required=True)
    forget: str = option("random:0.1", "random:F (fraction) or class:C[,C]")
    dataset: str = option("", "dataset expected (an error if the checkpoint's differs)")

    def __post_init__(self) -> None:
        from sparta.unlearn import parse_forget

        parse_forget(self.forget)  # a bad spec fails before any data is loaded


@dataclass
class UnlearnRun(Options):
    """``sparta unlearn``: one method."""

    method: str = option("salun", "retrain ft ga rl l1_sparse salun")
    prune: float = option(0.0, "prune first to this sparsity")
    retrain_ref: str = option("", "a `sparta unlearn --method retrain` run: gives avg_gap")
    compute_retrain: bool = option(False, "also run Retrain here, for avg_gap")

    def __post_init__(self) -> None:
        from sparta.unlearn import get_method

        self.method = get_method(self.method).name
        _check_prune(self.prune)
        if self.retrain_ref and self.compute_retrain:
            raise ValueError("give either --retrain-ref or --compute-retrain, not both")


@dataclass
class UnlearnBench(Options):
    """``sparta unlearn-bench``: every method, dense and pruned."""

    methods: list[str] = option((), "methods to run (default: all)")
    prune: float = option(0.95, "sparsity of the pruned arm (0: none)")

    def __post_init__(self) -> None:
        from sparta.unlearn import get_method

        self.methods = [get_method(m).name for m in self.methods]
        _check_prune(self.prune)


def _check_prune(prune: float) -> None:
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"prune={prune!r} is not allowed; expected a sparsity in [0, 1)")


def load_trained(src: UnlearnSource, device: str = "cpu") -> tuple[Any, ...]:
    """The model of ``src.ckpt``, the training and test sets it was trained with (its run
    folder's config.yaml: the same subset and validation split) and its TrainConfig."""
    from sparta.runs import Run
    from sparta.train import load_splits

    model, _, base = Run.from_checkpoint(src.ckpt, device, splits="none")
    trained_on = model.sparta_spec["dataset"]["name"]
    if src.dataset and src.dataset != trained_on:
        raise ValueError(
            f"checkpoint {src.ckpt} was trained on {trained_on}, "
            f"not on the requested dataset {src.dataset}"
        )
    splits = load_splits(base)
    return model, splits.train, splits.test, base


def _reference(path: str, setting: Any) -> dict[str, float]:
    """Retrain's figures from a previous run folder, checked to share the forget set."""
    import json

    from sparta.runs import Run
    from sparta.unlearn.metrics import GAP_KEYS
    from sparta.unlearn.settings import read_sets

    ref = Run(path)
    if not ref.path.is_dir():
        raise FileNotFoundError(f"retrain reference run folder not found: {path}")
    method = ref.read_config().get("method") if ref.config_file.is_file() else None
    if method != "retrain":
        raise ValueError(f"--retrain-ref {path} is not a Retrain run (method={method!r})")
    sets = read_sets(ref.path)
    if sets["forget"] != setting.to_dict()["forget"] or sets["dataset"] != setting.train.name:
        raise ValueError(
            f"--retrain-ref {path} forgot a different set; rerun it with this --forget"
        )
    summary = json.loads(ref.summary_file.read_text()) if ref.summary_file.is_file() else {}
    missing = [k for k in GAP_KEYS if k not in summary]
    if missing:
        raise ValueError(f"--retrain-ref {path} has no {missing[0]!r} in summary.json")
    return {k: summary[k] for k in GAP_KEYS}


class Unlearn(Command):
    name = "unlearn"
    help = "unlearn a forget set with one method"

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.unlearn.options import UnlearnOptions

        return (UnlearnSource, UnlearnRun, UnlearnOptions)

    def run(self) -> int:
        from sparta.experiments.prune_unlearn import prune_then_unlearn as run
        from sparta.unlearn import make_setting, write_result
        from sparta.unlearn.metrics import GAP_KEYS
        from sparta.unlearn.options import UnlearnOptions

        src, job, opts = self.get(UnlearnSource), self.get(UnlearnRun), self.get(UnlearnOptions)
        model, train, test, base = load_trained(src, opts.device)
        setting = make_setting(train, test, src.forget, seed=opts.seed)
        reference = _reference(job.retrain_ref, setting) if job.retrain_ref else None
        out = self.create_run(self.config())
        kw = dict(prune=job.prune, options=opts, train_config=base, setting=setting)
        if job.compute_retrain:
            ref = run(model, train, test, "retrain", quiet=self.quiet, **kw)
            reference = {k: ref.summary[k] for k in GAP_KEYS}
            out.log({"retrain_reference": ref.summary})
        result = run(model, train, test, job.method, reference=reference, quiet=self.quiet, **kw)
        write_result(result, out)
        print(
            " ".join(f"{k}={v:.4f}" for k, v in result.summary.items()),
            f"({job.method}, {setting.spec})",
        )
        print(f"run: {out.path}")
        return 0


class UnlearnBenchCommand(Command):
    name = "unlearn-bench"
    help = "every unlearning method, dense and pruned: a table"

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.unlearn.options import UnlearnOptions

        return (UnlearnSource, UnlearnBench, UnlearnOptions)

    def run(self) -> int:
        from sparta.experiments.prune_unlearn import unlearn_bench as bench
        from sparta.report.unlearn import format_markdown, write_table
        from sparta.unlearn import make_setting
        from sparta.unlearn.options import UnlearnOptions

        src, job, opts = self.get(UnlearnSource), self.get(UnlearnBench), self.get(UnlearnOptions)
        model, train, test, base = load_trained(src, opts.device)
        setting = make_setting(train, test, src.forget, seed=opts.seed)
        out = self.create_run(self.config())
        rows = bench(
            model, train, test, methods=job.methods or None, prune=job.prune, options=opts,
            train_config=base, setting=setting, quiet=self.quiet,
        )  # fmt: skip
        setting.save(out.path)
        for row in rows:
            out.log(row)
        write_table(rows, out.path)
        out.write_summary({"rows": rows})
        print(format_markdown(rows))
        print(f"run: {out.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Unlearn.register(sub)
    UnlearnBenchCommand.register(sub)
