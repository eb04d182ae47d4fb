"""``card()``: build the variants of one dense model and score each on every pillar.

Order: validate every name and value (nothing is loaded or created before), open the card's
run folder, run the dense model cell, the other model cells, then the pillar cells (each
skipped when already finished), and assemble card.json from the cells' files.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.experiments.card import pillars as P
from sparta.experiments.card import variants as V
from sparta.experiments.card.cells import (
    DENSE,
    MODEL_CELL,
    cell_name,
    is_done,
    label,
    read_json,
    task,
)
from sparta.experiments.card.executors import run_tasks
from sparta.experiments.card.options import CardOptions

log = logging.getLogger(__name__)

#: options that change no number: the card folder may be re-run with other values of these
FREE_OPTIONS = (
    "variants",
    "sparsities",
    "pillars",
    "metrics",
    "workers",
    "executor",
    "ray_address",
)


@dataclass
class CardResult:
    """The card dict (card.json), its files, and which cells this call computed.

    ``card()`` writes card.json; ``sparta card`` (or
    ``sparta.report.card.write_card(result.card, result.folder)``) adds card.md and card.html.
    """

    card: dict[str, Any]
    folder: Path
    files: dict[str, Path]
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def resolve_options(options: CardOptions | None = None, **overrides: Any) -> CardOptions:
    """Options with canonical variant/pillar names, checked against the registries, the
    checkpoint and the data (raises ValueError/FileNotFoundError; loads nothing big)."""
    base = (options or CardOptions()).to_dict()
    base.update(overrides)
    opts = CardOptions.from_dict(base)
    variants = [V.VARIANTS.resolve(v) for v in _split(opts.variants)]
    if DENSE not in variants:
        variants.insert(0, DENSE)  # every variant starts from (or is compared with) it
    opts.variants = list(dict.fromkeys(variants))
    pillars = [P.PILLARS.resolve(p) for p in _split(opts.pillars)] or P.pillar_names()
    opts.pillars = list(dict.fromkeys(pillars))
    known = P.all_metrics(opts.pillars)
    for m in _split(opts.metrics):
        if m not in known:
            raise ValueError(
                f"metric {m!r} is not known for pillars {', '.join(opts.pillars)}; allowed: "
                + ", ".join(known)
            )
    opts.metrics = _split(opts.metrics)
    opts.sparsities = sorted(dict.fromkeys(opts.sparsities))
    if opts.ckpt:
        spec = _ckpt_spec(opts.ckpt)
        opts.dataset, opts.model = spec["dataset"]["name"], spec["name"]
    _check_dataset(opts.dataset)
    if not opts.ckpt:
        from sparta.models.registry import MODELS

        opts.model = MODELS.resolve(opts.model)  # `LeNet5` is lenet5; unknown names raise
    return opts


def _split(values: list[Any]) -> list[str]:
    """Accept ``a,b c`` as well as ``a b``."""
    return [p.strip() for v in values for p in str(v).split(",") if p.strip()]


def _ckpt_spec(ckpt: str) -> dict[str, Any]:
    import json

    from sparta.io import resolve, sidecar_path

    side = sidecar_path(resolve(ckpt))
    if not side.is_file():
        raise FileNotFoundError(f"checkpoint sidecar not found: {side}")
    spec = json.loads(side.read_text()).get("model")
    if not isinstance(spec, dict) or "dataset" not in spec:
        raise ValueError(f"checkpoint {ckpt!r} has no model spec; cannot tell its dataset")
    return spec


def _check_dataset(name: str) -> None:
    from sparta import data

    rows = {r["name"]: r for r in data.available()}
    if name not in rows:
        raise ValueError(f"dataset {name!r} is not known; allowed: {', '.join(sorted(rows))}")
    if not rows[name]["found"]:
        where = ", ".join(str(p) for p in rows[name].get("searched", []))
        raise FileNotFoundError(f"dataset {name!r} is missing (searched: {where})")


def variant_sparsities(opts: CardOptions, variant: str) -> list[float]:
    """The sparsities a variant is built at (0 only for dense-only recipes)."""
    return (
        [s for s in opts.sparsities if s > 0] if V.VARIANTS.get(variant).meta["sparse"] else [0.0]
    )


def plan(folder: Path, opts: CardOptions) -> list[list[dict[str, Any]]]:
    """The cells in three phases: the dense model, the other models, every pillar score."""
    models = [(v, s) for v in opts.variants for s in variant_sparsities(opts, v)]
    dense = [task(folder, opts, DENSE, 0.0)]
    others = [task(folder, opts, v, s) for v, s in models if v != DENSE]
    # costly pillars first, so that a pool or Ray is not left waiting on one long cell
    by_cost = sorted(opts.pillars, key=lambda p: -P.PILLARS.get(p).meta.get("cost", 1))
    scores = [task(folder, opts, v, s, p) for p in by_cost for v, s in models]
    return [dense, others, scores]


def card(options: CardOptions | None = None, *, run: Any = None, **overrides: Any) -> CardResult:
    """Build and score the report card; see :class:`CardOptions` for every option.

    Keyword-only run options: ``out`` (default ``runs``), ``name``, ``resume``,
    ``overwrite``, ``quiet``; the rest override fields of ``options``. ``run``: a run folder
    already opened for these options (``sparta card`` opens it through the command skeleton,
    which checks a resume); without it the folder is opened by :func:`open_folder`.
    """
    from sparta.io import write_json

    run_kw = {k: overrides.pop(k) for k in ("out", "name", "resume", "overwrite") if k in overrides}
    quiet = bool(overrides.pop("quiet", False))
    opts = resolve_options(options, **overrides)
    if run is None:
        run = open_folder(opts, **run_kw)
    folder = run.path
    phases = plan(folder, opts)
    todo = [t for ph in phases for t in ph if not is_done(t)]
    computed: list[str] = []
    skipped = [label(t) for ph in phases for t in ph if is_done(t)]
    bar = _progress(len(todo), quiet)

    def on_done(t: dict[str, Any], res: dict[str, Any]) -> None:
        (computed if res["computed"] else skipped).append(label(t))
        if bar is not None:
            bar.set_postfix_str(f"done: {label(t)}")
            bar.update(1)

    def on_start(t: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_description(f"card: {label(t)}")

    try:
        for ph in phases:
            pending = [t for t in ph if not is_done(t)]
            if bar is not None and pending and (opts.workers or opts.executor != "local"):
                bar.set_description(f"card: {len(pending)} cells in parallel")
            run_tasks(pending, on_done, opts.executor, opts.workers, opts.ray_address, on_start)
    finally:
        if bar is not None:
            bar.close()
    result = assemble(folder, opts)
    write_json(folder / "card.json", result)
    # the page (card.md, card.html) is drawn by sparta.report.card.write_card, one layer up
    return CardResult(result, folder, {"card.json": folder / "card.json"}, computed, skipped)


def recorded_options(opts: CardOptions) -> dict[str, Any]:
    """The options that change numbers: the card folder's config.yaml and its hash."""
    return {k: v for k, v in opts.to_dict().items() if k not in FREE_OPTIONS}


