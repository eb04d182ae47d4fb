"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

The batches are pickles from outside, so they are read with :class:`SafeUnpickler`, which
only rebuilds builtins and plain numpy arrays; any other class or function is refused.
"""

from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import registry
from .base import DatasetInfo, ImageDataset
from .download import extract_tar, fetch_any

log = logging.getLogger(__name__)

# (module, name) pairs a CIFAR batch may reference: numpy array reconstruction, nothing else
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes under pickle protocol 2
    }
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy-array globals (see ``_ALLOWED_GLOBALS``)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only numpy arrays and builtins are allowed"
        )


def safe_load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler` (bytes keys, as Python 2 wrote them)."""
    path = Path(path)
    try:
        return SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a valid CIFAR batch: {e}") from e


@dataclass(frozen=True)
class _Spec:
    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    url: str
    md5: str  # of the archive, as published on the CIFAR page (and used by torchvision)
    info: DatasetInfo


CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)


# mean/std: the widely published per-channel values of each training set in [0, 1]
# (the CIFAR files are not installed here to recompute them)
def _cifar(
    classes: tuple[str, ...],
    folder: str,
    files: tuple[tuple[str, ...], tuple[str, ...]],
    label_key: bytes,
    md5: str,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> _Spec:
    """The spec of ``cifar<number of classes>``: 3x32x32 images, the archive on the CIFAR
    page, ``files`` = (training batches, test batches)."""
    name = f"cifar{len(classes)}"
    return _Spec(
        name=name,
        folder=folder,
        train_files=files[0],
        test_files=files[1],
        label_key=label_key,
        url=f"https://www.cs.toronto.edu/~kriz/cifar-{len(classes)}-python.tar.gz",
        md5=md5,
        info=DatasetInfo(name, (3, 32, 32), len(classes), mean, std, classes),
    )


CIFAR10 = _cifar(
    CIFAR10_CLASSES,
    "cifar-10-batches-py",
    (tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
    b"labels",
    "c58f30108f718f92721af3b95e74349a",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = _cifar(
    CIFAR100_CLASSES,
    "cifar-100-python",
    (("train",), ("test",)),
    b"fine_labels",
    "eb9058c3a382ffc7106e4002c42a8d85",
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


def _dirs(spec: _Spec, root: str | None) -> list[Path]:
    out = []
    for d in registry.search_dirs(spec.name, root):
        out += [d / spec.folder, d]
    return out


def _read_batch(path: Path, spec: _Spec) -> tuple[np.ndarray, np.ndarray]:
    d = safe_load_pickle(path)
    if not isinstance(d, dict) or b"data" not in d or spec.label_key not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(
            f"{path} is not a {spec.name} batch: expected keys b'data' and "
            f"{spec.label_key!r}, got {keys}"
        )
    data, labels = d[b"data"], np.asarray(d[spec.label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"{path}: b'data' must be a uint8 N x 3072 array")
    if data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise ValueError(
            f"{path}: expected data N x 3072 and N labels, got {data.shape} and {labels.shape}"
        )
    if labels.dtype.kind not in "iu" or (
        len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < spec.info.num_classes
    ):
        raise ValueError(f"{path}: labels must be integers in [0, {spec.info.num_classes})")
    return data, labels


def _load(spec: _Spec, split: str, root: str | None, download: bool) -> ImageDataset:
    files = spec.train_files if split == "train" else spec.test_files
    dirs = _dirs(spec, root)
    hit = registry.find_first(dirs, [[f] for f in files])
    if hit is None and download:
        dest = Path(root) if root is not None else registry.cache_dir(spec.name)
        archive = fetch_any([spec.url], dest / spec.url.rsplit("/", 1)[1], md5=spec.md5)
        extract_tar(archive, dest)
        archive.unlink()
        hit = registry.find_first([dest / spec.folder], [[f] for f in files])
    if hit is None:
        raise FileNotFoundError(
            f"{spec.name} ({split} split) not found: looked for {', '.join(files)} in\n"
            + "\n".join(f"  {d}" for d in dirs)
            + f"\nTo get it: unpack {spec.url} into ${registry.ENV_VAR}/{spec.name} "
            "(or pass root=); or pass download=True"
        )
    parts = [_read_batch(p, spec) for p in hit[1]]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    x = torch.from_numpy(data).view(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    return ImageDataset(x, torch.from_numpy(labels), spec.info, split)


def _locator(spec: _Spec) -> registry.Locator:
    def locate(root: str | None) -> tuple[Path | None, list[Path]]:
        dirs = _dirs(spec, root)
        hit = registry.find_first(dirs, [[f] for f in spec.train_files + spec.test_files])
        return (None if hit is None else hit[0]), dirs

    return locate


@registry.register_dataset(
    "cifar10", info=CIFAR10.info, locate=_locator(CIFAR10), source="CIFAR-10 python batches"
)
def load_cifar10(split: str, root: str | None, download: bool) -> ImageDataset:
    """CIFAR-10: 50000/10000 colour 32x32 images of 10 classes."""
    return _load(CIFAR10, split, root, download)


@registry.register_dataset(
    "cifar100", info=CIFAR100.info, locate=_locator(CIFAR100), source="CIFAR-100 python batches"
)
def load_cifar100(split: str, root: str | None, download: bool) -> ImageDataset:
    """CIFAR-100: 50000/10000 colour 32x32 images of 100 fine classes."""
    return _load(CIFAR100, split, root, download)
