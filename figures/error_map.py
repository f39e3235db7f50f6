"""Map of Eq. 21's relative error against the exact fixed point over (⟨g²⟩, σ²) at fixed η (reads generative.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from .data import load_npz
from .style import legend_below, new_figure, save

__all__ = ["render"]


LEVELS = {0.01: ("1 %", "cyan"), 0.02: ("2 %", "orange"), 0.1: ("10 %", "red")}


def _level_labels(ax, g2: np.ndarray, s2: np.ndarray, err: np.ndarray) -> None:
    """Horizontal labels just above each contour's horizontal branch (small σ²), staggered in ⟨g²⟩; never rotated.

    The branch's height is the largest σ² where the error at the smallest ⟨g²⟩ still reaches the level.
    """
    for k, (level, (text, color)) in enumerate(LEVELS.items()):
        hit = np.flatnonzero(err[:, 0] >= level)
        if hit.size == 0:
            continue
        x = g2[0] * 10.0 ** (1.0 + 2.0 * k)  # 1e-5, 1e-3, 1e-1 for the default grid
        ax.annotate(
            text,
            (x, s2[hit[-1]] * 1.15),
            color=color,
            fontsize=8,
            ha="center",
            va="bottom",
            rotation=0,
            bbox={"boxstyle": "round,pad=0.12", "fc": "black", "alpha": 0.35, "lw": 0},
        )


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """Filled log-colour map of |σ²_21/σ²_exact − 1| with the 1 %, 2 % and 10 % contours and the regime lines."""
    d = load_npz(Path(data_dir) / "generative.npz")
    g2, s2, err, eta = d["map_g2"], d["map_sigma2"], np.abs(d["map_err"]), float(d["map_eta"])
    fig, ax = new_figure(width=6.6, height=5.6)
    mesh = ax.pcolormesh(g2, s2, np.clip(err, 1e-6, 1.0), norm=LogNorm(1e-6, 1.0), cmap="viridis", shading="auto")
    ax.contour(g2, s2, err, levels=list(LEVELS), colors=[c for _, c in LEVELS.values()], linewidths=1.3)
    _level_labels(ax, g2, s2, err)
    ax.plot(
        g2,
        eta / np.sqrt(g2),
        color="tab:purple",
        ls="-.",
        lw=1.2,
        label=r"$\sigma^2=\eta/\sqrt{\langle g^2\rangle}$ (SGD | Adam)",
    )
    ax.axvline(1 / eta**2, color="white", ls=":", lw=1.2, label=r"$\eta^2\langle g^2\rangle = 1$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(s2.min(), s2.max())
    ax.set_xlabel(r"mean squared gradient $\langle g^2\rangle$")
    ax.set_ylabel(r"prior variance $\sigma^2$")
    ax.set_title(rf"Eq. 21 vs exact fixed point, $\eta$ = {eta:g} (contours: 1 %, 2 %, 10 %)")
    fig.colorbar(mesh, ax=ax, label=r"$|\sigma^2_{\rm Eq.21}/\sigma^2_{\rm exact} - 1|$")
    legend_below(ax, ncols=2, fontsize=8, frameon=True, facecolor="0.6")  # below: the lower contours stay visible
    return save(fig, out_path)
