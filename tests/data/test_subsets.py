"""Class-split datasets: classes kept, relabelled 0..k-1, seeded stratified fractions."""

from __future__ import annotations

import pytest
import torch

from sparta import data as sdata
from sparta.data.subsets import class_subset, parse_class_spec, parse_classes


def _toy(n_per_class: int = 10, k: int = 10) -> sdata.ImageDataset:
    y = torch.arange(k).repeat(n_per_class)
    x = y.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone() / k
    info = sdata.DatasetInfo("toy", (1, 2, 2), k, (0.5,), (0.5,), tuple(f"c{i}" for i in range(k)))
    return sdata.ImageDataset(x, y, info)


def test_classes_are_kept_and_relabelled_in_order():
    ds = _toy()
    sub = class_subset(ds, [5, 6, 7, 8, 9])
    assert len(sub) == 50
    assert sub.num_classes == 5 and sub.classes == ("c5", "c6", "c7", "c8", "c9")
    # the image of original class c is c/10 everywhere: label i must come from class 5+i
    orig = (sub.x[:, 0, 0, 0] * 10).round().long()
    assert torch.equal(sub.y, orig - 5)
    assert torch.equal(ds.y[sub.indices], orig)  # indices point back into the full split


def test_class_order_defines_the_labels():
    sub = class_subset(_toy(), [7, 2])
    orig = (sub.x[:, 0, 0, 0] * 10).round().long()
    assert torch.equal(sub.y, (orig == 2).long())  # 7 -> 0, 2 -> 1


def test_fraction_is_stratified_and_deterministic_per_seed():
    ds = _toy(n_per_class=40)
    a = class_subset(ds, range(5, 10), fraction=0.1, seed=3)
    b = class_subset(ds, range(5, 10), fraction=0.1, seed=3)
    c = class_subset(ds, range(5, 10), fraction=0.1, seed=4)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.x, b.x)
    assert not torch.equal(a.indices, c.indices)
    assert torch.bincount(a.y, minlength=5).tolist() == [4] * 5
    tiny = class_subset(ds, [0, 1], fraction=0.001)
    assert torch.bincount(tiny.y).tolist() == [1, 1]  # at least one image per class


def test_bad_classes_and_fractions_are_named():
    with pytest.raises(ValueError, match="class 10 does not exist"):
        class_subset(_toy(), [9, 10])
    with pytest.raises(ValueError, match="fraction=0"):
        class_subset(_toy(), [1], fraction=0)
    with pytest.raises(ValueError, match="'9-5'"):
        parse_classes("9-5")
    with pytest.raises(ValueError, match="distinct"):
        parse_classes("1,1")
    with pytest.raises(ValueError, match="'frac=0.1'"):
        parse_class_spec("digits:classes=0-4:frac=0.1")


def test_spec_parsing():
    spec = parse_class_spec("fashion-mnist:classes=5-7,9:fraction=0.01:seed=2")
    assert spec.base == "fashion-mnist" and spec.classes == (5, 6, 7, 9)
    assert spec.fraction == 0.01 and spec.seed == 2
    assert parse_class_spec("folder:/a/b:classes=0-1").base == "folder:/a/b"


def test_by_name_train_fraction_only_test_full():
    name = "digits:classes=5-9:fraction=0.1:seed=1"
    info = sdata.info(name)
    assert info.num_classes == 5 and info.name == name
    train, test = sdata.load(name, "train"), sdata.load(name, "test")
    full_train, full_test = sdata.load("digits", "train"), sdata.load("digits", "test")
    assert train.info == info and set(train.y.tolist()) == set(range(5))
    n5 = [int((full_train.y == c).sum()) for c in range(5, 10)]
    assert torch.bincount(train.y, minlength=5).tolist() == [-(-n // 10) for n in n5]
    assert len(test) == int((full_test.y >= 5).sum())  # every test image of 5..9
    assert torch.equal(full_test.y[test.indices] - 5, test.y)
    assert torch.equal(sdata.load(name, "train").indices, train.indices)
