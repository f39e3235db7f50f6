"""``adabayes train``: train one network with one optimiser, log every epoch, checkpoint, resume."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .datasets import DATASETS
from .models import MODELS
from .optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from .loop import TrainConfig

__all__ = ["HELP", "add_arguments", "add_common_arguments", "config_from_args", "parsed_command", "run", "set_threads"]

HELP = (
    "Train one network with one optimiser (paper hyperparameters, LR / 10 at 75 % of the epochs). Writes "
    "history.json, history.csv and checkpoint.pt to --out after every epoch; --resume continues from there, "
    "--overwrite starts an existing run folder afresh."
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train``, ``table`` and ``fig3-network``."""
    parser.add_argument("--dataset", default="mnist1d", choices=DATASETS, help="data set (default: mnist1d)")
    parser.add_argument("--model", default=None, choices=sorted(MODELS), help="network (default: per data set)")
    parser.add_argument("--data", default=None, metavar="DIR", help="folder of the local CIFAR copy (CIFAR only)")
    parser.add_argument("--batch-size", type=int, default=128, help="minibatch size B (default: 128)")
    parser.add_argument("--width", type=int, default=None, help="model width override")
    parser.add_argument("--n-train", type=int, default=None, help="use only the first N training examples")
    parser.add_argument("--n-test", type=int, default=None, help="use only the first N test examples")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, **fields: Any) -> TrainConfig:
    """A :class:`TrainConfig` from the options of :func:`add_common_arguments` plus the command's own
    ``--optimizer``, ``--epochs`` and ``--seed``; ``fields`` sets the rest (lr, milestone, ...)."""
    from .loop import TrainConfig

    return TrainConfig(
        dataset=args.dataset,
        model=args.model,
        optimizer=args.optimizer,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        width=args.width,
        data_dir=args.data,
        n_train=args.n_train,
        n_test=args.n_test,
        **fields,
    )


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU thread count (``None`` leaves torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)


def parsed_command(name: str, add: Callable[[argparse.ArgumentParser], None], args: argparse.Namespace) -> str:
    """The command line equivalent to the parsed ``args`` of ``adabayes NAME`` (non-default options only).

    Rebuilt from what was parsed (not from ``sys.argv``, which is not what ``main(argv)`` was given), in the
    parser's option order; ``add`` is the subcommand's ``add_arguments``.
    """
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    words = ["adabayes", name]
    for action in parser._actions:
        if not action.option_strings or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, list | tuple):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adabayes train``."""
    add_common_arguments(parser)
    parser.add_argument("--optimizer", default="adabayes", type=str.lower, help=f"one of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--epochs", type=int, default=10, help="total epochs (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default: 0)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate override (AdaBayes: eta)")
    parser.add_argument("--lr-sgd", type=float, default=None, help="AdaBayes eta_SGD override (sigma2 = lr_sgd / B)")
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="weight decay override: coupled L2 coefficient for sgd/adam/amsgrad (default 5e-4); decoupled "
        "lambda per step, p <- (1 - lambda) p, for adamw/adabayes/adabayes_fp (default 5e-5; adamw is given "
        "torch weight_decay = lambda / lr, so lambda does not change with --lr)",
    )
    parser.add_argument(
        "--milestone", type=float, default=0.75, help="LR / 10 after this fraction of epochs (>= 1: never)"
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="run directory (default: runs/DATASET-MODEL-OPT-sSEED)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt if it exists")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if DIR already holds a run (otherwise that is refused without --resume)",
    )
    parser.add_argument("--stop-after", type=int, default=None, metavar="N", help="stop after N epochs in total")


def run(args: argparse.Namespace) -> int:
    """Run ``adabayes train``; print the final log row as JSON on stdout."""
    from .loop import train

    set_threads(args.threads)
    config = config_from_args(
        args, lr=args.lr, weight_decay=args.weight_decay, lr_sgd=args.lr_sgd, milestone=args.milestone
    )
    out = Path(args.out or f"runs/{config.dataset}-{config.model}-{config.optimizer}-s{config.seed}")
    result = train(
        config,
        device=args.device,
        out_dir=out,
        resume=args.resume,
        overwrite=args.overwrite,
        stop_after=args.stop_after,
        progress=not args.no_progress,
    )
    if result.history:
        last = result.history[-1]
        best = min(result.history, key=lambda r: r["test_error"])
        print(
            f"{config.optimizer}: epoch {last['epoch']}/{config.epochs}, test error {100 * last['test_error']:.2f}% "
            f"(min {100 * best['test_error']:.2f}%), test loss {last['test_loss']:.4f}; log in {out}",
            file=sys.stderr,
        )
        print(json.dumps(last))
    return 0
