"""GCN propagation against a hand-computed normalised adjacency D^-1/2 (A + I) D^-1/2."""

import math

import pytest
import torch
from torch import nn

from sparta.models.gcn import GCN, normalized_adjacency


def _path3():
    # 0 - 1 - 2, both directions, one edge listed twice (duplicates count once)
    return torch.tensor([[0, 1, 1, 2, 0], [1, 0, 2, 1, 1]])


def test_normalized_adjacency_by_hand():
    a_hat = normalized_adjacency(_path3(), 3).to_dense()
    # A + I = [[1,1,0],[1,1,1],[0,1,1]]; degrees (2, 3, 2)
    r2, r6 = 1 / 2, 1 / math.sqrt(6)
    expected = torch.tensor([[r2, r6, 0.0], [r6, 1 / 3, r6], [0.0, r6, r2]])
    assert torch.allclose(a_hat, expected)
    assert normalized_adjacency(_path3(), 3).is_sparse


def test_isolated_node_keeps_its_own_features():
    a_hat = normalized_adjacency(torch.tensor([[0, 1], [1, 0]]), 3).to_dense()
    assert a_hat[2].tolist() == [0.0, 0.0, 1.0]


def test_gcn_layer_is_a_hat_x_w_plus_b_and_two_layers_compose():
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    adj = normalized_adjacency(_path3(), 3)
    dense = adj.to_dense()
    net = GCN(4, 2, hidden=5, layers=2, dropout=0.0).eval()
    w1, b1 = net.convs[0].weight, net.convs[0].bias
    w2, b2 = net.convs[1].weight, net.convs[1].bias
    h = torch.relu(dense @ x @ w1.T + b1)
    assert torch.allclose(net(x, adj), dense @ h @ w2.T + b2, atol=1e-6)
    assert torch.allclose(net(x, dense), net(x, adj), atol=1e-6)  # dense adjacency works too
    assert all(isinstance(c, nn.Linear) for c in net.convs)  # prunable by every tool


def test_bad_gcn_arguments():
    with pytest.raises(ValueError, match="layers=0"):
        GCN(4, 2, layers=0)
    with pytest.raises(ValueError, match="dropout=1.0"):
        GCN(4, 2, dropout=1.0)
