"""Interval bound propagation (Gowal et al. 2018, 1810.12715, Sec. 3).

Intervals travel in center/radius form through affine ops (``c' = f(c)``, ``r' = |W| r``,
Eq. 6), elementwise through ReLU and MaxPool (monotone), and add at residual joins. Margins
``z_y - z_j`` fold the specification into the last linear layer (Sec. 3, Eq. 8), which is
tighter than subtracting the logit intervals.
"""

from __future__ import annotations

import torch

from sparta.certify.domain import InputDomain
from sparta.certify.graph import Graph, Interval, LinearOp


def interval(graph: Graph, domain: InputDomain) -> dict[str, Interval]:
    """IBP bounds of every node of ``graph`` over ``domain`` (differentiable).

    For an L2 ball the first affine block's ReLU inputs are also bounded through the dual norm
    (a one-layer CROWN pass), since the box alone ignores the L2 constraint.
    """
    from sparta.certify.crown import refine

    box = domain.box()
    out: dict[str, Interval] = {graph.input.name: box}
    tighten = set(graph.needs_bounds()) if domain.norm == "l2" else set()
    for node in graph.nodes[1:]:
        b = node.op.interval(*(out[i] for i in node.inputs))  # type: ignore[union-attr]
        if node.name in tighten and node.exact_ibp and not node.diag:
            b = refine(graph, domain, node.name, {graph.input.name: box}, b)
        out[node.name] = b
    return out


def spec_matrix(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C`` of shape ``(B, K, K)``: row ``j`` is ``e_y - e_j`` (row ``y`` is zero)."""
    eye = torch.eye(num_classes, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def margin_interval(graph: Graph, bounds: dict[str, Interval], y: torch.Tensor) -> torch.Tensor:
    """Lower IBP bound ``(B, K)`` on ``z_y - z_j``, with ``C`` folded into the last layer."""
    out = graph.by_name[graph.output]
    lo, up = bounds[out.name]
    c = spec_matrix(y, lo.shape[1]).to(lo.dtype)
    if isinstance(out.op, LinearOp):
        h_lo, h_up = bounds[out.inputs[0]]
        center, radius = (h_up + h_lo) / 2, (h_up - h_lo) / 2
        w = c @ out.op.m.weight  # (B, K, in)
        m_c = (w @ center.unsqueeze(-1)).squeeze(-1)
        if out.op.m.bias is not None:
            m_c = m_c + c @ out.op.m.bias
        m_r = (w.abs() @ radius.unsqueeze(-1)).squeeze(-1)
        return m_c - m_r
    z_y_lo = lo.gather(1, y[:, None])
    return torch.where(c.abs().sum(-1) == 0, torch.zeros_like(lo), z_y_lo - up)
