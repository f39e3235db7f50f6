"""``adabayes train``: train one network with one optimiser, log every epoch, checkpoint, resume."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .argtypes import float_in, int_at_least, optimizer_name
from .catalog import DATASETS, MODELS, OPTIMIZERS
from .paths import check_output_dir, run_name

if TYPE_CHECKING:
    from .loop import TrainConfig

__all__ = [
    "HELP",
    "add_arguments",
    "add_common_arguments",
    "config_from_args",
    "default_run_dir",
    "parsed_command",
    "run",
    "set_threads",
]

HELP = (
    "Train one network with one optimiser (paper hyperparameters, LR / 10 at 75 % of the epochs). Writes "
    "history.json, history.csv and checkpoint.pt to --out after every epoch; --resume continues from there, "
    "--overwrite starts an existing run folder afresh."
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train``, ``table`` and ``fig3-network`` (checked at parse time where possible)."""
    parser.add_argument("--dataset", default="mnist1d", choices=DATASETS, help="data set")
    parser.add_argument(
        "--model",
        default=None,
        choices=sorted(MODELS),
        help="network (default: resnet1d for mnist1d, cnn for digits, resnet34 for CIFAR)",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="folder of the local CIFAR copy (CIFAR only; no default: nothing is ever downloaded)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the MD5 check of files with the official CIFAR names (for custom copies; they are still read "
        "by a restricted unpickler that runs nothing)",
    )
    parser.add_argument("--batch-size", type=int_at_least(1), default=128, help="minibatch size B")
    parser.add_argument(
        "--width", type=int_at_least(1), default=None, help="model width override (default: the model's)"
    )
    parser.add_argument(
        "--n-train", type=int_at_least(1), default=None, help="use only the first N training examples (default: all)"
    )
    parser.add_argument(
        "--n-test", type=int_at_least(1), default=None, help="use only the first N test examples (default: all)"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--threads", type=int_at_least(1), default=None, help="torch CPU threads (default: torch's choice)"
    )
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


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<run name>``: data set, model, optimiser, seed and every field that differs from its default."""
    from .loop import TrainConfig

    defaults = TrainConfig(dataset=config.dataset, optimizer=config.optimizer).to_dict()
    return Path("runs") / run_name(config.to_dict(), defaults)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU thread count (``None`` leaves torch's default)."""
    if threads is None:
        return
    from filtering.validation import check_int

    check_int("threads", threads, lower=1)
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
    parser.add_argument(
        "--optimizer",
        default="adabayes",
        type=optimizer_name,
        help=f"one of {', '.join(OPTIMIZERS)}; case, '-' and '_' do not matter (AdaBayesFP = adabayes-fp)",
    )
    parser.add_argument("--epochs", type=int_at_least(1), default=10, help="total epochs")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of initialisation and shuffling")
    parser.add_argument(
        "--lr",
        type=float_in(0.0),
        default=None,
        help="learning rate; for AdaBayes eta (default: the paper's, 0.1 for sgd, 1e-3 for the others)",
    )
    parser.add_argument(
        "--lr-sgd",
        type=float_in(0.0, allow_inf=True),
        default=None,
        help="AdaBayes/AdaBayes-FP eta_SGD, sigma2 = lr_sgd / B; inf is the sigma2 -> inf limit (default: 0.1)",
    )
    parser.add_argument(
        "--weight-decay",
        type=float_in(0.0, allow_equal=True),
        default=None,
        help="weight decay: coupled L2 coefficient for sgd/adam/amsgrad (default 5e-4); decoupled "
        "lambda per step in [0, 1), p <- (1 - lambda) p, for adamw/adabayes/adabayes_fp (default 5e-5; adamw is "
        "given torch weight_decay = lambda / lr, so lambda does not change with --lr)",
    )
    parser.add_argument(
        "--milestone",
        type=float_in(0.0, allow_inf=True),
        default=0.75,
        help="LR / 10 after this fraction of epochs (>= 1: never)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run folder (default: runs/DATASET-MODEL-OPTIMIZER-sSEED plus name=value for every other option "
        "that differs from its default, e.g. runs/mnist1d-resnet1d-adabayes-s0-lr=0.01)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt if it exists")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if DIR already holds a run (otherwise that is refused without --resume)",
    )
    parser.add_argument(
        "--stop-after",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="stop after N epochs in total (default: all)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``adabayes train``; print the final log row as JSON on stdout.

    The run folder is checked before any data are loaded; Ctrl-C stops with the finished epochs kept.
    """
    from .loop import train

    set_threads(args.threads)
    config = config_from_args(
        args, lr=args.lr, weight_decay=args.weight_decay, lr_sgd=args.lr_sgd, milestone=args.milestone
    )
    out = check_output_dir(args.out or default_run_dir(config))
    result = train(
        config,
        device=args.device,
        out_dir=out,
        resume=args.resume,
        overwrite=args.overwrite,
        stop_after=args.stop_after,
        progress=not args.no_progress,
        verify_data=not args.no_verify,
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
