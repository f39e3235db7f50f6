"""Shared matplotlib style (Agg backend) and colours, so every figure reads the same at README width."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = [
    "COLORS",
    "RULE_COLORS",
    "RULE_LABELS",
    "RULE_LINESTYLES",
    "legend_below",
    "new_figure",
    "plt",
    "plus_minus",
    "save",
]

COLORS = {
    "eq21": "tab:green",
    "exact": "tab:brown",
    "stochastic": "#008b8b",  # dark cyan: the stationary law of Alg. 1's σ²_post under random g (filtering.stochastic)
    "sgd": "tab:orange",
    "adam": "tab:blue",
    "sigma2": "tab:purple",
    "points": "black",  # measured per-parameter points: never the colour of a theory curve
    "points_2": "#c2185b",  # a second rule's points (crosses): dark magenta, no theory curve uses it
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
# line styles that keep rules apart where their curves overlap (Adam / AdamW, AdaBayes / AdaBayes-FP)
RULE_LINESTYLES = {
    "adabayes": "-",
    "adabayes_fp": (0, (5, 2)),
    "kalman": "-",
    "fading": "-",
    "adam": (0, (1, 1.5)),
    "adamw": "-",
    "sgd": "-",
    "von": (0, (6, 2, 1, 2)),
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


def legend_below(ax, ncols: int = 1, **kwargs):
    """A legend under the axes (outside the data area; constrained layout makes room for it)."""
    options = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncols": ncols, "frameon": False}
    return ax.legend(**(options | kwargs))


def plus_minus(value: float, error: float) -> str:
    """``value ± error`` with two significant digits of the error (``-0.48531 ± 0.00031``; never ``± 0.000``).

    An error at rounding level (below 1e-12, e.g. the fit of an exactly constant rate) prints as
    ``value (exact)`` with the value rounded to 12 decimals; a non-finite one as ``value ± nan``.
    """
    if not math.isfinite(error):
        return f"{value:.3f} ± {error}"
    if abs(error) < 1e-12:
        return f"{round(value, 12) + 0.0:.4g} (exact)"
    decimals = max(3, 1 - math.floor(math.log10(abs(error))))
    return f"{value:.{decimals}f} ± {abs(error):.{decimals}f}"


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
    _note_written(path)
    return path


WRITTEN = ".adabayes-written"  # the folder's list of files adabayes wrote (same format as simulations.io's)


def _note_written(path: Path) -> None:
    log = path.parent / WRITTEN
    names = set(log.read_text(encoding="utf-8").splitlines()) if log.is_file() and not log.is_symlink() else set()
    if path.name not in names:
        with open(log, "a", encoding="utf-8") as f:
            f.write(path.name + "\n")
