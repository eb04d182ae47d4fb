"""A model as a topologically ordered graph of ops that the bound methods understand.

:func:`trace` runs ``torch.fx`` (with :class:`~sparta.models.Normalize` kept as one leaf) and
maps every node to an :class:`Op`. Affine ops (Normalize, Linear, Conv2d, BatchNorm in eval
mode, average pools, Flatten, Dropout/Identity) share one interface: ``lin`` (the map without
its bias), ``abs_lin`` (the same map with ``|W|``, for interval radii), ``back`` (the transpose,
for backward bound propagation) and ``bias``. Non-linear ops are ReLU, MaxPool2d and the
residual ``+``. Ops read their module's parameters at call time, so a traced graph follows
training. Masked (pruned) weights are used as they are: their zeros make pruned neurons exactly
stable, so CROWN spends no rows on them (see :mod:`sparta.certify.crown`).

A :class:`~sparta.certify.grafting.GraftedReLU` is a leaf and a ReLU-like op
(:class:`GraftedReLUOp`, kind ``"relu"``): its grafted neurons are the line
``slope * x + intercept`` (``line``), which every bound method uses exactly, and never unstable.

Traces are cached per model and per input shape, and re-made when the model's modules change
(a module replaced, e.g. by grafting, or added): the cache checks the name, identity and type
of every module.
"""

from __future__ import annotations

import abc
import math
import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from sparta.certify.grafting import GraftedReLU
from sparta.models.layers import Normalize

Interval = tuple[torch.Tensor, torch.Tensor]

SUPPORTED = (
    "Normalize, Flatten, Linear, Conv2d, ReLU, BatchNorm1d/2d (eval), AvgPool2d, "
    "AdaptiveAvgPool2d, MaxPool2d, Dropout, Identity, GraftedReLU and residual '+'; "
    "as functions: relu, max_pool2d, avg_pool2d, adaptive_avg_pool2d, flatten, view, reshape, "
    "dropout, and linear/conv2d on the model's own parameters"
)


class UnsupportedLayerError(ValueError):
    """A layer that the bound methods cannot handle; the message names it."""


def unsupported(what: str, method: str = "certify") -> UnsupportedLayerError:
    return UnsupportedLayerError(f"{method}: {what} is not supported; supported: {SUPPORTED}")


# ----------------------------------------------------------------------------- ops
class Op(abc.ABC):
    """One node's operation on a batch (leading dim) of tensors."""

    kind = "op"

    @abc.abstractmethod
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """The op on concrete tensors."""

    @abc.abstractmethod
    def interval(self, *bs: Interval) -> Interval:
        """Sound interval bounds of the output given interval bounds of the inputs."""


class Affine(Op):
    """``y = lin(x) + bias``; ``back`` is the transpose of ``lin`` on ``(N, *out)`` tensors."""

    kind = "affine"
    diagonal = False  # elementwise (or a reshape): keeps IBP exact when composed

    def __init__(self, in_shape: Sequence[int] = ()) -> None:
        self.in_shape = tuple(in_shape)

    @abc.abstractmethod
    def lin(self, x: torch.Tensor) -> torch.Tensor:
        """The linear part applied to ``x``."""

    @abc.abstractmethod
    def abs_lin(self, r: torch.Tensor) -> torch.Tensor:
        """The linear part with absolute weights applied to a radius ``r`` (for IBP)."""

    def bias(self) -> torch.Tensor | None:
        """Bias broadcastable to ``(1, *out)`` (None: no bias)."""
        return None

    def back(self, a: torch.Tensor) -> torch.Tensor:
        """``a @ J`` for ``a`` of shape ``(N, *out)``: generic vector-Jacobian product."""
        x = torch.zeros((a.shape[0], *self.in_shape), dtype=a.dtype, device=a.device)
        x.requires_grad_(True)
        with torch.enable_grad():
            out = self.lin(x)
            (g,) = torch.autograd.grad(out, x, a, create_graph=a.requires_grad)
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias()
        y = self.lin(x)
        return y if b is None else y + b

    def interval(self, b: Interval) -> Interval:
        """Center/radius form (Gowal et al. 2018, 1810.12715, Eq. 6)."""
        lo, up = b
        c, r = (up + lo) / 2, (up - lo) / 2
        c2, r2 = self.forward(c), self.abs_lin(r)
        return c2 - r2, c2 + r2


