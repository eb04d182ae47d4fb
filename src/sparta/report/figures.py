"""The matplotlib set-up every report figure shares (headless backend, one way to save)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig: Any, path: str | os.PathLike) -> Path:
    """Lay out, write ``fig`` to ``path`` as a 100-dpi PNG, close it; returns the path."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["plt", "save"]
