"""matplotlib (Agg) rendering of training results: Fig. 4-style test curves and Fig. 3 from a real network.

Rendering only: the functions take saved numbers (histories, recorder arrays) and write a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from filtering.fixed_point import approx_precision, exact_precision

__all__ = ["plot_curves", "plot_fig3"]

_COLORS = {
    "sgd": "0.45",
    "adam": "tab:red",
    "amsgrad": "tab:orange",
    "adamw": "tab:purple",
    "adabayes": "tab:blue",
    "adabayes_fp": "tab:green",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    runs: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    path: str | Path,
    labels: Mapping[str, str] | None = None,
    title: str = "",
) -> Path:
    """Test loss and test error (%) against epoch: mean over seeds, band from min to max.

    Parameters
    ----------
    runs : mapping optimiser -> list over seeds of per-epoch rows
        Rows need ``epoch``, ``test_loss`` and ``test_error`` (a fraction).
    path : str or Path
        PNG to write.
    labels : mapping, optional
        Display names of the optimisers.
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, seeds in runs.items():
        length = min(len(h) for h in seeds)
        if length == 0:
            continue
        epochs = np.asarray([row["epoch"] for row in seeds[0][:length]])
        for ax, key, scale in ((axes[0], "test_loss", 1.0), (axes[1], "test_error", 100.0)):
            values = scale * np.asarray([[row[key] for row in h[:length]] for h in seeds], dtype=float)
            color = _COLORS.get(name)
            label = (labels or {}).get(name, name)
            ax.plot(epochs, np.nanmean(values, axis=0), color=color, label=f"{label} (n={len(seeds)})")
            if len(seeds) > 1:
                ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.15)
    axes[0].set(xlabel="epoch", ylabel="test loss (cross-entropy)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="test error (%)", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=120)


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out, write the PNG (creating its folder) and close the figure; returns the path."""
    plt = _pyplot()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def plot_fig3(record: Mapping[str, np.ndarray], path: str | Path, title: str = "", max_points: int = 40_000) -> Path:
    """Fig. 3: AdaBayes learning rate σ²_post against the Adam learning rate η/sqrt(⟨g²⟩), with the theory.

    Lines: Eq. 21 (``filtering.fixed_point.approx_precision``), the exact fixed point of Alg. 1's recursion
    (``exact_precision``), the SGD limit σ² (Eq. 22), the Adam limit η/sqrt(⟨g²⟩) (Eq. 24) and the regime
    boundary x = σ².

    Parameters
    ----------
    record : mapping
        Arrays as saved by ``filtering.recording.LearningRateRecorder``: ``var_post``, ``adam_lr``, ``eta``,
        ``sigma2``, ``step`` (each of shape (N,)). ``eta`` and ``sigma2`` must be constant (constant lr).
    path : str or Path
        PNG to write.
    title : str
        Figure title.
    max_points : int
        Scatter at most this many points (an evenly spaced subset, deterministic).

    Returns
    -------
    Path
        ``path``.
    """
    var_post = np.asarray(record["var_post"], dtype=float)
    adam_lr = np.asarray(record["adam_lr"], dtype=float)
    step = np.asarray(record["step"], dtype=float)
    eta_all, sigma2_all = np.unique(record["eta"]), np.unique(record["sigma2"])
    if eta_all.size != 1 or sigma2_all.size != 1:
        raise ValueError("record must have one eta and one sigma2 (record at constant lr)")
    eta, sigma2 = float(eta_all[0]), float(sigma2_all[0])
    keep = np.isfinite(adam_lr) & np.isfinite(var_post) & (var_post > 0)
    var_post, adam_lr, step = var_post[keep], adam_lr[keep], step[keep]
    if var_post.size > max_points:
        pick = np.linspace(0, var_post.size - 1, max_points).astype(np.int64)
        var_post, adam_lr, step = var_post[pick], adam_lr[pick], step[pick]

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    sc = ax.scatter(adam_lr, var_post, c=step, s=3, cmap="viridis", alpha=0.5, linewidths=0, rasterized=True)
    fig.colorbar(sc, ax=ax, label="optimiser step")
    lo = min(adam_lr.min(), sigma2) / 3 if adam_lr.size else sigma2 / 100
    hi = max(adam_lr.max(), sigma2) * 3 if adam_lr.size else sigma2 * 100
    x = np.geomspace(lo, hi, 400)
    g2 = (eta / x) ** 2
    ax.plot(x, 1.0 / approx_precision(g2, eta, sigma2), color="tab:green", lw=2, label="fixed point, Eq. 21")
    ax.plot(x, 1.0 / exact_precision(g2, eta, sigma2), "k--", lw=1, label="exact fixed point (Alg. 1, g² → ⟨g²⟩)")
    ax.axhline(sigma2, color="tab:orange", lw=1.2, label="SGD limit σ² = η_SGD/B (Eq. 22)")
    ax.plot(x, x, color="tab:blue", lw=1.2, label="Adam limit η/√⟨g²⟩ (Eq. 24)")
    ax.axvline(sigma2, color="tab:purple", lw=1, ls=":", label="x = σ²")
    ax.set(xscale="log", yscale="log", xlabel="Adam learning rate η/√⟨g²⟩", ylabel="AdaBayes learning rate σ²_post")
    ax.set_ylim(min(var_post.min() if var_post.size else sigma2, sigma2) / 3, sigma2 * 3)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path, dpi=130)
