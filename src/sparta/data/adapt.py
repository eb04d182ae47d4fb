"""Your own data: any ``(x, y)`` Dataset or DataLoader, an image folder, or an import path.

:func:`as_dataset` is the one adapter every pillar calls on the data it is given: a sparta
:class:`ImageDataset` passes through unchanged; a ``torch.utils.data.Dataset`` yielding
``(x, y)`` pairs, a ``DataLoader`` yielding ``(x, y)`` batches, or an ``(x, y)`` tensor pair is
read once into memory as an ImageDataset whose metadata (input shape, number of classes,
per-channel mean/std) is inferred from the samples.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .base import DatasetInfo, ImageDataset

log = logging.getLogger(__name__)

#: ``--dataset folder:/path`` reads an image folder (see :func:`image_folder`)
FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _image_tensor(x: Any) -> torch.Tensor:
    """One sample (or batch) as a float tensor in [0, 1]: PIL images and uint8 become /255."""
    if not isinstance(x, torch.Tensor):
        try:
            import numpy as np

            arr = np.asarray(x)
        except Exception as e:  # pragma: no cover - exotic sample types
            raise ValueError(
                f"cannot read a sample of type {type(x).__name__} as an image: {e}"
            ) from None
        if arr.dtype == object:
            raise ValueError(f"cannot read a sample of type {type(x).__name__} as an image")
        t = torch.from_numpy(arr.copy())
        if type(x).__module__.startswith("PIL"):  # H x W (x C) -> C x H x W
            t = t.unsqueeze(-1) if t.ndim == 2 else t
            t = t.permute(2, 0, 1)
        x = t
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _label_tensor(y: Any) -> torch.Tensor:
    t = torch.as_tensor(y)
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError("labels must be integer class indices, got non-integer floats")
    return t.long()


def _materialise(obj: Iterable[Any], batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack every ``(x, y)`` of a Dataset (one sample each) or DataLoader (one batch each)."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    source = obj if batched else (obj[i] for i in range(len(obj)))  # type: ignore[index,arg-type]
    for item in source:
        if not isinstance(item, Sequence | tuple) or len(item) < 2:
            raise ValueError(
                f"a dataset must yield (x, y) pairs, got {type(item).__name__}"
                + (f" of length {len(item)}" if hasattr(item, "__len__") else "")
            )
        x, y = _image_tensor(item[0]), _label_tensor(item[1])
        xs.append(x if batched else x.unsqueeze(0))
        ys.append(y.reshape(-1))
    if not xs:
        raise ValueError("the dataset is empty; it must yield at least one (x, y) pair")
    shapes = {tuple(x.shape[1:]) for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"all images must have one shape, got {sorted(shapes)[:3]}")
    return torch.cat(xs), torch.cat(ys)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 3:  # N x H x W: one channel
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"images must be N x C x H x W (or N x H x W), got shape {tuple(x.shape)}")
    return x


def _num_classes(obj: Any, y: torch.Tensor, num_classes: int | None) -> int:
    for source in (obj, getattr(obj, "dataset", None)):  # a DataLoader's dataset
        if num_classes is None and source is not None:
            n = getattr(source, "num_classes", None)
            classes = getattr(source, "classes", None)
            if isinstance(n, int):
                num_classes = n
            elif isinstance(classes, Sequence) and not isinstance(classes, str) and classes:
                num_classes = len(classes)
    seen = int(y.max()) + 1 if len(y) else 1
    if num_classes is None:
        num_classes = max(seen, 2)
    if int(y.min()) < 0 or seen > num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{seen - 1}")
    return num_classes


def infer_info(
    x: torch.Tensor, y: torch.Tensor, name: str = "custom", num_classes: int | None = None,
    classes: Sequence[str] = (),
) -> DatasetInfo:  # fmt: skip
    """A :class:`DatasetInfo` measured from images ``x`` (N x C x H x W) and labels ``y``."""
    flat = x.transpose(0, 1).flatten(1).double()
    std = tuple(max(float(s), 1e-3) for s in flat.std(1, unbiased=False))
    n = _num_classes(None, y, num_classes)
    return DatasetInfo(
        name=name,
        input_shape=tuple(int(s) for s in x.shape[1:]),  # type: ignore[arg-type]
        num_classes=n,
        mean=tuple(float(m) for m in flat.mean(1)),
        std=std,
        classes=tuple(str(c) for c in classes) if len(classes) == n else (),
    )


def as_dataset(
    obj: Any,
    *,
    name: str | None = None,
    split: str = "train",
    num_classes: int | None = None,
    info: DatasetInfo | None = None,
) -> ImageDataset:
    """``obj`` as an in-memory :class:`ImageDataset` (an ImageDataset is returned as is).

    ``obj``: an ``(x, y)`` pair of tensors, a ``torch.utils.data.Dataset`` yielding ``(x, y)``
    samples, or a ``DataLoader`` (any iterable of ``(x, y)`` batches). Images may be float
    tensors in [0, 1], uint8 tensors or PIL images (both scaled by 1/255); ``C x H x W`` or
    ``H x W``. ``num_classes`` (or ``obj.num_classes``/``len(obj.classes)``, else the largest
    label + 1) and ``info`` (else measured from the images) give the metadata. Images outside
    [0, 1] are a ValueError: sparta works in pixel space (normalise inside the model).
    """
    if isinstance(obj, ImageDataset):
        return obj
    if isinstance(obj, DatasetInfo) or obj is None or isinstance(obj, str | os.PathLike):
        raise ValueError(
            f"expected data: an ImageDataset, a Dataset or DataLoader of (x, y), or an (x, y) "
            f"pair of tensors; got {type(obj).__name__} {obj!r}"[:300]
        )
    if isinstance(obj, tuple | list) and len(obj) == 2 and isinstance(obj[0], torch.Tensor):
        x, y = _image_tensor(obj[0]), _label_tensor(obj[1])
    elif isinstance(obj, torch.utils.data.DataLoader) or not hasattr(obj, "__getitem__"):
        if not isinstance(obj, Iterable):
            raise ValueError(
                f"expected a Dataset or DataLoader of (x, y), got {type(obj).__name__}"
            )
        x, y = _materialise(obj, batched=True)
    elif hasattr(obj, "__len__"):
        x, y = _materialise(obj, batched=False)
    else:
        raise ValueError(f"a map-style dataset needs __len__; {type(obj).__name__} has none")
    x, y = _nchw(x), y.reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("the dataset is empty; it must yield at least one (x, y) pair")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"images must be in pixel space [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
            "leave normalisation to the model (sparta.models.Normalize)"
        )
    if info is None:
        n = _num_classes(obj, y, num_classes)
        classes = getattr(obj, "classes", None) or getattr(getattr(obj, "dataset", None),
                                                           "classes", None) or ()  # fmt: skip
        label = name or getattr(obj, "name", None) or type(getattr(obj, "dataset", obj)).__name__
        info = infer_info(x, y, str(label), n, classes if isinstance(classes, Sequence) else ())
    elif int(y.max()) >= info.num_classes:
        raise ValueError(f"labels must lie in 0..{info.num_classes - 1}, got {int(y.max())}")
    return ImageDataset(x.contiguous(), y, info, split)


# ------------------------------------------------------------------ image folders
def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_images(files: Sequence[Path], size: int | None, mode: str) -> torch.Tensor:
    from PIL import Image

    out = []
    for f in files:
        try:
            with Image.open(f) as img:
                img = img.convert(mode)
                if size is not None:
                    img = img.resize((size, size), Image.BILINEAR)
                out.append(_image_tensor(img))
        except OSError as e:
            raise ValueError(f"cannot read image {f}: {e}") from None
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) > 1:
        raise ValueError(
            f"images in the folder have different sizes {sorted(shapes)[:3]}; pass size= "
            "(e.g. folder:/path with size=32) to resize them"
        )
    return torch.stack(out)


def image_folder(
    path: str | os.PathLike[str],
    split: str = "train",
    size: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """A folder of images, one sub-folder per class (PNG/JPEG/... read with Pillow).

    With ``train/`` and ``test/`` sub-folders (each one sub-folder per class) a split reads its
    own; otherwise the class folders sit in ``path`` directly and a seeded ``test_fraction`` of
    each class is the ``"test"`` split (the rest ``"train"``). Classes are the sorted
    sub-folder names of the train part; images are grey-scale when every image is, else RGB,
    and ``size`` resizes them to ``size x size``. ``info.name`` is ``"folder:<path>"``.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if split not in ("train", "test", "val"):
        raise ValueError(f"unknown split {split!r} for an image folder; allowed: train, test")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    class_root = root / "train" if presplit else root
    classes = [d.name for d in _class_dirs(class_root)]
    if not classes:
        raise ValueError(
            f"no class sub-folders in {class_root}; expected one sub-folder of images per class"
        )
    base = root / ("test" if split == "test" else "train") if presplit else root
    files: list[Path] = []
    labels: list[int] = []
    for c, cls in enumerate(classes):
        found = sorted(
            f for f in (base / cls).glob("*") if f.suffix.lower() in IMAGE_SUFFIXES
        ) if (base / cls).is_dir() else []  # fmt: skip
        if not presplit and found:
            g = torch.Generator().manual_seed(seed * 7919 + c)
            order = torch.randperm(len(found), generator=g).tolist()
            k = max(1, round(test_fraction * len(found))) if len(found) > 1 else 0
            pick = order[:k] if split == "test" else order[k:]
            found = [found[i] for i in sorted(pick)]
        files += found
        labels += [c] * len(found)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) for split {split!r} in {base}")
    from PIL import Image

    with Image.open(files[0]) as first:
        grey = first.mode in ("L", "1", "I", "I;16", "F")
    mode = "L" if grey and all(_is_grey(f) for f in files) else "RGB"
    x = _read_images(files, size, mode)
    y = torch.tensor(labels, dtype=torch.long)
    if split == "train":
        info = infer_info(x, y, f"{FOLDER_PREFIX}{path}", len(classes), classes)
    else:  # every split carries the train part's metadata (mean/std)
        info = image_folder(path, "train", size, test_fraction, seed).info
    log.info("image folder %s (%s): %d images of %d classes", base, split, len(y), len(classes))
    return ImageDataset(x, y, info, split)


