"""``adabayes table``: every optimiser x several seeds -> a Table-1-style Markdown table and test curves.

Each (optimiser, seed) run is an ordinary resumable run directory ``OUT/runs/OPT-sSEED``, so an interrupted
table resumes where it stopped and a finished one is re-summarised without retraining. Runs can go to
``--jobs`` worker processes (one CPU thread each by default, which is fastest for the small MNIST-1D models).

Table 1 of the paper reports, per optimiser, the minimal test error (%) and minimal test loss over training;
here each is computed per seed and reported as mean ± s.d. (ddof=1) over seeds (the s.d. is "n/a" for one
seed). Bold marks the best adaptive
method per column, and SGD too where it beats every adaptive method (the paper's grey cells).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .optimizers import ADAPTIVE, DISPLAY, OPTIMIZERS, canonical_optimizer, drop_epoch
from .train_cli import add_common_arguments, parsed_command, set_threads

__all__ = ["HELP", "add_arguments", "markdown_table", "run", "run_grid", "summarise"]

HELP = (
    "Train every optimiser with several seeds (default: MNIST-1D, 1-D ResNet, 3 seeds) and write a "
    "Table-1-style Markdown table (min test error %, min test loss, mean +- s.d. over seeds) and test curves."
)

#: CPU-sized defaults for MNIST-1D (measured in RESULTS.md); CIFAR uses the paper's 200 epochs
DEFAULT_EPOCHS = {"mnist1d": 20, "digits": 20, "cifar10": 200, "cifar100": 200}
DEFAULT_WIDTH = {"mnist1d": 16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adabayes table``."""
    add_common_arguments(parser)
    parser.set_defaults(threads=1)
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), help="(default: all six)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 20 MNIST-1D, 200 CIFAR)")
    parser.add_argument(
        "--milestone", type=float, default=0.75, help="LR / 10 after this fraction of epochs (>= 1: never)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel worker processes (default: 2)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/table-DATASET-MODEL)")
    parser.add_argument("--markdown", default=None, metavar="MD", help="table path (default: DIR/table.md)")
    parser.add_argument("--figure", default=None, metavar="PNG", help="curves path (default: DIR/curves.png)")


def _train_one(config: Any, device: str, out_dir: str, threads: int | None, progress: bool) -> list[dict[str, Any]]:
    """Worker: one resumable run; returns its per-epoch rows (rows loaded from a checkpoint get ``"loaded"``)."""
    from .loop import train
    from .records import CHECKPOINT

    set_threads(threads)
    resume = (Path(out_dir) / CHECKPOINT).is_file()
    # a folder without checkpoint holds no resumable run (at most a log written just before an interruption)
    result = train(config, device=device, out_dir=out_dir, resume=resume, overwrite=not resume, progress=progress)
    return [dict(row, loaded=i < result.resumed_from) for i, row in enumerate(result.history)]


def run_grid(
    base: Any,
    optimizers: list[str],
    seeds: list[int],
    out: Path,
    device: str = "cpu",
    jobs: int = 1,
    threads: int | None = 1,
    progress: bool = True,
) -> dict[str, list[list[dict[str, Any]]]]:
    """Train ``base`` (a :class:`~simulations.training.loop.TrainConfig`) for every optimiser and seed.

    Returns
    -------
    dict
        optimiser -> list over ``seeds`` of per-epoch rows.
    """
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs!r}")
    tasks = [(opt, seed, replace(base, optimizer=opt, seed=seed)) for opt in optimizers for seed in seeds]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    bar = tqdm(total=len(tasks), desc="table runs", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    if jobs == 1:
        for opt, seed, cfg in tasks:
            results[opt, seed] = _train_one(cfg, device, str(out / "runs" / f"{opt}-s{seed}"), threads, progress)
            bar.update(1)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(_train_one, cfg, device, str(out / "runs" / f"{opt}-s{seed}"), threads, False): (opt, seed)
                for opt, seed, cfg in tasks
            }
            for fut in futures:
                results[futures[fut]] = fut.result()
                bar.update(1)
    bar.close()
    return {opt: [results[opt, seed] for seed in seeds] for opt in optimizers}


