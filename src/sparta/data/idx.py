"""MNIST and Fashion-MNIST from their IDX files (raw or gzipped), parsed with numpy."""

from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import registry
from .base import DatasetInfo, ImageDataset
from .download import fetch_any

log = logging.getLogger(__name__)

# IDX type byte -> numpy dtype (multi-byte types are big-endian)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (``.gz`` or raw) into a read-only numpy array.

    A file that is not IDX (bad magic number), unreadable gzip, or whose size disagrees
    with its header (truncated, padded) raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{path} is corrupt or truncated: cannot decompress ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or not data[3]:
        raise ValueError(
            f"{path} is not an IDX file: magic number 0x{data[:4].hex() or '(empty)'}, expected "
            "0x0000TTDD with type TT in 08,09,0b,0c,0d,0e and DD >= 1 dimensions"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[data[2]]
    want = math.prod(dims) * dtype.itemsize
    if len(data) - header != want:
        raise ValueError(
            f"{path} is corrupt or truncated: header says shape {dims} ({want} data bytes) "
            f"but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


@dataclass(frozen=True)
class _Mirror:
    """Where to download one IDX dataset, with the published MD5 of each ``.gz`` file."""

    urls: tuple[str, ...]
    md5: dict[str, str]
    hint: str = ""  # how to install it from a system package, if one exists


_PREFIX = {"train": "train", "test": "t10k"}


def _file_names(split: str) -> list[list[str]]:
    """Accepted names for a split's (images, labels) files, raw preferred over gzip."""
    p = _PREFIX[split]
    out = []
    for kind, dims in (("images", "idx3"), ("labels", "idx1")):
        base = [f"{p}-{kind}-{dims}-ubyte", f"{p}-{kind}.{dims}-ubyte"]  # the latter: lecun.com
        out.append(base + [b + ".gz" for b in base])
    return out


def _load_idx(
    name: str, info: DatasetInfo, mirror: _Mirror, split: str, root: str | None, download: bool
) -> ImageDataset:
    dirs = registry.search_dirs(name, root)
    hit = registry.find_first(dirs, _file_names(split))
    if hit is None and download:
        dest = Path(root) if root is not None else registry.cache_dir(name)
        for names in _file_names(split):
            gz = names[0] + ".gz"
            fetch_any([u + gz for u in mirror.urls], dest / gz, md5=mirror.md5[gz])
        hit = registry.find_first([dest], _file_names(split))
    if hit is None:
        want = " and ".join(f"{n[0]}[.gz]" for n in _file_names(split))
        ways = [mirror.hint] if mirror.hint else []
        ways += [
            f"put the IDX files in ${registry.ENV_VAR}/{name} (or pass root=)",
            "pass download=True to fetch them from " + mirror.urls[0],
        ]
        raise FileNotFoundError(
            f"{name} ({split} split) not found: looked for {want} in\n"
            + "\n".join(f"  {d}" for d in dirs)
            + "\nTo get it: "
            + "; or ".join(ways)
        )
    folder, (img_path, lbl_path) = hit
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != info.input_shape[1:] or images.dtype != np.uint8:
        raise ValueError(
            f"{img_path}: expected uint8 images of shape N x {info.input_shape[1]} x "
            f"{info.input_shape[2]}, got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{lbl_path}: expected {len(images)} labels, got shape {labels.shape}")
    if len(labels) and int(labels.max()) >= info.num_classes:
        raise ValueError(f"{lbl_path}: label {int(labels.max())} >= {info.num_classes} classes")
    log.debug("reading %s from %s", name, folder)
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(x, y, info, split)


def _locator(name: str) -> registry.Locator:
    def locate(root: str | None) -> tuple[Path | None, list[Path]]:
        dirs = registry.search_dirs(name, root)
        hit = registry.find_first(dirs, _file_names("train") + _file_names("test"))
        return (None if hit is None else hit[0]), dirs

    return locate


FASHION_MNIST_INFO = DatasetInfo(
    name="fashion-mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    # computed once over the 60000 training images in [0, 1] (0.286041, 0.353024)
    mean=(0.2860,),
    std=(0.3530,),
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)

MNIST_INFO = DatasetInfo(
    name="mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    # the standard per-channel values of the 60000 training images in [0, 1]
    # (MNIST is not installed here to recompute them; Fashion-MNIST's were verified)
    mean=(0.1307,),
    std=(0.3081,),
    classes=tuple(str(i) for i in range(10)),
)

# MD5s of the official .gz files as published upstream (and used by torchvision). Debian's
# dataset-fashion-mnist re-compresses the files, so their .gz checksums differ from these
# although the decompressed IDX bytes are the originals.
_FASHION_MIRROR = _Mirror(
    urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    hint="apt-get install dataset-fashion-mnist (Debian/Ubuntu)",
)

# No Debian package ships MNIST (apt-cache policy dataset-mnist finds nothing).
_MNIST_MIRROR = _Mirror(
    urls=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)


@registry.register_dataset(
    "fashion-mnist",
    info=FASHION_MNIST_INFO,
    locate=_locator("fashion-mnist"),
    source="IDX files (Zalando Research)",
)
def load_fashion_mnist(split: str, root: str | None, download: bool) -> ImageDataset:
    """Fashion-MNIST: 60000/10000 grey 28x28 images of 10 clothing classes."""
    return _load_idx("fashion-mnist", FASHION_MNIST_INFO, _FASHION_MIRROR, split, root, download)


@registry.register_dataset(
    "mnist", info=MNIST_INFO, locate=_locator("mnist"), source="IDX files (LeCun et al.)"
)
def load_mnist(split: str, root: str | None, download: bool) -> ImageDataset:
    """MNIST: 60000/10000 grey 28x28 images of handwritten digits."""
    return _load_idx("mnist", MNIST_INFO, _MNIST_MIRROR, split, root, download)
