"""The report card's plots: metric vs sparsity per pillar, a robust-accuracy Pareto plot and
latency vs accuracy, each returned as SVG text (matplotlib, Agg backend) to inline in card.html.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# a calm palette that stays readable in print (Okabe-Ito, then tab10)
PALETTE = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
]  # fmt: skip
MARKERS = "osD^vP*Xhp<>"
_RC = {
    "svg.hashsalt": "sparta-card",  # deterministic ids: the same card gives the same page
    "svg.fonttype": "none",  # text stays text (smaller, selectable)
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


def is_number(v: Any) -> bool:
    """A finite int/float (not a bool): the values a plot or a best-per-column can use."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def variant_styles(card: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per variant, in the card's variant order, the same in every plot."""
    names = list(card.get("variants", {}))
    names += [r["variant"] for r in card["rows"] if r["variant"] not in names]
    return {n: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, n in enumerate(names)}


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _scale(fmt: str) -> float:
    return 100.0 if fmt == "pct" else 1.0


def _axis_label(meta: dict[str, Any]) -> str:
    label = meta.get("label", "")
    return f"{label} (%)" if meta.get("format") == "pct" else label


def _series(card: dict[str, Any], key: str) -> dict[str, list[tuple[float, float]]]:
    """Per variant, (sparsity, value) points of ``key`` sorted by sparsity (numbers only)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for row in card["rows"]:
        v = row.get("values", {}).get(key)
        s = row.get("sparsity")
        if is_number(v):
            out.setdefault(row["variant"], []).append((float(s) if is_number(s) else 0.0, v))
    return {k: sorted(v) for k, v in out.items()}


def repeats_sparsity(card: dict[str, Any], key: str) -> bool:
    """True when ``key`` only repeats each row's sparsity (e.g. weight_sparsity)."""
    vals = [(r.get("values", {}).get(key), r.get("sparsity")) for r in card["rows"]]
    return any(v is not None for v, _ in vals) and all(
        v is None or (is_number(v) and is_number(s) and abs(v - s) < 1e-9) for v, s in vals
    )


def plottable_metrics(card: dict[str, Any], pillar: str) -> list[str]:
    """The pillar's metrics with at least two different numbers (bools and text are not
    plotted), less those that repeat the row's sparsity (the x axis shows it)."""
    keys = []
    for key, meta in card["metrics"].items():
        if meta.get("pillar") != pillar or meta.get("format") in ("bool", "text"):
            continue
        if len(numbers(card, key)) > 1 and not repeats_sparsity(card, key):
            keys.append(key)
    return keys


def numbers(card: dict[str, Any], key: str) -> set[float]:
    """The distinct numeric values of ``key`` over the rows."""
    return {r["values"].get(key) for r in card["rows"] if is_number(r["values"].get(key))}


def pillar_plot(card: dict[str, Any], pillar: str, max_cols: int = 0) -> str | None:
    """Each metric of ``pillar`` vs sparsity, one line per variant (a variant measured only at
    sparsity 0, e.g. dense, is a dashed horizontal line); ``max_cols`` plots per line (0: 3, or
    4 when there are more than six). None when nothing is plottable."""
    keys = plottable_metrics(card, pillar)
    if not keys:
        return None
    styles = variant_styles(card)
    ncols = min(max_cols or (3 if len(keys) <= 6 else 4), len(keys))
    nrows = math.ceil(len(keys) / ncols)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False, layout="constrained"
        )
        xs_all = [float(r["sparsity"]) * 100 for r in card["rows"] if is_number(r.get("sparsity"))]
        lo, hi = (min(xs_all), max(xs_all)) if xs_all else (0.0, 100.0)
        handles: dict[str, Any] = {}
        for ax, key in zip(axes.flat, keys, strict=False):
            meta = card["metrics"][key]
            k = _scale(meta.get("format", "float"))
            for variant, pts in _series(card, key).items():
                color, marker = styles[variant]
                if len(pts) == 1 and pts[0][0] == 0.0:  # dense only: a reference line
                    h = ax.axhline(pts[0][1] * k, color=color, ls="--", lw=1.2, label=variant)
                    ax.plot([0.0], [pts[0][1] * k], marker, color=color, ms=5)
                else:
                    (h,) = ax.plot(
                        [p[0] * 100 for p in pts], [p[1] * k for p in pts], "-" + marker,
                        color=color, ms=4, lw=1.5, label=variant,
                    )  # fmt: skip
                handles.setdefault(variant, h)
            ax.set_title(meta.get("label", key))
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            ax.set_xlabel("sparsity (%)")
            if meta.get("format") == "pct":
                ax.set_ylabel("%")
            ax.set_xlim(min(lo, 0.0) - 3, max(hi, 0.0) + 3)
        for ax in list(axes.flat)[len(keys) :]:
            ax.axis("off")
        fig.legend(
            list(handles.values()), list(handles), loc="outside lower center",
            ncol=min(len(handles), 6), frameon=False,
        )  # fmt: skip
        return _svg(fig)


