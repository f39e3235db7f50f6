"""matplotlib (Agg) rendering of training results: Fig. 4-style test curves and Fig. 3 from a real network.

Rendering only: the functions take saved numbers (histories, recorder arrays) and write a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from filtering.fixed_point import approx_precision, exact_precision

__all__ = ["curves_figure", "fig3_figure", "plot_curves", "plot_fig3"]

#: curves with at most this many epochs get a marker per epoch (one epoch would otherwise draw nothing)
MARKERS_UP_TO = 25
#: at most this many distinct recorded steps get a legend entry each; more get a continuous colour bar
LEGEND_STEPS_UP_TO = 8
SIGMA2_POST = r"$\sigma^2_{\mathrm{post}}$"
ADAM_LR = r"$\eta/\sqrt{\langle g^2\rangle}$"

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
    return _save(curves_figure(runs, labels, title), path, dpi=120)


def curves_figure(
    runs: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    labels: Mapping[str, str] | None = None,
    title: str = "",
) -> Any:
    """The matplotlib figure of :func:`plot_curves` (not saved): a marker per epoch for short runs, and a
    message instead of empty axes when no run has a finished epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = 0
    for index, (name, seeds) in enumerate(runs.items()):
        length = min((len(h) for h in seeds), default=0)
        if length == 0:
            continue
        drawn += 1
        # one epoch: optimisers side by side (each x moved by a few hundredths), so their error bars do not overlap
        shift = 0.06 * (index - (len(runs) - 1) / 2) if length == 1 else 0.0
        epochs = np.asarray([row["epoch"] for row in seeds[0][:length]]) + shift
        for ax, key, scale in ((axes[0], "test_loss", 1.0), (axes[1], "test_error", 100.0)):
            values = scale * np.asarray([[row[key] for row in h[:length]] for h in seeds], dtype=float)
            _draw_curve(ax, epochs, values, _COLORS.get(name), f"{(labels or {}).get(name, name)} (n={len(seeds)})")
    axes[0].set(xlabel="epoch", ylabel="test loss (cross-entropy)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="test error (%)", yscale="log")
    for ax in axes:
        _style_axes(ax)
        if not drawn:
            ax.text(0.5, 0.5, "no finished epoch to plot", ha="center", va="center", transform=ax.transAxes)
    if drawn:
        axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _draw_curve(ax: Any, epochs: np.ndarray, values: np.ndarray, color: str | None, label: str) -> None:
    """Mean over seeds (rows of ``values``) with the min..max range: a band, or error bars for one epoch."""
    marker = "o" if len(epochs) <= MARKERS_UP_TO else None  # a one-epoch curve is a point: only a marker shows it
    mean, low, high = np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    ax.plot(epochs, mean, color=color, marker=marker, ms=4, label=label)
    if len(values) < 2:
        return
    if len(epochs) == 1:  # a band of zero width is invisible
        ax.errorbar(epochs, mean, yerr=[mean - low, high - mean], color=color, capsize=4, lw=1, fmt="none")
    else:
        ax.fill_between(epochs, low, high, color=color, alpha=0.15)


def _style_axes(ax: Any) -> None:
    """Whole epochs on the x axis; plain numbers on a log y axis that spans less than a decade."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log" and 0 < low and high / low < 10:
        plain = FuncFormatter(lambda v, _pos: f"{v:.4g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out, write the PNG (creating its folder) and close the figure; returns the path."""
    plt = _pyplot()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def _scatter_steps(fig: Any, ax: Any, adam_lr: np.ndarray, var_post: np.ndarray, step: np.ndarray, epochs: Any) -> None:
    """Recorded points coloured by step: one legend entry per step when there are few, a colour bar otherwise."""
    plt = _pyplot()
    steps = np.unique(step)
    kw = {"s": 4, "alpha": 0.5, "linewidths": 0, "rasterized": True}
    if steps.size > LEGEND_STEPS_UP_TO:
        sc = ax.scatter(adam_lr, var_post, c=step, cmap="viridis", **kw)
        fig.colorbar(sc, ax=ax, label="optimiser step")
        return
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(steps.size, 1)))
    epoch_list = [int(e) for e in np.asarray(epochs)] if epochs is not None else []
    for i, value in enumerate(steps):
        pick = step == value
        label = f"step {int(value)}" + (f" (epoch {epoch_list[i]})" if len(epoch_list) == steps.size else "")
        ax.scatter(adam_lr[pick], var_post[pick], color=colors[i], label=label, **kw)


def plot_fig3(
    record: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    max_points: int = 40_000,
    epochs: Sequence[int] | np.ndarray | None = None,
) -> Path:
    """Fig. 3: AdaBayes learning rate σ²_post against the Adam learning rate η/sqrt(⟨g²⟩), with the theory.

    Lines: Eq. 21 (``filtering.fixed_point.approx_precision``), the exact fixed point of Alg. 1's recursion
    (``exact_precision``), the SGD limit σ² (Eq. 22), the Adam limit η/sqrt(⟨g²⟩) (Eq. 24) and the regime
    boundary x = σ². Points are coloured by the step at which they were recorded: a legend entry per step
    (up to :data:`LEGEND_STEPS_UP_TO` steps), a colour bar beyond.

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
    epochs : sequence of int, optional
        The epoch of each recorded step, in step order (shown in the legend).

    Returns
    -------
    Path
        ``path``.
    """
    return _save(fig3_figure(record, title, max_points, epochs), path, dpi=130)


def fig3_figure(
    record: Mapping[str, np.ndarray],
    title: str = "",
    max_points: int = 40_000,
    epochs: Sequence[int] | np.ndarray | None = None,
) -> Any:
    """The matplotlib figure of :func:`plot_fig3` (not saved)."""
    var_post = np.asarray(record["var_post"], dtype=float)
    adam_lr = np.asarray(record["adam_lr"], dtype=float)
    step = np.asarray(record["step"])
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
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    _scatter_steps(fig, ax, adam_lr, var_post, step, epochs)
    lo = min(adam_lr.min(), sigma2) / 3 if adam_lr.size else sigma2 / 100
    hi = max(adam_lr.max(), sigma2) * 3 if adam_lr.size else sigma2 * 100
    x = np.geomspace(lo, hi, 400)
    g2 = (eta / x) ** 2
    ax.plot(x, 1.0 / approx_precision(g2, eta, sigma2), color="tab:green", lw=2, label="fixed point, Eq. 21")
    ax.plot(
        x,
        1.0 / exact_precision(g2, eta, sigma2),
        "k--",
        lw=1,
        label=r"exact fixed point (Alg. 1, $g^2 \to \langle g^2\rangle$)",
    )
    ax.axhline(sigma2, color="tab:orange", lw=1.2, label=r"SGD limit $\sigma^2 = \eta_{\mathrm{SGD}}/B$ (Eq. 22)")
    ax.plot(x, x, color="tab:blue", lw=1.2, label=f"Adam limit {ADAM_LR} (Eq. 24)")
    ax.axvline(sigma2, color="tab:purple", lw=1, ls=":", label=r"$x = \sigma^2$")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"Adam learning rate {ADAM_LR}",
        ylabel=f"AdaBayes learning rate {SIGMA2_POST}",
    )
    ax.set_ylim(min(var_post.min() if var_post.size else sigma2, sigma2) / 3, sigma2 * 3)
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=9)
    return fig
