"""Shared matplotlib style (Agg backend) and colours, so every figure reads the same at README width."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["COLORS", "RULE_COLORS", "RULE_LABELS", "new_figure", "plt", "save"]

COLORS = {
    "eq21": "tab:green",
    "exact": "tab:brown",
    "jensen": "tab:red",
    "sgd": "tab:orange",
    "adam": "tab:blue",
    "sigma2": "tab:purple",
    "points": "black",  # measured per-parameter points: never the colour of a theory curve
    "points_2": "0.55",
}
RULE_COLORS = {
    "adabayes": "tab:green",
    "adabayes_fp": "tab:olive",
    "kalman": "black",
    "fading": "tab:brown",
    "adam": "tab:blue",
    "adamw": "tab:cyan",
    "sgd": "tab:orange",
    "von": "tab:pink",
}
RULE_LABELS = {
    "adabayes": "AdaBayes (Alg. 1)",
    "adabayes_fp": "AdaBayes-FP (Alg. 2)",
    "kalman": "exact Kalman (known h)",
    "fading": "fading memory (App. A)",
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "von": "VON",
}

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 130,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 11,
        "legend.fontsize": 8.5,
        "axes.grid": True,
        "grid.alpha": 0.25,
    }
)


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.6, **kwargs):
    """``plt.subplots`` with the house size; returns (fig, axes)."""
    return plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True, **kwargs)


def save(fig, path: str | Path) -> Path:
    """Save as PNG and close the figure; returns the path.

    The PNG is written to a temporary file beside ``path`` that then replaces it: a killed run never leaves half
    a PNG, and a symbolic link at ``path`` is replaced, not followed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path
