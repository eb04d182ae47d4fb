"""Shared pieces of the DST tests: a tiny model, a training run and an invariant checker."""

import torch

from sparta import data as sdata
from sparta import models
from sparta.sparsity.masks import masks_of
from sparta.train import Callback, TrainConfig, Trainer


def data(n=512):
    return sdata.load("synthetic", "train", n=n, shape=(1, 8, 8), num_classes=4, seed=0)


def model(seed=0):
    torch.manual_seed(seed)
    return models.create("lenet300", dataset=data(8).info, width=0.25)


def cfg(**kw):
    base = dict(dataset="synthetic", epochs=8, batch_size=16, lr=0.05, val_fraction=0.0)
    return TrainConfig(**{**base, **kw})


def fit(net, callbacks, **kw):
    trainer = Trainer(net, data(), cfg(**kw), callbacks=callbacks, quiet=True)
    trainer.fit()
    return trainer


class Invariants(Callback):
    """After every step: non-zeros per layer unchanged, pruned weights and their optimizer
    state zero, grown connections zero right after the update that grew them."""

    name = "invariants"

    def __init__(self, net):
        self.counts = {n: int(m.sum()) for n, m in masks_of(net).items()}
        self.prev = {n: m.clone() for n, m in masks_of(net).items()}
        self.changed_steps = []
        self.grown_at_zero = True

    def after_step(self, t):
        params = dict(t.model.named_parameters())
        changed = False
        for n, m in masks_of(t.model).items():
            p = params[n]
            assert int(m.sum()) == self.counts[n], f"nnz of {n} changed at step {t.step}"
            assert not p[~m].any(), f"pruned weights of {n} are non-zero at step {t.step}"
            for buf in t.optimizer.state.get(p, {}).values():
                if isinstance(buf, torch.Tensor) and buf.shape == p.shape:
                    assert not buf[~m].any(), f"optimizer state of pruned {n} is non-zero"
            grown = m & ~self.prev[n]
            if grown.any() or (self.prev[n] & ~m).any():
                changed = True
                self.grown_at_zero &= not p[grown].any()
            self.prev[n] = m.clone()
        if changed:
            self.changed_steps.append(t.step)
