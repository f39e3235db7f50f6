"""Map of Eq. 21's relative error against the exact fixed point over (⟨g²⟩, σ²) at fixed η (reads generative.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from .data import load_npz
from .style import new_figure, save

__all__ = ["render"]


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """Filled log-colour map of |σ²_21/σ²_exact − 1| with the 1 %, 2 % and 10 % contours and the regime lines."""
    d = load_npz(Path(data_dir) / "generative.npz")
    g2, s2, err, eta = d["map_g2"], d["map_sigma2"], np.abs(d["map_err"]), float(d["map_eta"])
    fig, ax = new_figure(width=6.6, height=4.8)
    mesh = ax.pcolormesh(g2, s2, np.clip(err, 1e-6, 1.0), norm=LogNorm(1e-6, 1.0), cmap="viridis", shading="auto")
    cs = ax.contour(g2, s2, err, levels=[0.01, 0.02, 0.1], colors=["cyan", "orange", "red"], linewidths=1.3)
    ax.clabel(cs, fmt={0.01: "1 %", 0.02: "2 %", 0.1: "10 %"}, fontsize=8, inline=False)
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
    ax.set_title(rf"Eq. 21 vs exact fixed point, $\eta$ = {eta:g}")
    fig.colorbar(mesh, ax=ax, label=r"$|\sigma^2_{\rm Eq.21}/\sigma^2_{\rm exact} - 1|$")
    ax.legend(loc="lower left", fontsize=8, facecolor="0.9")
    return save(fig, out_path)
