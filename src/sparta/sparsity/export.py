"""Export sparse models to something that is really smaller or faster.

- :func:`compact`: a channel-masked model becomes a physically smaller dense model (new
  Conv/Linear/BatchNorm modules with fewer channels, no masks) with the same outputs. The
  checkpoint extra ``"shapes"`` (module name -> new sizes) lets :func:`sparta.load` rebuild it
  from the checkpoint alone.
- :func:`shrink`: the same removal in place during training (a model, its masks and an
  optimizer's state cut to the kept channels), for methods that shrink as they train (Chase).
  from the checkpoint alone. ``compact(..., fold_bn=True)`` (what ``sparta export`` and the
  card use) also folds every BatchNorm into the conv/linear before it (:func:`fold_batchnorm`).
- :func:`choose_inference` / :func:`for_inference`: the fastest CPU execution of a model,
  measured per model among eager, channels-last, ``torch.jit`` (trace + freeze) and both; the
  choice is recorded on the model and saved with it, and applied at inference time (a frozen
  TorchScript module is not a safetensors checkpoint, so it is never what is saved).
- :func:`to_sparse`: masked Linear (and Conv2d, through ``unfold``/im2col) layers become
  modules that multiply with a ``torch.sparse`` CSR or BSR weight. Their tensors
  (``crow_indices``, ``col_indices``, ``values``) are ordinary buffers, so the model saves
  with :func:`sparta.save` (extra ``"sparse"``) and reloads with :func:`sparta.load`.
  On CPU the sparse conv path is usually slower than the dense convolution; it exists for
  size and completeness, and the Linear path is the one that can win (see
  ``benchmarks/sparsity_speed.py``).
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta import io
from sparta.models.utils import eval_mode, input_shape_of
from sparta.sparsity.groups import ChannelGroup, channel_groups
from sparta.sparsity.masks import SUFFIX, detach_masks, masks_of

log = logging.getLogger(__name__)

SHAPES_KEY = "shapes"
SPARSE_KEY = "sparse"
FOLDED_KEY = "folded"
INFERENCE_KEY = "inference"
SHAPES_ATTR = "sparta_shapes"
SPARSE_ATTR = "sparta_sparse"
FOLDED_ATTR = "sparta_folded"
INFERENCE_ATTR = "sparta_inference"
INFERENCE_MODES = ("eager", "channels_last", "jit", "jit_channels_last")
FORMATS = ("csr", "bsr")
_RESIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)


# ------------------------------------------------------------------ compact export
def kept_channels(model: nn.Module, groups: Sequence[ChannelGroup]) -> list[torch.Tensor]:
    """Per group, a bool vector of the channels the masks keep.

    A channel is removed when every producer's mask row and every consumer's mask columns
    for it are all False (a layer without a mask keeps everything). A group whose channels
    would all go keeps channel 0, whose weights are masked anyway, so outputs are unchanged.
    """
    masks = masks_of(model)
    keeps = []
    for g in groups:
        removed = torch.ones(g.size, dtype=torch.bool)
        if not g.producers and not g.consumers:
            removed[:] = False
        for p in g.producers:
            m = masks.get(f"{p}.weight")
            removed &= False if m is None else ~m.detach().flatten(1).any(1).cpu()
        for c in g.consumers:
            m = masks.get(f"{c.module}.weight")
            if m is None:
                removed[:] = False
                continue
            cols = m.detach().transpose(0, 1).reshape(m.shape[1], -1).any(1).cpu()
            removed &= ~cols.view(g.size, c.inner).any(1)
        keep = ~removed
        if not keep.any():
            keep[0] = True
        keeps.append(keep)
    return keeps


def _resized(mod: nn.Module, sizes: dict[str, int]) -> nn.Module:
    """A fresh module like ``mod`` with new channel counts (``in``/``out`` or ``features``)."""
    if type(mod) not in _RESIZABLE:
        raise ValueError(f"cannot resize a {type(mod).__name__}; only {_RESIZABLE} are")
    ref = next(iter(mod.parameters()), None)
    if ref is None:
        ref = next(iter(mod.buffers()))
    kw: dict[str, Any] = {"device": ref.device, "dtype": ref.dtype}
    if isinstance(mod, nn.Linear):
        return nn.Linear(sizes["in"], sizes["out"], bias=mod.bias is not None, **kw)
    if isinstance(mod, nn.Conv1d | nn.Conv2d):
        return type(mod)(
            sizes["in"],
            sizes["out"],
            mod.kernel_size,
            stride=mod.stride,
            padding=mod.padding,
            dilation=mod.dilation,
            groups=mod.groups,
            bias=mod.bias is not None,
            padding_mode=mod.padding_mode,
            **kw,
        )
    return type(mod)(
        sizes["features"],
        eps=mod.eps,
        momentum=mod.momentum,
        affine=mod.affine,
        track_running_stats=mod.track_running_stats,
        **kw,
    )


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def _copy_into(new: nn.Module, old: nn.Module, index: dict[int, torch.Tensor]) -> None:
    """Copy ``old``'s parameters and buffers into ``new``, taking ``index[dim]`` along dims."""
    with torch.no_grad():
        olds = dict(old.named_parameters(recurse=False)) | dict(old.named_buffers(recurse=False))
        for name, t in list(new.named_parameters(recurse=False)) + list(
            new.named_buffers(recurse=False)
        ):
            src = olds[name].detach()
            for dim, idx in index.items():
                if src.dim() > dim and src.shape[dim] != t.shape[dim]:
                    src = src.index_select(dim, idx.to(src.device))
            t.copy_(src)
        for name, p in new.named_parameters(recurse=False):
            p.requires_grad_(olds[name].requires_grad)
    new.train(old.training)


