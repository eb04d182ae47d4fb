"""Writers of tiny fake dataset files in the real formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(a: np.ndarray) -> bytes:
    """Serialise an array in the IDX format (uint8 or big-endian int32)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.tobytes()


def write_idx(path: Path, a: np.ndarray) -> Path:
    """Write ``a`` as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_mnist_like(
    folder: Path, n_train: int = 20, n_test: int = 7, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four IDX files of a tiny MNIST-like dataset; returns the arrays per split."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        ext = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[split] = (images, labels)
    return out


def torch_form(ds, kind: str):
    """``ds`` (an ImageDataset) as plain torch data: ``"dataset"`` (a TensorDataset) or
    ``"loader"`` (a DataLoader of batches of 7, in order), without sparta's metadata."""
    from torch.utils.data import DataLoader, TensorDataset

    plain = TensorDataset(ds.x, ds.y)
    return plain if kind == "dataset" else DataLoader(plain, batch_size=7)


#: the forms every pillar's entry point accepts besides sparta's ImageDataset
TORCH_FORMS = ("dataset", "loader")
