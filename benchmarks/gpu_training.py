"""Training throughput (images/s) per optimiser on a GPU, in two modes.

**Throughput** (default): MNIST-1D with a wider 1-D ResNet and CIFAR-shaped runs. Meant for a GPU
(``--device cuda``: ResNet-34 / DenseNet-121 on 3x32x32 inputs at batch 128, the paper's setting); ``--tiny``
shrinks every size so that the same code path runs on a CPU in seconds.

**Verdict** (``--verdict SUMMARY_JSON``): re-runs the tuned protocol's final seeds of the optimiser verdict
(issue 10; ``summary.json`` written by ``adabayes table --protocol tuned``) with models ``--width-factor`` times
wider and ``--epoch-factor`` times more epochs, with each optimiser's tuned hyperparameters, and records per
run the test error and loss at the validation-selected epoch and the training throughput (training images
per second of epoch wall time, which includes the per-epoch validation and test evaluation). The tuned
hyperparameters were selected for the CPU-sized networks and budgets: the wider, longer runs test whether the
ranking survives that change, not a re-tuned optimum. ``--tiny`` runs the quick tasks for one epoch (a CPU
smoke test of the code path).

Each measurement times ``--steps`` full training steps (forward, cross-entropy, backward, ``optimizer.step``)
after ``--warmup`` untimed ones, synchronising the device before reading the clock. Inputs are fixed random
tensors drawn from a seeded generator (the CIFAR-shaped case) or real MNIST-1D batches.

Usage::

    python benchmarks/gpu_training.py --device cuda --json gpu_training.json
    python benchmarks/gpu_training.py --device cpu --tiny
    python benchmarks/gpu_training.py --device cuda --verdict runs/verdict/summary.json --json gpu_verdict.json
    python benchmarks/gpu_training.py --device cpu --tiny --verdict runs/verdict-quick/summary.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import torch
from torch.nn import functional as F

from simulations.training.datasets import load_mnist1d
from simulations.training.loop import resolve_device
from simulations.training.models import build_model
from simulations.training.optimizers import OPTIMIZERS, build_optimizer, canonical_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(
    model_name: str,
    input_shape: tuple[int, ...],
    optimizer: str,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    steps: int,
    warmup: int,
    width: int | None,
    num_classes: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Images per second of full training steps with one optimiser.

    Parameters
    ----------
    model_name : str
        A :data:`simulations.training.models.MODELS` name.
    input_shape : tuple of int
        One input's shape, channels first.
    optimizer : str
        A :data:`simulations.training.optimizers.OPTIMIZERS` name (paper defaults).
    x, y : Tensor
        One batch of inputs and labels on ``device``.
    device : torch.device
        Where to run.
    steps, warmup : int
        Timed and untimed steps.
    width : int or None
        Model width override.
    num_classes : int
        Output classes.
    seed : int
        Seed of the model initialisation.

    Returns
    -------
    dict
        ``images_per_s``, ``ms_per_step``, ``params`` and the settings.
    """
    torch.manual_seed(seed)
    model = build_model(model_name, input_shape, num_classes, width).to(device)
    opt = build_optimizer(optimizer, model.parameters(), batch_size=len(y))
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    return {
        "model": model_name,
        "width": width,
        "optimizer": optimizer,
        "batch_size": len(y),
        "steps": steps,
        "params": sum(p.numel() for p in model.parameters()),
        "ms_per_step": 1e3 * elapsed / steps,
        "images_per_s": steps * len(y) / elapsed,
    }