def compact(
    model: nn.Module, input_shape: Sequence[int] | None = None, *, fold_bn: bool = False
) -> nn.Module:
    """A physically smaller copy of a channel-masked ``model`` (``model`` is not changed).

    Channels removed by the masks (see :func:`kept_channels`) are cut from their producers'
    rows and bias, BatchNorm entries and consumers' columns; every mask buffer is dropped
    (remaining zeros stay in the weights). In eval mode the outputs equal the masked model's.
    The new sizes are recorded on the copy (``sparta_shapes``) so that :func:`sparta.save`
    writes them and :func:`sparta.load` rebuilds the small model. ``input_shape`` defaults
    to the model's sparta spec. A model without removed channels is an error.

    ``fold_bn`` also folds each BatchNorm into the conv/linear before it
    (:func:`fold_batchnorm`): an inference model, equal to the masked model in eval mode up
    to float rounding (~1e-6 relative), and one pass over the activations less per BatchNorm.
    """
    shape = input_shape_of(model, input_shape)
    groups = channel_groups(model, shape)
    keeps = kept_channels(model, groups)
    if all(bool(k.all()) for k in keeps):
        raise ValueError(
            f"{type(model).__name__} has no channel masks (no channel of any group is fully "
            "masked); prune with structure='channel' first"
        )
    out_idx: dict[str, torch.Tensor] = {}
    in_idx: dict[str, torch.Tensor] = {}
    norm_idx: dict[str, torch.Tensor] = {}
    for g, keep in zip(groups, keeps, strict=True):
        if bool(keep.all()):
            continue
        idx = keep.nonzero().flatten()
        for p in g.producers:
            out_idx[p] = idx
        for n in g.norms:
            norm_idx[n] = idx
        for c in g.consumers:
            in_idx[c.module] = (idx[:, None] * c.inner + torch.arange(c.inner)).flatten()
    small = copy.deepcopy(model)
    detach_masks(small)
    shapes: dict[str, dict[str, Any]] = dict(getattr(small, SHAPES_ATTR, None) or {})
    for name in sorted(set(out_idx) | set(in_idx) | set(norm_idx)):
        old = small.get_submodule(name)
        if name in norm_idx:
            sizes = {"features": int(norm_idx[name].numel())}
            index = {0: norm_idx[name]}
        else:
            n_out = old.weight.shape[0]
            n_in = old.weight.shape[1]
            sizes = {
                "in": int(in_idx[name].numel()) if name in in_idx else int(n_in),
                "out": int(out_idx[name].numel()) if name in out_idx else int(n_out),
            }
            index = {}
            if name in out_idx:
                index[0] = out_idx[name]
            if name in in_idx:
                index[1] = in_idx[name]
        new = _resized(old, sizes)
        _copy_into(new, old, index)
        _set_module(small, name, new)
        shapes[name] = {"type": type(old).__name__, **sizes}
    setattr(small, SHAPES_ATTR, shapes)
    return fold_batchnorm(small, shape, copy_model=False) if fold_bn else small


