"""``sparta export``: turn a sparse checkpoint into a smaller or sparse-kernel model.

* ``--format compact``: a channel-masked model becomes a physically smaller dense model
  (``model.safetensors`` that ``sparta.load`` rebuilds from the checkpoint alone), with every
  BatchNorm folded into the conv/linear before it (``--no-fold-bn`` keeps them);
* ``--format csr|bsr``: masked Linear/Conv2d layers are stored and run as torch.sparse
  CSR/BSR matrices (``model.safetensors`` holding crow/col/values; ``sparta.load`` rebuilds
  the sparse modules).

``summary.json`` holds parameters and MACs with their fractions of the dense model, the
size on disk against a dense checkpoint, and the largest absolute output difference from
the masked model on a batch of the dataset's test split (random inputs if it is missing),
and the CPU latency of the exported model against the masked one at batch 1 and 256
(interleaved in one process, medians of ``--latency-repeats``; ``speedup_b*`` is masked over
exported time). The exported model runs in its fastest CPU inference mode (``--inference
auto``: eager, channels-last, torch.jit trace + freeze or both, timed at batch 256 and
recorded in the checkpoint; :func:`sparta.sparsity.export.for_inference` applies it after
``sparta.load``); ``summary.json`` names it (``inference_mode``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta.cli import Command
from sparta.options import Options, option, require

log = logging.getLogger(__name__)
FORMATS = ("compact", "csr", "bsr")
LATENCY_BATCHES = (1, 256)
INFERENCE_CHOICES = ("auto", "eager", "channels_last", "jit", "jit_channels_last")


@dataclass
class ExportOptions(Options):
    """What to export and how (recorded in config.yaml)."""

    ckpt: str = option("", "run folder or .safetensors file", required=True)
    format: str = option("", "compact, csr or bsr", required=True, choices=FORMATS)
    blocksize: int = option(16, "BSR tile size")
    conv: bool = option(True, "also convert Conv2d layers (im2col) for csr/bsr")
    batch: int = option(256, "inputs for the output check")
    latency_repeats: int = option(20, "timed repeats per model and batch size (1 and 256)")
    fold_bn: bool = option(True, "compact: fold BatchNorm into the conv/linear before it")
    inference: str = option(
        "auto",
        "CPU inference mode of the export: auto (the fastest, measured), eager, channels_last, "
        "jit or jit_channels_last",
        choices=INFERENCE_CHOICES,
    )

    def __post_init__(self) -> None:
        if self.format:
            require(self.format in FORMATS, "format", self.format, f"one of {', '.join(FORMATS)}")
        require(self.blocksize >= 1, "blocksize", self.blocksize, "an integer >= 1")
        require(self.batch >= 1, "batch", self.batch, "an integer >= 1")
        require(self.latency_repeats >= 1, "latency_repeats", self.latency_repeats, ">= 1")
        require(
            self.inference in INFERENCE_CHOICES,
            "inference",
            self.inference,
            f"one of {', '.join(INFERENCE_CHOICES)}",
        )


def check_inputs(model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """Up to ``n`` test inputs of the model's dataset, or uniform random ones if the data
    is not available; returns the batch and ``"test"`` or ``"random"``."""
    spec = model.sparta_spec
    shape = tuple(spec["dataset"]["input_shape"])
    try:
        from sparta import data as sdata

        ds = sdata.load(spec["dataset"]["name"], "test")
        if tuple(ds.input_shape) != shape:
            raise ValueError("shape mismatch")
        return ds.take(min(n, len(ds)), seed=seed).x, "test"
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        log.info("no test data for %s (%s); checking on random inputs", spec["dataset"]["name"], e)
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), "random"


def _file_size(path: Path) -> int:
    return path.stat().st_size + path.with_suffix(".json").stat().st_size


def dense_size_on_disk(model: nn.Module) -> int:
    """Bytes of a checkpoint of ``model`` without its masks (the dense baseline)."""
    import sparta
    from sparta.sparsity.masks import detach_masks

    dense = copy.deepcopy(model)
    detach_masks(dense)
    with tempfile.TemporaryDirectory() as tmp:
        return _file_size(sparta.save(dense, Path(tmp) / "dense.safetensors"))


def export_model(
    model: nn.Module, fmt: str, blocksize: int = 16, conv: bool = True, fold_bn: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """The exported model and its figures (parameters, MACs, fractions) against ``model``;
    ``fold_bn`` folds BatchNorm into the layer before it (compact only)."""
    from sparta.models import count_flops, count_params
    from sparta.sparsity import export
    from sparta.sparsity.masks import masks_of

    shape = tuple(model.sparta_spec["dataset"]["input_shape"])
    if fmt == "compact":
        fraction = export.channel_fraction(model, shape)
        out = export.compact(model, shape, fold_bn=fold_bn)
        return out, {**export.compact_report(model, out, shape), "channel_sparsity": fraction}
    if not masks_of(model):
        raise ValueError(f"checkpoint model has no masks; prune it before exporting to {fmt}")
    out = export.to_sparse(model, fmt, blocksize, include_conv=conv)
    params, params_dense = export.stored_values(out), count_params(model)
    macs, macs_dense = count_flops(out, shape), count_flops(model, shape)
    return out, {
        "params": params,
        "params_dense": params_dense,
        "param_fraction": params / params_dense,
        "macs": macs,
        "macs_dense": macs_dense,
        "mac_fraction": macs / macs_dense,
        "sparse_layers": sorted(getattr(out, export.SPARSE_ATTR)),
    }


def export_latency(
    masked: nn.Module, exported: nn.Module, x: torch.Tensor, repeats: int = 20
) -> dict[str, float]:
    """CPU latency (ms) of ``exported`` and ``masked`` at each of :data:`LATENCY_BATCHES`
    (interleaved, medians; :func:`sparta.models.timing.latency_by_batch`) and the speedup
    (masked time over exported time), as flat summary fields."""
    from sparta.models.timing import latency_by_batch

    models = {"masked": masked.eval(), "exported": exported.eval()}
    lat = latency_by_batch(models, x, LATENCY_BATCHES, repeats)
    out: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    for b, t in lat.items():
        out[f"latency_b{b}_ms"] = t["exported"]
        out[f"latency_b{b}_ms_masked"] = t["masked"]
        out[f"speedup_b{b}"] = t["masked"] / t["exported"]
    out["latency_b256_inputs"] = min(256, len(x))
    return out


class Export(Command):
    name = "export"
    help = "export a pruned checkpoint: compact, CSR or BSR"
    options = (ExportOptions,)

    def config(self) -> dict[str, Any]:
        opts = self.get(ExportOptions)
        return {**opts.to_dict(), "blocksize": opts.blocksize if opts.format == "bsr" else None}

    def run(self) -> int:
        import sparta
        from sparta.runs import Run
        from sparta.sparsity.export import INFERENCE_ATTR, choose_inference, for_inference

        opts = self.get(ExportOptions)
        model, _, _ = Run.from_checkpoint(opts.ckpt, splits="none")
        out, figures = export_model(model, opts.format, opts.blocksize, opts.conv, opts.fold_bn)
        inputs, source = check_inputs(model, max(opts.batch, max(LATENCY_BATCHES)))
        x = inputs[: opts.batch]
        out.eval()
        if opts.inference == "auto":
            choose_inference(out, inputs, max(3, opts.latency_repeats // 4))
        else:
            setattr(out, INFERENCE_ATTR, {"mode": opts.inference})
        fast = for_inference(out)
        with torch.no_grad():
            diff = float((model(x) - fast(x)).abs().max())
        latency = export_latency(model, fast, inputs, opts.latency_repeats)
        run_ = self.create_run(self.config())
        source_file = str(model.sparta_checkpoint["path"])
        path = sparta.save(out, run_.path, source=source_file, format=opts.format)
        size, size_dense = _file_size(path), dense_size_on_disk(model)
        summary = {
            "format": opts.format,
            "inference_mode": getattr(out, INFERENCE_ATTR)["mode"],
            **figures,
            "size_bytes": size,
            "size_bytes_dense": size_dense,
            "size_fraction": size / size_dense,
            "max_abs_diff": diff,
            "inputs": source,
            "n_inputs": int(x.shape[0]),
            "ckpt_file": source_file,
            **latency,
        }
        run_.write_summary(summary)
        print(
            f"{opts.format}: params {summary['param_fraction']:.3f}, "
            f"MACs {summary['mac_fraction']:.3f}, size {summary['size_fraction']:.3f} of dense; "
            f"max |diff| {diff:.2e} on {x.shape[0]} {source} inputs; "
            f"inference mode {summary['inference_mode']}"
        )
        print(
            "latency (ms, median of "
            f"{opts.latency_repeats}): "
            + ", ".join(
                f"batch {b} {latency[f'latency_b{b}_ms']:.3g} exported vs "
                f"{latency[f'latency_b{b}_ms_masked']:.3g} masked "
                f"({latency[f'speedup_b{b}']:.2f}x)"
                for b in LATENCY_BATCHES
            )
        )
        print(f"run: {run_.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Export.register(sub)
