"""Interim card writer: card.json and card.md (the HTML page comes with the real writer).

Contract (card_schema.md): ``write_card(card, folder) -> {file name: path}`` writes the
card's files atomically; ``format_table(card) -> str`` is the compact terminal table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sparta.io import write_json


def format_value(value: Any, fmt: str) -> str:
    """One cell of a table in the metric's format (``-`` when absent)."""
    if value is None:
        return "-"
    if fmt == "pct":
        return f"{100 * float(value):.1f}%"
    if fmt == "float":
        return f"{float(value):.3g}"
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "bool":
        return "yes" if value else "no"
    return str(value)


def _table(card: dict[str, Any], sep: str, markdown: bool) -> list[str]:
    metrics = card["metrics"]
    head = ["variant", *(m["label"] for m in metrics.values())]
    body = [
        [
            row["label"],
            *(format_value(row["values"].get(k), m["format"]) for k, m in metrics.items()),
        ]
        for row in card["rows"]
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return lines + ["| " + " | ".join(r) + " |" for r in body]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = sep.join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*head)] + [fmt.format(*r) for r in body]


def format_table(card: dict[str, Any]) -> str:
    """The compact terminal table: one row per (variant, sparsity), one column per metric."""
    return "\n".join(_table(card, "  ", markdown=False))


def format_markdown(card: dict[str, Any]) -> str:
    """card.md: the title, the table, what each pillar measured, and the warnings."""
    lines = [f"# {card['title']}", "", *_table(card, "", markdown=True), ""]
    for name, p in card["pillars"].items():
        lines += [f"## {name}", "", p["description"], "", f"wall time: {p['wall_s']:.1f} s", ""]
    if card.get("warnings"):
        lines += ["## warnings", "", *(f"- {w}" for w in card["warnings"]), ""]
    return "\n".join(lines)


def write_card(card: dict[str, Any], folder: str | os.PathLike) -> dict[str, Path]:
    """Write card.json and card.md atomically into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "card.json", folder / "card.md"
    write_json(json_path, card)
    tmp = md_path.with_name(md_path.name + ".tmp")
    tmp.write_text(format_markdown(card))
    os.replace(tmp, md_path)
    return {"card.json": json_path, "card.md": md_path}