# ------------------------------------------------------------------ BatchNorm folding
_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def batchnorm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(layer, batchnorm)`` names where the BatchNorm reads only that Conv/Linear's output
    and nothing else reads it (found with ``torch.fx``), so the BatchNorm can be folded.

    A module called more than once, a BatchNorm without running statistics, or a model that
    ``torch.fx`` cannot trace gives no pair (folding is an optimisation, never an error).
    """
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - an untraceable model is simply not folded
        log.info("%s cannot be traced with torch.fx; BatchNorm not folded", type(model).__name__)
        return []
    mods = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        bn = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d) or bn.running_mean is None:
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, torch.fx.Node) or src.op != "call_module":
            continue
        layer = mods.get(src.target)
        if (
            type(layer) in _FOLDABLE
            and len(src.users) == 1
            and calls[src.target] == 1
            and calls[node.target] == 1
            and layer.weight.shape[0] == bn.num_features
        ):
            pairs.append((str(src.target), str(node.target)))
    return pairs


def _add_bias(layer: nn.Module) -> None:
    if layer.bias is None:
        w = layer.weight
        layer.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))


@torch.no_grad()
def fold_batchnorm(
    model: nn.Module, input_shape: Sequence[int] | None = None, *, copy_model: bool = True
) -> nn.Module:
    """A copy of ``model`` with every foldable BatchNorm (:func:`batchnorm_pairs`) folded
    into the Conv/Linear before it and replaced by ``nn.Identity``.

    In eval mode BN is ``y = (z - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``;
    with ``z = W x + b`` that is ``W' = s * W`` (per output row) and ``b' = (b - mean) * s
    + beta`` (a bias is added to a layer without one). The result computes what ``model``
    computes in eval mode (float rounding aside; train-mode batch statistics are gone), so it
    is an inference model. The layers' masks stay valid (a zero weight stays zero); a folded
    BatchNorm's own masks go with it (a channel it zeroed has a zero row and bias). The pairs are
    recorded (``sparta_folded``) so that :func:`sparta.save` / :func:`sparta.load`
    rebuild the folded model. ``input_shape`` is accepted for symmetry with :func:`compact`
    and unused. ``copy_model=False`` folds ``model`` itself.
    """
    del input_shape
    out = copy.deepcopy(model) if copy_model else model
    folded: dict[str, str] = dict(getattr(out, FOLDED_ATTR, None) or {})
    for layer_name, bn_name in batchnorm_pairs(out):
        layer, bn = out.get_submodule(layer_name), out.get_submodule(bn_name)
        scale = bn.running_var.add(bn.eps).rsqrt()
        shift = -bn.running_mean * scale
        if bn.affine:
            scale = scale * bn.weight
            shift = shift * bn.weight + bn.bias
        _add_bias(layer)
        layer.weight.mul_(scale.view(-1, *([1] * (layer.weight.dim() - 1))))
        layer.bias.mul_(scale).add_(shift)
        _set_module(out, bn_name, nn.Identity())
        folded[bn_name] = layer_name
    if folded:
        setattr(out, FOLDED_ATTR, folded)
    return out


def _describe_folded(model: nn.Module) -> dict[str, str] | None:
    return getattr(model, FOLDED_ATTR, None) or None


def _restore_folded(model: nn.Module, tensors: dict[str, torch.Tensor], value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"checkpoint extra 'folded' must be a dict, got {type(value).__name__}")
    for bn_name, layer_name in value.items():
        try:
            layer = model.get_submodule(layer_name)
            model.get_submodule(bn_name)
        except AttributeError:
            raise ValueError(
                f"checkpoint folds {bn_name!r} into {layer_name!r}, which the model lacks"
            ) from None
        if type(layer) not in _FOLDABLE:
            raise ValueError(f"checkpoint folds a BatchNorm into {layer_name!r}, a {type(layer)}")
        _add_bias(layer)
        _set_module(model, bn_name, nn.Identity())
    setattr(model, FOLDED_ATTR, dict(value))


# ------------------------------------------------------------------ fastest CPU execution
class _ChannelsLast(nn.Module):
    """Runs ``inner`` (weights in channels-last order) on a channels-last copy of a 4-D input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.inner(x)


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def for_inference(
    model: nn.Module, mode: str | None = None, input_shape: Sequence[int] | None = None
) -> nn.Module:
    """``model`` prepared for fast CPU inference in ``mode`` (default: the mode recorded on
    the model by :func:`choose_inference`, else ``"eager"``, which returns ``model`` itself).

    ``channels_last``: a copy with 4-D weights in channels-last order that converts 4-D
    inputs (oneDNN convolutions are faster on it for some shapes). ``jit``: the eval-mode
    model traced on a zero batch of ``input_shape`` (default: the model's spec) and frozen
    with ``torch.jit.freeze`` (parameters become constants, BatchNorm folded into convs, no
    Python per layer). ``jit_channels_last``: both. The result is for inference only (no
    gradients to the weights; call it under ``torch.no_grad``/``inference_mode``); save the
    eager model (it carries the mode) and call this again after :func:`sparta.load`.
    """
    if mode is None:
        mode = (getattr(model, INFERENCE_ATTR, None) or {}).get("mode", "eager")
    if mode not in INFERENCE_MODES:
        raise ValueError(f"inference mode {mode!r} is not known; allowed: {INFERENCE_MODES}")
    if mode == "eager":
        return model
    out = copy.deepcopy(model).eval()
    last = mode.endswith("channels_last")
    if last:
        out = out.to(memory_format=torch.channels_last)
    if mode.startswith("jit"):
        ref = next(iter(out.parameters()), None)
        x = torch.zeros(
            (2, *input_shape_of(model, input_shape)),
            device=None if ref is None else ref.device,
            dtype=None if ref is None else ref.dtype,
        )
        if last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), warnings.catch_warnings():
            # constants in the trace (sparse weights) are what freezing makes of them anyway;
            # torch 2.13 deprecates torch.jit in favour of torch.compile, which compiled
            # LeNet-5 in 137 s here and ran no faster (BENCHMARKS.md, "Sparsity: real speed")
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            out = torch.jit.freeze(torch.jit.trace(out, x))
    return _ChannelsLast(out) if last else out


