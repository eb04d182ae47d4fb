"""Triggers land exactly where asked, on exactly the samples asked; bad specs are errors."""

import pytest
import torch

from sparta import data
from sparta.backdoor import BlendTrigger, PatchTrigger, parse_poison, poison, stamp
from sparta.backdoor.poison import make_pattern


@pytest.fixture(scope="module")
def ds():
    return data.load("synthetic", "train", n=200, shape=(3, 8, 8), num_classes=4, seed=0)


CORNERS = [("br", (5, 5)), ("tl", (0, 0)), ("tr", (0, 5)), ("bl", (5, 0)), ("center", (2, 2))]


@pytest.mark.parametrize("pos,origin", [*CORNERS, ((1, 4), (1, 4))])
def test_patch_is_pixel_exact_and_nothing_else_changes(ds, pos, origin):
    trig = PatchTrigger(size=3, pos=pos, pattern="checkerboard")
    out = trig.apply(ds.x)
    r, c = origin
    expected = make_pattern("checkerboard", (3, 3, 3))
    assert torch.equal(out[:, :, r : r + 3, c : c + 3], expected.expand(len(ds), -1, -1, -1))
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[r : r + 3, c : c + 3] = False
    assert torch.equal(out[:, :, outside], ds.x[:, :, outside])
    assert expected[0, 0, 0] == 1 and expected[0, 0, 1] == 0  # checkerboard starts white


def test_white_and_seeded_random_patterns(ds):
    white = PatchTrigger(2, "tl", "white").apply(ds.x)
    assert torch.all(white[:, :, :2, :2] == 1.0)
    a = PatchTrigger(2, "tl", "random", seed=3).apply(ds.x)
    b = PatchTrigger(2, "tl", "random", seed=3).apply(ds.x[:5])
    c = PatchTrigger(2, "tl", "random", seed=4).apply(ds.x[:5])
    assert torch.equal(a[:5], b) and not torch.equal(b, c)
    assert torch.equal(a[0, :, :2, :2], a[1, :, :2, :2])  # one pattern for all images


def test_blended_is_exact_mix(ds):
    trig = BlendTrigger(alpha=0.2, pattern="random", seed=1)
    t = make_pattern("random", (3, 8, 8), 1)
    assert torch.equal(trig.apply(ds.x), (1 - 0.2) * ds.x + 0.2 * t)


@pytest.mark.parametrize("spec", ["badnets:ratio=0.1,target=2,size=2",
                                  "blended:ratio=0.3,target=1,alpha=0.1"])  # fmt: skip
def test_poison_touches_exactly_the_recorded_samples(ds, spec):
    before = ds.x.clone()
    p = poison(ds, spec)
    cfg = p.config
    eligible = int((ds.y != cfg.target).sum())
    assert len(p.positions) == round(cfg.ratio * eligible)
    assert torch.all(ds.y[p.positions] != cfg.target)  # only non-target samples
    hit = torch.zeros(len(ds), dtype=torch.bool)
    hit[p.positions] = True
    assert torch.all(p.data.y[hit] == cfg.target)
    assert torch.equal(p.data.y[~hit], ds.y[~hit])  # labels flipped only where poisoned
    assert torch.equal(p.data.x[~hit], ds.x[~hit])
    assert torch.equal(p.data.x[hit], cfg.trigger().apply(ds.x[hit]))
    assert torch.equal(ds.x, before)  # the input is untouched
    assert torch.equal(p.indices, ds.indices[p.positions])
    assert torch.equal(poison(ds, spec).positions, p.positions)  # seeded


def test_indices_are_original_indices(ds):
    sub = ds.subset(torch.arange(50, 150))
    p = poison(sub, "badnets:ratio=0.2,target=0,size=2")
    assert torch.equal(p.indices, p.positions + 50)
    assert p.to_dict()["indices"] == (p.positions + 50).tolist()


def test_clean_label_poisons_target_class_and_keeps_labels(ds):
    p = poison(ds, "badnets:ratio=0.5,target=1,size=2,clean_label=true")
    assert torch.all(ds.y[p.positions] == 1)
    assert len(p.positions) == round(0.5 * int((ds.y == 1).sum()))
    assert torch.equal(p.data.y, ds.y)


def test_spec_round_trip_and_stamp(ds):
    cfg = parse_poison("badnets:ratio=0.05,target=0,size=3,pos=tl,pattern=random,seed=2")
    assert parse_poison(cfg.spec()) == cfg
    assert torch.equal(stamp(ds, cfg.trigger()).y, ds.y)


@pytest.mark.parametrize("spec,word", [
    ("badnets:ratio=1.5,target=0", "1.5"),
    ("badnets:ratio=0,target=0", "ratio"),
    ("badnets:ratio=0.1,target=7", "7"),
    ("badnets:ratio=0.1,target=0,size=9", "size=9"),
    ("trojannn:ratio=0.1", "trojannn"),
    ("badnets:ratio=0.1,colour=red", "colour"),
    ("blended:ratio=0.1,alpha=2", "alpha"),
])  # fmt: skip
def test_errors_name_the_value(ds, spec, word):
    with pytest.raises(ValueError, match=word):
        poison(ds, spec)
