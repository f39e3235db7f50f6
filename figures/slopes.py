"""Learning rate against ⟨g²⟩ per rule, with the fitted high-⟨g²⟩ slopes (reads slopes.json and the npz files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_json, load_npz
from .style import RULE_COLORS, RULE_LABELS, legend_below, new_figure, plus_minus, save

__all__ = ["render"]


def _panel(ax, rates: dict[str, tuple[np.ndarray, np.ndarray]], fits: dict, title: str) -> None:
    lo, hi = next(iter(fits.values()))["window"]
    ax.axvspan(lo, hi, color="0.85", alpha=0.6, lw=0, label="fit window")
    for rule, (g2, rate) in rates.items():
        f = fits.get(rule)
        color = RULE_COLORS.get(rule, "0.3")
        label = RULE_LABELS.get(rule, rule)
        if f is not None and np.isfinite(f["slope"]):
            label += f": slope {plus_minus(f['slope'], f['stderr'])} (theory {f['theory']:g})"
        if rule == "sgd":
            label += rf" (rate $\sigma^2$ = {float(np.median(rate)):.2g}: lr_sgd = 1e-3, not the paper's 0.1)"
        ax.scatter(g2, rate, s=4, color=color, alpha=0.5, linewidths=0, label=label)
        if f is not None and np.isfinite(f["slope"]):
            x = np.array([lo, hi])
            ax.plot(x, 10 ** (f["intercept"] + f["slope"] * np.log10(x)), color=color, lw=2.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"mean squared gradient $\langle g^2\rangle$")
    ax.set_ylabel(r"learning rate $\sigma^2_{\rm post}$ (or equivalent)")
    ax.set_title(title)
    legend_below(ax, fontsize=7.5, markerscale=3)  # below the axes: the high-⟨g²⟩ tails stay visible


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """Two panels (generative model, quadratic) when both exist, else one."""
    data_dir = Path(data_dir)
    slopes = load_json(data_dir / "slopes.json")["fits"]
    panels = []
    if "generative" in slopes:
        g = load_npz(data_dir / "generative.npz")
        rules = ("adabayes", "adabayes_fp", "adamw", "fading")
        panels.append(({r: (g[f"{r}_g2"], g[f"{r}_rate"]) for r in rules}, slopes["generative"], "Generative model"))
    if "quadratic" in slopes:
        q = load_npz(data_dir / "quadratic.npz")
        rules = ("adabayes", "adabayes_fp", "adam", "fading", "von", "sgd")
        rates = {r: (q[f"fig3_{r}_g2"], q[f"fig3_{r}_rate"]) for r in rules if f"fig3_{r}_g2" in q}
        panels.append((rates, slopes["quadratic"], "Coupled quadratic (reference hyperparameters)"))
    fig, axes = new_figure(ncols=len(panels), width=6.0 * len(panels), height=6.2)
    axes = np.atleast_1d(axes)
    for ax, (rates, fits, title) in zip(axes, panels, strict=True):
        _panel(ax, rates, fits, title)
    return save(fig, out_path)
