"""``adabayes table``: every optimiser x several seeds -> a Table-1-style Markdown table and test curves.

Each (optimiser, seed) run is an ordinary resumable run directory ``OUT/runs/OPT-sSEED``, so an interrupted
table resumes where it stopped and a finished one is re-summarised without retraining. Runs can go to
``--jobs`` worker processes (one CPU thread each by default, which is fastest for the small MNIST-1D models).

With ``--protocol paper|matched|tuned`` the command runs the optimiser verdict of issue 10 instead (tasks with
validation splits, equal tuning budgets, bootstrap intervals; :mod:`~simulations.training.verdict_cli`).

Table 1 of the paper reports, per optimiser, the minimal test error (%) and minimal test loss over training;
here each is computed per seed and reported as mean ± s.d. (ddof=1) over seeds (the s.d. is "n/a" for one
seed). Bold marks the best adaptive
method per column, and SGD too where it beats every adaptive method (the paper's grey cells).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from adabayes.errors import Interrupted

from . import verdict_cli
from .argtypes import float_in, int_at_least, optimizer_name
from .catalog import ADAPTIVE, DISPLAY, OPTIMIZERS, drop_epoch
from .paths import check_output_dir, check_output_file, differing_fields
from .train_cli import add_common_arguments, parsed_command, set_threads

__all__ = ["HELP", "add_arguments", "markdown_table", "run", "run_grid", "summarise"]

HELP = (
    "Train every optimiser with several seeds (default: MNIST-1D, 1-D ResNet, 3 seeds) and write a "
    "Table-1-style Markdown table (min test error %, min test loss, mean +- s.d. over seeds) and test curves."
)

#: CPU-sized defaults for MNIST-1D (measured in RESULTS.md); CIFAR uses the paper's 200 epochs
DEFAULT_EPOCHS = {"mnist1d": 20, "mnist": 10, "digits": 20, "cifar10": 200, "cifar100": 200}
DEFAULT_WIDTH = {"mnist1d": 16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adabayes table``."""
    add_common_arguments(parser)
    parser.set_defaults(threads=1)
    parser.add_argument(
        "--optimizers",
        nargs="+",
        type=optimizer_name,
        default=list(OPTIMIZERS),
        help="optimisers to compare (case, '-' and '_' do not matter)",
    )
    parser.add_argument(
        "--seeds", type=int_at_least(0), nargs="+", default=None, help="training seeds (default: 0 1 2)"
    )
    parser.add_argument(
        "--epochs", type=int_at_least(1), default=None, help="epochs per run (default: 20 MNIST-1D, 200 CIFAR)"
    )
    parser.add_argument(
        "--milestone",
        type=float_in(0.0, allow_inf=True),
        default=0.75,
        help="LR / 10 after this fraction of epochs (>= 1: never)",
    )
    parser.add_argument("--jobs", type=int_at_least(1), default=2, help="runs in parallel worker processes")
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: runs/table-DATASET-MODEL plus name=value for every option that differs "
        "from the table's defaults)",
    )
    parser.add_argument("--markdown", default=None, metavar="MD", help="table path (default: DIR/table.md)")
    parser.add_argument("--figure", default=None, metavar="PNG", help="curves path (default: DIR/curves.png)")
    verdict_cli.add_arguments(parser)


#: set in a worker process by its first Ctrl-C; later tasks in that worker then stop at once
_INTERRUPTED = threading.Event()


def _on_sigint(_signum: int, _frame: object) -> None:
    """A worker's SIGINT handler: interrupt the current run once; a repeated signal changes nothing."""
    if _INTERRUPTED.is_set():
        return
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _worker_init() -> None:
    signal.signal(signal.SIGINT, _on_sigint)


def _train_one(
    config: Any, device: str, out_dir: str, threads: int | None, progress: bool, verify_data: bool = True
) -> list[dict[str, Any]]:
    """Worker: one resumable run; returns its per-epoch rows (rows loaded from a checkpoint get ``"loaded"``)."""
    from .loop import train
    from .records import CHECKPOINT

    if _INTERRUPTED.is_set():  # this worker was interrupted: start no new run
        raise KeyboardInterrupt
    set_threads(threads)
    resume = (Path(out_dir) / CHECKPOINT).is_file()
    # a folder without checkpoint holds no resumable run (at most a log written just before an interruption)
    try:
        result = train(
            config,
            device=device,
            out_dir=out_dir,
            resume=resume,
            overwrite=not resume,
            progress=progress,
            verify_data=verify_data,
        )
    except KeyboardInterrupt:
        # however the interruption reached the run (this handler, or a Ctrl-C held during a checkpoint write and
        # raised after it), the tasks already queued to this worker must not start
        _INTERRUPTED.set()
        raise
    return [dict(row, loaded=i < result.resumed_from) for i, row in enumerate(result.history)]