def _is_grey(f: Path) -> bool:
    from PIL import Image

    with Image.open(f) as img:
        return img.mode in ("L", "1", "I", "I;16", "F")


# ------------------------------------------------------------------ import paths
def is_import_path(spec: Any) -> bool:
    """``"pkg.module:callable"`` (a dotted module, a colon, a dotted attribute)."""
    if not isinstance(spec, str) or spec.count(":") != 1 or spec.startswith(FOLDER_PREFIX):
        return False
    module, _, attr = spec.partition(":")
    ok = module and all(p.isidentifier() for p in module.split("."))
    return bool(ok and attr and all(p.isidentifier() for p in attr.split(".")))


def import_callable(spec: str, what: str = "object") -> Callable[..., Any]:
    """The callable an import path ``"pkg.module:attr"`` names; clear errors if it is not."""
    if not is_import_path(spec):
        raise ValueError(f"{what} {spec!r} is not an import path; expected 'pkg.module:callable'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"cannot import module {module_name!r} of {what} {spec!r}: {e}; put its package "
            "on PYTHONPATH (or install it)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} ({what} {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what} {spec!r} is not callable (got {type(obj).__name__})")
    return obj


def _pick_split(result: Any, split: str, spec: str) -> Any:
    if isinstance(result, Mapping):
        if split not in result:
            raise ValueError(
                f"dataset {spec!r} returned splits {sorted(result)}; it has no {split!r} split"
            )
        return result[split]
    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result[0], torch.Tensor):
        return result[0] if split == "train" else result[1]  # (train, test)
    return result


def load_import_path(spec: str, split: str = "train", **kw: Any) -> ImageDataset:
    """Split ``split`` of the dataset an import path names.

    The callable is called with ``split=`` when it takes that keyword (plus ``kw``), else with
    ``kw`` only; it returns a dataset (anything :func:`as_dataset` takes), a ``(train, test)``
    pair or a ``{"train": ..., "test": ...}`` mapping. ``info.name`` is ``spec`` as given, so
    a run recording it reloads the same data.
    """
    fn = import_callable(spec, "dataset")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}  # type: ignore[assignment]
    takes_split = "split" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    result = fn(split=split, **kw) if takes_split else fn(**kw)
    ds = as_dataset(_pick_split(result, split, spec), name=spec, split=split)
    if ds.info.name != spec:  # an ImageDataset from the callable keeps its info, renamed
        ds = ImageDataset(ds.x, ds.y, _renamed(ds.info, spec), ds.split, ds.indices)
    return ds


def _renamed(info: DatasetInfo, name: str) -> DatasetInfo:
    import dataclasses

    return dataclasses.replace(info, name=name)