def choose_inference(
    model: nn.Module,
    x: torch.Tensor,
    repeats: int = 5,
    modes: Sequence[str] = INFERENCE_MODES,
) -> str:
    """Time ``model`` on ``x`` in each of ``modes`` (:func:`for_inference`; interleaved,
    medians of ``repeats``, :func:`sparta.models.timing.measure_latency`; in eval mode, the
    caller's mode restored), record the
    fastest on the model (``sparta_inference``: the mode and every median in ms, saved by
    :func:`sparta.save`) and return it. Channels-last modes are tried only on a model with a
    Conv2d and 4-D inputs. The choice is the fastest on this machine, for this batch size.
    """
    from sparta.models.timing import measure_latency

    bad = [m for m in modes if m not in INFERENCE_MODES]
    if bad or not modes:
        raise ValueError(f"inference modes {list(modes)} are not all known: {INFERENCE_MODES}")
    if not (_has_conv2d(model) and x.dim() == 4):
        modes = [m for m in modes if not m.endswith("channels_last")] or ["eager"]
    shape = tuple(x.shape[1:])
    runs: dict[str, nn.Module] = {}
    with eval_mode(model):  # the caller's train/eval mode is restored afterwards
        for m in modes:
            try:
                runs[m] = for_inference(model, m, shape)
            except Exception as e:  # noqa: BLE001 - a mode that cannot run is not chosen
                log.info("inference mode %s unavailable for %s: %s", m, type(model).__name__, e)
        ms = measure_latency(runs, x, repeats)
    best = min(ms, key=ms.__getitem__)
    setattr(model, INFERENCE_ATTR, {"mode": best, "ms": {k: round(v, 4) for k, v in ms.items()}})
    return best


