"""Rendering of the optimiser verdict (issue 10): Markdown tables in the paper's Table-1 layout and figures.

Rendering only: every function takes the plain data of :func:`simulations.training.tuning.collect` and the
summaries of :func:`simulations.training.stats.summarise_protocol`, and writes text or a PNG.

* :func:`markdown_report` -- per protocol, Table 1's layout (optimisers x tasks, test error % and test loss at
  the validation-selected epoch, mean [95 % bootstrap interval] over seeds; bold: the best adaptive method per
  column, and SGD where it beats every adaptive one), the paired differences, ranks and P(best), the paper's
  min-over-epochs statistic separately, and the tuned hyperparameters.
* :func:`sensitivity_figure` -- final validation loss of every tuning trial against the optimiser's main
  learning rate, one panel per task.
* :func:`adabayes_map_figure` -- AdaBayes and AdaBayes-FP tuning trials in the (η, η_SGD) plane, coloured by
  final validation loss over a linear interpolation (a heat map of the trials, not a grid search).
* :func:`protocol_curves_figure` -- test error (or loss) against epoch, mean over seeds, tasks x protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import ADAPTIVE, DISPLAY
from .tuning import SPACES

__all__ = [
    "adabayes_map_figure",
    "markdown_report",
    "protocol_curves_figure",
    "save",
    "sensitivity_figure",
]

COLORS = {
    "sgd": "0.35",
    "adam": "tab:red",
    "amsgrad": "tab:orange",
    "adamw": "tab:purple",
    "adabayes": "tab:blue",
    "adabayes_fp": "tab:green",
}
#: the hyperparameter on each optimiser's x axis in the sensitivity figure
MAIN_LR = {o: "lr" for o in COLORS}
PROTOCOL_TITLES = {
    "paper": "paper (hyperparameters as printed)",
    "matched": "matched (η_SGD and λ converted from SGD)",
    "tuned": "tuned (12 trials each, selected on validation)",
}


# -------------------------------------------------------------------------------------------------- tables


def _fmt(interval: Mapping[str, Any] | None, digits: int) -> str:
    if not interval:
        return "–"
    mean = f"{interval['mean']:.{digits}f}"
    if interval.get("low") is None:
        return mean
    return f"{mean} [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"


def _bold(cells: Mapping[str, float]) -> set[str]:
    """Best adaptive optimiser (lowest mean), plus SGD where it beats every adaptive one (Table 1's marking)."""
    adaptive = {o: v for o, v in cells.items() if o in ADAPTIVE and math.isfinite(v)}
    if not adaptive:
        return set()
    best = min(adaptive.values())
    flags = {o for o, v in adaptive.items() if v == best}
    if "sgd" in cells and cells["sgd"] < best:
        flags.add("sgd")
    return flags


def _table(
    summary: Mapping[str, Any], tasks: Sequence[str], optimizers: Sequence[str], metrics: tuple[str, str]
) -> str:
    """Optimisers x (task, metric) cells of one protocol."""
    err, loss = metrics
    head = "| optimizer | " + " | ".join(f"{t}: error (%) | {t}: loss" for t in tasks) + " |"
    lines = [head, "|---" * (1 + 2 * len(tasks)) + "|"]
    bold = {}
    for t in tasks:
        entries = summary.get(t, {}).get("optimizers", {})
        for m in metrics:
            means = {o: (e[m] or {}).get("mean", math.nan) for o, e in entries.items()}
            bold[t, m] = _bold({o: v for o, v in means.items() if v is not None})
    for opt in optimizers:
        cells = []
        for t in tasks:
            entry = summary.get(t, {}).get("optimizers", {}).get(opt)
            for m, digits in ((err, 2), (loss, 4)):
                text = _fmt(entry[m] if entry else None, digits)
                cells.append(f"**{text}**" if opt in bold[t, m] else text)
        lines.append(f"| {DISPLAY.get(opt, opt)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pairs_table(
    summary: Mapping[str, Any], tasks: Sequence[str], metrics: tuple[str, str] = ("test_error_pct", "test_loss")
) -> str:
    lines = [
        "| task | difference | Δ error (pp) [95 % CI] | better in | sign-flip p | Δ loss [95 % CI] | better in |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for pair, diffs in summary.get(t, {}).get("pairs", {}).items():
            a, b = pair.split("-")
            e, lo = diffs.get(metrics[0]), diffs.get(metrics[1])
            if not e:
                continue
            n = len(e["seeds"])
            loss_cells = [_fmt(lo["interval"], 4), f"{lo['a_better']}/{len(lo['seeds'])}"] if lo else ["–", "–"]
            p = "–" if e["p_sign_flip"] is None else f"{e['p_sign_flip']:.3f}"
            name = f"{DISPLAY[a]} − {DISPLAY[b]}"
            lines.append(
                f"| {t} | {name} | {_fmt(e['interval'], 2)} | {e['a_better']}/{n} | {p} | "
                + " | ".join(loss_cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def _ranks_table(summary: Mapping[str, Any], tasks: Sequence[str], optimizers: Sequence[str]) -> str:
    head = "| optimizer | " + " | ".join(f"{t}: rank (P best)" for t in tasks) + " |"
    lines = [head, "|---" * (1 + len(tasks)) + "|"]
    for opt in optimizers:
        cells = []
        for t in tasks:
            s = summary.get(t, {})
            rank = s.get("ranks", {}).get("test_error_pct", {}).get(opt)
            p = s.get("p_best", {}).get("test_error_pct", {}).get(opt)
            cells.append("–" if rank is None else f"{rank:g}" + ("" if p is None else f" ({p:.2f})"))
        lines.append(f"| {DISPLAY.get(opt, opt)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _best_table(best: Mapping[str, Mapping[str, Mapping[str, float]]], tasks: Sequence[str]) -> str:
    lines = ["| task | optimizer | tuned hyperparameters |", "|---|---|---|"]
    for t in tasks:
        for opt, hp in best.get(t, {}).items():
            text = ", ".join(f"{k} = {v:.3g}" for k, v in sorted(hp.items()))
            lines.append(f"| {t} | {DISPLAY.get(opt, opt)} | {text} |")
    return "\n".join(lines) + "\n"


def markdown_report(
    summaries: Mapping[str, Mapping[str, Any]],
    collected: Mapping[str, Any],
    tasks: Sequence[str],
    optimizers: Sequence[str],
    protocols: Sequence[str],
    header: str = "",
) -> str:
    """The verdict as Markdown.

    Parameters
    ----------
    summaries : mapping protocol -> (mapping task -> :func:`~simulations.training.stats.summarise_protocol`)
    collected : dict
        :func:`simulations.training.tuning.collect` output (for the tuned hyperparameters).
    tasks, optimizers, protocols : sequences of str
        Order of columns and rows.
    header : str
        Text placed first.
    """
    parts = [header] if header else []
    for protocol in protocols:
        summary = summaries.get(protocol, {})
        parts += [
            f"## Protocol `{protocol}`: {PROTOCOL_TITLES[protocol]}\n",
            "Test error (%) and test loss at the validation-selected epoch, mean [95 % percentile bootstrap] "
            "over seeds. Bold: best adaptive method per column, and SGD where it beats all of them.\n",
            _table(summary, tasks, optimizers, ("test_error_pct", "test_loss")),
            "Paired differences on shared seeds (negative: the first is better):\n",
            _pairs_table(summary, tasks),
            "Rank by mean test error (1 = best) and, in brackets, how often the optimiser is best when the seeds "
            "are resampled jointly:\n",
            _ranks_table(summary, tasks, optimizers),
            "The paper's statistic (minimum test error and loss over epochs, i.e. selected on the *test* set; "
            "optimistic, shown for comparison with Table 1 only):\n",
            _table(summary, tasks, optimizers, ("paper_min_test_error_pct", "paper_min_test_loss")),
            "Early training (the paper's Fig. 4 claim): test error and loss after the first quarter of the epochs, "
            "and the paired differences there:\n",
            _table(summary, tasks, optimizers, ("early_test_error_pct", "early_test_loss")),
            _pairs_table(summary, tasks, ("early_test_error_pct", "early_test_loss")),
        ]
        if protocol == "tuned":
            parts += [
                "Tuned hyperparameters (best validation loss of the trials):\n",
                _best_table(collected["best"], tasks),
            ]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------- figures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, write the PNG (creating its folder), close; returns the path."""
    plt = _pyplot()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def _final_val(trial: Mapping[str, Any]) -> float:
    value = trial.get("stats", {}).get("final_val_loss")
    return math.nan if value is None else float(value)


def sensitivity_figure(trials: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], tasks: Sequence[str]) -> Any:
    """Final validation loss of each tuning trial against its main learning rate; one panel per task.

    Parameters
    ----------
    trials : mapping task -> (mapping optimiser -> list of trial records)
        ``collect(...)["trials"]``: records with ``params``, ``stats`` and ``paper``.
    tasks : sequence of str
        Panels, in order.

    Notes
    -----
    Diverged trials (no finite final validation loss) are drawn as crosses at the top of the panel. The paper's
    configuration (trial 0) is ringed.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        finite_all = [
            _final_val(t) for recs in trials.get(task, {}).values() for t in recs if math.isfinite(_final_val(t))
        ]
        top = max(finite_all) * 1.5 if finite_all else 1.0
        for opt, records in trials.get(task, {}).items():
            lr = np.array([t["params"][MAIN_LR[opt]] for t in records])
            val = np.array([_final_val(t) for t in records])
            ok = np.isfinite(val)
            order = np.argsort(lr[ok])
            label = DISPLAY.get(opt, opt) + (" (η)" if opt.startswith("adabayes") else "")
            ax.plot(lr[ok][order], val[ok][order], "o-", ms=4, lw=0.8, color=COLORS[opt], label=label, alpha=0.85)
            ax.plot(lr[~ok], np.full((~ok).sum(), top), "x", color=COLORS[opt], ms=6)
            paper = [i for i, t in enumerate(records) if t.get("paper") and ok[i]]
            ax.plot(lr[paper], val[paper], "o", mfc="none", mec="k", ms=9, lw=1.2)
        ax.set(xscale="log", yscale="log", xlabel="main learning rate (SGD/Adam lr; AdaBayes η)", title=task)
        ax.set_ylabel("final validation loss")
        ax.grid(alpha=0.3, which="both")
        _plain_minor_ticks(ax)
        if not trials.get(task):
            ax.text(0.5, 0.5, "no tuning trials yet", ha="center", va="center", transform=ax.transAxes)
    axes[0][0].legend(fontsize=7, title="ringed: paper's values; x: diverged", title_fontsize=7)
    return fig


def adabayes_map_figure(trials: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], tasks: Sequence[str]) -> Any:
    """AdaBayes (top) and AdaBayes-FP (bottom) trials in the (η, η_SGD) plane, coloured by final validation loss.

    The background interpolates log10 of the final validation loss linearly over a triangulation of the trials in
    (log10 η, log10 η_SGD) -- a picture of the trials, not a grid search. The dashed lines mark the paper's
    η = 1e-3 and η_SGD = 0.1, the dotted line the matched η_SGD = 1.
    """
    plt = _pyplot()
    opts = ("adabayes", "adabayes_fp")
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.4 * len(tasks) + 1.2, 7.4), squeeze=False, layout="constrained")
    values = [
        math.log10(_final_val(t))
        for task in tasks
        for o in opts
        for t in trials.get(task, {}).get(o, [])
        if math.isfinite(_final_val(t)) and _final_val(t) > 0
    ]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    mappable = None
    for row, opt in enumerate(opts):
        for col, task in enumerate(tasks):
            ax = axes[row][col]
            mappable = _map_panel(ax, trials.get(task, {}).get(opt, []), lo, hi) or mappable
            ax.set(xscale="log", yscale="log", xlabel="η (lr)", ylabel="η_SGD (lr_sgd)")
            ax.set_title(f"{DISPLAY[opt]}: {task}", fontsize=9)
            ax.axvline(1e-3, color="k", ls="--", lw=0.7)
            ax.axhline(0.1, color="k", ls="--", lw=0.7)
            ax.axhline(1.0, color="k", ls=":", lw=0.9)
            ax.set_xlim(*SPACES[opt]["lr"])  # the whole search range, the same in every panel
            ax.set_ylim(*SPACES[opt]["lr_sgd"])
            _plain_minor_ticks(ax)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=0.6, label="log10 final validation loss")
    return fig


def _plain_minor_ticks(ax: Any) -> None:
    """No labels on minor log ticks (short ranges otherwise print 1.2e-3, 1.4e-3, ...)."""
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _map_panel(ax: Any, records: Sequence[Mapping[str, Any]], lo: float, hi: float) -> Any:
    """One (η, η_SGD) panel; returns the scatter (for the colour bar) or None."""
    if not records:
        ax.text(0.5, 0.5, "no trials yet", ha="center", va="center", transform=ax.transAxes)
        return None
    eta = np.array([t["params"]["lr"] for t in records])
    sgd = np.array([t["params"]["lr_sgd"] for t in records])
    val = np.array([_final_val(t) for t in records])
    ok = np.isfinite(val) & (val > 0)
    z = np.log10(np.where(ok, val, np.nan))
    if ok.sum() >= 4:
        import matplotlib.tri as mtri

        with np.errstate(invalid="ignore"):
            try:
                tri = mtri.Triangulation(np.log10(eta[ok]), np.log10(sgd[ok]))
                ax.tricontourf(
                    10**tri.x,
                    10**tri.y,
                    tri.triangles,
                    z[ok],
                    levels=np.linspace(lo, hi, 12),
                    cmap="viridis_r",
                    alpha=0.5,
                )
            except (RuntimeError, ValueError):  # collinear trials: no triangulation, points only
                pass
    sc = ax.scatter(eta[ok], sgd[ok], c=z[ok], cmap="viridis_r", vmin=lo, vmax=hi, edgecolors="k", s=36, zorder=3)
    ax.scatter(eta[~ok], sgd[~ok], marker="x", color="r", s=40, zorder=3, label="diverged")
    return sc


def protocol_curves_figure(
    runs: Mapping[str, Mapping[str, Mapping[str, Mapping[Any, Mapping[str, Any]]]]],
    tasks: Sequence[str],
    protocols: Sequence[str],
    key: str = "test_error",
) -> Any:
    """Test error (%) or loss against epoch, mean over seeds (band: min..max), one panel per (task, protocol).

    Parameters
    ----------
    runs : ``collect(...)["runs"]``
        task -> protocol -> optimiser -> seed -> {"history": rows, ...}.
    key : {"test_error", "test_loss"}
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(tasks), len(protocols), figsize=(4.4 * len(protocols), 3.3 * len(tasks)), squeeze=False
    )
    scale = 100.0 if key.endswith("error") else 1.0
    for i, task in enumerate(tasks):
        for j, protocol in enumerate(protocols):
            ax = axes[i][j]
            for opt, seeds in runs.get(task, {}).get(protocol, {}).items():
                histories = [r["history"] for r in seeds.values() if r.get("history")]
                if not histories:
                    continue
                n = min(len(h) for h in histories)
                values = np.array(
                    [[scale * (row[key] if row[key] is not None else np.nan) for row in h[:n]] for h in histories]
                )
                epochs = np.arange(1, n + 1)
                ax.plot(
                    epochs, np.nanmean(values, axis=0), color=COLORS[opt], label=f"{DISPLAY[opt]} (n={len(histories)})"
                )
                if len(histories) > 1:
                    ax.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), color=COLORS[opt], alpha=0.12)
            ax.set(yscale="log", xlabel="epoch", ylabel=("test error (%)" if scale == 100 else "test loss"))
            ax.set_title(f"{task} — {protocol}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            _plain_minor_ticks(ax)
            if ax.lines:
                ax.legend(fontsize=6)
            else:
                ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
    return fig