def pick_metric(card: dict[str, Any], candidates: Sequence[str], pillar: str | None) -> str | None:
    """The first of ``candidates`` the card has numbers for, else the first numeric
    ``better``-ranked metric of ``pillar``."""
    have = {k for k in card["metrics"] if any(is_number(r["values"].get(k)) for r in card["rows"])}
    for key in candidates:
        if key in have:
            return key
    for key, meta in card["metrics"].items():
        if key in have and meta.get("pillar") == pillar and meta.get("better"):
            return key
    return None


def pareto_front(points: Sequence[tuple[float, float]], x_better: str, y_better: str) -> list[int]:
    """Indices of the points no other point beats on both axes (``better``: higher/lower)."""
    sx = 1.0 if x_better == "higher" else -1.0
    sy = 1.0 if y_better == "higher" else -1.0
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            sx * x2 >= sx * x and sy * y2 >= sy * y and (x2, y2) != (x, y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def tradeoff_plot(
    card: dict[str, Any], x_key: str | None, y_key: str, x_better: str, title: str
) -> str | None:
    """A scatter of every row, ``y_key`` vs ``x_key`` (None: sparsity), coloured by variant,
    the Pareto front joined by a line and ringed. None when fewer than one point."""
    styles = variant_styles(card)
    pts, variants, labels = [], [], []
    for row in card["rows"]:
        x = row.get("sparsity") if x_key is None else row["values"].get(x_key)
        y = row["values"].get(y_key)
        if x_key is None and x is None:
            x = 0.0
        if is_number(x) and is_number(y):
            pts.append((float(x), float(y)))
            variants.append(row["variant"])
            labels.append(row.get("label", row["variant"]))
    if not pts:
        return None
    y_meta = card["metrics"][y_key]
    x_meta = {"label": "sparsity", "format": "pct"} if x_key is None else card["metrics"][x_key]
    kx, ky = _scale(x_meta.get("format", "float")), _scale(y_meta.get("format", "float"))
    front = pareto_front(pts, x_better, y_meta.get("better") or "higher")
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.2, 3.6), layout="constrained")
        seen = set()
        for (x, y), v in zip(pts, variants, strict=True):
            color, marker = styles[v]
            ax.plot([x * kx], [y * ky], marker, color=color, ms=6, ls="none",
                    label=None if v in seen else v)  # fmt: skip
            seen.add(v)
        fpts = sorted(pts[i] for i in front)
        ax.plot([p[0] * kx for p in fpts], [p[1] * ky for p in fpts], "-", color="#444",
                lw=1, zorder=0, label="Pareto front")  # fmt: skip
        ax.plot([p[0] * kx for p in fpts], [p[1] * ky for p in fpts], "o", ms=11, mfc="none",
                mec="#444", mew=1)  # fmt: skip
        for i in front if len(front) <= 5 else ():
            ax.annotate(labels[i], (pts[i][0] * kx, pts[i][1] * ky), textcoords="offset points",
                        xytext=(6, 5), fontsize=7, color="#333")  # fmt: skip
        ax.set_xlabel(_axis_label(x_meta))
        ax.set_ylabel(_axis_label(y_meta))
        ax.set_title(title)
        ax.legend(fontsize=7, frameon=False, loc="best")
        return _svg(fig)
