"""Sparsity report: per-layer and global parameter and MAC counts of a (masked) model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparta.models.count import _module_macs
from sparta.models.pixelfly import PixelflyLinear
from sparta.models.utils import device_of, dtype_of, eval_mode, input_shape_of
from sparta.sparsity.masks import PRUNABLE_TYPES, masks_of


@torch.no_grad()
def layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Dense MACs of one sample's forward pass per module name (Linear and conv layers)."""
    macs: dict[str, int] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        n = _module_macs(module, inputs, output)
        if isinstance(module, PixelflyLinear):  # its dense equivalent: every in x out weight
            n = output.numel() * module.in_features
        macs[names[module]] = macs.get(names[module], 0) + n

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with eval_mode(model):
            model(torch.zeros((1, *input_shape), device=device_of(model), dtype=dtype_of(model)))
    finally:
        for h in handles:
            h.remove()
    return {n: v for n, v in macs.items() if v}


def report(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Counts of every Linear/Conv weight and every masked parameter, and global totals.

    ``layers``: one row per parameter with ``numel``, ``nonzero``, ``sparsity``, ``masked``
    and, when the input shape is known (``input_shape`` or the model's spec), ``macs`` (dense,
    one sample) and ``macs_kept = macs * nonzero / numel`` (a weight's MACs shrink with its
    density). ``global``: ``sparsity`` (zeros among masked parameters; among all listed
    weights when nothing is masked), ``params``/``params_kept`` (every parameter of the
    model; kept = params minus zeros of the listed weights), ``macs``/``macs_kept`` (listed
    layers only) and the fractions ``kept_params_fraction`` and ``kept_macs_fraction``.
    """
    masked = masks_of(model)
    tensors = {
        f"{n}.weight" if n else "weight": m.weight
        for n, m in model.named_modules()
        if isinstance(m, PRUNABLE_TYPES) and isinstance(m.weight, nn.Parameter)
    }
    params = dict(model.named_parameters())
    tensors.update({n: params[n] for n in masked})
    # Pixelfly layers count as their dense in x out weight with the butterfly + low-rank kept
    fly = {
        f"{n}.weight" if n else "weight": m
        for n, m in model.named_modules()
        if isinstance(m, PixelflyLinear)
    }
    try:
        shape: tuple[int, ...] | None = input_shape_of(model, input_shape)
    except ValueError:  # not built by sparta.models.create and no shape given: no MACs
        if input_shape is not None:
            raise
        shape = None
    macs = layer_macs(model, shape) if shape is not None else None
    rows = []
    for name, p in {**tensors, **fly}.items():
        if isinstance(p, PixelflyLinear):
            shape, numel, nonzero = (
                [p.out_features, p.in_features],
                p.dense_numel,
                p.nonzero_params(),
            )
        else:
            shape, numel, nonzero = list(p.shape), p.numel(), int(torch.count_nonzero(p.detach()))
        row: dict[str, Any] = {
            "name": name,
            "shape": shape,
            "numel": numel,
            "nonzero": nonzero,
            "sparsity": 1.0 - nonzero / numel,
            "masked": name in masked,
        }
        if macs is not None:
            module = name.rpartition(".")[0]
            dense = macs.get(module, 0) if name.endswith("weight") else 0
            row.update(macs=dense, macs_kept=dense * nonzero / numel)
        rows.append(row)
    counted = [r for r in rows if r["masked"]] or rows
    numel = sum(r["numel"] for r in counted)
    zeros = sum(r["numel"] - r["nonzero"] for r in rows if r["name"] not in fly)
    zeros += sum(m.weight.numel() - m.butterfly_params() for m in fly.values())  # spare slots
    total = sum(p.numel() for p in params.values())
    glob: dict[str, Any] = {
        "sparsity": sum(r["numel"] - r["nonzero"] for r in counted) / numel if numel else 0.0,
        "masked_numel": sum(r["numel"] for r in rows if r["masked"]),
        "params": total,
        "params_kept": total - zeros,
        "kept_params_fraction": (total - zeros) / total if total else 1.0,
    }
    if macs is not None:
        dense = sum(r["macs"] for r in rows)
        kept = sum(r["macs_kept"] for r in rows)
        glob.update(macs=dense, macs_kept=kept, kept_macs_fraction=kept / dense if dense else 1.0)
    return {"layers": rows, "global": glob}


def format_report(rep: dict[str, Any]) -> str:
    """A fixed-width text table of :func:`report`'s output."""
    has_macs = "macs" in rep["global"]
    head = ["layer", "shape", "numel", "nonzero", "sparsity"] + (["MACs", "kept MACs"] * has_macs)
    lines = []
    for r in rep["layers"]:
        cells = [
            r["name"] + ("" if r["masked"] else " (dense)"),
            "x".join(map(str, r["shape"])),
            str(r["numel"]),
            str(r["nonzero"]),
            f"{r['sparsity']:.4f}",
        ]
        if has_macs:
            cells += [str(r["macs"]), f"{r['macs_kept']:.0f}"]
        lines.append(cells)
    g = rep["global"]
    total = [
        "total (all params)",
        "",
        str(g["params"]),
        str(g["params_kept"]),
        f"{g['sparsity']:.4f}",
    ]
    if has_macs:
        total += [str(g["macs"]), f"{g['macs_kept']:.0f}"]
    lines.append(total)
    widths = [max(len(c[i]) for c in [head, *lines]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(fmt(head))
    return "\n".join([fmt(head), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])
