"""Progress bars: shown on a terminal only, silenced library-wide and on ranks other than 0."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from sparta import data, progress
from sparta.attacks import create
from sparta.attacks.evaluate import robust_curve
from sparta.backdoor import RecoverOptions, recover
from sparta.certify import verified_accuracy
from sparta.certify.smoothing import certify_examples
from sparta.data import ImageDataset
from sparta.sparsity.lottery import imp


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def terminal(monkeypatch):
    """A function that makes stderr a terminal and returns it (called in the test body:
    pytest's capture puts its own stderr back between a fixture's setup and the test)."""

    def make() -> _Terminal:
        err = _Terminal()
        monkeypatch.setattr("sys.stderr", err)
        return err

    monkeypatch.delenv("RANK", raising=False)
    previous = progress.set_quiet(False)
    yield make
    progress.set_quiet(previous)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_bar_shows_on_a_terminal_only(terminal, monkeypatch):
    terminal = terminal()
    assert list(progress.bar(range(3), desc="work")) == [0, 1, 2]
    assert "work" in terminal.getvalue()
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert not progress.enabled()


def test_set_quiet_and_rank_silence_every_bar(terminal, monkeypatch):
    terminal = terminal()
    assert progress.enabled()
    assert progress.set_quiet(True) is False
    assert not progress.enabled() and progress.is_quiet()
    list(progress.bar(range(3), desc="hidden"))
    assert "hidden" not in terminal.getvalue()
    progress.set_quiet(False)
    monkeypatch.setenv("RANK", "1")
    assert not progress.enabled()
    monkeypatch.setenv("RANK", "0")
    assert progress.enabled() and not progress.enabled(quiet=True)


def test_long_loops_show_their_bars(terminal):
    terminal = terminal()
    model = _net()
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    create("square", model, eps=0.1, n_queries=5, seed=0)(x, y)
    verified_accuracy(model, (x, y), 0.01, method="crown", batch_size=2)
    recover(model, (1, 4, 4), 3, RecoverOptions(steps=2, n=2, labels="0,1"))
    for _ in imp(model, 1, lambda m, _: {}):
        pass
    robust_curve(model, (x, y), [0.05, 0.1], attacks=["fgsm"], checks=False)
    certify_examples(
        model, ImageDataset(x, y, data.info("synthetic", shape=(1, 4, 4))), 0.25, 5, 10
    )
    out = terminal.getvalue()
    descs = ["square queries", "crown batches", "trigger recovery", "IMP levels"]
    for desc in [*descs, "eps", "fgsm eps=0.05", "fgsm eps=0.1", "smoothing"]:
        assert desc in out, desc