def verdict_runs(
    summary: dict[str, Any],
    device: torch.device,
    width_factor: int,
    epoch_factor: int,
    tiny: bool,
    seeds: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Re-run the tuned final seeds of ``summary`` (a verdict ``summary.json``) wider and longer on ``device``.

    Returns
    -------
    list of dict
        One per run: task, optimizer, seed, width, epochs, the hyperparameters, ``test_error_pct`` and
        ``test_loss`` at the validation-selected epoch, ``images_per_s`` and ``wall_s``.
    """
    from dataclasses import replace

    from simulations.training.stats import run_statistics
    from simulations.training.tasks import QUICK, RunSpec, Task, load_task_data, run_task

    rows = []
    for record in summary["config"]["tasks"]:
        task = QUICK[record["name"]] if tiny else Task(**record)
        task = replace(task, width=task.width * width_factor, epochs=1 if tiny else task.epochs * epoch_factor)
        for opt, hp in summary.get("best", {}).get(record["name"], {}).items():
            for seed in seeds if seeds is not None else summary["config"]["seeds"]:
                spec = RunSpec.make(task, opt, hp, seed)
                t0 = time.perf_counter()
                history = run_task(spec, device=str(device))
                wall = time.perf_counter() - t0
                stats = run_statistics(history)
                n_train = len(load_task_data(task).fit.y_train)
                images = (n_train // task.batch_size) * task.batch_size * len(history)  # incomplete batches dropped
                row = {
                    "task": task.name,
                    "optimizer": opt,
                    "seed": seed,
                    "width": task.width,
                    "epochs": task.epochs,
                    "hparams": hp,
                    "test_error_pct": stats["test_error_pct"],
                    "test_loss": stats["test_loss"],
                    "images_per_s": images / sum(r["time_s"] for r in history),
                    "wall_s": wall,
                }
                rows.append(row)
                print(
                    f"{task.name:8s} {opt:12s} seed {seed}: {row['test_error_pct']:.2f} % "
                    f"{row['images_per_s']:.0f} img/s",
                    file=sys.stderr,
                )
    return rows


def _verdict_table(rows: list[dict[str, Any]]) -> str:
    from simulations.training.stats import mean_interval

    lines = [
        "| task | optimizer | width | epochs | test error (%) [95 % CI] | test loss | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["optimizer"]), []).append(r)
    for (task, opt), group in groups.items():
        err = mean_interval([r["test_error_pct"] for r in group])
        ci = "" if err.low is None else f" [{err.low:.2f}, {err.high:.2f}]"
        losses = [r["test_loss"] for r in group if r["test_loss"] == r["test_loss"]]
        loss = f"{sum(losses) / len(losses):.4f}" if losses else "–"
        speed = sum(r["images_per_s"] for r in group) / len(group)
        size = f"{group[0]['width']} | {group[0]['epochs']}"
        lines.append(f"| {task} | {opt} | {size} | {err.mean:.2f}{ci} | {loss} | {speed:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark grid and print a Markdown table (and optionally JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized models and batches")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50, tiny: 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default: 10, tiny: 2)")
    parser.add_argument("--cifar-models", nargs="+", default=["resnet34", "densenet121"])
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs and initialisation")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--verdict", default=None, metavar="SUMMARY_JSON", help="re-run the tuned final seeds of a verdict study"
    )
    parser.add_argument("--width-factor", type=int, default=4, help="verdict mode: width multiplier (default 4)")
    parser.add_argument("--epoch-factor", type=int, default=3, help="verdict mode: epoch multiplier (default 3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="verdict mode: seeds (default: the study's)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    optimizers = [canonical_optimizer(o) for o in args.optimizers]
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.warmup is not None and args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.verdict is not None:
        return _verdict_main(args, device)
    steps = args.steps if args.steps is not None else (5 if args.tiny else 50)
    warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 10)

    cases: list[tuple[str, tuple[int, ...], int | None, torch.Tensor, torch.Tensor, int]] = []
    mnist = load_mnist1d()
    b = 64 if args.tiny else 512
    cases.append(
        (
            "resnet1d",
            (1, 40),
            16 if args.tiny else 128,
            torch.as_tensor(mnist.x_train[:b], device=device),
            torch.as_tensor(mnist.y_train[:b], device=device),
            10,
        )
    )
    gen = torch.Generator().manual_seed(args.seed)
    b = 8 if args.tiny else 128
    x = torch.randn(b, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (b,), generator=gen).to(device)
    for name in args.cifar_models:
        width = (2 if name == "densenet121" else 4) if args.tiny else None
        cases.append((name, (3, 32, 32), width, x, y, 10))

    rows = []
    for model_name, shape, width, xb, yb, classes in cases:
        for opt in optimizers:
            row = throughput(model_name, shape, opt, xb, yb, device, steps, warmup, width, classes, args.seed)
            rows.append(row)
            print(f"{model_name:12s} {opt:12s} {row['images_per_s']:10.1f} img/s", file=sys.stderr)

    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "tiny": args.tiny,
    }
    print(f"device: {info['device']} ({info['device_name']}), torch {info['torch']}, threads {info['threads']}\n")
    print("| model | width | batch | optimizer | images/s | ms/step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['width'] or 'full'} | {r['batch_size']} | {r['optimizer']} | "
            f"{r['images_per_s']:.0f} | {r['ms_per_step']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "rows": rows}, handle, indent=1)
    return 0


def _verdict_main(args: argparse.Namespace, device: torch.device) -> int:
    """``--verdict``: the tuned final seeds, wider and longer; a Markdown table on stdout, JSON with ``--json``."""
    if args.width_factor < 1 or args.epoch_factor < 1:
        raise SystemExit(
            f"--width-factor and --epoch-factor must be >= 1, got {args.width_factor}, {args.epoch_factor}"
        )
    with open(args.verdict) as handle:
        summary = json.load(handle)
    if not summary.get("best"):
        raise SystemExit(f"{args.verdict} holds no tuned hyperparameters (run adabayes table --protocol tuned first)")
    t0 = time.perf_counter()
    rows = verdict_runs(summary, device, args.width_factor, args.epoch_factor, args.tiny, args.seeds)
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "tiny": args.tiny,
        "width_factor": args.width_factor,
        "epoch_factor": args.epoch_factor,
        "wall_s": time.perf_counter() - t0,
        "study": args.verdict,
    }
    print(f"device: {info['device']} ({info['device_name']}), torch {info['torch']}, {info['wall_s']:.0f} s\n")
    print(_verdict_table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