def _describe_inference(model: nn.Module) -> dict[str, Any] | None:
    return getattr(model, INFERENCE_ATTR, None) or None


def _restore_inference(model: nn.Module, tensors: dict[str, torch.Tensor], value: Any) -> None:
    if not isinstance(value, dict) or value.get("mode") not in INFERENCE_MODES:
        raise ValueError(
            f"checkpoint extra 'inference' must name a mode of {INFERENCE_MODES}, got {value!r}"
        )
    setattr(model, INFERENCE_ATTR, dict(value))


def _take(t: torch.Tensor, index: dict[int, torch.Tensor], shape: Sequence[int]) -> torch.Tensor:
    """``t`` (shaped like an old parameter) cut along ``index``'s dims to ``shape``."""
    for dim, idx in index.items():
        if t.dim() > dim and t.shape[dim] != shape[dim]:
            t = t.index_select(dim, idx.to(t.device))
    return t


def shrink(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    keeps: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, dict[str, Any]]:
    """Remove, **in place**, the channels where ``keeps[i]`` is False in group ``i``.

    The in-training sibling of :func:`compact`: the resized modules replace the old ones
    inside ``model`` (same names), keeping their weights, mask buffers and gradients cut to
    the kept channels; ``optimizer``'s parameters and per-entry state (momentum, Adam
    moments) follow the new parameters. The new sizes are recorded on ``model``
    (``sparta_shapes``) so that checkpoints and :func:`sparta.save` rebuild it. Returns the
    sizes of the modules it resized.
    """
    out_idx: dict[str, torch.Tensor] = {}
    in_idx: dict[str, torch.Tensor] = {}
    norm_idx: dict[str, torch.Tensor] = {}
    for g, keep in zip(groups, keeps, strict=True):
        if keep.numel() != g.size:
            raise ValueError(f"keep vector of {keep.numel()} for group {g.name} of {g.size}")
        if not bool(keep.any()):
            raise ValueError(f"cannot remove every channel of group {g.name}")
        if bool(keep.all()):
            continue
        idx = keep.cpu().nonzero().flatten()
        for p in g.producers:
            out_idx[p] = idx
        for n in g.norms:
            norm_idx[n] = idx
        for c in g.consumers:
            in_idx[c.module] = (idx[:, None] * c.inner + torch.arange(c.inner)).flatten()
    shapes: dict[str, dict[str, Any]] = dict(getattr(model, SHAPES_ATTR, None) or {})
    moved: dict[int, tuple[nn.Parameter, dict[int, torch.Tensor]]] = {}
    resized = {}
    for name in sorted(set(out_idx) | set(in_idx) | set(norm_idx)):
        old = model.get_submodule(name)
        if name in norm_idx:
            sizes, index = {"features": int(norm_idx[name].numel())}, {0: norm_idx[name]}
        else:
            sizes = {
                "in": int(in_idx[name].numel()) if name in in_idx else int(old.weight.shape[1]),
                "out": int(out_idx[name].numel()) if name in out_idx else int(old.weight.shape[0]),
            }
            index = {d: i[name] for d, i in ((0, out_idx), (1, in_idx)) if name in i}
        new = _resized(old, sizes)
        _copy_into(new, old, index)
        for bname, buf in old._buffers.items():  # masks are not in a fresh module
            if bname.endswith(SUFFIX) and buf is not None:
                pshape = new._parameters[bname[: -len(SUFFIX)]].shape
                new.register_buffer(bname, _take(buf, index, pshape).clone())
        for pname, p in old._parameters.items():
            if p is None:
                continue
            q = new._parameters[pname]
            if p.grad is not None:
                q.grad = _take(p.grad, index, q.shape).clone()
            moved[id(p)] = (q, index)
        _set_module(model, name, new)
        shapes[name] = {"type": type(old).__name__, **sizes}
        resized[name] = sizes
    if optimizer is not None:
        for group in optimizer.param_groups:
            olds = group["params"]
            group["params"] = [moved[id(p)][0] if id(p) in moved else p for p in olds]
            for p in olds:
                if id(p) not in moved or p not in optimizer.state:
                    continue
                q, index = moved[id(p)]
                state = optimizer.state.pop(p)
                optimizer.state[q] = {
                    k: _take(v, index, q.shape).clone()
                    if isinstance(v, torch.Tensor) and v.shape == p.shape
                    else v
                    for k, v in state.items()
                }
    setattr(model, SHAPES_ATTR, shapes)
    return resized