def _run_parallel(
    tasks: list[tuple[str, int, Any]],
    out: Path,
    device: str,
    jobs: int,
    threads: int | None,
    verify_data: bool,
    bar: Any,
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The runs of ``tasks`` in ``jobs`` spawned worker processes.

    Ctrl-C (to the process group, or to this process alone) interrupts every worker's current run, which keeps
    its finished epochs, and no further run starts; the call returns only when the workers have stopped.
    """
    import multiprocessing as mp

    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    try:
        futures = {
            pool.submit(_train_one, cfg, device, str(out / "runs" / f"{opt}-s{seed}"), threads, False, verify_data): (
                opt,
                seed,
            )
            for opt, seed, cfg in tasks
        }
        for fut in futures:
            results[futures[fut]] = fut.result()
            bar.update(1)
    except BaseException:
        for child in mp.active_children():  # the workers: stop their runs too
            if child.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def run_grid(
    base: Any,
    optimizers: list[str],
    seeds: list[int],
    out: Path,
    device: str = "cpu",
    jobs: int = 1,
    threads: int | None = 1,
    progress: bool = True,
    verify_data: bool = True,
) -> dict[str, list[list[dict[str, Any]]]]:
    """Train ``base`` (a :class:`~simulations.training.loop.TrainConfig`) for every optimiser and seed.

    Returns
    -------
    dict
        optimiser -> list over ``seeds`` of per-epoch rows.
    """
    from tqdm.auto import tqdm

    from filtering.validation import check_int

    check_int("jobs", jobs, lower=1)
    tasks = [(opt, seed, replace(base, optimizer=opt, seed=seed)) for opt in optimizers for seed in seeds]
    bar = tqdm(total=len(tasks), desc="table runs", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        if jobs == 1:
            results = {}
            for opt, seed, cfg in tasks:
                folder = str(out / "runs" / f"{opt}-s{seed}")
                results[opt, seed] = _train_one(cfg, device, folder, threads, progress, verify_data)
                bar.update(1)
        else:
            results = _run_parallel(tasks, out, device, jobs, threads, verify_data, bar)
    finally:
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


def _base_config(args: argparse.Namespace) -> Any:
    """The :class:`~simulations.training.loop.TrainConfig` shared by every run of the table (checked)."""
    from .loop import TrainConfig

    if len(set(args.optimizers)) != len(args.optimizers):
        raise ValueError(f"optimizers must be distinct (after normalising case, '-' and '_'), got {args.optimizers}")
    if args.seeds is None:
        args.seeds = [0, 1, 2]
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"seeds must be distinct, got {args.seeds}")
    return TrainConfig(
        dataset=args.dataset,
        model=args.model,
        optimizer=args.optimizers[0],
        epochs=args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset],
        seed=args.seeds[0],
        batch_size=args.batch_size,
        width=args.width if args.width is not None else DEFAULT_WIDTH.get(args.dataset),
        data_dir=args.data,
        n_train=args.n_train,
        n_test=args.n_test,
        milestone=args.milestone,
    )


def default_table_dir(base: Any) -> Path:
    """``runs/table-DATASET-MODEL`` plus ``name=value`` for each field that differs from the table's defaults."""
    from .loop import TrainConfig

    defaults = TrainConfig(
        dataset=base.dataset,
        epochs=DEFAULT_EPOCHS[base.dataset],
        width=DEFAULT_WIDTH.get(base.dataset),
    ).to_dict()
    return Path("runs") / "-".join([f"table-{base.dataset}-{base.model}", *differing_fields(base.to_dict(), defaults)])


def _output_paths(args: argparse.Namespace, base: Any) -> tuple[Path, Path, Path]:
    """The output folder, table and figure paths, checked before anything is trained."""
    out = check_output_dir(args.out or default_table_dir(base))
    md_path = check_output_file(args.markdown or out / "table.md", "--markdown")
    fig_path = check_output_file(args.figure or out / "curves.png", "--figure")
    return out, md_path, fig_path


def _header(base: Any, seeds: list[int]) -> str:
    first = drop_epoch(base.epochs, base.milestone)
    schedule = "constant LR" if first is None else f"LR / 10 at epoch {first}"
    return (
        f"{base.dataset} / {base.model} (width {base.width}), {base.epochs} epochs, batch {base.batch_size}, "
        f"{schedule}, seeds {' '.join(map(str, seeds))}\n\n"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``adabayes table``: check every option and output path, train (resumably), write and print the table.

    With ``--protocol`` it runs the optimiser verdict instead (:mod:`~simulations.training.verdict_cli`).
    """
    from .plots import plot_curves
    from .records import atomic_write

    if args.protocol:
        return verdict_cli.run(args, parsed_command("table", add_arguments, args))
    for flag, value in (("--quick", args.quick), ("--storage", args.storage), ("--tasks", args.tasks)):
        if value not in (None, False):
            raise ValueError(f"{flag} needs --protocol paper|matched|tuned")
    if args.trials is not None:
        raise ValueError("--trials needs --protocol tuned")

    base = _base_config(args)
    out, md_path, fig_path = _output_paths(args, base)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        runs = run_grid(
            base,
            args.optimizers,
            args.seeds,
            out,
            args.device,
            args.jobs,
            args.threads,
            not args.no_progress,
            verify_data=not args.no_verify,
        )
    except KeyboardInterrupt as exc:
        raise Interrupted(f"finished runs and epochs are kept in {out}; rerun the same command to continue") from exc
    wall = time.perf_counter() - t0
    trained = sum(not row["loaded"] for seeds in runs.values() for h in seeds for row in h)
    total = sum(len(h) for seeds in runs.values() for h in seeds)
    summary = summarise(runs)
    header = _header(base, args.seeds)
    table = markdown_table(summary, len(args.seeds))
    md_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(md_path, (header + table).encode())
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
    atomic_write(out / "summary.json", (json.dumps(record, indent=1) + "\n").encode())
    title = f"{base.dataset} / {base.model}: test curves (mean over seeds, band = min..max)"
    figure = plot_curves(runs, fig_path, labels=DISPLAY, title=title)
    print(header + table)
    print(
        f"{len(args.optimizers) * len(args.seeds)} runs ({trained} epochs trained now, {total - trained} loaded from "
        f"checkpoints) in {wall:.1f} s; wrote {md_path}, {figure}",
        file=sys.stderr,
    )
    return 0
