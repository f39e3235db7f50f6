"""Training throughput (images/s) per optimiser: MNIST-1D with a wider 1-D ResNet and a CIFAR-shaped run.

Meant for a GPU (``--device cuda``: ResNet-34 / DenseNet-121 on 3x32x32 inputs at batch 128, the paper's
setting); ``--tiny`` shrinks every size so that the same code path runs on a CPU in seconds.

Each measurement times ``--steps`` full training steps (forward, cross-entropy, backward, ``optimizer.step``)
after ``--warmup`` untimed ones, synchronising the device before reading the clock. Inputs are fixed random
tensors drawn from a seeded generator (the CIFAR-shaped case) or real MNIST-1D batches.

Usage::

    python benchmarks/gpu_training.py --device cuda --json gpu_training.json
    python benchmarks/gpu_training.py --device cpu --tiny
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
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    optimizers = [canonical_optimizer(o) for o in args.optimizers]
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.warmup is not None and args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
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


if __name__ == "__main__":
    raise SystemExit(main())