def compact_report(
    dense: nn.Module, small: nn.Module, input_shape: Sequence[int] | None = None
) -> dict[str, Any]:
    """Parameters and MACs of ``small`` (e.g. :func:`compact`'s result) against ``dense``
    (the masked model it came from), with the fractions kept."""
    from sparta.models import count_flops, count_params

    shape = input_shape_of(dense, input_shape)
    params, params_dense = count_params(small), count_params(dense)
    macs, macs_dense = count_flops(small, shape), count_flops(dense, shape)
    return {
        "params": params,
        "params_dense": params_dense,
        "param_fraction": params / params_dense if params_dense else 1.0,
        "macs": macs,
        "macs_dense": macs_dense,
        "mac_fraction": macs / macs_dense if macs_dense else 1.0,
    }


def channel_fraction(model: nn.Module, input_shape: Sequence[int] | None = None) -> float:
    """Fraction of the prunable groups' channels that the masks of ``model`` remove."""
    groups = channel_groups(model, input_shape)
    keeps = kept_channels(model, groups)
    total = sum(g.size for g in groups)
    return 1.0 - sum(int(k.sum()) for k in keeps) / total if total else 0.0


def _describe_shapes(model: nn.Module) -> dict[str, Any] | None:
    return getattr(model, SHAPES_ATTR, None) or None


def _restore_shapes(model: nn.Module, tensors: dict[str, torch.Tensor], value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"checkpoint extra 'shapes' must be a dict, got {type(value).__name__}")
    for name, rec in value.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"checkpoint resizes module {name!r}, which the model lacks") from None
        if type(old).__name__ != rec.get("type"):
            raise ValueError(
                f"checkpoint resizes {name!r} as a {rec.get('type')}, but it is a "
                f"{type(old).__name__}"
            )
        _set_module(model, name, _resized(old, rec))
    setattr(model, SHAPES_ATTR, dict(value))


