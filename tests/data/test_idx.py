"""IDX parsing and the mnist / fashion-mnist loaders."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from sparta import data
from sparta.data import idx
from sparta.data.idx import read_idx

from .helpers import idx_bytes, make_mnist_like, write_idx

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_roundtrip(tmp_path: Path, name: str) -> None:
    a = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / name, a)), a)
    b = np.array([[1, -2], [70000, 3]], dtype=">i4")
    out = read_idx(write_idx(tmp_path / "b.gz", b))
    assert out.shape == (2, 2) and out.tolist() == [[1, -2], [70000, 3]]


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 12)
    with pytest.raises(ValueError, match=r"bad-idx1-ubyte is not an IDX file.*0x12340801"):
        read_idx(p)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty is not an IDX file"):
        read_idx(tmp_path / "empty")


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    full = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    p = tmp_path / "cut-idx3-ubyte"
    p.write_bytes(full[:-10])
    with pytest.raises(ValueError, match=r"cut-idx3-ubyte is corrupt or truncated.*3136 data"):
        read_idx(p)
    p.write_bytes(full[:9])
    with pytest.raises(ValueError, match="cut-idx3-ubyte is truncated"):
        read_idx(p)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))
    p = tmp_path / "cut-idx3-ubyte.gz"
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz is corrupt or truncated"):
        read_idx(p)
    p.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz is corrupt"):
        read_idx(p)


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_sparta_data(data_env: dict[str, Path], gz: bool) -> None:
    arrays = make_mnist_like(data_env["env"] / "mnist", n_train=20, n_test=7, gz=gz)
    for split in ("train", "test"):
        ds = data.load("mnist", split)
        images, labels = arrays[split]
        assert ds.x.shape == (len(labels), 1, 28, 28) and ds.x.dtype == torch.float32
        assert ds.y.dtype == torch.int64 and ds.y.tolist() == labels.tolist()
        assert torch.equal(ds.x[:, 0], torch.from_numpy(images).float() / 255)
        assert ds.split == split and ds.info == data.info("mnist")


def test_search_order_root_first(data_env: dict[str, Path]) -> None:
    make_mnist_like(data_env["system"] / "mnist", n_train=11, seed=1)
    assert len(data.load("mnist")) == 11  # the system folder is found last of all
    make_mnist_like(data_env["home"] / ".cache" / "sparta" / "mnist", n_train=12)
    assert len(data.load("mnist")) == 12
    make_mnist_like(data_env["env"], n_train=13)  # $SPARTA_DATA itself
    assert len(data.load("mnist")) == 13
    make_mnist_like(data_env["env"] / "mnist", n_train=14)
    assert len(data.load("mnist")) == 14
    make_mnist_like(data_env["tmp"] / "mine", n_train=15)
    assert len(data.load("mnist", root=data_env["tmp"] / "mine")) == 15


def test_missing_files_list_every_searched_path(data_env: dict[str, Path]) -> None:
    root = data_env["tmp"] / "r"
    with pytest.raises(FileNotFoundError) as e:
        data.load("fashion-mnist", "test", root=root)
    msg = str(e.value)
    for d in (
        root,
        root / "fashion-mnist",
        data_env["env"] / "fashion-mnist",
        data_env["env"],
        data_env["home"] / ".cache" / "sparta" / "fashion-mnist",
        data_env["system"] / "fashion-mnist",
    ):
        assert f"  {d}\n" in msg
    assert "t10k-images-idx3-ubyte[.gz]" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg
    with pytest.raises(FileNotFoundError) as e:
        data.load("mnist")
    assert "apt-get" not in str(e.value) and "$SPARTA_DATA/mnist" in str(e.value)


def test_only_one_split_present(data_env: dict[str, Path]) -> None:
    folder = data_env["env"] / "mnist"
    make_mnist_like(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(data.load("mnist", "train")) == 20
    with pytest.raises(FileNotFoundError, match="mnist \\(test split\\) not found"):
        data.load("mnist", "test")
    assert next(a for a in data.available() if a["name"] == "mnist")["found"] is False


def test_inconsistent_files_are_clear_errors(data_env: dict[str, Path]) -> None:
    folder = data_env["env"] / "mnist"
    make_mnist_like(folder)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 20 labels"):
        data.load("mnist")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(20, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="label 10 >= 10 classes"):
        data.load("mnist")
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((20, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="expected uint8 images of shape N x 28 x 28"):
        data.load("mnist")


def test_download_from_a_local_mirror(
    data_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = data_env["tmp"] / "mirror"
    make_mnist_like(mirror, n_train=9, n_test=4)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(idx, "_MNIST_MIRROR", idx._Mirror((mirror.as_uri() + "/",), md5))
    ds = data.load("mnist", "test", download=True)
    assert len(ds) == 4
    cached = data_env["home"] / ".cache" / "sparta" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    bad = dict(md5, **{"train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setattr(idx, "_MNIST_MIRROR", idx._Mirror((mirror.as_uri() + "/",), bad))
    with pytest.raises(OSError, match="checksum mismatch"):
        data.load("mnist", "train", download=True)
    assert not (cached / "train-images-idx3-ubyte.gz").exists()


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason=f"{REAL_FASHION} not installed")
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARTA_DATA", raising=False)
    train, test = data.load("fashion-mnist"), data.load("fashion-mnist", "test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.num_classes == 10 and len(train.classes) == 10
    assert torch.bincount(train.y).tolist() == [6000] * 10
    assert torch.bincount(test.y).tolist() == [1000] * 10
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert abs(float(train.x.mean()) - train.mean[0]) < 1e-4
    assert abs(float(train.x.std()) - train.std[0]) < 1e-4
    found = next(a for a in data.available() if a["name"] == "fashion-mnist")
    assert found["found"] and found["path"] is not None
