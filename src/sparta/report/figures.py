"""The matplotlib set-up every report figure shares (headless backend, one way to save)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

from sparta.io import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig: Any, path: str | os.PathLike) -> Path:
    """Lay out, write ``fig`` to ``path`` as a 100-dpi PNG, close it; returns the path."""
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a kill never leaves half a PNG
        fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


__all__ = ["plt", "save"]
