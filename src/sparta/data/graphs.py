"""Graphs for node classification: a seeded stochastic block model (SBM).

Real graph data sets (Cora, OGB) are not bundled; an SBM is the standard synthetic stand-in:
``n_blocks`` equal-sized communities, an edge between two nodes of the same block with
probability ``p_in`` and of different blocks with ``p_out`` (``p_in > p_out``: homophily),
and node features that carry the block only noisily (a block's mean vector plus Gaussian
noise), so that a model must combine features with the graph: features alone (an MLP) are
weak, a GCN that averages over neighbours is strong.

>>> g = sbm(n_nodes=600, n_blocks=3, seed=0)
>>> g.x.shape, g.edge_index.shape, int(g.train_mask.sum())
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Graph:
    """One graph: node features ``x`` (N x F, float32), labels ``y`` (N, int64), undirected
    edges ``edge_index`` (2 x E, both directions, no self-loops) and boolean split masks."""

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    def adjacency(self) -> torch.Tensor:
        """The dense 0/1 adjacency matrix (N x N, float32, symmetric, zero diagonal)."""
        a = torch.zeros(self.num_nodes, self.num_nodes)
        a[self.edge_index[0], self.edge_index[1]] = 1.0
        return a


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


def block_sizes(n_nodes: int, n_blocks: int) -> list[int]:
    """Sizes of ``n_blocks`` blocks as equal as possible (the first ones one larger)."""
    return [n_nodes // n_blocks + (1 if b < n_nodes % n_blocks else 0) for b in range(n_blocks)]


def sbm(
    n_nodes: int = 1000,
    n_blocks: int = 4,
    p_in: float = 0.02,
    p_out: float = 0.004,
    n_features: int = 32,
    feature_noise: float = 4.0,
    train_per_class: int = 20,
    n_val: int = 200,
    seed: int = 0,
) -> Graph:
    """A stochastic-block-model graph for node classification, the same for the same seed.

    Node ``i`` belongs to block ``y[i]`` (blocks are contiguous: the first
    ``block_sizes(...)[0]`` nodes are block 0, ...). Each unordered pair of distinct nodes is
    an edge with probability ``p_in`` (same block) or ``p_out``. Features: each block has a
    mean vector drawn from ``N(0, I / n_features)`` scaled to norm 1, and each node's features
    are its block's mean plus ``N(0, feature_noise**2 / n_features)`` noise per entry, so the
    noise's norm is about ``feature_noise`` times the signal's. Splits as in the Planetoid
    benchmarks: ``train_per_class`` labelled nodes per block, ``n_val`` validation nodes, the
    rest test (drawn at random by the seed).
    """
    _check(n_blocks >= 2, "n_blocks", n_blocks, "an integer >= 2")
    _check(n_nodes >= 2 * n_blocks, "n_nodes", n_nodes, "an integer >= 2 * n_blocks")
    _check(0 <= p_out <= p_in <= 1, "p_in, p_out", (p_in, p_out), "0 <= p_out <= p_in <= 1")
    _check(n_features >= 1, "n_features", n_features, "an integer >= 1")
    _check(feature_noise >= 0, "feature_noise", feature_noise, "a number >= 0")
    sizes = block_sizes(n_nodes, n_blocks)
    _check(
        train_per_class >= 1 and train_per_class * n_blocks + n_val < n_nodes,
        "train_per_class, n_val",
        (train_per_class, n_val),
        f"train_per_class >= 1 and train_per_class * n_blocks + n_val < n_nodes ({n_nodes})",
    )
    _check(train_per_class < min(sizes), "train_per_class", train_per_class, "< the block size")
    g = torch.Generator().manual_seed(int(seed))
    y = torch.cat([torch.full((s,), b, dtype=torch.long) for b, s in enumerate(sizes)])
    # edges: one Bernoulli draw per unordered pair i < j
    same = y[:, None] == y[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    draw = torch.rand((n_nodes, n_nodes), generator=g) < prob
    upper = torch.triu(draw, diagonal=1)
    i, j = upper.nonzero(as_tuple=True)
    edge_index = torch.stack([torch.cat([i, j]), torch.cat([j, i])])
    # features: block means on the unit sphere plus isotropic noise
    means = torch.randn((n_blocks, n_features), generator=g)
    means = means / means.norm(dim=1, keepdim=True)
    noise = torch.randn((n_nodes, n_features), generator=g) * (
        feature_noise / math.sqrt(n_features)
    )
    x = means[y] + noise
    # splits: train_per_class per block, then n_val, the rest test
    order = torch.randperm(n_nodes, generator=g)
    train_mask = torch.zeros(n_nodes, dtype=torch.bool)
    for b in range(n_blocks):
        members = order[y[order] == b]
        train_mask[members[:train_per_class]] = True
    rest = order[~train_mask[order]]
    val_mask = torch.zeros(n_nodes, dtype=torch.bool)
    val_mask[rest[:n_val]] = True
    test_mask = ~(train_mask | val_mask)
    return Graph(x.float(), y, edge_index, train_mask, val_mask, test_mask, n_blocks)
