"""Forget/retain/test sets: disjoint, covering, seeded; bad specs are one clear error."""

import json

import pytest
import torch

from sparta.unlearn import make_setting, parse_forget, read_sets, run
from tests.data.helpers import TORCH_FORMS, torch_form

from .conftest import tiny_data


def test_random_forgetting_is_disjoint_covering_and_seeded():
    train, test = tiny_data()
    s = make_setting(train, test, "random:0.1", seed=3)
    f, r = set(s.forget_pos.tolist()), set(s.retain_pos.tolist())
    assert not f & r and f | r == set(range(len(train)))
    assert len(f) == round(0.1 * len(train)) == 24
    again = make_setting(train, test, "random:0.1", seed=3)
    other = make_setting(train, test, "random:0.1", seed=4)
    assert torch.equal(again.forget_pos, s.forget_pos)
    assert not torch.equal(other.forget_pos, s.forget_pos)
    assert len(s.forget) == 24 and len(s.retain) == len(train) - 24


def test_class_forgetting_takes_exactly_those_classes():
    train, test = tiny_data()
    s = make_setting(train, test, "class:1,3")
    assert set(s.forget.y.tolist()) == {1, 3}
    assert not {1, 3} & set(s.retain.y.tolist())
    assert len(s.forget) + len(s.retain) == len(train)
    assert len(s.forget) == int(((train.y == 1) | (train.y == 3)).sum())


def test_saved_sets_are_original_indices(tmp_path):
    train, test = tiny_data()
    sub = train.subset(torch.arange(10, 110))  # positions 0..99 are indices 10..109
    s = make_setting(sub, test, "random:0.2", seed=0)
    s.save(tmp_path)
    sets = read_sets(tmp_path)
    assert sets["forget_spec"] == "random:0.2" and sets["dataset"] == "synthetic"
    assert sets["forget"] == (s.forget_pos + 10).tolist()
    assert sorted(sets["forget"] + sets["retain"]) == list(range(10, 110))
    assert sets["test"] == list(range(len(test)))
    assert json.loads((tmp_path / "sets.json").read_text())["n_train"] == 100


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("random:0", "forget fraction 0 is not allowed"),
        ("random:1", "forget fraction 1 is not allowed"),
        ("random:1.5", "(0, 1)"),
        ("random:-0.1", "(0, 1)"),
        ("random:abc", "'random:abc' is not allowed"),
        ("class:", "names no class"),
        ("class:x", "'class:x' is not allowed"),
        ("shuffle:3", "'shuffle:3' is not allowed"),
        ("class:7", "class 7 does not exist; allowed 0..3"),
        ("class:0,1,2,3", "leaves the retain set empty"),
        ("random:0.001", "forgets nothing"),
    ],
)
def test_bad_forget_specs(spec, needle):
    train, test = tiny_data()
    with pytest.raises(ValueError, match=None) as e:
        make_setting(train, test, spec)
    assert needle in str(e.value)


def test_parse_roundtrip():
    assert str(parse_forget("random:0.10")) == "random:0.1"
    assert str(parse_forget("class:5,3,5")) == "class:3,5"


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_settings_and_run_take_a_torch_dataset_or_loader(kind, trained):
    model, train, test, cfg = trained
    plain_train, plain_test = torch_form(train, kind), torch_form(test, kind)
    s = make_setting(plain_train, plain_test, "class:1")
    assert torch.equal(s.forget_pos, make_setting(train, test, "class:1").forget_pos)
    opts = {"epochs": 1, "mia_max": 20}
    ref = run(model, train, test, "ft", forget="class:1", options=opts, train_config=cfg)
    got = run(model, plain_train, plain_test, "ft", forget="class:1", options=opts,
              train_config=cfg)  # fmt: skip
    assert {k: got.summary[k] for k in ("ua", "ra", "ta")} == {
        k: ref.summary[k] for k in ("ua", "ra", "ta")
    }
