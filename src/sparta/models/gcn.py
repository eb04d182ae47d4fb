"""Graph convolutional network (Kipf & Welling, 1609.02907) for node classification.

A layer is ``H' = A_hat H W (+ b)`` with the symmetrically normalised adjacency with
self-loops ``A_hat = D^-1/2 (A + I) D^-1/2`` (D: the degrees of A + I; 1609.02907 eq. 2).
Graph models take ``(x, adjacency)``, not images, so they are plain modules, not entries of
the image-model registry; their weights are ``nn.Linear`` layers, so every sparsity tool
(pruning, :class:`sparta.sparsity.scores.ScoredModel`, edge-popup) applies to them as is.
"""

from __future__ import annotations

import torch
from torch import nn


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse (COO) N x N tensor, from undirected edges
    ``edge_index`` (2 x E, both directions listed; duplicates count once)."""
    n = int(num_nodes)
    loops = torch.arange(n, device=edge_index.device)
    idx = torch.cat([edge_index.long(), torch.stack([loops, loops])], dim=1)
    key = torch.unique(idx[0] * n + idx[1])  # sorted: row-major, coalesced order
    r, c = key // n, key % n
    d = torch.bincount(r, minlength=n).float().pow(-0.5)
    return torch.sparse_coo_tensor(
        torch.stack([r, c]), d[r] * d[c], (n, n), is_coalesced=True, check_invariants=True
    )


def propagate(adjacency: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``adjacency @ h`` for a sparse or dense adjacency."""
    return torch.sparse.mm(adjacency, h) if adjacency.is_sparse else adjacency @ h


class GCN(nn.Module):
    """``layers`` graph convolutions (ReLU and dropout between them): ``in_features`` ->
    ``hidden`` (x ``layers - 1``) -> ``num_classes``; ``forward(x, adjacency)`` returns the
    logits of every node (adjacency from :func:`normalized_adjacency`)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers={layers} is not allowed; expected an integer >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} is not allowed; expected a number in [0, 1)")
        dims = [in_features] + [hidden] * (layers - 1) + [num_classes]
        self.convs = nn.ModuleList(
            nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.dropout = dropout

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h = x
        for k, lin in enumerate(self.convs):
            h = nn.functional.dropout(h, self.dropout, self.training)
            h = propagate(adjacency, nn.functional.linear(h, lin.weight))
            if lin.bias is not None:  # after propagation: A_hat H W + b
                h = h + lin.bias
            if k < len(self.convs) - 1:
                h = torch.relu(h)
        return h