# ------------------------------------------------------------------ sparse (CSR / BSR) export
class _SparseWeight(nn.Module):
    """Holds a 2-D weight as CSR/BSR buffers and an optional dense bias parameter."""

    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor

    def __init__(self, rec: dict[str, Any], device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.rec = dict(rec)
        rows, cols = rec["shape"]
        bh, bw = rec["blocksize"] if rec["layout"] == "bsr" else (1, 1)
        idx = getattr(torch, rec["index_dtype"])
        self.register_buffer("crow_indices", torch.zeros(rows // bh + 1, dtype=idx, device=device))
        self.register_buffer("col_indices", torch.zeros(rec["nnz"], dtype=idx, device=device))
        vshape = (rec["nnz"],) if rec["layout"] == "csr" else (rec["nnz"], bh, bw)
        self.register_buffer("values", torch.zeros(vshape, dtype=dtype, device=device))
        self.bias = (
            nn.Parameter(torch.zeros(rec["out"], dtype=dtype, device=device))
            if rec["bias"]
            else None
        )

    @classmethod
    def from_dense(
        cls, weight: torch.Tensor, bias: torch.Tensor | None, rec: dict[str, Any]
    ) -> _SparseWeight:
        w = weight.detach().reshape(weight.shape[0], -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            if rec["layout"] == "csr":
                s = w.to_sparse_csr()
            else:
                s = w.to_sparse_bsr(tuple(rec["blocksize"]))
        idx_dtype = torch.int32 if max(w.shape) < 2**31 - 1 and w.numel() < 2**31 else torch.int64
        rec = {
            **rec,
            "shape": list(w.shape),
            "nnz": int(s.col_indices().numel()),
            "index_dtype": str(idx_dtype).removeprefix("torch."),
            "bias": bias is not None,
        }
        mod = cls(rec, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            mod.crow_indices.copy_(s.crow_indices())
            mod.col_indices.copy_(s.col_indices())
            mod.values.copy_(s.values())
            if bias is not None:
                mod.bias.copy_(bias.detach())
                mod.bias.requires_grad_(bias.requires_grad)
        return mod

    def weight_matrix(self) -> torch.Tensor:
        """The weight as a sparse CSR/BSR tensor (built on the buffers, no copy)."""
        make = torch.sparse_csr_tensor if self.rec["layout"] == "csr" else torch.sparse_bsr_tensor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return make(
                self.crow_indices,
                self.col_indices,
                self.values,
                tuple(self.rec["shape"]),
                check_invariants=False,
            )

    def to_dense_weight(self) -> torch.Tensor:
        """The dense weight matrix (for checks)."""
        return self.weight_matrix().to_dense()

    def stored(self) -> int:
        """Number of stored values (explicit zeros inside BSR blocks included)."""
        return self.values.numel()

    def extra_repr(self) -> str:
        r = self.rec
        density = self.stored() / (r["shape"][0] * r["shape"][1])
        block = f", blocksize={tuple(r['blocksize'])}" if r["layout"] == "bsr" else ""
        return f"{r['layout']}, shape={tuple(r['shape'])}{block}, stored={density:.3f}"


class SparseLinear(_SparseWeight):
    """``y = x W^T + b`` with ``W`` a CSR/BSR sparse matrix."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.weight_matrix(), x2.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, y.shape[-1])

    def extra_macs(self, x: torch.Tensor) -> int:
        """Multiply-accumulates actually done: stored values times input rows."""
        return self.stored() * (x.numel() // x.shape[-1])


class SparseConv2d(_SparseWeight):
    """A Conv2d (groups 1, zero padding) as im2col (``F.unfold``) times a sparse matrix."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.rec
        n, _, h, w = x.shape
        k, s, p, d = r["kernel_size"], r["stride"], r["padding"], r["dilation"]
        cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (N, C*kh*kw, L)
        ho = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        wo = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        flat = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # (C*kh*kw, N*L)
        y = torch.sparse.mm(self.weight_matrix(), flat)  # (out, N*L)
        y = y.reshape(r["out"], n, ho * wo).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(n, r["out"], ho, wo)

    def extra_macs(self, x: torch.Tensor) -> int:
        r = self.rec
        h, w = x.shape[2], x.shape[3]
        k, s, p, d = r["kernel_size"], r["stride"], r["padding"], r["dilation"]
        ho = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        wo = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        return self.stored() * x.shape[0] * ho * wo


def _blocksize(blocksize: int | Sequence[int]) -> tuple[int, int]:
    b = (blocksize, blocksize) if isinstance(blocksize, int) else tuple(blocksize)
    if len(b) != 2 or any(not isinstance(v, int) or v < 1 for v in b):
        raise ValueError(f"blocksize must be a positive int or a pair of them, got {blocksize!r}")
    return int(b[0]), int(b[1])


def to_sparse(
    model: nn.Module,
    format: str = "csr",
    blocksize: int | Sequence[int] = 16,
    include_conv: bool = True,
    masked_only: bool = True,
) -> nn.Module:
    """A copy of ``model`` whose masked Linear (and, with ``include_conv``, Conv2d) layers
    multiply with a ``format`` (``"csr"`` or ``"bsr"``) sparse weight.

    ``blocksize`` (BSR) is the tile size; a layer whose shape it does not divide, a grouped
    or non-zero-padded conv stays dense (logged). ``masked_only=False`` converts every such
    layer. Outputs equal the masked model's up to float summation order. The copy records
    its layout (``sparta_sparse``) so :func:`sparta.save`/:func:`sparta.load` round-trip it.
    """
    if format not in FORMATS:
        raise ValueError(f"sparse format {format!r} is not known; allowed: {', '.join(FORMATS)}")
    bh, bw = _blocksize(blocksize)
    out = copy.deepcopy(model)
    records: dict[str, dict[str, Any]] = dict(getattr(out, SPARSE_ATTR, None) or {})
    skipped = []
    for name, mod in list(out.named_modules()):
        is_linear = type(mod) is nn.Linear
        is_conv = type(mod) is nn.Conv2d and include_conv
        if not (is_linear or is_conv):
            continue
        mask = mod._buffers.get("weight" + SUFFIX)
        if masked_only and mask is None:
            continue
        weight = mod.weight.detach() if mask is None else mod.weight.detach() * mask
        rows, cols = weight.shape[0], weight[0].numel()
        rec: dict[str, Any] = {"layout": format, "out": rows}
        if format == "bsr":
            rec["blocksize"] = [bh, bw]
            if rows % bh or cols % bw:
                skipped.append(f"{name} ({rows}x{cols} not divisible by {bh}x{bw})")
                continue
        if is_conv:
            if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                skipped.append(f"{name} (grouped, string or non-zero padding)")
                continue
            rec.update(
                kind="conv2d",
                in_channels=mod.in_channels,
                kernel_size=list(mod.kernel_size),
                stride=list(mod.stride),
                padding=list(mod.padding),
                dilation=list(mod.dilation),
            )
            new: _SparseWeight = SparseConv2d.from_dense(weight, mod.bias, rec)
        else:
            rec["kind"] = "linear"
            new = SparseLinear.from_dense(weight, mod.bias, rec)
        new.train(mod.training)
        _set_module(out, name, new)
        records[name] = new.rec
    if skipped:
        log.info("kept dense: %s", "; ".join(skipped))
    if not records:
        why = f" (kept dense: {'; '.join(skipped)})" if skipped else ""
        raise ValueError(
            f"{type(model).__name__} has no {'masked ' if masked_only else ''}Linear"
            f"{'/Conv2d' if include_conv else ''} layer to convert to {format}{why}"
        )
    setattr(out, SPARSE_ATTR, records)
    return out


def sparse_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors as stored: sparse layers count their ``crow_indices``,
    ``col_indices`` and ``values``, dense layers their full weights; mask buffers are not
    counted. On a dense or masked model it gives the dense baseline."""
    return sum(
        t.numel() * t.element_size()
        for k, t in model.state_dict().items()
        if not k.endswith(SUFFIX)
    )


def stored_values(model: nn.Module) -> int:
    """Parameter entries as stored: sparse layers' values plus every dense parameter."""
    sparse = sum(m.stored() for m in model.modules() if isinstance(m, _SparseWeight))
    return sparse + sum(p.numel() for p in model.parameters())


def _describe_sparse(model: nn.Module) -> dict[str, Any] | None:
    return getattr(model, SPARSE_ATTR, None) or None


def _restore_sparse(model: nn.Module, tensors: dict[str, torch.Tensor], value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"checkpoint extra 'sparse' must be a dict, got {type(value).__name__}")
    for name, rec in value.items():
        vals = tensors.get(f"{name}.values")
        if vals is None:
            raise ValueError(f"checkpoint lists sparse layer {name!r} but holds no values for it")
        cls = SparseConv2d if rec.get("kind") == "conv2d" else SparseLinear
        _set_module(model, name, cls(rec, dtype=vals.dtype))
    setattr(model, SPARSE_ATTR, dict(value))


def _register() -> None:
    io.register_extra(SHAPES_KEY, _describe_shapes, _restore_shapes)
    io.register_extra(FOLDED_KEY, _describe_folded, _restore_folded)
    io.register_extra(SPARSE_KEY, _describe_sparse, _restore_sparse)
    io.register_extra(INFERENCE_KEY, _describe_inference, _restore_inference)
    # restore order follows registration order: sizes first, then folded BatchNorms (biases
    # added), then sparse layers, then the rest (masks of a compacted model must meet the
    # compacted shapes)
    first = (SHAPES_KEY, FOLDED_KEY, SPARSE_KEY, INFERENCE_KEY)
    extras = io._EXTRAS
    for key in [k for k in extras if k not in first]:
        extras[key] = extras.pop(key)


_register()
