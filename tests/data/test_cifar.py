"""CIFAR-10/100 from fake batch folders in the real format, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sparta import data
from sparta.data.cifar import CIFAR100_CLASSES, safe_load_pickle


def write_batch(path: Path, data_: np.ndarray, labels: list[int], key: bytes, proto: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {b"batch_label": b"fake", key: labels, b"data": data_, b"filenames": [b"x.png"]}
    path.write_bytes(pickle.dumps(batch, protocol=proto))


def fake_cifar10(folder: Path, per_batch: int = 3, proto: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        write_batch(folder / name, d, [i % 10 for i in range(per_batch)], b"labels", proto)
        out.append(d)
    return np.concatenate(out)


@pytest.mark.parametrize("proto", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_layout_and_values(data_env: dict[str, Path], proto: int) -> None:
    raw = fake_cifar10(data_env["env"] / "cifar10" / "cifar-10-batches-py", proto=proto)
    train, test = data.load("cifar10"), data.load("cifar10", "test")
    assert train.x.shape == (15, 3, 32, 32) and test.x.shape == (3, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major
    n, c, h, w = 4, 2, 5, 17
    assert float(train.x[n, c, h, w]) == np.float32(raw[n, c * 1024 + h * 32 + w]) / np.float32(255)
    assert torch.equal(test.x.flatten(1) * 255, torch.from_numpy(raw[15:]).float())
    assert train.y.tolist() == [0, 1, 2] * 5
    assert train.classes[0] == "airplane" and train.mean == data.info("cifar10").mean


def test_cifar100_fine_labels(data_env: dict[str, Path]) -> None:
    folder = data_env["tmp"] / "mine" / "cifar-100-python"
    d = np.zeros((4, 3072), dtype=np.uint8)
    write_batch(folder / "train", d, [0, 99, 5, 42], b"fine_labels", 2)
    write_batch(folder / "test", d[:2], [1, 2], b"fine_labels", 2)
    train = data.load("cifar100", root=data_env["tmp"] / "mine")
    assert train.y.tolist() == [0, 99, 5, 42] and train.num_classes == 100
    assert len(data.load("cifar100", "test", root=data_env["tmp"] / "mine")) == 2
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100
    assert CIFAR100_CLASSES[:3] == ("apple", "aquarium_fish", "baby")
    assert CIFAR100_CLASSES[-1] == "worm"


class Evil:
    def __reduce__(self):  # noqa: D105
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1 is not a valid CIFAR batch.*refusing"):
        safe_load_pickle(p)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    p.write_bytes(pickle.dumps({b"labels": [Path("x")]}))
    with pytest.raises(ValueError, match="refusing to load pathlib"):
        safe_load_pickle(p)


def test_malformed_batches_are_clear_errors(data_env: dict[str, Path]) -> None:
    folder = data_env["env"] / "cifar10" / "cifar-10-batches-py"
    fake_cifar10(folder)
    write_batch(folder / "test_batch", np.zeros((2, 100), np.uint8), [0, 1], b"labels", 2)
    with pytest.raises(ValueError, match="test_batch: expected data N x 3072"):
        data.load("cifar10", "test")
    write_batch(folder / "test_batch", np.zeros((2, 3072), np.uint8), [0, 1], b"fine", 2)
    with pytest.raises(ValueError, match="expected keys b'data' and b'labels'"):
        data.load("cifar10", "test")
    write_batch(folder / "test_batch", np.zeros((2, 3072), np.uint8), [0, 10], b"labels", 2)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 10\)"):
        data.load("cifar10", "test")
    (folder / "test_batch").write_bytes(b"\x80\x02truncated")
    with pytest.raises(ValueError, match="test_batch is not a valid CIFAR batch"):
        data.load("cifar10", "test")


def test_missing_cifar_lists_searched_paths(data_env: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError) as e:
        data.load("cifar10")
    msg = str(e.value)
    assert "data_batch_1" in msg and "download=True" in msg
    assert str(data_env["env"] / "cifar10" / "cifar-10-batches-py") in msg
    assert str(data_env["system"] / "cifar10") in msg
    entry = next(a for a in data.available() if a["name"] == "cifar10")
    assert entry["found"] is False and entry["searched"]
