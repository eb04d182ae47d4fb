"""Edge-popup on a GCN: the recipe trains only scores and beats an untrained random GCN."""

import torch

from sparta.data.graphs import sbm
from sparta.experiments.untrained_gnn import compare, fit_graph, graph_accuracy
from sparta.models.gcn import GCN, normalized_adjacency
from sparta.sparsity.supermask import supermask


def test_supermask_of_a_random_gcn_learns_without_moving_a_weight():
    g = sbm(n_nodes=300, n_blocks=3, p_in=0.06, p_out=0.01, feature_noise=3.0, n_val=60, seed=0)
    adj = normalized_adjacency(g.edge_index, g.num_nodes)
    torch.manual_seed(0)
    net = GCN(g.x.shape[1], 3, hidden=32)
    scored = supermask(net, 0.5, weights="signed-constant", seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start = graph_accuracy(scored, g, adj, g.val_mask)
    r = fit_graph(scored, g, adj, epochs=60, lr=0.02, weight_decay=0.0)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert r["val_acc"] >= start and r["val_acc"] > 0.6  # 3 classes: chance is 1/3
    assert 1 <= r["best_epoch"] <= 60


def test_compare_rows():
    g = sbm(n_nodes=200, n_blocks=2, p_in=0.08, p_out=0.01, n_val=40, seed=1)
    rows = compare(g, [0.5], hidden=16, epochs=5, seeds=[0, 1])
    assert [(r.method, r.sparsity, r.seed) for r in rows] == [
        ("dense", 0.0, 0), ("supermask", 0.5, 0), ("dense", 0.0, 1), ("supermask", 0.5, 1),
    ]  # fmt: skip
    assert all(0 <= r.test_acc <= 1 for r in rows)
