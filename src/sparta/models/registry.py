"""Model registry: stable names -> builders, and specs that rebuild a model exactly.

Builders are registered with :func:`register_model` and take ``(info, width=..., **options)``
where ``info`` is a :class:`~sparta.data.base.DatasetInfo`. :func:`create` records what it was
called with on the model (``model.sparta_spec``), so a checkpoint can rebuild the architecture
with :func:`from_spec`.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from sparta.data.base import DatasetInfo, ImageDataset
from sparta.registry import Registry, canonical

DatasetLike = DatasetInfo | ImageDataset | str | Mapping[str, Any]
Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

SPEC_ATTR = "sparta_spec"


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    aliases: tuple[str, ...]
    options: tuple[str, ...]  # keyword options the builder accepts besides info and width

    @property
    def doc(self) -> str:
        """First line of the builder's docstring."""
        return (inspect.getdoc(self.builder) or "").split("\n")[0]


#: every model builder by name; ``meta['entry']`` is its :class:`ModelEntry`
MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "models", populate="sparta.models", label="model"
)


def _builder_options(fn: Callable[..., nn.Module]) -> tuple[str, ...]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # skip info
    return tuple(
        p.name
        for p in params
        if p.name != "width" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def register_model(
    name: str, aliases: tuple[str, ...] | list[str] = (), family: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder ``fn(info, width=1.0, **options) -> nn.Module``.

    Names are case-insensitive and ``_`` is read as ``-``; registering a taken name raises.
    """

    def decorate(fn: Builder) -> Builder:
        key = canonical(name)
        alias_keys = tuple(canonical(a) for a in aliases)
        fam = family or key
        model_entry = ModelEntry(key, fn, fam, alias_keys, _builder_options(fn))
        MODELS.add(name, fn, aliases=alias_keys, family=fam, entry=model_entry)
        return fn

    return decorate


def names(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Sorted canonical model names, optionally filtered by an fnmatch ``pattern``
    (e.g. ``"resnet*"``, also matched against aliases) and/or a ``family`` (``"resnet"``)."""
    return MODELS.names(pattern, **({} if family is None else {"family": family}))


def entry(name: str) -> ModelEntry:
    """The registry entry for ``name`` (canonical name or alias); ``ValueError`` if unknown."""
    return MODELS.get(name).meta["entry"]


def resolve_dataset(dataset: DatasetLike) -> DatasetInfo:
    """Turn a ``DatasetInfo``, a dataset object, a spec dict or a dataset name into a
    ``DatasetInfo``."""
    if isinstance(dataset, DatasetInfo):
        return dataset
    if isinstance(dataset, str):
        try:
            from sparta.data import info as dataset_info  # lazy: data may import more
        except ImportError as e:  # pragma: no cover - depends on the data package
            raise ValueError(
                f"cannot resolve dataset {dataset!r}: sparta.data.info is unavailable ({e})"
            ) from e
        return dataset_info(dataset)
    if isinstance(dataset, Mapping):
        try:
            return DatasetInfo(
                name=str(dataset.get("name", "custom")),
                input_shape=tuple(int(v) for v in dataset["input_shape"]),  # type: ignore[arg-type]
                num_classes=int(dataset["num_classes"]),
                mean=tuple(float(v) for v in dataset["mean"]),
                std=tuple(float(v) for v in dataset["std"]),
                classes=tuple(str(c) for c in dataset.get("classes", ())),
            )
        except KeyError as e:
            raise ValueError(
                f"dataset dict lacks {e}; needs input_shape, num_classes, mean, std"
            ) from None
    needed = ("input_shape", "num_classes", "mean", "std")
    if all(hasattr(dataset, a) for a in needed):
        return DatasetInfo(
            name=str(getattr(dataset, "name", "custom")),
            input_shape=tuple(int(v) for v in dataset.input_shape),  # type: ignore[arg-type]
            num_classes=int(dataset.num_classes),
            mean=tuple(float(v) for v in dataset.mean),
            std=tuple(float(v) for v in dataset.std),
            classes=tuple(str(c) for c in getattr(dataset, "classes", ()) or ()),
        )
    raise ValueError(
        f"dataset must be a DatasetInfo, a dataset, a dict or a dataset name, "
        f"got {type(dataset).__name__}"
    )


def _check_info(info: DatasetInfo) -> None:
    shape = tuple(info.input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"dataset input_shape must be (C, H, W), got {shape}")
    if info.num_classes < 1:
        raise ValueError(f"dataset num_classes must be >= 1, got {info.num_classes}")
    if len(info.mean) != len(info.std) or len(info.mean) not in (1, shape[0]):
        raise ValueError(
            f"dataset mean/std must have 1 or {shape[0]} values, "
            f"got {len(info.mean)} and {len(info.std)}"
        )


def info_to_dict(info: DatasetInfo) -> dict[str, Any]:
    """A JSON-able dict of a ``DatasetInfo`` (tuples become lists)."""
    return {
        "name": info.name,
        "input_shape": [int(v) for v in info.input_shape],
        "num_classes": int(info.num_classes),
        "mean": [float(v) for v in info.mean],
        "std": [float(v) for v in info.std],
        "classes": [str(c) for c in info.classes],
    }


def create(
    name: str,
    dataset: DatasetLike,
    width: float = 1.0,
    *,
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> nn.Module:
    """Build the registered model ``name`` for ``dataset`` with a width multiplier.

    ``dataset`` is a ``DatasetInfo``, an ``ImageDataset``, a dict as stored in a spec, or a
    dataset name resolved by ``sparta.data.info``. Extra keyword ``options`` go to the builder
    (``kwargs=`` is merged in as well, so ``create(**spec_of(model))`` works). The model gets a
    ``sparta_spec`` dict attribute from which :func:`from_spec` rebuilds it.

    Your own model: ``name`` may be an import path ``"my_pkg.models:make_net"``. The callable
    gets, of ``info`` (the DatasetInfo), ``num_classes``, ``input_shape`` and ``width``, those
    it names as parameters, plus the ``options``; it returns the ``nn.Module``. The spec
    records the path as given, so a checkpoint reloads it wherever the module is importable.
    """
    from sparta.data.adapt import import_callable, is_import_path

    own = is_import_path(name)
    e = _own_entry(name, import_callable(name, "model")) if own else entry(name)
    info = resolve_dataset(dataset)
    _check_info(info)
    if isinstance(width, bool) or not isinstance(width, int | float):
        raise ValueError(f"width must be a positive number, got {width!r}")
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a positive number, got {width!r}")
    opts = {**(kwargs or {}), **options}
    bad = sorted(set(opts) - set(e.options)) if e.options != ("**",) else []
    if bad:
        allowed = ", ".join(e.options) or "none"
        raise ValueError(f"model {e.name!r} has no option {bad[0]!r}; allowed options: {allowed}")
    try:
        json_opts = json.loads(json.dumps(opts))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"model options must be JSON-serialisable so checkpoints can rebuild the model: {err}"
        ) from None
    if own:
        model = e.builder(**_own_arguments(e.builder, info, float(width)), **opts)
        if not isinstance(model, nn.Module):
            raise ValueError(f"model {name!r} returned {type(model).__name__}, not an nn.Module")
    else:
        model = e.builder(info, width=float(width), **opts)
    setattr(
        model,
        SPEC_ATTR,
        {
            "name": e.name,
            "dataset": info_to_dict(info),
            "width": float(width),
            "kwargs": json_opts,
        },
    )
    return model


_OWN_ARGUMENTS = ("info", "num_classes", "input_shape", "width")


def _own_entry(name: str, fn: Callable[..., nn.Module]) -> ModelEntry:
    """A registry-like entry for a user's builder given by import path."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        options: tuple[str, ...] = ("**",)
    else:
        options = tuple(
            p.name for p in params
            if p.name not in _OWN_ARGUMENTS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )  # fmt: skip
    return ModelEntry(name, fn, "custom", (), options)


def _own_arguments(fn: Callable[..., nn.Module], info: DatasetInfo, width: float) -> dict:
    named = inspect.signature(fn).parameters
    values = {"info": info, "num_classes": info.num_classes,
              "input_shape": tuple(info.input_shape), "width": width}  # fmt: skip
    return {k: v for k, v in values.items() if k in named}


def spec_of(model: nn.Module) -> dict[str, Any]:
    """A copy of the spec that :func:`create` attached to ``model`` (JSON-able)."""
    for m in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        spec = getattr(m, SPEC_ATTR, None) if m is not None else None
        if isinstance(spec, dict):
            return copy.deepcopy(spec)
    raise ValueError(
        f"{type(model).__name__} has no {SPEC_ATTR!r}: it was not built by sparta.models.create, "
        "so a checkpoint could not rebuild it. To make it reloadable, register its builder "
        "(@sparta.models.register_model('my-net') on fn(info, width=1.0) -> nn.Module) and build "
        "it with sparta.models.create('my-net', dataset=...), or build it from an import path: "
        "sparta.models.create('my_pkg.models:make_net', dataset=...)"
    )


def from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from :func:`spec_of` output (weights are freshly initialised)."""
    if not isinstance(spec, Mapping) or "name" not in spec or "dataset" not in spec:
        raise ValueError(f"a model spec needs 'name' and 'dataset' keys, got {spec!r}")
    return create(
        spec["name"],
        spec["dataset"],
        spec.get("width", 1.0),
        kwargs=spec.get("kwargs") or {},
    )