def summarise(runs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Per optimiser: per-seed minimal test error (%) and test loss, their mean and s.d. (ddof=1), final values.

    With one seed there is no s.d.: ``error_std`` and ``loss_std`` are ``None``.
    """
    summary: dict[str, dict[str, Any]] = {}
    for opt, seeds in runs.items():
        err = np.array([100.0 * np.nanmin([r["test_error"] for r in h]) if h else np.nan for h in seeds])
        loss = np.array([np.nanmin([r["test_loss"] for r in h]) if h else np.nan for h in seeds])
        final_err = np.array([100.0 * h[-1]["test_error"] if h else np.nan for h in seeds])
        several = len(seeds) > 1
        summary[opt] = {
            "min_test_error_pct": err.tolist(),
            "min_test_loss": loss.tolist(),
            "final_test_error_pct": final_err.tolist(),
            "error_mean": float(np.mean(err)),
            "error_std": float(np.std(err, ddof=1)) if several else None,
            "loss_mean": float(np.mean(loss)),
            "loss_std": float(np.std(loss, ddof=1)) if several else None,
            "final_error_mean": float(np.mean(final_err)),
            "diverged": any(any(r.get("diverged") for r in h) for h in seeds),
            "epochs": [len(h) for h in seeds],
        }
    return summary


def _bold_flags(summary: dict[str, dict[str, Any]], key: str) -> set[str]:
    """Best adaptive optimiser for ``key``, plus SGD where it beats every adaptive one (Table 1's marking)."""
    adaptive = {o: s[key] for o, s in summary.items() if o in ADAPTIVE and math.isfinite(s[key])}
    flags: set[str] = set()
    if adaptive:
        best = min(adaptive.values())
        flags |= {o for o, v in adaptive.items() if v == best}
        if "sgd" in summary and summary["sgd"][key] < best:
            flags.add("sgd")
    return flags


def markdown_table(summary: dict[str, dict[str, Any]], n_seeds: int) -> str:
    """Table-1-style Markdown: optimiser, min test error (%) and min test loss as mean ± s.d. over seeds."""
    bold_err, bold_loss = _bold_flags(summary, "error_mean"), _bold_flags(summary, "loss_mean")
    lines = [
        f"| optimizer | min test error (%), mean ± s.d. over {n_seeds} seeds | min test loss, mean ± s.d. |",
        "|---|---|---|",
    ]

    def sd(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    for opt, s in summary.items():
        err = f"{s['error_mean']:.2f} ± {sd(s['error_std'], 2)}"
        loss = f"{s['loss_mean']:.4f} ± {sd(s['loss_std'], 4)}"
        err = f"**{err}**" if opt in bold_err else err
        loss = f"**{loss}**" if opt in bold_loss else loss
        name = DISPLAY.get(opt, opt) + (" (diverged)" if s["diverged"] else "")
        lines.append(f"| {name} | {err} | {loss} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run ``adabayes table``."""
    from .loop import TrainConfig
    from .plots import plot_curves

    optimizers = [canonical_optimizer(o) for o in args.optimizers]
    if len(set(optimizers)) != len(optimizers):
        raise ValueError(f"optimizers must be distinct (after normalising case and '-'), got {args.optimizers}")
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"seeds must be distinct, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"epochs (--epochs) must be a positive integer, got {args.epochs!r}")
    base = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        optimizer=optimizers[0],
        epochs=args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset],
        seed=args.seeds[0],
        batch_size=args.batch_size,
        width=args.width if args.width is not None else DEFAULT_WIDTH.get(args.dataset),
        data_dir=args.data,
        n_train=args.n_train,
        n_test=args.n_test,
        milestone=args.milestone,
    )
    out = Path(args.out or f"runs/table-{base.dataset}-{base.model}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = run_grid(base, optimizers, args.seeds, out, args.device, args.jobs, args.threads, not args.no_progress)
    wall = time.perf_counter() - t0
    trained = sum(not row["loaded"] for seeds in runs.values() for h in seeds for row in h)
    total = sum(len(h) for seeds in runs.values() for h in seeds)
    summary = summarise(runs)
    table = markdown_table(summary, len(args.seeds))
    first = drop_epoch(base.epochs, base.milestone)
    schedule = "constant LR" if first is None else f"LR / 10 at epoch {first}"
    header = (
        f"{base.dataset} / {base.model} (width {base.width}), {base.epochs} epochs, batch {base.batch_size}, "
        f"{schedule}, seeds {' '.join(map(str, args.seeds))}\n\n"
    )
    md_path = Path(args.markdown or out / "table.md")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(header + table)
    record = {
        "command": parsed_command("table", add_arguments, args),  # what was parsed, not sys.argv
        "config": base.to_dict(),
        "seeds": args.seeds,
        "jobs": args.jobs,
        "threads": args.threads,
        "wall_s": wall,
        "epochs_trained_this_call": trained,
        "epochs_loaded_from_checkpoints": total - trained,
        "summary": summary,
    }
    (out / "summary.json").write_text(json.dumps(record, indent=1) + "\n")
    title = f"{base.dataset} / {base.model}: test curves (mean over seeds, band = min..max)"
    figure = plot_curves(runs, args.figure or out / "curves.png", labels=DISPLAY, title=title)
    print(header + table)
    print(
        f"{len(optimizers) * len(args.seeds)} runs ({trained} epochs trained now, {total - trained} loaded from "
        f"checkpoints) in {wall:.1f} s; wrote {md_path}, {figure}",
        file=sys.stderr,
    )
    return 0
