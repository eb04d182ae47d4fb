"""Untrained GNN subnetworks (Huang et al., 2211.15335): edge-popup on a graph network.

The paper finds, inside a randomly initialised GCN, sparse subnetworks that match the
trained dense GCN without training any weight. This recipe composes the synthetic
stochastic-block-model graph (:func:`sparta.data.graphs.sbm`), the GCN
(:class:`sparta.models.gcn.GCN`) and edge-popup (:func:`sparta.sparsity.supermask.supermask`)
with a full-batch loop (a GCN's forward needs the whole graph, so the image engine's batches
do not apply): train the dense GCN's weights, or train only the scores of a supermask of its
random init, and compare test accuracy at each sparsity.

The paper's own algorithm (UGT) ranks scores globally and reaches the final sparsity
gradually; here ``distribution`` may be ``global`` but the sparsity is fixed from the start
(edge-popup's schedule).

>>> rows = compare(sbm(seed=0), sparsities=[0.3, 0.5, 0.7], epochs=200)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sparta.data.graphs import Graph
from sparta.models.gcn import GCN, normalized_adjacency
from sparta.sparsity.supermask import supermask

log = logging.getLogger(__name__)


@torch.no_grad()
def graph_accuracy(
    model: nn.Module, graph: Graph, adjacency: torch.Tensor, mask: torch.Tensor
) -> float:
    """Accuracy of ``model`` on the nodes ``mask`` selects (eval mode, restored after)."""
    was = model.training
    model.eval()
    try:
        pred = model(graph.x, adjacency).argmax(1)
    finally:
        model.train(was)
    return float((pred[mask] == graph.y[mask]).float().mean())


def fit_graph(
    model: nn.Module,
    graph: Graph,
    adjacency: torch.Tensor,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    seed: int = 0,
) -> dict[str, float]:
    """Full-batch Adam on the training nodes for ``epochs`` steps, training whatever of
    ``model`` requires grad (the weights of a GCN, the scores of a supermask). Keeps the state
    of the epoch with the best validation accuracy (the only choice made, on validation
    nodes); returns ``best_epoch``, ``val_acc`` and ``test_acc`` of that state."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs} is not allowed; expected an integer >= 1")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has nothing to train (no parameter requires grad)")
    torch.manual_seed(seed)  # dropout
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    best, best_state, best_epoch = -1.0, copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, epochs + 1):
        model.train()
        opt.zero_grad(set_to_none=True)
        out = model(graph.x, adjacency)
        loss = nn.functional.cross_entropy(out[graph.train_mask], graph.y[graph.train_mask])
        loss.backward()
        opt.step()
        val = graph_accuracy(model, graph, adjacency, graph.val_mask)
        if val > best:
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return {
        "best_epoch": best_epoch,
        "val_acc": best,
        "test_acc": graph_accuracy(model, graph, adjacency, graph.test_mask),
    }


@dataclass
class GNNRow:
    """One line of :func:`compare`: ``method`` is ``dense`` (weights trained) or
    ``supermask`` (no weight trained), at ``sparsity`` (0 for dense)."""

    method: str
    sparsity: float
    val_acc: float
    test_acc: float
    best_epoch: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    graph: Graph,
    sparsities: Sequence[float] = (0.3, 0.5, 0.7, 0.9),
    *,
    hidden: int = 64,
    layers: int = 2,
    epochs: int = 200,
    lr: float = 0.01,
    score_lr: float = 0.01,
    weights: str = "signed-constant",
    distribution: str = "uniform",
    seeds: Sequence[int] = (0,),
) -> list[GNNRow]:
    """The trained dense GCN and edge-popup supermasks of a random GCN of the same
    architecture (``weights``: the frozen draw, see :data:`sparta.sparsity.supermask.WEIGHT_INITS`)
    at each sparsity, per seed. Scores train without weight decay (their scale does not
    matter to the top-k, and decay would only shrink them)."""
    adjacency = normalized_adjacency(graph.edge_index, graph.num_nodes)
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        dense = GCN(graph.x.shape[1], graph.num_classes, hidden, layers)
        r = fit_graph(dense, graph, adjacency, epochs, lr, 5e-4, seed)
        rows.append(GNNRow("dense", 0.0, r["val_acc"], r["test_acc"], r["best_epoch"], seed))
        log.info("dense GCN seed %d: test %.4f", seed, r["test_acc"])
        for s in sparsities:
            torch.manual_seed(seed)
            net = GCN(graph.x.shape[1], graph.num_classes, hidden, layers)
            scored = supermask(net, s, weights=weights, distribution=distribution, seed=seed)
            r = fit_graph(scored, graph, adjacency, epochs, score_lr, 0.0, seed)
            rows.append(GNNRow("supermask", s, r["val_acc"], r["test_acc"], r["best_epoch"], seed))
            log.info("supermask %.2f seed %d: test %.4f", s, seed, r["test_acc"])
    return rows
