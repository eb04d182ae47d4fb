"""The report card's page: card.json, card.md and one self-contained card.html from a card
dict (schema 1, see ``write_card``), a compact terminal table, and a card built from any run
folders (``card_from_runs``, for ``sparta report``).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sparta.io import atomic_write_text, write_json
from sparta.report.card_plots import (
    is_number,
    numbers,
    pick_metric,
    pillar_plot,
    repeats_sparsity,
    tradeoff_plot,
    variant_styles,
)

SCHEMA = 1
PILLARS = (
    "accuracy",
    "efficiency",
    "robustness",
    "corruption",
    "certification",
    "unlearning",
    "backdoor",
)
FORMATS = ("pct", "float", "int", "bool", "text")
BETTER = ("higher", "lower", None)
FILES = ("card.json", "card.md", "card.html")

# the key metric of each pillar in the terminal table, first found wins
KEY_METRICS = {
    "accuracy": ("test_acc", "clean_acc", "acc"),
    "efficiency": ("latency_b1_ms", "weight_sparsity", "sparsity", "size_bytes", "macs",
                   "params", "kept_macs_fraction", "nonzero_params"),
    "robustness": ("robust_acc",),
    "corruption": ("corruption_acc",),
    "certification": ("crown_verified_acc", "ibp_verified_acc", "verified_acc", "smooth_cert_acc"),
    "unlearning": ("salun_avg_gap", "avg_gap", "ft_avg_gap", "ua"),
    "backdoor": ("trojan", "trojan_target", "suspected_target", "asr"),
}  # fmt: skip


# ------------------------------------------------------------------ checking and formatting
def validate_card(card: dict[str, Any]) -> None:
    """Raise ValueError naming what is wrong when ``card`` does not follow schema 1."""
    for key in ("metrics", "rows"):
        if key not in card:
            raise ValueError(f"card has no {key!r}; a card (schema 1) needs 'metrics' and 'rows'")
    if card.get("schema", SCHEMA) != SCHEMA:
        raise ValueError(f"card schema {card.get('schema')!r} is not supported; expected {SCHEMA}")
    for key, meta in card["metrics"].items():
        if meta.get("format", "float") not in FORMATS:
            raise ValueError(f"metric {key!r}: format {meta.get('format')!r}; allowed: {FORMATS}")
        if meta.get("better") not in BETTER:
            raise ValueError(
                f"metric {key!r}: better {meta.get('better')!r}; allowed: 'higher', 'lower', null"
            )
    seen = set()
    for row in card["rows"]:
        if "variant" not in row:
            raise ValueError(f"card row {row!r} has no 'variant'")
        s = row.get("sparsity")
        if s is not None and not (is_number(s) and 0.0 <= s < 1.0):
            raise ValueError(f"row {row['variant']}: sparsity {s!r} is not in [0, 1)")
        unknown = set(row.get("values", {})) - set(card["metrics"])
        if unknown:
            raise ValueError(
                f"row {row['variant']}: values {sorted(unknown)} are not in the card's metrics"
            )
        ident = (row["variant"], s)
        if ident in seen:
            raise ValueError(f"two rows for variant {row['variant']!r} at sparsity {s!r}")
        seen.add(ident)


def format_value(value: Any, fmt: str = "float") -> str:
    """A value as the card prints it: pct '89.1%', int '1,234', bool 'yes'/'no', null '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if fmt == "bool" or isinstance(value, bool):
        return "yes" if value else "no"
    if fmt == "text" or not is_number(value):
        return str(value)
    if fmt == "pct":
        return f"{100 * value:.1f}%"
    if fmt == "int":
        return f"{round(value):,}"
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 1e4:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 0.01:
        return f"{value:.3g}" if a < 1 else f"{value:.2f}"
    return f"{value:.2e}"


def row_label(row: dict[str, Any]) -> str:
    """The row's label, else ``variant sparsity%``."""
    if row.get("label"):
        return str(row["label"])
    s = row.get("sparsity")
    return row["variant"] if not is_number(s) else f"{row['variant']} {100 * s:.0f}%"


def best_rows(card: dict[str, Any]) -> dict[str, set[int]]:
    """Per metric with a ``better``, the indices of the rows holding the best value (ties all)."""
    out: dict[str, set[int]] = {}
    for key, meta in card["metrics"].items():
        better = meta.get("better")
        vals = [(i, r.get("values", {}).get(key)) for i, r in enumerate(card["rows"])]
        vals = [(i, v) for i, v in vals if is_number(v)]
        if not better or len({v for _, v in vals}) < 2:
            continue  # nothing to choose between
        target = (max if better == "higher" else min)(v for _, v in vals)
        out[key] = {i for i, v in vals if v == target}
    return out


def pillars_of(card: dict[str, Any]) -> list[str]:
    """The card's pillars in display order: those of ``card['pillars']``, then any other pillar
    a metric names."""
    names = list(card.get("pillars", {}))
    for meta in card["metrics"].values():
        p = meta.get("pillar", "other")
        if p not in names:
            names.append(p)
    return names


