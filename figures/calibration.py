"""Calibration histogram: z-scores of w* under the exact filter and under AdaBayes (reads generative.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_json, load_npz
from .style import RULE_COLORS, RULE_LABELS, legend_below, new_figure, save

__all__ = ["render"]


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """Histogram (density) of z = (w* - μ_post)/σ_post pooled over parameters and time, with N(0, 1)."""
    data_dir = Path(data_dir)
    d = load_npz(data_dir / "generative.npz")
    stats = load_json(data_dir / "calibration.json")["stats"]
    edges = d["z_edges"]
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    fig, ax = new_figure(width=6.4, height=5.0)
    for name in ("kalman", "adabayes"):
        counts = d[f"{name}_zhist"]
        dens = counts / counts.sum() / width
        s = stats[name]
        label = f"{RULE_LABELS[name]}: var {s['z_var']:.3g}, 68 % cov. {s['cover68']:.3f}, 95 % cov. {s['cover95']:.3f}"
        ax.step(centers, dens, where="mid", color=RULE_COLORS[name], lw=1.6, label=label)
    ax.plot(centers, np.exp(-0.5 * centers**2) / np.sqrt(2 * np.pi), color="tab:gray", ls="--", lw=1.2, label="N(0, 1)")
    ax.set_xlabel(r"$z = (w^* - \mu_{\rm post}) / \sigma_{\rm post}$ (clipped to ±5)")
    ax.set_ylabel("density")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1.0)
    ax.set_title("Calibration on the generative model (all parameters, after burn-in)")
    legend_below(ax, fontsize=8)  # below the axes: the tails near 1e-5 stay visible
    return save(fig, out_path)
