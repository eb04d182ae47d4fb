"""Batch augmentations: shapes, values, per-sample choices, determinism, CLI parsing."""

from __future__ import annotations

import pytest
import torch

from sparta.data import Compose, HorizontalFlip, RandomCrop, parse_augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def distinct(n: int = 64, c: int = 2, h: int = 6, w: int = 5) -> torch.Tensor:
    """A batch in which every pixel value is distinct and positive."""
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).view(n, c, h, w)


def test_crop_keeps_shape_and_takes_windows_of_the_padded_image() -> None:
    x = distinct()
    out = RandomCrop(padding=2)(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        hits = [
            (oy, ox)
            for oy in range(5)
            for ox in range(5)
            if torch.equal(out[i], padded[i, :, oy : oy + 6, ox : ox + 5])
        ]
        assert len(hits) == 1  # exactly one window of this sample's own padded image
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets are drawn per sample


def test_crop_reaches_every_offset() -> None:
    x = torch.ones(400, 1, 3, 3)
    out = RandomCrop(padding=1)(x, gen(1))
    # the position of the zero border identifies the offset; all 9 must occur
    patterns = {tuple(o.flatten().tolist()) for o in out}
    assert len(patterns) == 9


def test_crop_with_size_and_without_padding() -> None:
    x = distinct(8, 1, 6, 6)
    out = RandomCrop(size=4, padding=0)(x, gen())
    assert out.shape == (8, 1, 4, 4)
    assert torch.all(out > 0)  # no padding, so no zeros
    assert torch.equal(RandomCrop(padding=0)(x, gen()), x)  # full-size crop is the identity
    with pytest.raises(ValueError, match="exceeds the padded image"):
        RandomCrop(size=9, padding=1)(x, gen())
    with pytest.raises(ValueError, match="padding must be >= 0"):
        RandomCrop(padding=-1)
    with pytest.raises(ValueError, match="N x C x H x W"):
        RandomCrop()(x[0], gen())


def test_flip_flips_exactly_the_chosen_samples() -> None:
    x = distinct(200, 1, 3, 4)
    out = HorizontalFlip(0.5)(x, gen())
    flipped = [bool(torch.equal(o, xi.flip(-1))) for o, xi in zip(out, x, strict=True)]
    kept = [bool(torch.equal(o, xi)) for o, xi in zip(out, x, strict=True)]
    assert all(
        f != k for f, k in zip(flipped, kept, strict=True)
    )  # each sample is one or the other
    assert 60 < sum(flipped) < 140
    # the choice is the generator's: replaying it gives the same mask
    mask = torch.rand(200, generator=gen()) < 0.5
    assert flipped == mask.tolist()
    assert torch.equal(HorizontalFlip(0.0)(x, gen()), x)
    assert torch.equal(HorizontalFlip(1.0)(x, gen()), x.flip(-1))
    with pytest.raises(ValueError, match="flip probability"):
        HorizontalFlip(1.5)


def test_same_seed_same_output() -> None:
    x = torch.rand(32, 3, 8, 8, generator=gen(9))
    aug = Compose([RandomCrop(padding=3), HorizontalFlip()])
    a, b, c = aug(x, gen(4)), aug(x, gen(4)), aug(x, gen(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_parse_augment() -> None:
    aug = parse_augment("crop:4,flip")
    assert isinstance(aug, Compose) and len(aug) == 2
    crop, flip = aug.augments
    assert isinstance(crop, RandomCrop) and crop.padding == 4 and crop.size is None
    assert isinstance(flip, HorizontalFlip) and flip.p == 0.5
    assert parse_augment(" crop , flip:0.25 ").augments[1].p == 0.25
    assert parse_augment("crop").augments[0].padding == 4
    assert parse_augment("crop:2").augments[0].padding == 2
    for empty in ("none", "", "  ", "None", None):
        assert parse_augment(empty) is None
    with pytest.raises(ValueError, match=r"unknown augmentation 'blur'.*crop\[:padding\], flip"):
        parse_augment("crop,blur")
    with pytest.raises(ValueError, match="bad augmentation 'crop:x'"):
        parse_augment("crop:x")
    with pytest.raises(ValueError, match="bad augmentation 'flip:2'"):
        parse_augment("flip:2")
