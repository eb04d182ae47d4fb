"""Dependency-aware channel groups: the channels that must be removed together.

:func:`channel_groups` traces a model with ``torch.fx``, runs it once on zeros to learn the
shapes, and follows every channel from the layer that makes it (a *producer*: the output rows
of a Conv2d/Linear and their bias) through per-channel layers (BatchNorm: weight, bias and
running statistics; activations, dropout, pooling) to the layers that read it (a *consumer*:
the input columns of the next Conv2d/Linear, ``inner`` consecutive columns per channel when a
``Flatten`` turns a C x H x W map into C*H*W features). Residual additions (and other
elementwise ops on two tracked tensors) merge the groups of their operands, so a ResNet stage
with identity shortcuts is one group holding every conv that writes into the shared stream
(the 1x1 projection shortcuts included) and every conv/BN that reads it.

A group is **fixed** (never pruned) when its channels reach something that channel removal
cannot reproduce exactly:

- the network input and the output logits;
- LayerNorm/GroupNorm (their statistics mix all channels, so masking a channel to zero is not
  the same as removing it); this is why the ViT's embedding dimension, shared by every
  residual branch, is fixed;
- reshapes, indexing, concatenation, matmuls, softmax and any op this tracer does not know
  (e.g. the ViT's ``qkv`` output and ``proj`` input, split into heads by a reshape);
- grouped/depthwise convolutions and modules called more than once.

What is grouped in the registry: every hidden conv/linear width of the MLPs, LeNet, Conv-2/4/6
and VGG (including conv -> flatten -> linear), every ResNet/WRN inner block width and each
residual stream (stem, blocks and shortcuts of a stage together), and the ViT's MLP hidden
dimension (``fc1`` rows and bias, ``fc2`` columns) in every block.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from sparta.models.utils import device_of, dtype_of, eval_mode, input_shape_of

PRODUCERS = (nn.Conv2d, nn.Conv1d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)

# modules and functions that act on each channel separately (element-wise or spatially)
_ELEMENTWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Mish,
    nn.Dropout,
    nn.Identity,
)
_SPATIAL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout2d,
)
_F = torch.nn.functional
_ELEMENTWISE_FUNCTIONS = {
    torch.relu,
    _F.relu,
    _F.relu6,
    _F.gelu,
    _F.silu,
    _F.leaky_relu,
    _F.dropout,
    torch.sigmoid,
    torch.tanh,
    _F.sigmoid,
    _F.tanh,
}
_SPATIAL_FUNCTIONS = {_F.max_pool2d, _F.avg_pool2d, _F.adaptive_avg_pool2d}
_ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone", "float", "detach"}
_BINARY = {
    operator.add,
    operator.iadd,
    operator.sub,
    operator.mul,
    operator.truediv,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
}
_BINARY_METHODS = {"add", "add_", "sub", "mul", "div"}


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a group's channels: channel ``c`` is its input columns
    ``c * inner ... c * inner + inner - 1`` (``inner > 1`` after a Flatten)."""

    module: str
    inner: int = 1


@dataclass
class ChannelGroup:
    """Channels that must be removed together (``size`` of them, indexed alike everywhere).

    ``producers``: Conv/Linear modules whose output rows (and bias) are the channels.
    ``norms``: BatchNorm modules normalising them. ``consumers``: Conv/Linear modules whose
    input columns read them. ``prunable`` is False for a fixed group, with ``reason`` saying
    why (e.g. it feeds the output logits).
    """

    size: int
    producers: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    prunable: bool = True
    reason: str = ""

    @property
    def name(self) -> str:
        """A short stable name: the first producer (or ``"input"``)."""
        return self.producers[0] if self.producers else "input"

    def __repr__(self) -> str:
        cons = [c.module if c.inner == 1 else f"{c.module}(x{c.inner})" for c in self.consumers]
        state = "prunable" if self.prunable else f"fixed: {self.reason}"
        return (
            f"ChannelGroup({self.size} channels, producers={list(self.producers)}, "
            f"norms={list(self.norms)}, consumers={cons}, {state})"
        )


@dataclass
class _Info:
    """Where a traced value keeps its channels: group id, tensor dim, features per channel."""

    gid: int
    dim: int
    inner: int = 1


@dataclass
class _Group:
    size: int
    producers: list[str] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    reason: str = ""