class Diag(Affine):
    """Per-channel ``x * scale + shift`` (Normalize, eval BatchNorm); ``scale`` broadcasts."""

    diagonal = True

    def __init__(self, params: Callable[[], tuple[torch.Tensor, torch.Tensor]], ndim: int):
        super().__init__()
        self.params, self.ndim = params, ndim

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * (self.ndim - 2)))

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._view(self.params()[0])

    def abs_lin(self, r: torch.Tensor) -> torch.Tensor:
        return r * self._view(self.params()[0]).abs()

    def bias(self) -> torch.Tensor:
        return self._view(self.params()[1])

    def back(self, a: torch.Tensor) -> torch.Tensor:
        return self.lin(a)


class LinearOp(Affine):
    def __init__(self, m: nn.Linear) -> None:
        super().__init__()
        self.m = m

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.m.weight.t()

    def abs_lin(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.m.weight.abs().t()

    def bias(self) -> torch.Tensor | None:
        return self.m.bias

    def back(self, a: torch.Tensor) -> torch.Tensor:
        return a @ self.m.weight


class ConvOp(Affine):
    def __init__(self, m: nn.Conv2d, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(in_shape)
        self.m = m
        self.out_shape = tuple(out_shape)

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        m = self.m
        return F.conv2d(x, w, None, m.stride, m.padding, m.dilation, m.groups)

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.m.weight)

    def abs_lin(self, r: torch.Tensor) -> torch.Tensor:
        return self._conv(r, self.m.weight.abs())

    def bias(self) -> torch.Tensor | None:
        return None if self.m.bias is None else self.m.bias.view(1, -1, 1, 1)

    def back(self, a: torch.Tensor) -> torch.Tensor:
        m = self.m
        if isinstance(m.padding, str):
            return super().back(a)
        pad = []
        for i in range(2):
            full = (self.out_shape[i + 1] - 1) * m.stride[i] - 2 * m.padding[i]
            full += m.dilation[i] * (m.kernel_size[i] - 1) + 1
            pad.append(self.in_shape[i + 1] - full)
        return conv_transpose(a, m.weight, m.stride, m.padding, tuple(pad), m.groups, m.dilation)


def conv_transpose(
    a: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple,
    padding: tuple,
    output_padding: tuple,
    groups: int,
    dilation: tuple,
) -> torch.Tensor:
    """``F.conv_transpose2d`` (no bias); with stride 1 and one group as the equal ``conv2d``
    with the flipped kernel, which CPU kernels run 1-2.5x faster (benchmarks/certify_lirpa.py)."""
    full = [dilation[i] * (weight.shape[2 + i] - 1) - padding[i] for i in range(2)]
    if tuple(stride) == (1, 1) and groups == 1 and min(full) >= 0 and not any(output_padding):
        w = weight.flip(-2, -1).transpose(0, 1)
        return F.conv2d(a, w, None, 1, tuple(full), dilation)
    return F.conv_transpose2d(a, weight, None, stride, padding, output_padding, groups, dilation)


class PoolOp(Affine):
    """Average pools: linear with non-negative weights, so ``abs_lin`` is the pool itself."""

    def __init__(self, m: nn.Module, in_shape: Sequence[int]) -> None:
        super().__init__(in_shape)
        self.m = m

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def abs_lin(self, r: torch.Tensor) -> torch.Tensor:
        return self.m(r)


class Reshape(Affine):
    """Flatten from ``start_dim`` (Flatten, ``torch.flatten``), or the identity (Dropout)."""

    diagonal = True

    def __init__(self, in_shape: Sequence[int], start_dim: int | None = 1) -> None:
        super().__init__(in_shape)
        self.start_dim = start_dim

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.start_dim is None else x.flatten(self.start_dim)

    abs_lin = lin

    def back(self, a: torch.Tensor) -> torch.Tensor:
        return a.reshape(a.shape[0], *self.in_shape)


class View(Reshape):
    """``x.view``/``x.reshape`` that keeps the batch dimension: per-example ``out_shape``."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(in_shape, None)
        self.out_shape = tuple(out_shape)

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.out_shape)

    abs_lin = lin


class _Params:
    """The weight/bias (and conv options) a functional ``linear``/``conv2d`` reads from the
    model's own parameters, looked up at call time so a traced graph follows training."""

    def __init__(self, root: nn.Module, weight: str, bias: str | None, **conv: object) -> None:
        self.root, self._weight, self._bias = root, weight, bias
        self.padding_mode = "zeros"
        for k, v in conv.items():
            setattr(self, k, v)

    @property
    def weight(self) -> torch.Tensor:
        return _attr(self.root, self._weight)

    @property
    def bias(self) -> torch.Tensor | None:
        return None if self._bias is None else _attr(self.root, self._bias)


def _attr(root: nn.Module, target: str) -> torch.Tensor:
    obj: object = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


class ReLUOp(Op):
    kind = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def interval(self, b: Interval) -> Interval:
        return torch.relu(b[0]), torch.relu(b[1])

    def line(self, like: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """``(mask, slope, intercept)`` broadcastable to ``like`` (B, *shape): neurons that are
        the line ``slope * x + intercept`` (grafted) instead of a ReLU; None when there are none."""
        return None

    def grafted(self, shape: Sequence[int]) -> torch.Tensor | None:
        """Bool tensor of the per-example ``shape``: the linear (grafted) neurons, or None."""
        return None


class GraftedReLUOp(ReLUOp):
    """A :class:`~sparta.certify.grafting.GraftedReLU`: ReLU except on its ``mask`` neurons,
    which are linear (exact interval, and their own line as both CROWN relaxations)."""

    def __init__(self, m: GraftedReLU) -> None:
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def interval(self, b: Interval) -> Interval:
        return self.m.interval(b[0], b[1])

    def line(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.m
        return tuple(m._view(t, like) for t in (m.mask, m.slope, m.intercept))

    def grafted(self, shape: Sequence[int]) -> torch.Tensor:
        like = torch.zeros((1, *shape), device=self.m.mask.device)
        return self.m._view(self.m.mask, like).expand(1, *shape)[0]


class MaxPoolOp(Op):
    kind = "maxpool"

    def __init__(self, m: nn.MaxPool2d) -> None:
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def interval(self, b: Interval) -> Interval:
        return self.m(b[0]), self.m(b[1])  # monotone: exact


class AddOp(Op):
    kind = "add"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    def interval(self, a: Interval, b: Interval) -> Interval:
        return a[0] + b[0], a[1] + b[1]


def _bn_params(m: nn.modules.batchnorm._BatchNorm) -> Callable:
    def params() -> tuple[torch.Tensor, torch.Tensor]:
        if m.running_mean is None or m.running_var is None:
            raise unsupported(f"BatchNorm {m} without running statistics")
        scale = torch.rsqrt(m.running_var + m.eps)
        if m.weight is not None:
            scale = scale * m.weight
        shift = -m.running_mean * scale
        return scale, shift if m.bias is None else shift + m.bias

    return params


def _normalize_params(m: Normalize) -> Callable:
    return lambda: (1 / m.std, -m.mean / m.std)


# ----------------------------------------------------------------------------- graph
@dataclass
class Node:
    name: str
    op: Op | None  # None for the input
    inputs: list[str]
    shape: tuple[int, ...]  # per-example output shape
    exact_ibp: bool = False  # IBP interval is exact (affine map of the input box)
    diag: bool = False  # an elementwise affine image of the input


@dataclass
class Graph:
    """Nodes in topological order; ``nodes[0]`` is the input, ``output`` the logits node."""

    nodes: list[Node]
    output: str
    by_name: dict[str, Node] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {n.name: n for n in self.nodes}

    @property
    def input(self) -> Node:
        return self.nodes[0]

    def relus(self) -> list[Node]:
        return [n for n in self.nodes if n.op is not None and n.op.kind == "relu"]

    def linear_neurons(self, name: str) -> torch.Tensor | None:
        """Neurons of node ``name`` whose bounds no relaxation needs: every ReLU reading them
        is grafted there and no MaxPool reads them (bool, per-example shape; None: none)."""
        users = [n for n in self.nodes if name in n.inputs and n.op is not None]
        users = [n for n in users if n.op.kind in ("relu", "maxpool")]  # type: ignore[union-attr]
        out = None
        for n in users:
            m = n.op.grafted(self.by_name[name].shape) if n.op.kind == "relu" else None  # type: ignore[union-attr]
            if m is None:
                return None
            out = m if out is None else out & m
        return out

    def needs_bounds(self) -> list[str]:
        """Nodes whose bounds the relaxations need (inputs of ReLU and MaxPool), in order."""
        kinds = ("relu", "maxpool")
        want = {n.inputs[0] for n in self.nodes if n.op is not None and n.op.kind in kinds}
        return [n.name for n in self.nodes if n.name in want and n.op is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph (equals the model's eval-mode forward)."""
        vals = {self.input.name: x}
        for n in self.nodes[1:]:
            vals[n.name] = n.op.forward(*(vals[i] for i in n.inputs))  # type: ignore[union-attr]
        return vals[self.output]


class _Tracer(torch.fx.Tracer):
    record_stack_traces = True  # so an unsupported op is named with its source line

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        leaf = isinstance(m, Normalize | GraftedReLU)
        return leaf or super().is_leaf_module(m, qualname)


_MODULE_OPS = (
    Normalize,
    nn.Linear,
    nn.Conv2d,
    nn.ReLU,
    GraftedReLU,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.MaxPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
_ADD = (operator.add, operator.iadd, torch.add)
_RELU = (torch.relu, F.relu)


def _module_op(m: nn.Module, in_shape: tuple, out_shape: tuple) -> Op:
    if isinstance(m, Normalize):
        return Diag(_normalize_params(m), len(in_shape) + 1)
    if isinstance(m, nn.Linear):
        return LinearOp(m)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise unsupported(f"Conv2d with padding_mode={m.padding_mode!r}")
        return ConvOp(m, in_shape, out_shape)
    if isinstance(m, nn.ReLU):
        return ReLUOp()
    if isinstance(m, GraftedReLU):
        return GraftedReLUOp(m)
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        return Diag(_bn_params(m), len(in_shape) + 1)
    if isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
        return PoolOp(m, in_shape)
    if isinstance(m, nn.MaxPool2d):
        return MaxPoolOp(m)
    if isinstance(m, nn.Flatten):
        if m.end_dim != -1:
            raise unsupported(f"Flatten with end_dim={m.end_dim}")
        return Reshape(in_shape, m.start_dim)
    return Reshape(in_shape, None)  # Dropout (eval) and Identity


_MAXPOOL = (F.max_pool2d, torch.max_pool2d)
_AVGPOOL = (F.avg_pool2d,)
_DROPOUT = (F.dropout, torch.dropout, F.dropout2d)


def _arg(node: torch.fx.Node, i: int, key: str, default: object) -> object:
    """Positional argument ``i`` (counting the input as 0) or keyword ``key`` of a call."""
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _pool_module(node: torch.fx.Node, kind: str) -> nn.Module:
    """The pooling module a functional pool call stands for (same options)."""
    if kind == "max":
        if _arg(node, 6, "return_indices", False):
            raise ValueError("return_indices")
        return nn.MaxPool2d(
            _arg(node, 1, "kernel_size", None), _arg(node, 2, "stride", None),  # type: ignore[arg-type]
            _arg(node, 3, "padding", 0), _arg(node, 4, "dilation", 1),  # type: ignore[arg-type]
            ceil_mode=bool(_arg(node, 5, "ceil_mode", False)),
        )  # fmt: skip
    if kind == "adaptive":
        return nn.AdaptiveAvgPool2d(_arg(node, 1, "output_size", None))  # type: ignore[arg-type]
    return nn.AvgPool2d(
        _arg(node, 1, "kernel_size", None), _arg(node, 2, "stride", None),  # type: ignore[arg-type]
        _arg(node, 3, "padding", 0), bool(_arg(node, 4, "ceil_mode", False)),  # type: ignore[arg-type]
        bool(_arg(node, 5, "count_include_pad", True)), _arg(node, 6, "divisor_override", None),  # type: ignore[arg-type]
    )  # fmt: skip


def _view_shape(node: torch.fx.Node, in_shape: tuple, meta: dict) -> tuple[int, ...] | None:
    """Per-example shape of a view/reshape that keeps the batch dimension first (else None)."""
    shape = list(node.args[1:]) if node.op == "call_method" else [node.args[1]]
    if "shape" in node.kwargs or "size" in node.kwargs:
        shape = [node.kwargs.get("shape", node.kwargs.get("size"))]
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = list(shape[0])
    dims = [meta.get(d.name) if isinstance(d, torch.fx.Node) else d for d in shape]
    if not dims or not (dims[0] == "batch" or dims[0] == -1):
        return None
    rest = dims[1:]
    if not all(isinstance(d, int) for d in rest) or (dims[0] == "batch" and rest.count(-1) > 1):
        return None
    total = 1
    for s in in_shape:
        total *= s
    if dims[0] == -1 and -1 in rest:
        return None
    known = 1
    for d in rest:
        known *= d if d != -1 else 1
    if -1 in rest:
        if known == 0 or total % known:
            return None
        rest = [total // known if d == -1 else d for d in rest]
    return tuple(rest) if known and math.prod(rest) == total else None


def _params_of(node: torch.fx.Node, meta: dict, root: nn.Module, conv: bool) -> _Params | None:
    """The functional linear/conv2d's weight and bias, when both are the model's parameters."""
    w, b = _arg(node, 1, "weight", None), _arg(node, 2, "bias", None)
    if not (isinstance(w, torch.fx.Node) and isinstance(meta.get(w.name), tuple)):
        return None
    if b is not None and not (isinstance(b, torch.fx.Node) and isinstance(meta.get(b.name), tuple)):
        return None
    bias = None if b is None else meta[b.name][1]
    if not conv:
        return _Params(root, meta[w.name][1], bias)
    weight = _attr(root, meta[w.name][1])
    pair = torch.nn.modules.utils._pair
    padding = _arg(node, 4, "padding", 0)
    return _Params(
        root, meta[w.name][1], bias, kernel_size=tuple(weight.shape[2:]),
        stride=pair(_arg(node, 3, "stride", 1)),  # type: ignore[arg-type]
        padding=padding if isinstance(padding, str) else pair(padding),  # type: ignore[arg-type]
        dilation=pair(_arg(node, 5, "dilation", 1)),  # type: ignore[arg-type]
        groups=int(_arg(node, 6, "groups", 1)),  # type: ignore[arg-type]
    )  # fmt: skip


def _source(node: torch.fx.Node) -> str:
    """``file:line: code`` of the user's line that made ``node`` ('' when not recorded)."""
    lines = (node.stack_trace or "").splitlines()
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith("File ") and "/torch/" not in text:
            try:
                path = text.split('"')[1]
                num = text.split(", line ")[1].split(",")[0]
            except IndexError:
                continue
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"{path}:{num}: {code}" if code else f"{path}:{num}"
    return ""


def _function_op(
    node: torch.fx.Node,
    in_shape: tuple,
    meta: dict | None = None,
    root: nn.Module | None = None,
) -> Op:
    meta = meta if meta is not None else {}
    t = node.target
    tensors = [a for a in node.args if isinstance(a, torch.fx.Node) and a.name not in meta]
    fn = node.op == "call_function"
    if fn and t in _ADD and len(tensors) == 2 and not node.kwargs:
        return AddOp()
    try:
        if fn and t in _MAXPOOL:
            return MaxPoolOp(_pool_module(node, "max"))  # type: ignore[arg-type]
        if fn and t in _AVGPOOL:
            return PoolOp(_pool_module(node, "avg"), in_shape)
        if fn and t is F.adaptive_avg_pool2d:
            return PoolOp(_pool_module(node, "adaptive"), in_shape)
    except (TypeError, ValueError) as e:
        raise unsupported(f"pool options of '{node.name}' ({e}){_at(node)}") from None
    if fn and t in _DROPOUT:
        return Reshape(in_shape, None)  # eval semantics: the identity
    if (fn and t is torch.reshape) or (node.op == "call_method" and t in ("view", "reshape")):
        shape = _view_shape(node, in_shape, meta)
        if shape is not None:
            return View(in_shape, shape)
        raise unsupported(f"a {t if isinstance(t, str) else 'reshape'} that does not keep the "
                          f"batch dimension first ('{node.name}'){_at(node)}")  # fmt: skip
    if root is not None and fn and t in (F.linear, torch.conv2d):
        params = _params_of(node, meta, root, conv=t is torch.conv2d)
        if params is None:
            raise unsupported(
                f"'{node.name}' with weights that are not the model's own parameters{_at(node)}"
            )
        if t is F.linear:
            return LinearOp(params)  # type: ignore[arg-type]
        return ConvOp(params, in_shape, ())  # type: ignore[arg-type]
    if (node.op == "call_function" and t in _RELU) or (node.op == "call_method" and t == "relu"):
        if node.kwargs.get("inplace") or len(node.args) > 1:
            raise unsupported(f"in-place relu '{node.name}'")
        return ReLUOp()
    is_flatten = (node.op == "call_function" and t is torch.flatten) or (
        node.op == "call_method" and t == "flatten"
    )
    if is_flatten:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        if start != 0 and end == -1:
            return Reshape(in_shape, int(start))
    name = getattr(t, "__name__", str(t))
    raise unsupported(f"operation '{name}' (node '{node.name}'){_at(node)}")


def _at(node: torch.fx.Node) -> str:
    where = _source(node)
    return f" at {where}" if where else ""


def _check_modules(gm: torch.fx.GraphModule, method: str) -> None:
    """Name the first unsupported layer (module types first: they are the useful answer)."""
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            if not isinstance(m, _MODULE_OPS):
                raise unsupported(f"layer '{node.target}' ({type(m).__name__})", method)
    for node in gm.graph.nodes:  # parameters are read by functional linear/conv2d only
        if node.op == "get_attr" and any(u.target not in (F.linear, torch.conv2d)
                                         for u in node.users):  # fmt: skip
            raise unsupported(f"parameter use '{node.target}' outside a layer{_at(node)}", method)


# model -> (module signature, {input shape: graph})
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    """Name, identity and type of every module: changes when a module is replaced or added.

    (An id is not reused while the cached graph holds the module; a module the graph does not
    hold, e.g. an ``nn.ReLU``, is checked by type as well.)"""
    return tuple((name, id(m), type(m)) for name, m in model.named_modules())


def trace(model: nn.Module, input_shape: Sequence[int], method: str = "certify") -> Graph:
    """The graph of ``model`` for per-example inputs of ``input_shape`` (cached per model,
    re-traced when its modules change).

    Raises :class:`UnsupportedLayerError` naming the first layer no bound method supports.
    """
    key = tuple(int(s) for s in input_shape)
    sig = _signature(model)
    cached = _CACHE.get(model)
    if cached is None or cached[0] != sig:
        cached = (sig, {})
        _CACHE[model] = cached
    per_model = cached[1]
    if key in per_model:
        return per_model[key]
    try:
        gm = torch.fx.GraphModule(model, _Tracer().trace(model))
    except Exception as e:  # noqa: BLE001  (tracing failures are a kind of "unsupported")
        raise unsupported(f"model {type(model).__name__} (torch.fx: {e})", method) from e
    _check_modules(gm, method)
    graph = _build(gm, key, method, model)
    per_model[key] = graph
    return graph


def _meta_node(
    fx: torch.fx.Node, meta: dict, shapes: dict, names: dict, input_shape: tuple
) -> bool:
    """Record ``fx`` in ``meta`` when it is a parameter read or a size query; True if so."""
    if fx.op == "get_attr":
        meta[fx.name] = ("param", str(fx.target))
        return True
    src = fx.args[0] if fx.args else None
    if not isinstance(src, torch.fx.Node):
        return False
    per_example = meta.get(src.name)
    if src.name not in meta and src.name in names:
        per_example = shapes.get(names[src.name], input_shape)
    if fx.op == "call_method" and fx.target == "size" and src.name not in meta:
        dim = _arg(fx, 1, "dim", None)
        if isinstance(dim, int):
            meta[fx.name] = "batch" if dim == 0 else int(per_example[dim - 1] if dim > 0
                                                          else per_example[dim])  # fmt: skip
        else:
            meta[fx.name] = ("shape", tuple(per_example))
        return True
    if fx.op == "call_function" and fx.target is getattr and fx.args[1] == "shape":
        if src.name not in meta:
            meta[fx.name] = ("shape", tuple(per_example))
            return True
    if fx.op == "call_function" and fx.target is operator.getitem and isinstance(
        meta.get(src.name), tuple) and meta[src.name][0] == "shape":  # fmt: skip
        i = fx.args[1]
        if isinstance(i, int):
            meta[fx.name] = "batch" if i == 0 else int(meta[src.name][1][i - 1 if i > 0 else i])
            return True
    return False


def _build(
    gm: torch.fx.GraphModule, input_shape: tuple, method: str, root: nn.Module | None = None
) -> Graph:
    """The graph of ``gm``; functional ops read their parameters from ``root`` (the model)."""
    tensors = [*gm.parameters(), *gm.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    nodes: list[Node] = []
    shapes: dict[str, tuple] = {}
    vals: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for fx in gm.graph.nodes:
        if fx.op == "call_module":
            counts[fx.target] = counts.get(fx.target, 0) + 1
    names: dict[str, str] = {}
    # fx nodes that are no tensor of the graph: parameters ("param", target), the batch size
    # ("batch": x.size(0), x.shape[0]), other sizes (ints) and shapes ("shape", per-example)
    meta: dict[str, object] = {}
    output = None
    for fx in gm.graph.nodes:
        if _meta_node(fx, meta, shapes, names, input_shape):
            continue
        if fx.op == "placeholder":
            if nodes:
                raise unsupported("a model with more than one input", method)
            names[fx.name] = fx.name
            vals[fx.name] = torch.zeros((1, *input_shape), device=device)
            nodes.append(Node(fx.name, None, [], input_shape, exact_ibp=True, diag=True))
            continue
        if fx.op == "output":
            arg = fx.args[0]
            if not isinstance(arg, torch.fx.Node):
                raise unsupported("a model whose output is not one tensor", method)
            output = names[arg.name]
            break
        args = [a for a in fx.args if isinstance(a, torch.fx.Node) and a.name not in meta]
        inputs = [names[a.name] for a in args]
        in_shape = shapes.get(inputs[0], input_shape) if inputs else input_shape
        x_in = [vals[i] for i in inputs]
        if fx.op == "call_module":
            op = _module_op(gm.get_submodule(fx.target), in_shape, ())
            name = fx.target if counts[fx.target] == 1 else fx.name
        else:
            op, name = _function_op(fx, in_shape, meta, gm if root is None else root), fx.name
        with torch.no_grad():
            out = op.forward(*x_in)
        if isinstance(op, ConvOp):
            op.out_shape = tuple(out.shape[1:])
        names[fx.name] = name
        vals[name] = out
        shapes[name] = tuple(out.shape[1:])
        srcs = [n for n in nodes if n.name in inputs]
        affine = isinstance(op, Affine)
        diag = affine and op.diagonal and all(s.diag for s in srcs)
        exact = diag or (affine and all(s.diag for s in srcs))
        nodes.append(Node(name, op, inputs, shapes[name], exact_ibp=exact, diag=diag))
    if output is None:
        raise unsupported("a model without an output", method)
    return Graph(nodes, output)
