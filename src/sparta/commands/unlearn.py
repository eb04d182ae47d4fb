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
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    from sparta.cli import add_dataclass_flags, add_run_flags
    from sparta.unlearn.options import UnlearnOptions

    p.add_argument("--ckpt", required=True, help="run folder or .safetensors of a trained model")
    p.add_argument("--forget", default="random:0.1", help="random:F (fraction) or class:C[,C]")
    p.add_argument("--dataset", help="dataset expected (an error if the checkpoint's differs)")
    add_dataclass_flags(p, UnlearnOptions)
    add_run_flags(p, resume=False)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("unlearn", help="unlearn a forget set with one method")
    _common(p)
    p.add_argument("--method", default="salun", help="retrain ft ga rl l1_sparse salun")
    p.add_argument("--prune", type=float, default=0.0, help="prune first to this sparsity")
    p.add_argument("--retrain-ref", help="a `sparta unlearn --method retrain` run: gives avg_gap")
    p.add_argument(
        "--compute-retrain", action="store_true", help="also run Retrain here, for avg_gap"
    )
    p.set_defaults(func=run_unlearn)
    b = sub.add_parser("unlearn-bench", help="every unlearning method, dense and pruned: a table")
    _common(b)
    b.add_argument("--methods", nargs="*", help="methods to run (default: all)")
    b.add_argument("--prune", type=float, default=0.95, help="sparsity of the pruned arm (0: none)")
    b.set_defaults(func=run_bench)


def _run_config(file: Path) -> Path | None:
    for folder in (file.parent, file.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def load_checkpoint(ckpt: str, dataset: str | None, device: str = "cpu") -> tuple[Any, ...]:
    """The model of ``ckpt``, the training and test sets it was trained with, its recipe."""
    import sparta
    from sparta.train import TrainConfig, load_splits
    from sparta.train.config import read_yaml

    model = sparta.load(ckpt, device=device)
    spec = model.sparta_spec
    trained_on = spec["dataset"]["name"]
    if dataset and dataset != trained_on:
        raise ValueError(
            f"checkpoint {ckpt} was trained on {trained_on}, not on the requested dataset {dataset}"
        )
    known = set(TrainConfig.__dataclass_fields__)
    values: dict[str, Any] = {"val_fraction": 0.0}
    config = _run_config(Path(model.sparta_checkpoint["path"]))
    if config is not None:
        values = {k: v for k, v in read_yaml(config).items() if k in known}
    values.update(dataset=trained_on, model=spec["name"], width=spec.get("width", 1.0))
    base = TrainConfig.from_dict(values)
    splits = load_splits(base)
    return model, splits.train, splits.test, base


def _options(args: argparse.Namespace) -> Any:
    from sparta.cli import config_from_args
    from sparta.unlearn.options import UnlearnOptions

    return config_from_args(UnlearnOptions, args)


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


def run_unlearn(args: argparse.Namespace) -> int:
    from sparta.runs import Run
    from sparta.unlearn import get_method, make_setting, run, write_result
    from sparta.unlearn.metrics import GAP_KEYS

    opts = _options(args)
    method = get_method(args.method).name
    if args.retrain_ref and args.compute_retrain:
        raise ValueError("give either --retrain-ref or --compute-retrain, not both")
    if not 0.0 <= args.prune < 1.0:
        raise ValueError(f"prune={args.prune!r} is not allowed; expected a sparsity in [0, 1)")
    model, train, test, base = load_checkpoint(args.ckpt, args.dataset, opts.device)
    setting = make_setting(train, test, args.forget, seed=opts.seed)
    reference = _reference(args.retrain_ref, setting) if args.retrain_ref else None
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "method": method,
        "forget": str(setting.spec),
        "prune": args.prune,
        "retrain_ref": args.retrain_ref,
        "compute_retrain": args.compute_retrain,
        **opts.to_dict(),
    }
    out = Run.create(config, "unlearn", root=args.out, name=args.name, overwrite=args.overwrite)
    kw = dict(prune=args.prune, options=opts, train_config=base, setting=setting)
    if args.compute_retrain:
        ref = run(model, train, test, "retrain", quiet=args.quiet, **kw)
        reference = {k: ref.summary[k] for k in GAP_KEYS}
        out.log({"retrain_reference": ref.summary})
    result = run(model, train, test, method, reference=reference, quiet=args.quiet, **kw)
    write_result(result, out)
    print(
        " ".join(f"{k}={v:.4f}" for k, v in result.summary.items()), f"({method}, {setting.spec})"
    )
    print(f"run: {out.path}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from sparta.runs import Run
    from sparta.unlearn import bench, get_method, make_setting
    from sparta.unlearn.bench import format_markdown, write_table

    opts = _options(args)
    methods = [get_method(m).name for m in args.methods] if args.methods else None
    if not 0.0 <= args.prune < 1.0:
        raise ValueError(f"prune={args.prune!r} is not allowed; expected a sparsity in [0, 1)")
    model, train, test, base = load_checkpoint(args.ckpt, args.dataset, opts.device)
    setting = make_setting(train, test, args.forget, seed=opts.seed)
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "forget": str(setting.spec),
        "methods": methods,
        "prune": args.prune,
        **opts.to_dict(),
    }
    out = Run.create(config, "unlearn-bench", args.out, args.name, overwrite=args.overwrite)
    rows = bench(
        model, train, test, methods=methods, prune=args.prune, options=opts,
        train_config=base, setting=setting, quiet=args.quiet,
    )  # fmt: skip
    setting.save(out.path)
    for row in rows:
        out.log(row)
    write_table(rows, out.path)
    out.write_summary({"rows": rows})
    print(format_markdown(rows))
    print(f"run: {out.path}")
    return 0