class _Tracer:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.parent: list[int] = []
        self.groups: list[_Group] = []
        self.info: dict[torch.fx.Node, _Info] = {}
        self.calls: dict[str, int] = {}

    # union-find over group ids
    def new(self, size: int, reason: str = "") -> int:
        self.parent.append(len(self.parent))
        self.groups.append(_Group(size, reason=reason))
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        ga, gb = self.groups[ra], self.groups[rb]
        self.parent[rb] = ra
        ga.producers += gb.producers
        ga.norms += gb.norms
        ga.consumers += gb.consumers
        ga.reason = ga.reason or gb.reason
        if ga.size != gb.size:
            ga.reason = ga.reason or f"channel counts {ga.size} and {gb.size} meet"
        return ra

    def block(self, info: _Info | None, reason: str) -> None:
        if info is not None:
            g = self.groups[self.find(info.gid)]
            g.reason = g.reason or reason

    # tracing
    def run(self, gm: torch.fx.GraphModule) -> list[ChannelGroup]:
        for node in gm.graph.nodes:
            self.visit(node)
        for name, n in self.calls.items():
            if n > 1:
                for g in self.groups:
                    if name in g.producers or any(c.module == name for c in g.consumers):
                        g.reason = g.reason or f"{name} is called {n} times"
        roots = sorted({self.find(i) for i in range(len(self.parent))})
        out = []
        for r in roots:
            g = self.groups[r]
            out.append(
                ChannelGroup(
                    size=g.size,
                    producers=tuple(dict.fromkeys(g.producers)),
                    norms=tuple(dict.fromkeys(g.norms)),
                    consumers=tuple(dict.fromkeys(g.consumers)),
                    prunable=not g.reason,
                    reason=g.reason,
                )
            )
        return out

    def tracked_inputs(self, node: torch.fx.Node) -> list[_Info]:
        found: list[_Info] = []
        torch.fx.node.map_arg(
            (node.args, node.kwargs),
            lambda a: found.append(self.info[a]) if a in self.info else None,
        )
        return found

    def generic(self, node: torch.fx.Node, why: str) -> None:
        """An op the tracer does not model: its tracked inputs become fixed."""
        if not _has_tensor(node.meta.get("tensor_meta")):
            return  # x.shape, x.size(): reads no channel values
        for info in self.tracked_inputs(node):
            self.block(info, why)

    def visit(self, node: torch.fx.Node) -> None:
        if node.op == "placeholder":
            shape = _shape(node)
            if shape is not None and len(shape) >= 2:
                self.info[node] = _Info(self.new(shape[1], "network input"), 1)
        elif node.op == "output":
            for info in self.tracked_inputs(node):
                self.block(info, "feeds the output")
        elif node.op == "call_module":
            self.calls[str(node.target)] = self.calls.get(str(node.target), 0) + 1
            self.visit_module(node, self.modules[str(node.target)])
        elif node.op in ("call_function", "call_method"):
            self.visit_function(node)

    def first(self, node: torch.fx.Node) -> _Info | None:
        a = node.args[0] if node.args else None
        return self.info.get(a) if isinstance(a, torch.fx.Node) else None

    def visit_module(self, node: torch.fx.Node, mod: nn.Module) -> None:
        name = str(node.target)
        x = self.first(node)
        shape = _shape(node.args[0]) if node.args else None
        ndim = len(shape) if shape is not None else 0
        if isinstance(mod, PRODUCERS):
            is_conv = not isinstance(mod, nn.Linear)
            if is_conv and mod.groups != 1:
                self.block(x, f"grouped convolution {name}")
                self.generic(node, f"grouped convolution {name}")
                out = _shape(node)
                if out is not None:
                    gid = self.new(out[1], f"grouped convolution {name}")
                    self.info[node] = _Info(gid, 1)
                return
            want = 1 if is_conv else ndim - 1
            if x is not None:
                if x.dim == want and (x.inner == 1 or not is_conv):
                    self.groups[self.find(x.gid)].consumers.append(Consumer(name, x.inner))
                else:
                    self.block(x, f"{name} reads its channels along another dimension")
            size = mod.out_channels if is_conv else mod.out_features
            gid = self.new(size)
            self.groups[gid].producers.append(name)
            self.info[node] = _Info(gid, 1 if is_conv else ndim - 1)
        elif isinstance(mod, NORMS):
            if x is not None and x.dim == 1 and x.inner == 1:
                self.groups[self.find(x.gid)].norms.append(name)
                self.info[node] = x
            else:
                self.generic(node, f"{type(mod).__name__} {name}")
        elif isinstance(mod, _ELEMENTWISE_MODULES):
            if x is not None:
                self.info[node] = x
        elif isinstance(mod, _SPATIAL_MODULES):
            if x is not None and x.dim == 1:
                self.info[node] = x
            else:
                self.generic(node, f"{type(mod).__name__} {name}")
        elif isinstance(mod, nn.Flatten):
            self.flatten(node, x, mod.start_dim, mod.end_dim)
        else:
            self.generic(node, f"{type(mod).__name__} {name}")

    def visit_function(self, node: torch.fx.Node) -> None:
        t = node.target
        method = node.op == "call_method"
        x = self.first(node)
        if (method and t in _ELEMENTWISE_METHODS) or (not method and t in _ELEMENTWISE_FUNCTIONS):
            if x is not None:
                self.info[node] = x
        elif not method and t in _SPATIAL_FUNCTIONS:
            if x is not None and x.dim == 1:
                self.info[node] = x
            else:
                self.generic(node, f"{getattr(t, '__name__', t)}")
        elif (method and t in _BINARY_METHODS) or (not method and t in _BINARY):
            self.binary(node)
        elif t in ("flatten", torch.flatten):
            args = _args(node, ("input", "start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1})
            self.flatten(node, x, args["start_dim"], args["end_dim"])
        elif t in ("transpose", torch.transpose) and x is not None:
            args = _args(node, ("input", "dim0", "dim1"), {})
            ndim = len(_shape(node) or ())
            a, b = args["dim0"] % ndim, args["dim1"] % ndim
            dim = b if x.dim == a else a if x.dim == b else x.dim
            self.info[node] = _Info(x.gid, dim, x.inner)
        elif t in ("permute", torch.permute) and x is not None:
            dims = [d for a in node.args[1:] for d in (a if isinstance(a, Sequence) else [a])]
            ndim = len(dims)
            order = [int(d) % ndim for d in dims]
            self.info[node] = _Info(x.gid, order.index(x.dim), x.inner)
        else:
            self.generic(node, f"op {getattr(t, '__name__', t)}")

    def flatten(self, node: torch.fx.Node, x: _Info | None, start: int, end: int) -> None:
        if x is None:
            return
        shape = _shape(node.args[0])
        if shape is None:
            self.block(x, "flatten of unknown shape")
            return
        ndim = len(shape)
        s, e = start % ndim, end % ndim
        if x.dim < s:
            self.info[node] = x
        elif x.dim > e:
            self.info[node] = _Info(x.gid, x.dim - (e - s), x.inner)
        elif x.dim == s:
            inner = x.inner * math.prod(shape[s + 1 : e + 1])
            self.info[node] = _Info(x.gid, s, inner)
        else:
            self.block(x, "flatten that splits the channel dimension")

    def binary(self, node: torch.fx.Node) -> None:
        out = _shape(node)
        if out is None:
            self.generic(node, "binary op")
            return
        ndim = len(out)
        tracked: list[_Info] = []
        for a in node.args[:2]:
            if not isinstance(a, torch.fx.Node):
                continue  # a python number
            info = self.info.get(a)
            if info is not None:
                if len(_shape(a) or ()) != ndim:
                    self.block(info, "broadcast that changes the rank")
                    continue
                tracked.append(info)
        if not tracked:
            return
        first = tracked[0]
        for info in tracked[1:]:
            if (info.dim, info.inner) != (first.dim, first.inner):
                self.block(info, "element-wise op on channels laid out differently")
                self.block(first, "element-wise op on channels laid out differently")
                return
            self.union(first.gid, info.gid)
        # an untracked tensor operand (a parameter or buffer) must broadcast over channels
        for a in node.args[:2]:
            if isinstance(a, torch.fx.Node) and a not in self.info:
                shape = _shape(a)
                if shape is None:
                    continue
                k = first.dim - (ndim - len(shape))
                if k >= 0 and shape[k] != 1:
                    what = a.target if a.op == "get_attr" else a.name
                    self.block(first, f"combined with {what}, whose channels are not tracked")
        self.info[node] = first


def _args(node: torch.fx.Node, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    out.update(dict(zip(names, node.args, strict=False)))
    out.update(node.kwargs)
    return out


def _shape(node: Any) -> tuple[int, ...] | None:
    if not isinstance(node, torch.fx.Node):
        return None
    tm = node.meta.get("tensor_meta")
    shape = getattr(tm, "shape", None)
    return tuple(int(v) for v in shape) if shape is not None else None


def _has_tensor(meta: Any) -> bool:
    if meta is None:
        return False
    if hasattr(meta, "shape"):
        return True
    if isinstance(meta, (list, tuple)):
        return any(_has_tensor(m) for m in meta)
    if isinstance(meta, dict):
        return any(_has_tensor(m) for m in meta.values())
    return False


def channel_groups(
    model: nn.Module, input_shape: Sequence[int] | None = None, include_fixed: bool = False
) -> list[ChannelGroup]:
    """The channel groups of ``model`` for one input of ``input_shape`` (``(C, H, W)``;
    default: the shape in the model's sparta spec), in graph order.

    Only prunable groups are returned unless ``include_fixed``. The model runs once on zeros
    in eval mode under ``no_grad`` (its train/eval mode is restored).
    """
    shape = input_shape_of(model, input_shape)
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure is the same user error
        raise ValueError(
            f"{type(model).__name__} cannot be traced with torch.fx, so its channel groups "
            f"are unknown: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    zeros = torch.zeros((1, *shape), device=device_of(model), dtype=dtype_of(model))
    with eval_mode(model), torch.no_grad():
        ShapeProp(gm).propagate(zeros)
    groups = _Tracer(model).run(gm)
    return [g for g in groups if include_fixed or g.prunable]


def group_modules(groups: Iterable[ChannelGroup]) -> set[str]:
    """Every module name that appears in ``groups``."""
    out: set[str] = set()
    for g in groups:
        out.update(g.producers, g.norms, (c.module for c in g.consumers))
    return out
