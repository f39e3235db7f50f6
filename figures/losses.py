"""Excess-loss curves per rule at grid-tuned hyperparameters on the coupled quadratic (reads quadratic.*).

The curves are sampled at log-spaced steps as well as every T/100 steps (``tuned_loss_fine``), so the log time
axis shows the first steps as measured rather than a straight segment to the first linear sample. Rules whose
curves overlap (Adam and AdamW, AdaBayes and AdaBayes-FP) differ in line style as well as colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_json, load_npz
from .style import RULE_COLORS, RULE_LABELS, RULE_LINESTYLES, legend_below, new_figure, save

__all__ = ["render"]


def render(data_dir: str | Path, out_path: str | Path) -> Path:
    """One line per rule: ½ μᵀHμ against step, fresh seed, tuned hyperparameters (legend)."""
    data_dir = Path(data_dir)
    d = load_npz(data_dir / "quadratic.npz")
    meta = load_json(data_dir / "quadratic.json")
    fig, ax = new_figure(width=6.6, height=6.0)
    fine = "tuned_loss_fine" in d  # older data: the linear samples only
    t, loss = (d["loss_fine_t"], d["tuned_loss_fine"]) if fine else (d["loss_t"], d["tuned_loss"])
    for j, rule in enumerate(meta["tuned_columns"]):
        hyper = ", ".join(f"{k}={v:g}" for k, v in meta["tuned"][rule]["hyper"].items())
        ax.plot(
            t + 1,
            loss[:, j],
            color=RULE_COLORS.get(rule, "0.3"),
            ls=RULE_LINESTYLES.get(rule, "-"),
            lw=1.5,
            label=f"{RULE_LABELS.get(rule, rule)} ({hyper})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel(r"excess loss $\frac{1}{2}\mu^\top H \mu$ (per datapoint)")
    cfg = meta["config"]
    ax.set_title(f"Coupled quadratic, n={cfg['n']}, B={cfg['batch_size']}: tuned rules, fresh seed")
    legend_below(ax, ncols=2, fontsize=7.5)
    ax.set_ylim(top=np.nanmax(loss[np.isfinite(loss)]) * 2)
    return save(fig, out_path)
