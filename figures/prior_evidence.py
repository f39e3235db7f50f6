"""Fitted OU process noise η per parameter against ⟨g²⟩, with the paper's η = 1e-3 (reads fit_<source>.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import legend_below, new_figure, save

__all__ = ["PAPER_ETA", "draw", "render"]

PAPER_ETA = 1e-3
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def _panel(ax, data: dict[str, np.ndarray], title: str) -> None:
    g2, eta = data["g2"], data["eta_ou"]
    low, high = data["eta_ou_low"], data["eta_ou_high"]
    groups = list(dict.fromkeys(data["group"].tolist()))
    cmap = ax.figure.colormaps["viridis"] if hasattr(ax.figure, "colormaps") else None
    for k, name in enumerate(groups):
        sel = data["group"] == name
        color = cmap(k / max(1, len(groups) - 1)) if cmap is not None else None
        ok = sel & np.isfinite(low) & np.isfinite(high)
        ax.errorbar(
            g2[ok], eta[ok], yerr=[eta[ok] - low[ok], high[ok] - eta[ok]], fmt="none", ecolor=color, alpha=0.25, lw=0.6
        )
        ax.scatter(g2[sel], eta[sel], s=10, color=color, marker=_MARKERS[k % len(_MARKERS)], label=str(name), lw=0)
    ax.axhline(PAPER_ETA, color="black", ls="--", lw=1.2, label=r"paper's $\eta$ = 1e-3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"mean squared gradient $\langle g^2\rangle$")
    ax.set_ylabel(r"fitted OU process noise $\hat\eta$ (95 % interval)")
    ax.set_title(title)
    legend_below(ax, ncols=2, fontsize=7.5, markerscale=1.5)


def draw(panels: list[tuple[dict[str, np.ndarray], str]], out_path: str | Path) -> Path:
    """One panel per (arrays, title); arrays as written by ``simulations.prior_evidence.arrays``."""
    fig, axes = new_figure(ncols=len(panels), width=5.6 * len(panels), height=5.6)
    for ax, (data, title) in zip(np.atleast_1d(axes), panels, strict=True):
        _panel(ax, data, title)
    return save(fig, out_path)


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """Every ``fit_<source>.npz`` in ``data_dir`` as one panel each (quadratic first, then network, then others)."""
    data_dir = Path(data_dir)
    files = sorted(
        data_dir.glob("fit_*.npz"), key=lambda p: (p.stem != "fit_quadratic", p.stem != "fit_network", p.stem)
    )
    if not files:
        raise FileNotFoundError(f"no fit_*.npz in {data_dir}")
    panels = []
    for path in files:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        panels.append((data, path.stem.removeprefix("fit_")))
    return draw(panels, out_path)