def metrics_by_pillar(card: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(pillar, metric keys) in display order, pillars without metrics left out."""
    groups = []
    for p in pillars_of(card):
        keys = [k for k, m in card["metrics"].items() if m.get("pillar", "other") == p]
        if keys:
            groups.append((p, keys))
    return groups


# ------------------------------------------------------------------ writing
def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def write_card(card: dict[str, Any], folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``card.json`` (the dict as given), ``card.md`` and the offline ``card.html`` into
    ``folder`` (made if missing), each atomically; return their paths by file name
    (``{"card.json": ..., "card.md": ..., "card.html": ...}``). A card that does not follow
    schema 1 is a ValueError before anything is written."""
    validate_card(card)
    folder = Path(folder)
    md, page = render_markdown(card), render_html(card)  # render before writing anything
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in FILES}
    write_json(paths["card.json"], card)
    _atomic_text(paths["card.md"], md)
    _atomic_text(paths["card.html"], page)
    return paths


# ------------------------------------------------------------------ markdown and terminal
def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(card: dict[str, Any]) -> str:
    """The card as markdown: the table (best per column in bold), per-pillar paragraphs and
    the warnings."""
    best = best_rows(card)
    keys = [k for _, ks in metrics_by_pillar(card) for k in ks]
    lines = [f"# {_md(card.get('title') or 'report card')}", ""]
    facts = [f"{k}: {_md(card[k])}" for k in ("model", "dataset", "created") if card.get(k)]
    if facts:
        lines += [" · ".join(facts), ""]
    head = ["variant", "sparsity"] + [_md(card["metrics"][k].get("label", k)) for k in keys]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|---:|" + "---:|" * len(keys))
    for i, row in enumerate(card["rows"]):
        cells = [_md(row["variant"]), format_value(row.get("sparsity"), "pct")]
        for k in keys:
            text = _md(format_value(row.get("values", {}).get(k), card["metrics"][k].get("format")))
            cells.append(f"**{text}**" if i in best.get(k, ()) else text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for p, _ in metrics_by_pillar(card):
        info = card.get("pillars", {}).get(p, {})
        para = info.get("description", "")
        if is_number(info.get("wall_s")):
            para += f" (wall time {info['wall_s']:.1f} s)"
        lines += [f"## {_md(p)}", "", para.strip() or "—", ""]
    if card.get("warnings"):
        lines += ["## warnings", ""] + [f"- {_md(w)}" for w in card["warnings"]] + [""]
    return "\n".join(lines)


def _informative(card: dict[str, Any], key: str) -> tuple:
    vals = [r.get("values", {}).get(key) for r in card["rows"]]
    present = [v for v in vals if v is not None]
    meta = card["metrics"][key]
    return (bool(meta.get("better")), len(present), len({json.dumps(v) for v in present}))


def table_metrics(card: dict[str, Any], width: int = 120) -> list[str]:
    """The metric columns of the terminal table: each pillar's key metric first (KEY_METRICS,
    else its most informative one), then more, pillar by pillar, while they fit ``width``."""
    ranked: list[list[str]] = []
    for p, keys in metrics_by_pillar(card):
        keys = [k for k in keys if _shown(card, k)]
        pref = [k for k in KEY_METRICS.get(p, ()) if k in keys]
        rest = sorted((k for k in keys if k not in pref), key=lambda k: _informative(card, k))
        ranked.append(pref + rest[::-1])
    chosen: list[str] = []
    used = _label_width(card) + 10
    for depth in range(max((len(r) for r in ranked), default=0)):
        for keys in ranked:
            if depth < len(keys):
                w = _col_width(card, keys[depth]) + 2
                if used + w <= width:
                    chosen.append(keys[depth])
                    used += w
    order = [k for _, ks in metrics_by_pillar(card) for k in ks]
    return sorted(chosen, key=order.index)


def _shown(card: dict[str, Any], key: str) -> bool:
    """A metric worth a terminal column: some value, and not a copy of the row's sparsity."""
    has = any(r.get("values", {}).get(key) is not None for r in card["rows"])
    return has and not repeats_sparsity(card, key)


def _label_width(card: dict[str, Any]) -> int:
    return min(18, max([7] + [len(r["variant"]) for r in card["rows"]]))


def _short(label: str, n: int = 14) -> str:
    if len(label) > n and " (" in label:  # drop a unit in brackets before cutting
        label = label[: label.index(" (")]
    return label if len(label) <= n else label[: n - 1] + "…"


def _col_width(card: dict[str, Any], key: str) -> int:
    meta = card["metrics"][key]
    cells = [
        format_value(r.get("values", {}).get(key), meta.get("format", "float")) + "*"
        for r in card["rows"]
    ]
    return min(14, max([len(_short(meta.get("label", key)))] + [len(c) for c in cells]))


def format_table(card: dict[str, Any], width: int = 120) -> str:
    """A compact fixed-width table for the terminal: variant, sparsity and a short column per
    key metric (best per column marked ``*``), fitting ``width`` characters. The card's
    warnings are not in it: the caller prints them."""
    best = best_rows(card)
    keys = table_metrics(card, width)
    lw = _label_width(card)
    widths = [_col_width(card, k) for k in keys]
    head = f"{'variant':<{lw}}  {'sparsity':>8}" + "".join(
        f"  {_short(card['metrics'][k].get('label', k)):>{w}}"
        for k, w in zip(keys, widths, strict=True)
    )
    lines = [head, "-" * len(head)]
    for i, row in enumerate(card["rows"]):
        line = f"{_short(row['variant'], lw):<{lw}}  {format_value(row.get('sparsity'), 'pct'):>8}"
        for k, w in zip(keys, widths, strict=True):
            text = format_value(row.get("values", {}).get(k), card["metrics"][k].get("format"))
            text = _short(text + ("*" if i in best.get(k, ()) else ""), w)
            line += f"  {text:>{w}}"
        lines.append(line)
    hidden = len([k for k in card["metrics"] if k not in keys])
    foot = "* best in column"
    if hidden:
        foot += f"; {hidden} more metrics in card.html / card.md"
    lines.append(foot)
    return "\n".join(lines)


# ------------------------------------------------------------------ HTML
_CSS = """
:root{--fg:#1d2430;--muted:#5b6576;--line:#e3e7ee;--bg:#f6f8fb;--card:#fff;--accent:#0b63c5;
--best:#e6f4ea;--bestfg:#0f6b2f;--warn:#fff6e0;--warnline:#f0c36d}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1360px;margin:0 auto;padding:20px 24px 60px}
header h1{font-size:24px;margin:0 0 4px}
.facts{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 4px;padding:0;list-style:none}
.facts li{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:2px 10px;
font-size:13px;color:var(--muted)}
.facts b{color:var(--fg);font-weight:600}
details{margin:6px 0 0;color:var(--muted);font-size:13px}
details table{margin-top:6px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;
margin:18px 0}
h2{font-size:17px;margin:0 0 8px;text-transform:capitalize}
h2 small{font-weight:400;color:var(--muted);text-transform:none;font-size:13px;margin-left:8px}
p.desc{margin:0 0 10px;color:var(--fg)}
.scroll{overflow-x:auto}
table.card{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%;font-size:12px}
table.card th,table.card td{padding:4px 5px;border-bottom:1px solid var(--line);white-space:nowrap}
table.card thead tr.cols th{white-space:normal;min-width:44px;max-width:80px;vertical-align:bottom;
line-height:1.25}
table.card td{text-align:right}
table.card td.v,table.card th.v{text-align:left;position:sticky;left:0;background:var(--card);
z-index:1}
table.card thead tr.groups th{font-size:11px;text-transform:uppercase;letter-spacing:.06em;
color:var(--muted);border-bottom:2px solid var(--line);text-align:center}
table.card thead tr.groups th.g0{border-bottom-color:#0b63c5}
table.card thead tr.groups th.g1{border-bottom-color:#8a5cd1}
table.card thead tr.cols th{cursor:pointer;user-select:none;text-align:right;font-weight:600;
position:sticky;top:0;background:var(--card)}
table.card thead tr.cols th.v{text-align:left}
table.card thead tr.cols th:hover{color:var(--accent)}
table.card thead tr.cols th::after{content:"\\2195";color:#b8c0cc;margin-left:4px;font-size:11px}
table.card thead tr.cols th.asc::after{content:"\\2191";color:var(--accent)}
table.card thead tr.cols th.desc::after{content:"\\2193";color:var(--accent)}
table.card tbody tr:hover{background:#f2f6fc}
table.card td.best{background:var(--best);color:var(--bestfg);font-weight:700}
table.card td.null{color:#b0b6c0}
td.pillar-start,th.pillar-start{border-left:1px solid var(--line)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;
vertical-align:baseline}
.legend{color:var(--muted);font-size:12px;margin-top:8px}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
figure{margin:0}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:12px;margin-top:4px}
.warnings{background:var(--warn);border-color:var(--warnline)}
.warnings ul{margin:0;padding-left:20px}
.kv{border-collapse:collapse;font-size:12px}
.kv td{padding:1px 10px 1px 0;vertical-align:top}
.kv td:first-child{color:var(--muted)}
.none{color:var(--muted);font-style:italic}
p.verdict{margin:4px 0;font-size:13px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
"""

# click a column header: numeric sort (text for text columns), nulls last, asc/desc toggle
_JS = """
(function(){
  var table=document.getElementById('card-table');
  if(!table){return;}
  var heads=table.querySelectorAll('thead tr.cols th');
  heads.forEach(function(th,col){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      heads.forEach(function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var body=table.tBodies[0];
      var rows=Array.prototype.slice.call(body.rows);
      var text=th.dataset.kind==='text';
      rows.sort(function(a,b){
        var x=a.cells[col].dataset.v, y=b.cells[col].dataset.v;
        var nx=(x===undefined||x===''), ny=(y===undefined||y==='');
        if(nx||ny){return nx===ny?0:(nx?1:-1);}
        var c=text?x.localeCompare(y):(parseFloat(x)-parseFloat(y));
        return asc?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _data_v(value: Any, fmt: str) -> str:
    """The sort key of a cell: a number (bools as 0/1), text, or '' for null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if is_number(value):
        return repr(float(value))
    return str(value)


def _kv_table(options: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v, default=str))}</td></tr>"
        for k, v in options.items()
    )
    return f'<table class="kv">{rows}</table>'


