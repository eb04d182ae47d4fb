"""Scores to masks: keep the largest scores, globally or with a density per layer.

Ties are broken deterministically (by position), so exactly the requested number of
entries is kept. Global selection copies the scores once (one flat float32 buffer) and
finds the threshold with an in-place partial sort of that buffer: no second copy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def n_keep(numel: int, density: float) -> int:
    """How many of ``numel`` entries a ``density`` keeps (rounded to nearest)."""
    return int(round(numel * density))


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity={sparsity!r} is not allowed; expected a number in [0, 1)")


def keep_top(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of ``score``'s shape keeping exactly its ``k`` largest entries."""
    flat = score.detach().flatten().float()
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        mask[torch.topk(flat, min(k, flat.numel()), sorted=False).indices] = True
    return mask.view_as(score)


def global_masks(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Keep the top ``1 - sparsity`` share of all scores across tensors (one threshold)."""
    check_sparsity(sparsity)
    total = sum(s.numel() for s in scores.values())
    k = n_keep(total, 1.0 - sparsity)
    if k >= total:
        return {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    flat = torch.empty(total, dtype=torch.float32)  # the one extra copy
    offset = 0
    for s in scores.values():
        flat[offset : offset + s.numel()] = s.detach().flatten().float().cpu()
        offset += s.numel()
    values = flat.numpy()
    cut = total - k  # the k-th largest value sits at sorted position total - k
    values.partition(cut)
    threshold = float(values[cut])
    del flat, values
    masks = {n: s.detach().float() > threshold for n, s in scores.items()}
    # entries equal to the threshold fill the remaining places, in parameter order
    missing = k - sum(int(m.sum()) for m in masks.values())
    for n, s in scores.items():
        if missing <= 0:
            break
        tie = (s.detach().float() == threshold).flatten().nonzero().flatten()[:missing]
        masks[n].view(-1)[tie] = True
        missing -= tie.numel()
    return masks


def layer_masks(
    scores: Mapping[str, torch.Tensor], densities: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Keep ``densities[name]`` of each tensor's entries by its own ranking."""
    return {n: keep_top(s, n_keep(s.numel(), densities[n])) for n, s in scores.items()}