def open_folder(
    opts: CardOptions,
    out: str | Path = "runs",
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Any:
    """Create (or, with ``resume``, reopen) the card's run folder ``out/name`` (default name
    ``card-<hash of the recorded options>``); a resumed card must have the same numbers."""
    from sparta.runs import Run, config_hash

    recorded = recorded_options(opts)
    if resume:
        _check_same(Path(out) / (name or f"card-{config_hash(recorded)}"), recorded)
    return Run.create(
        recorded, "card", root=Path(out), name=name, resume=resume, overwrite=overwrite
    )


def _check_same(path: Path, recorded: dict[str, Any]) -> None:
    """A resumed card must have been made with the same number-changing options."""
    from sparta.options import check_unchanged
    from sparta.train.config import read_yaml

    if (path / "config.yaml").is_file():
        hint = "use the same options to resume, or --name for a new card"
        check_unchanged(path, read_yaml(path / "config.yaml"), recorded, hint=hint)


def _progress(total: int, quiet: bool) -> Any:
    from sparta import progress

    if not total or not progress.enabled(quiet):
        return None
    return progress.bar(total=total, unit="cell", desc="card", leave=True)


def assemble(folder: Path, opts: CardOptions) -> dict[str, Any]:
    """card.json's dict (schema 1) from the cells' files; every number copied from one."""
    metrics = P.all_metrics(opts.pillars)
    if opts.metrics:
        metrics = {k: v for k, v in metrics.items() if k in opts.metrics}
    pillars: dict[str, Any] = {}
    rows, warnings = [], []
    for v in opts.variants:
        for s in variant_sparsities(opts, v):
            cell = f"cells/{cell_name(v, s)}"
            row = {
                "variant": v,
                "sparsity": s,
                "label": f"{v} {s:.0%}" if s else v,
                "values": dict.fromkeys(metrics),
                "sources": {},
            }
            for p in opts.pillars:
                rec = read_json(folder / cell / f"{p}.json")
                if rec is None:
                    continue
                entry = pillars.setdefault(
                    p,
                    {"description": rec["description"], "options": rec["options"], "wall_s": 0.0},
                )
                entry["wall_s"] += rec["wall_s"]
                warnings.extend(rec.get("warnings", []))
                for k, val in rec["metrics"].items():
                    if k in metrics:
                        row["values"][k] = val
                        row["sources"][k] = f"{cell}/{p}.json"
            rows.append(row)
    return {
        "schema": 1,
        "title": f"{opts.model} on {opts.dataset}",
        "dataset": opts.dataset,
        "model": opts.model,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": opts.to_dict(),
        "pillars": {p: pillars[p] for p in opts.pillars if p in pillars},
        "metrics": metrics,
        "variants": {v: {"description": V.VARIANTS.get(v).doc} for v in opts.variants},
        "rows": rows,
        "warnings": warnings,
    }


__all__ = [
    "FREE_OPTIONS",
    "MODEL_CELL",
    "CardResult",
    "assemble",
    "card",
    "open_folder",
    "plan",
    "recorded_options",
    "resolve_options",
]