def _img(svg: str, alt: str) -> str:
    import base64

    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{_e(alt)}">'


def _table_html(card: dict[str, Any]) -> str:
    best = best_rows(card)
    groups = metrics_by_pillar(card)
    styles = variant_styles(card)
    g = '<tr class="groups"><th colspan="2"></th>' + "".join(
        f'<th colspan="{len(ks)}" class="g{i % 2} pillar-start">{_e(p)}</th>'
        for i, (p, ks) in enumerate(groups)
    )
    cols = '<tr class="cols"><th class="v" data-kind="text">variant</th><th>sparsity</th>'
    starts = {ks[0] for _, ks in groups}
    for _, ks in groups:
        for k in ks:
            meta = card["metrics"][k]
            fmt = meta.get("format", "float")
            kind = "text" if fmt == "text" else "num"
            arrow = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(
                meta.get("better") or "", ""
            )
            cls = ' class="pillar-start"' if k in starts else ""
            cols += (
                f'<th{cls} data-key="{_e(k)}" data-kind="{kind}" title="{_e(k + arrow)}">'
                f"{_e(meta.get('label', k))}</th>"
            )
    body = []
    for i, row in enumerate(card["rows"]):
        color = styles[row["variant"]][0]
        desc = card.get("variants", {}).get(row["variant"], {}).get("description", "")
        cells = [
            f'<td class="v" data-v="{_e(row["variant"])}" title="{_e(desc)}">'
            f'<span class="swatch" style="background:{color}"></span>{_e(row["variant"])}</td>',
            f'<td data-v="{_e(_data_v(row.get("sparsity"), "pct"))}">'
            f"{_e(format_value(row.get('sparsity'), 'pct'))}</td>",
        ]
        for _, ks in groups:
            for k in ks:
                v = row.get("values", {}).get(k)
                fmt = card["metrics"][k].get("format", "float")
                cls = ["pillar-start"] if k in starts else []
                if i in best.get(k, ()):
                    cls.append("best")
                if v is None:
                    cls.append("null")
                src = row.get("sources", {}).get(k)
                title = f' title="{_e(src)}"' if src else ""
                cells.append(
                    f'<td class="{" ".join(cls)}" data-v="{_e(_data_v(v, fmt))}"{title}>'
                    f"{_e(format_value(v, fmt))}</td>"
                )
        body.append(f'<tr data-label="{_e(row_label(row))}">' + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="card" id="card-table"><thead>{g}</tr>{cols}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _verdicts(card: dict[str, Any], pillar: str) -> list[str]:
    """Lines for what the plots do not show: the numbers equal in every row, and per yes/no or
    text metric of ``pillar`` which rows said what."""
    same = [
        f"{meta.get('label', k)} {format_value(next(iter(vals)), meta.get('format', 'float'))}"
        for k, meta in card["metrics"].items()
        if meta.get("pillar") == pillar
        and meta.get("format") not in ("bool", "text")
        and len(vals := numbers(card, k)) == 1
        and not repeats_sparsity(card, k)
    ]
    lines = [f"the same in every row measured: {', '.join(same)}"] if same else []
    for key, meta in card["metrics"].items():
        if meta.get("pillar") != pillar or meta.get("format") not in ("bool", "text"):
            continue
        said: dict[str, list[str]] = {}
        for row in card["rows"]:
            v = row.get("values", {}).get(key)
            if v is not None:
                said.setdefault(format_value(v, meta["format"]), []).append(row_label(row))
        if said:
            parts = [f"{v}: {', '.join(rows)}" for v, rows in sorted(said.items())]
            lines.append(f"{meta.get('label', key)} — " + "; ".join(parts))
    return lines


def _tradeoffs(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(svg, caption) of the robust-accuracy and corruption-accuracy Pareto plots and the
    latency-accuracy plot."""
    out = []
    acc = pick_metric(card, KEY_METRICS["accuracy"], "accuracy")
    rob = pick_metric(card, ("robust_acc",), "robustness")
    if rob:
        svg = tradeoff_plot(card, None, rob, "higher", "robust accuracy vs sparsity")
        if svg:
            out.append((svg, "Rows no other row beats on both sparsity and robust accuracy "
                             "are ringed and joined (the Pareto front)."))  # fmt: skip
    corr = pick_metric(card, ("corruption_acc",), "corruption")
    if corr:
        svg = tradeoff_plot(card, None, corr, "higher", "corruption accuracy vs sparsity")
        if svg:
            out.append((svg, "Mean accuracy over the common corruptions against sparsity; "
                             "the front is the most robust model at each sparsity."))  # fmt: skip
    lat = [k for k, m in card["metrics"].items() if "latency" in k and m.get("better") == "lower"]
    lat_key = pick_metric(card, ("latency_b1_ms", *lat), None)
    if lat_key and acc:
        svg = tradeoff_plot(card, lat_key, acc, "lower", "latency vs accuracy")
        if svg:
            out.append((svg, f"{card['metrics'][lat_key].get('label', lat_key)} against "
                             f"{card['metrics'][acc].get('label', acc)}; the front is the "
                             "fastest model at each accuracy."))  # fmt: skip
    return out


def render_html(card: dict[str, Any]) -> str:
    """card.html as text: one self-contained page (inline CSS, JS and SVG plots; no network)."""
    title = card.get("title") or "report card"
    facts = [(k, card[k]) for k in ("model", "dataset", "created") if card.get(k)]
    facts.append(("rows", len(card["rows"])))
    head = "".join(f"<li>{_e(k)} <b>{_e(v)}</b></li>" for k, v in facts)
    opts = card.get("options") or {}
    options = f"<details><summary>options</summary>{_kv_table(opts)}</details>" if opts else ""
    parts = [
        f"<header><h1>{_e(title)}</h1><ul class='facts'>{head}</ul>{options}</header>",
        "<section><h2>scores <small>click a column to sort; best per column in green; "
        "hover a cell for the file it came from</small></h2>" + _table_html(card) + "</section>",
    ]
    if card.get("warnings"):
        items = "".join(f"<li>{_e(w)}</li>" for w in card["warnings"])
        parts.append(f"<section class='warnings'><h2>warnings</h2><ul>{items}</ul></section>")
    trade = _tradeoffs(card)
    if trade:
        figs = "".join(
            f"<figure>{_img(svg, cap)}<figcaption>{_e(cap)}</figcaption></figure>"
            for svg, cap in trade
        )
        parts.append(f"<section><h2>trade-offs</h2><div class='plots'>{figs}</div></section>")
    for p, _ in metrics_by_pillar(card):
        info = card.get("pillars", {}).get(p, {})
        wall = f"<small>{info['wall_s']:.1f} s</small>" if is_number(info.get("wall_s")) else ""
        desc = info.get("description") or ""
        svg = pillar_plot(card, p)
        body = f"<p class='desc'>{_e(desc)}</p>" if desc else ""
        if svg:
            body += f"<figure>{_img(svg, p + ' metrics vs sparsity')}</figure>"
        for line in _verdicts(card, p):
            body += f"<p class='verdict'>{_e(line)}</p>"
        if not svg and not _verdicts(card, p):
            body += "<p class='none'>no numeric metric to plot</p>"
        if info.get("options"):
            body += f"<details><summary>options</summary>{_kv_table(info['options'])}</details>"
        parts.append(f"<section id='pillar-{_e(p)}'><h2>{_e(p)} {wall}</h2>{body}</section>")
    variants = card.get("variants") or {}
    if variants:
        styles = variant_styles(card)
        items = "".join(
            f"<tr><td><span class='swatch' style='background:{styles[n][0]}'></span>{_e(n)}</td>"
            f"<td>{_e(v.get('description', ''))}</td></tr>"
            for n, v in variants.items()
            if n in styles
        )
        parts.append(f"<section><h2>variants</h2><table class='kv'>{items}</table></section>")
    parts.append(
        f"<footer>made by sparta · card schema {_e(card.get('schema', SCHEMA))} · every number "
        "is in card.json with the file it came from</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        + "\n".join(parts)
        + f"</main><script>{_JS}</script></body></html>\n"
    )


# ------------------------------------------------------------------ card from run folders
def _m(pillar: str, label: str, better: str | None, fmt: str) -> dict[str, Any]:
    return {"pillar": pillar, "label": label, "better": better, "format": fmt}


# summary.json keys a report knows, one name per quantity across commands (DESIGN.md)
RUN_METRICS: dict[str, dict[str, Any]] = {
    "test_acc": _m("accuracy", "test acc", "higher", "pct"),
    "val_acc": _m("accuracy", "val acc", "higher", "pct"),
    "best_val_acc": _m("accuracy", "best val acc", "higher", "pct"),
    "train_acc": _m("accuracy", "train acc", None, "pct"),
    "test_loss": _m("accuracy", "test loss", "lower", "float"),
    "clean_acc": _m("accuracy", "clean acc", "higher", "pct"),
    "reinit_acc": _m("accuracy", "reinit acc", "higher", "pct"),
    "random_acc": _m("accuracy", "random-mask acc", "higher", "pct"),
    "sparsity": _m("efficiency", "sparsity", None, "pct"),
    "weight_sparsity": _m("efficiency", "weight sparsity", None, "pct"),
    "channel_sparsity": _m("efficiency", "channel sparsity", None, "pct"),
    "params": _m("efficiency", "params", "lower", "int"),
    "nonzero_params": _m("efficiency", "nonzero params", "lower", "int"),
    "kept_params_fraction": _m("efficiency", "kept params", "lower", "pct"),
    "kept_macs_fraction": _m("efficiency", "kept MACs", "lower", "pct"),
    "macs": _m("efficiency", "MACs", "lower", "int"),
    "size_bytes": _m("efficiency", "size (bytes)", "lower", "int"),
    "size_fraction": _m("efficiency", "size / dense", "lower", "pct"),
    "latency_b1_ms": _m("efficiency", "latency b1 (ms)", "lower", "float"),
    "latency_b256_ms": _m("efficiency", "latency b256 (ms)", "lower", "float"),
    "speedup_b1": _m("efficiency", "speed-up b1", "higher", "float"),
    "speedup_b256": _m("efficiency", "speed-up b256", "higher", "float"),
    "robust_acc": _m("robustness", "robust acc", "higher", "pct"),
    "corruption_acc": _m("corruption", "mean corruption acc", "higher", "pct"),
    "verified_acc": _m("certification", "verified acc", "higher", "pct"),
    "ibp_verified_acc": _m("certification", "IBP verified", "higher", "pct"),
    "crown_verified_acc": _m("certification", "CROWN verified", "higher", "pct"),
    "smooth_cert_acc": _m("certification", "smoothing cert", "higher", "pct"),
    "ua": _m("unlearning", "UA", None, "pct"),
    "ra": _m("unlearning", "RA", "higher", "pct"),
    "ta": _m("unlearning", "TA", "higher", "pct"),
    "mia_efficacy": _m("unlearning", "MIA efficacy", None, "pct"),
    "avg_gap": _m("unlearning", "Avg. Gap", "lower", "pct"),
    "rte_s": _m("unlearning", "RTE (s)", "lower", "float"),
    "asr": _m("backdoor", "ASR", None, "pct"),
    "recovered_asr": _m("backdoor", "recovered ASR", None, "pct"),
    "anomaly_index": _m("backdoor", "anomaly index", None, "float"),
    "trojan": _m("backdoor", "trojan flagged", None, "bool"),
    "target": _m("backdoor", "suspected target", None, "text"),
}
# families of keys: (prefix, suffix) -> metric (label from the key)
_RUN_FAMILIES: list[tuple[Callable[[str], bool], Callable[[str], dict[str, Any]]]] = [
    (lambda k: k.startswith("robust_acc_"),
     lambda k: _m("robustness", k[len("robust_acc_"):].replace("_", "-"), "higher", "pct")),
    (lambda k: k.startswith("corruption_") and k.endswith("_acc"),
     lambda k: _m("corruption", k[len("corruption_"):-len("_acc")].replace("_", "-"), "higher",
                  "pct")),
    (lambda k: k.startswith("certified_acc_r"),
     lambda k: _m("certification", "cert acc r=" + k[len("certified_acc_r"):], "higher", "pct")),
    (lambda k: k.endswith("_verified_acc"),
     lambda k: _m("certification", k.replace("_", " ").replace(" acc", ""), "higher", "pct")),
]  # fmt: skip
# per-method rows of an unlearning bench summary ({"rows": [{"method": ..., ...}]})
_UNLEARN_KEYS = ("ua", "ra", "ta", "mia_efficacy", "avg_gap", "rte_s")


def run_metric(key: str) -> dict[str, Any] | None:
    """The card metric of a summary.json key, or None for keys a card does not show."""
    if key in RUN_METRICS:
        return dict(RUN_METRICS[key])
    for match, make in _RUN_FAMILIES:
        if match(key):
            return make(key)
    return None


def _read_run(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    config_file, summary_file = path / "config.yaml", path / "summary.json"
    try:
        config = yaml.safe_load(config_file.read_text()) or {} if config_file.is_file() else {}
        summary = json.loads(summary_file.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValueError(f"run folder {path}: unreadable config.yaml or summary.json ({e})") from e
    if not isinstance(summary, dict) or not isinstance(config, dict):
        raise ValueError(f"run folder {path}: summary.json and config.yaml must hold mappings")
    return config, summary


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool) or is_number(v) or (isinstance(v, str) and len(v) < 40)


def _values_of(
    summary: dict[str, Any], source: str
) -> list[tuple[float | None, dict[str, Any], dict[str, str]]]:
    """(sparsity or None, values, sources) per row a summary gives: one, one per sparsity of an
    unlearning bench's ``rows`` (method-prefixed keys), or one per level of a lottery run."""
    values, sources = {}, {}
    for key, v in summary.items():
        if run_metric(key) is not None and _scalar(v):
            values[key], sources[key] = v, f"{source}:{key}"
    sparsity = summary.get("sparsity")
    if sparsity is None and is_number(summary.get("params")) and summary.get("nonzero_params"):
        sparsity = round(1.0 - summary["nonzero_params"] / summary["params"], 6)  # a dense run: 0
    out = [(sparsity, values, sources)]
    bench = summary.get("rows")
    if isinstance(bench, list) and all(isinstance(r, dict) and "method" in r for r in bench):
        by_s: dict[Any, tuple[dict, dict]] = {}
        for i, r in enumerate(bench):
            vals, srcs = by_s.setdefault(r.get("sparsity", 0.0), ({}, {}))
            for k in _UNLEARN_KEYS:
                if is_number(r.get(k)):
                    key = f"{str(r['method']).replace('-', '_')}_{k}"
                    vals[key], srcs[key] = r[k], f"{source}:rows[{i}].{k}"
        out = [(s, {**values, **v}, {**sources, **src}) for s, (v, src) in by_s.items()]
    levels = summary.get("levels")
    if isinstance(levels, list) and all(isinstance(r, dict) and "remaining" in r for r in levels):
        out = []  # a lottery run: a row per level (its top-level numbers are the last level's)
        for i, r in enumerate(levels):
            keys = [k for k, v in r.items() if run_metric(k) is not None and _scalar(v)]
            out.append((
                round(1.0 - r["remaining"], 6),
                {k: r[k] for k in keys},
                {k: f"{source}:levels[{i}].{k}" for k in keys},
            ))  # fmt: skip
    return out


def _unlearn_metric(key: str) -> dict[str, Any] | None:
    for k in _UNLEARN_KEYS:
        if key.endswith("_" + k):
            meta = dict(RUN_METRICS[k])
            meta["label"] = f"{key[: -len(k) - 1].replace('_', '-')} {meta['label']}"
            return meta
    return None


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The run folders named, checked before anything is read: each must exist and hold a
    summary.json (FileNotFoundError / ValueError naming the path otherwise)."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"run folder {path} does not exist")
        if not path.is_dir() or not (path / "summary.json").is_file():
            raise ValueError(
                f"{path} is not a finished run folder (expected a folder with summary.json, "
                "as every sparta command writes)"
            )
        out.append(path)
    if not out:
        raise ValueError("no run folders given; pass one or more folders written by sparta")
    return out


def card_from_runs(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """A card (schema 1) from run folders made one by one: a row per run (and per sparsity of an
    unlearning bench), variant = the command, or the run's name where two runs of one command
    share a sparsity; the model's ``evals/*/`` results join its row (their own row when a
    number would clash). Every number is copied from a summary.json; ``sources`` says which."""
    runs = find_runs(paths)
    units = []  # one per row: {name, group, sparsity, values, sources}
    folders: dict[str, tuple[Path, dict[str, Any]]] = {}  # source prefix -> (folder, config)
    configs, warnings, groups = [], [], {}  # groups: config less sparsity -> (command, names)
    for path in runs:
        config, summary = _read_run(path)
        configs.append(config)
        folders[f"{path.name}/"] = (path, config)
        warnings += [f"{path.name}: {w}" for w in summary.get("warnings") or []]
        group = json.dumps(
            {k: v for k, v in config.items() if k not in _NOT_A_RECIPE}, sort_keys=True, default=str
        )
        command = str(config.get("command") or path.name)
        groups.setdefault(group, (command, []))[1].append(path.name)
        mine = [
            {"name": path.name, "group": group, "sparsity": sp, "values": v, "sources": src}
            for sp, v, src in _values_of(summary, f"{path.name}/summary.json")
        ]
        if not any(u["values"] for u in mine):
            warnings.append(
                f"{path.name}: no metric a card knows in summary.json "
                f"(keys: {', '.join(sorted(summary)[:8]) or 'none'})"
            )
        for ev in sorted((path / "evals").glob("*/summary.json")):
            ev_config, ev_summary = _read_run(ev.parent)
            name = f"{path.name}/{ev.parent.name}"
            folders[f"{path.name}/evals/{ev.parent.name}/"] = (ev.parent, ev_config)
            warnings += [f"{name}: {w}" for w in ev_summary.get("warnings") or []]
            for sp, vals, srcs in _values_of(ev_summary, f"{path.name}/evals/{ev.parent.name}/"
                                             "summary.json"):  # fmt: skip
                home = next((u for u in mine if sp is None or u["sparsity"] == sp), None)
                if home is None:  # e.g. an unlearning bench of pruned copies: its own row
                    mine.append({"name": name, "group": group, "sparsity": sp,
                                 "values": vals, "sources": srcs})  # fmt: skip
                    continue
                for k, v in vals.items():
                    if k not in home["values"]:
                        home["values"][k], home["sources"][k] = v, srcs[k]
                    elif home["values"][k] != v:  # the model's own / first evaluation wins
                        warnings.append(
                            f"{name}: {k}={format_value(v)} differs from "
                            f"{home['sources'][k]} ({format_value(home['values'][k])}); "
                            "the card shows the latter"
                        )
        units += mine
    # a variant: runs of one recipe (same config but for the sparsity), named by the command
    # when it has one recipe only, else by its first run
    commands = [c for c, _ in groups.values()]
    names = {g: c if commands.count(c) == 1 else n[0] for g, (c, n) in groups.items()}
    if len({(names[u["group"]], u["sparsity"]) for u in units}) < len(units):
        names = {}  # two rows would share (variant, sparsity): a variant per run
    rows, variants, metrics = [], {}, {}
    for u in units:
        variant = names.get(u["group"], u["name"])
        sp = u["sparsity"]
        variants.setdefault(variant, {"description": f"{groups[u['group']][0]} runs", "runs": []})
        if u["name"] not in variants[variant]["runs"]:
            variants[variant]["runs"].append(u["name"])
        for key in u["values"]:
            if key not in metrics:
                metrics[key] = run_metric(key) or _unlearn_metric(key)
        several = sum(x["name"] == u["name"] for x in units) > 1
        label = f"{u['name']} {100 * sp:.0f}%" if several and is_number(sp) else u["name"]
        rows.append({"variant": variant, "sparsity": sp, "label": label,
                     "values": u["values"], "sources": u["sources"]})  # fmt: skip
    for v in variants.values():
        v["description"] += ": " + ", ".join(v.pop("runs"))
    order = {k: i for i, k in enumerate(RUN_METRICS)}
    rank = {p: i for i, p in enumerate(PILLARS)}

    def place(k: str) -> tuple:  # pillar, then the known order, then method and quantity
        method, _, q = k.rpartition("_") if k not in order else ("", "", k)
        for u in _UNLEARN_KEYS:
            if k.endswith("_" + u):
                method, q = k[: -len(u) - 1], u
        quantity = _UNLEARN_KEYS.index(q) if q in _UNLEARN_KEYS else 0
        return rank[metrics[k]["pillar"]], order.get(k, 999), method, quantity, k

    keys = sorted(metrics, key=place)
    metrics = {k: metrics[k] for k in keys}
    for r in rows:
        r["values"] = {k: r["values"].get(k) for k in metrics}
    pillars = {}
    for p in PILLARS:
        ks = [k for k in metrics if metrics[k]["pillar"] == p]
        if ks:
            pillars[p] = {"description": _describe(ks, rows, folders, metrics), "options": {}}
    return {
        "schema": SCHEMA,
        "title": f"report of {len(runs)} run{'s' if len(runs) > 1 else ''}",
        "dataset": _common(configs, "dataset"),
        "model": _common(configs, "model"),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": {"runs": [str(p) for p in runs]},
        "pillars": pillars,
        "metrics": metrics,
        "variants": variants,
        "rows": rows,
        "warnings": warnings,
    }


def _common(configs: list[dict[str, Any]], key: str) -> str:
    vals = {str(c[key]) for c in configs if c.get(key)}
    return vals.pop() if len(vals) == 1 else ("mixed: " + ", ".join(sorted(vals)) if vals else "")


# config keys that do not make another recipe (runs differing only in these share a variant)
_NOT_A_RECIPE = {"sparsity", "ckpt", "name", "out", "resume", "overwrite", "original"}
_DESCRIBE_KEYS = ("dataset", "split", "subset", "test_subset", "eps", "norm", "suite", "method",
                  "methods", "attacks", "sparsity", "sigma", "n", "forget", "seed", "epochs",
                  "format")  # fmt: skip


def _describe(
    keys: list[str],
    rows: list[dict[str, Any]],
    folders: dict[str, tuple[Path, dict]],
    metrics: dict,
) -> str:
    """What a pillar's numbers came from: the run folders and their measuring options."""
    used = sorted(
        {
            src.rsplit("summary.json", 1)[0]
            for r in rows
            for k in keys
            if (src := r["sources"].get(k))
        }
    )
    by_setting: dict[str, list[str]] = {}  # "command (options)" -> folders measured that way
    for prefix in used:
        path, config = folders[prefix]
        opts = [
            f"{k} {config[k]}"
            for k in _DESCRIBE_KEYS
            if config.get(k) not in (None, "", []) and k not in _NOT_A_RECIPE
        ]
        setting = str(config.get("command", "run")) + (f" ({', '.join(opts)})" if opts else "")
        by_setting.setdefault(setting, []).append(prefix.rstrip("/"))
    parts = [f"{setting}: {', '.join(names)}" for setting, names in by_setting.items()]
    labels = ", ".join(metrics[k]["label"] for k in keys)
    return f"{labels}, from the summary.json of {'; '.join(parts)}."
