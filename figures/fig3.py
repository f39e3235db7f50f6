"""Fig. 3-style plots: per-parameter learning rate σ²_post against the Adam learning rate η/sqrt(⟨g²⟩).

Reads ``generative.npz/.json`` or ``quadratic.npz/.json`` written by :mod:`simulations`; computes nothing
but the axis transform x = η/sqrt(⟨g²⟩). Points: black dots (first rule, under the curves), dark magenta crosses
(second rule, above the curves, where they are seen even on top of the first). Lines: Eq. 21 (green), the
exact fixed point (brown dashed), the stochastic curve -- the stationary mean of Alg. 1's σ²_post when g is drawn
afresh from N(0, ⟨g²⟩) every step (:mod:`filtering.stochastic`, dark cyan) with the 10-90 % band of σ²_post per
step (light cyan) -- the SGD limit σ² (Eq. 22, orange), the Adam limit x (Eq. 24, blue) and x = σ² (purple, where the
two limits cross). Where the data hold them, open cyan diamonds (under the points) mark the stochastic prediction
from each evaluated parameter's own gradients (their empirical law, :mod:`simulations.stochastic_check`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import load_json, load_npz
from .style import COLORS, RULE_LABELS, new_figure, save

__all__ = ["draw_fig3", "render_generative", "render_quadratic"]

_CURVE_KEYS = (
    "grid_g2",
    "grid_eq21",
    "grid_exact",
    "grid_stochastic",
    "grid_stochastic_lo",
    "grid_stochastic_hi",
    "stochastic_points_g2",
    "stochastic_points_rate",
)


def draw_fig3(
    ax,
    x_points: dict[str, np.ndarray],
    y_points: dict[str, np.ndarray],
    curves: dict,
    eta: float,
    sigma2: float,
    title: str,
) -> None:
    """Draw one Fig. 3 panel on ``ax``.

    Parameters
    ----------
    x_points, y_points : dict of rule name -> ndarray, shape (N,)
        η/sqrt(⟨g²⟩) and time-averaged σ²_post per parameter.
    curves : dict
        ``grid_g2`` (M,), ``grid_eq21`` (M,) and any of ``grid_exact``, ``grid_stochastic``,
        ``grid_stochastic_lo`` with ``grid_stochastic_hi`` (M,), and ``stochastic_points_g2`` with
        ``stochastic_points_rate`` (K,).
    eta, sigma2 : float
    title : str
    """
    for k, name in enumerate(x_points):
        first = k == 0
        ax.scatter(
            x_points[name],
            y_points[name],
            s=7 if first else 14,
            alpha=0.7 if first else 0.8,
            color=COLORS["points"] if first else COLORS["points_2"],
            marker="o" if first else "x",
            label=RULE_LABELS.get(name, name) + " (points)",
            zorder=3 if first else 6,
            linewidths=0 if first else 0.8,
        )
    xg = eta / np.sqrt(curves["grid_g2"])
    ax.plot(xg, curves["grid_eq21"], color=COLORS["eq21"], lw=2.2, label="Eq. 21 fixed point", zorder=4)
    if "grid_exact" in curves:
        ax.plot(xg, curves["grid_exact"], color=COLORS["exact"], lw=1.2, ls="--", label="exact fixed point", zorder=5)
    _draw_stochastic(ax, curves, eta)
    lo, hi = xg.min(), xg.max()
    ax.plot([lo, hi], [sigma2, sigma2], color=COLORS["sgd"], lw=1.2, label=r"SGD limit $\sigma^2$ (Eq. 22)")
    ax.plot(
        [lo, hi], [lo, hi], color=COLORS["adam"], lw=1.2, label=r"Adam limit $\eta/\sqrt{\langle g^2\rangle}$ (Eq. 24)"
    )
    ax.axvline(sigma2, color=COLORS["sigma2"], lw=1.0, ls="-.", label=r"$\eta/\sqrt{\langle g^2\rangle}=\sigma^2$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ys = np.concatenate([np.ravel(v) for v in y_points.values()])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    ax.set_ylim(max(ys.min() / 3, lo / 30), min(max(ys.max() * 3, sigma2 * 5), hi * 10))
    ax.set_xlim(lo, hi)
    ax.set_xlabel(r"Adam learning rate $\eta/\sqrt{\langle g^2\rangle}$")
    ax.set_ylabel(r"learning rate $\sigma^2_{\rm post}$ (time average)")
    ax.set_title(title)
    ax.legend(loc="upper left", framealpha=0.9)


def _draw_stochastic(ax, curves: dict, eta: float) -> None:
    """The stochastic curve, its band and the per-parameter predictions, where ``curves`` holds them."""
    color = COLORS["stochastic"]
    if "grid_stochastic" in curves:
        xg = eta / np.sqrt(curves["grid_g2"])
        ax.plot(
            xg, curves["grid_stochastic"], color=color, lw=1.3, label="stochastic: E[σ²_post], g ~ N(0, ⟨g²⟩)", zorder=5
        )
    if "grid_stochastic_lo" in curves and "grid_stochastic_hi" in curves:
        xg = eta / np.sqrt(curves["grid_g2"])
        lo, hi = curves["grid_stochastic_lo"], curves["grid_stochastic_hi"]
        ax.fill_between(xg, lo, hi, color=color, alpha=0.12, lw=0, label="10–90 % of σ²_post per step", zorder=1)
    if "stochastic_points_g2" in curves and "stochastic_points_rate" in curves:
        ax.scatter(
            eta / np.sqrt(curves["stochastic_points_g2"]),
            curves["stochastic_points_rate"],
            s=24,
            marker="D",
            facecolors="none",
            edgecolors=color,
            linewidths=0.7,
            label="stochastic, each parameter's own g",
            zorder=2,
        )


def render_generative(data_dir: str | Path, out_path: str | Path) -> Path:
    """Fig. 3 for the generative model from ``data_dir/generative.{npz,json}``."""
    data_dir = Path(data_dir)
    d = load_npz(data_dir / "generative.npz")
    cfg = load_json(data_dir / "generative.json")["config"]
    eta, s2 = float(cfg["eta"]), float(cfg["sigma2"])
    fig, ax = new_figure(width=6.6, height=5.0)
    xs = {"adabayes": eta / np.sqrt(d["adabayes_g2"])}
    ys = {"adabayes": d["adabayes_rate"]}
    draw_fig3(
        ax, xs, ys, d, eta, s2, rf"Generative model (Eqs. 12–14), $\eta$={eta:g}, $\sigma^2$={s2:g}, N={d['h'].size}"
    )
    return save(fig, out_path)


def render_quadratic(data_dir: str | Path, out_path: str | Path) -> Path:
    """Fig. 3 for the coupled quadratic from ``data_dir/quadratic.{npz,json}``."""
    data_dir = Path(data_dir)
    d = load_npz(data_dir / "quadratic.npz")
    meta = load_json(data_dir / "quadratic.json")
    eta, s2 = float(meta["fig3"]["eta"]), float(meta["fig3"]["sigma2"])
    fig, ax = new_figure(width=6.6, height=5.0)
    xs = {"adabayes": eta / np.sqrt(d["fig3_adabayes_g2"]), "adabayes_fp": eta / np.sqrt(d["fig3_adabayes_fp_g2"])}
    ys = {"adabayes": d["fig3_adabayes_rate"], "adabayes_fp": d["fig3_adabayes_fp_rate"]}
    curves = {key: d[key] for key in _CURVE_KEYS if key in d}
    n, b = meta["config"]["n"], meta["config"]["batch_size"]
    title = rf"Coupled quadratic (Eqs. 6–11), $\eta$={eta:g}, $\sigma^2$={s2:g}, n={n}, B={b}"
    draw_fig3(ax, xs, ys, curves, eta, s2, title)
    return save(fig, out_path)
