"""Fitted OU process noise η per parameter against ⟨g²⟩, with the paper's η = 1e-3 (reads fit_<source>.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import legend_below, new_figure, plt, save

__all__ = ["PAPER_ETA", "draw", "render"]

PAPER_ETA = 1e-3
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def _group_order(groups: list[str]) -> list[str]:
    """Groups in a readable order: by the number in a label like "H_ii in 1e-3", else as met."""

    def key(name: str) -> tuple[int, float]:
        tail = name.rsplit("1e", 1)
        try:
            return (0, float(tail[1])) if len(tail) == 2 else (1, 0.0)
        except ValueError:
            return (1, 0.0)

    return sorted(groups, key=key) if all(key(g)[0] == 0 for g in groups) else groups


def _panel(ax, data: dict[str, np.ndarray], title: str) -> None:
    g2, eta = data["g2"], data["eta_ou"]
    low, high = data["eta_ou_low"], data["eta_ou_high"]
    models = [str(m) for m in data["models"]]
    converged = data["converged"][models.index("ou")].astype(bool) if "ou" in models else np.ones(eta.shape, bool)
    groups = _group_order(list(dict.fromkeys(data["group"].tolist())))
    colors = plt.get_cmap("tab10")
    for k, name in enumerate(groups):
        sel = data["group"] == name
        color = colors(k % 10)
        bars = sel & converged & np.isfinite(low) & np.isfinite(high)
        ax.errorbar(
            g2[bars],
            eta[bars],
            yerr=[eta[bars] - low[bars], high[bars] - eta[bars]],
            fmt="none",
            ecolor=color,
            alpha=0.3,
            lw=0.6,
        )
        marker = _MARKERS[k % len(_MARKERS)]
        ax.scatter(
            g2[sel & converged],
            eta[sel & converged],
            s=12,
            color=color,
            marker=marker,
            lw=0,
            label=f"{name} (median {np.median(eta[sel]):.2g})",
        )
        ax.scatter(
            g2[sel & ~converged],
            eta[sel & ~converged],
            s=12,
            facecolors="none",
            edgecolors=color,
            marker=marker,
            lw=0.6,
        )
    ax.axhline(PAPER_ETA, color="black", ls="--", lw=1.2, label=r"paper's $\eta$ = 1e-3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    finite = eta[np.isfinite(eta) & (eta > 0)]
    if finite.size:
        lo, hi = np.quantile(finite, [0.005, 0.995])
        ax.set_ylim(min(lo, PAPER_ETA) / 10, max(hi, PAPER_ETA) * 10)
    ax.set_xlabel(r"mean squared gradient $\langle g^2\rangle$")
    ax.set_ylabel(r"fitted OU process noise $\hat\eta$ (95 % interval)")
    ax.set_title(f"{title}: hollow = maximum at the edge (not converged)", fontsize=9.5)
    legend_below(ax, ncols=2, fontsize=7.5, markerscale=1.5)


def draw(panels: list[tuple[dict[str, np.ndarray], str]], out_path: str | Path) -> Path:
    """One panel per (arrays, title); arrays as written by ``simulations.prior_evidence.arrays``."""
    fig, axes = new_figure(ncols=len(panels), width=5.6 * len(panels), height=5.6)
    for ax, (data, title) in zip(np.atleast_1d(axes), panels, strict=True):
        _panel(ax, data, title)
    return save(fig, out_path)


def render(data_dir: str | Path, out_path: str | Path, files: list[Path] | None = None) -> Path:
    """One panel per ``fit_<source>.npz`` (quadratic first, then network, then others): those of ``files``, or
    every one in ``data_dir``."""
    data_dir = Path(data_dir)
    found = data_dir.glob("fit_*.npz") if files is None else [Path(f) for f in files]
    ordered = sorted(found, key=lambda p: (p.stem != "fit_quadratic", p.stem != "fit_network", p.stem))
    if not ordered:
        raise FileNotFoundError(f"no fit_*.npz in {data_dir}")
    panels = []
    for path in ordered:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        panels.append((data, path.stem.removeprefix("fit_")))
    return draw(panels, out_path)
