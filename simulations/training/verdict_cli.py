"""``adabayes table --protocol paper|matched|tuned``: the optimiser verdict (issue 10) from the command line.

The options of :func:`add_arguments` join ``adabayes table``'s own; with ``--protocol`` the table runs the
study of :mod:`~simulations.training.protocols` (tasks, seeds and budgets fixed by the preset, ``--quick`` for
the CI variant) in ``--jobs`` local worker processes on one Optuna storage, then writes ``verdict.md``,
``summary.json`` and the figures to the output folder (``runs/verdict`` or ``runs/verdict-quick``). A killed
or interrupted call resumes when rerun; workers on other machines join with the same ``--storage URL``.

Importing this module does not import torch or Optuna.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from adabayes.errors import Interrupted, UserError

from .argtypes import int_at_least
from .catalog import OPTIMIZERS

__all__ = ["add_arguments", "run"]

PROTOCOL_CHOICES = ("paper", "matched", "tuned")
TASK_CHOICES = ("mnist1d", "mnist", "digits")

#: options of the plain table that a protocol's tasks fix, with their defaults
_FIXED_BY_TASKS = {
    "dataset": "mnist1d",
    "model": None,
    "data": None,
    "batch_size": 128,
    "width": None,
    "n_train": None,
    "n_test": None,
    "epochs": None,
    "milestone": 0.75,
    "markdown": None,
    "figure": None,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verdict options of ``adabayes table``."""
    group = parser.add_argument_group(
        "optimiser verdict (issue 10)",
        "With --protocol the tasks fix data, network, batch and epochs; --seeds are the final seeds "
        "(default 0-4, quick 0 1), --jobs the local worker processes.",
    )
    group.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOL_CHOICES,
        default=None,
        help="run the verdict study: paper hyperparameters, matched (eta_SGD and lambda converted from SGD), "
        "tuned (equal Optuna budgets, selected on validation); several may be given (default: none, the plain table)",
    )
    group.add_argument("--quick", action="store_true", help="the CI variant: tiny subsets, 2 epochs, 2 trials, 2 seeds")
    group.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna RDB storage shared by workers on several machines (default: sqlite:///OUT/study.db)",
    )
    group.add_argument("--tasks", nargs="+", choices=TASK_CHOICES, default=None, help="tasks (default: all three)")
    group.add_argument(
        "--trials", type=int_at_least(1), default=None, help="tuning trials per optimiser (default 12, quick 2)"
    )


def _check_not_given(args: argparse.Namespace) -> None:
    """Options of the plain table that a protocol's tasks fix are refused rather than ignored."""
    given = [name for name, default in _FIXED_BY_TASKS.items() if getattr(args, name, default) != default]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UserError(f"{flags} cannot be combined with --protocol (each task fixes them; choose tasks with --tasks)")


def study_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~simulations.training.protocols.StudyConfig` of the parsed options (checked)."""
    from .protocols import study_config

    _check_not_given(args)
    optimizers = None if list(args.optimizers) == list(OPTIMIZERS) else args.optimizers
    return study_config(
        args.protocol,
        quick=args.quick,
        tasks=args.tasks,
        optimizers=optimizers,
        out=args.out,
        storage=args.storage,
        seeds=args.seeds,
        trials=args.trials,
    )


def run(args: argparse.Namespace, command: str) -> int:
    """Run the study of ``args`` (resuming whatever is stored), write the report and print the verdict tables."""
    from .paths import check_output_dir
    from .protocols import write_report
    from .tuning import run_workers

    config = study_config_from_args(args)
    check_output_dir(config.out)
    t0 = time.perf_counter()
    try:
        run_workers(config, args.jobs, args.device, args.threads)
    except KeyboardInterrupt as exc:
        raise Interrupted(
            f"finished trials are kept in {config.storage_url()}; rerun the same command to continue"
        ) from exc
    wall = time.perf_counter() - t0
    paths = write_report(config, command=command)
    print(paths["markdown"].read_text())
    written = ", ".join(str(p) for p in paths.values())
    print(f"verdict study: {wall:.1f} s in this call; wrote {written}", file=sys.stderr)
    return 0
