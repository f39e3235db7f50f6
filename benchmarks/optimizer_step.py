"""Time one optimiser step: AdaBayes / AdaBayesFP (every path) against torch.optim.AdamW and pytorch-rad.

Parameters are fixed sets of shapes with random gradients (no model is run); each timed call is one
``optimizer.step()``, with ``torch.cuda.synchronize()`` around it on GPU. Reported: the median over ``--steps``
(>= 20) steps after ``--warmup`` steps, and two ratios:

- ``goal``: to the baseline the goal is stated against -- the faster of AdamW's foreach and single-tensor
  paths on CPU, fused AdamW on CUDA;
- ``vs best``: to the fastest AdamW path of all, fused included (on CPU torch's fused AdamW is one C++ kernel,
  several times faster than its loops, so this is the harder comparison).

All optimisers are built first and timed round-robin, ``--rounds`` rounds of ``--steps`` steps each, so that load
from other processes on a shared machine affects every case alike; reported are the best round's median (least
disturbed) and the median over rounds.

- CPU: ~2.2 M fp32 parameters in 62 ResNet-like tensors (convolutions, batch-norm scales/shifts, a classifier).
- CUDA: ~142 M fp32 parameters in 113 transformer-like tensors (GPT-2-small widths, 9 blocks, untied head).

The bandwidth floor is ``dst.copy_(src)`` over 3.5 fp32 words per parameter: 14 B read + 14 B written = the
28 B per parameter an Adam-type fp32 step must move (read p, grad, m, v; write p, m, v).

Usage::

    python benchmarks/optimizer_step.py [--device cpu|cuda] [--steps 20] [--rounds 5] [--warmup 5]
                                        [--threads N] [--no-compiled]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filtering.torch_adapter import AdaBayes, AdaBayesFP


def resnet_like_shapes() -> list[tuple[int, ...]]:
    """62 tensors, 2.2 M parameters: stem, 4 stages x 2 basic blocks (3x3 convs + BN), 1x1 downsamples, fc."""
    shapes: list[tuple[int, ...]] = [(32, 3, 3, 3), (32,), (32,)]
    c_in = 32
    for c in (32, 64, 128, 216):
        for block in range(2):
            shapes += [(c, c_in if block == 0 else c, 3, 3), (c,), (c,), (c, c, 3, 3), (c,), (c,)]
        if c != c_in:
            shapes += [(c, c_in, 1, 1), (c,), (c,)]
        c_in = c
    shapes += [(100, c_in), (100,)]
    return shapes


def transformer_like_shapes() -> list[tuple[int, ...]]:
    """113 tensors, ~142 M parameters: GPT-2-small widths (d = 768, vocab 50304), 9 blocks, untied head."""
    d, vocab = 768, 50304
    shapes: list[tuple[int, ...]] = [(vocab, d), (1024, d)]
    for _ in range(9):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    shapes += [(d,), (d,), (vocab, d)]
    return shapes


def make_params(shapes: list[tuple[int, ...]], device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.randn(s, generator=gen).div_(math.sqrt(s[-1])).to(device).requires_grad_()
        p.grad = torch.randn(s, generator=gen).mul_(1e-3).to(device)
        params.append(p)
    return params


def time_calls(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` in ms over ``steps`` calls after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per optimiser and round (>= 20)")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--no-compiled", action="store_true", help="skip the torch.compile (fused=True) paths")
    args = ap.parse_args(argv)
    if args.steps < 20:
        ap.error(f"--steps must be >= 20 (the goal is stated for the median of >= 20 steps), got {args.steps}")
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = resnet_like_shapes() if device.type == "cpu" else transformer_like_shapes()
    n_params = sum(math.prod(s) for s in shapes)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"{n_params / 1e6:.2f} M fp32 params in {len(shapes)} tensors, {args.rounds} "
          f"interleaved rounds of {args.steps} timed steps each, after {args.warmup} warm-up steps")

    hyper = {"lr": 1e-3, "weight_decay": 5e-5}
    ab = {"lr_sgd": 0.1, "batch_size": 128}
    cases: list[tuple[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]] = [
        ("AdamW single-tensor", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.05, foreach=False)),
        ("AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.05, foreach=True)),
        ("AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.05, fused=True)),
    ]
    paths = [("single-tensor", {"foreach": False}), ("foreach", {"foreach": True})]
    if not args.no_compiled:
        paths.append(("compiled (fused=True)", {"fused": True}))
    for cls in (AdaBayes, AdaBayesFP):
        for label, kw in paths:
            cases.append((f"{cls.__name__} {label}", lambda ps, cls=cls, kw=kw: cls(ps, **hyper, **ab, **kw)))
    cases.append(("AdaBayes default path", lambda ps: AdaBayes(ps, **hyper, **ab)))
    cases.append(("AdaBayesFP default path", lambda ps: AdaBayesFP(ps, **hyper, **ab)))
    try:
        import rad.optim

        # batch_size=1: rad multiplies p.grad by batch_size in place each step; 1 keeps the gradients fixed
        cases.append(("pytorch-rad AdaBayes", lambda ps: rad.optim.AdaBayes(ps, lr=1e-3, batch_size=1)))
    except ImportError:
        print("(pytorch-rad not installed: skipped)")

    # Build every optimiser first, then time them interleaved (round-robin, `--rounds` rounds of `--steps`
    # timed calls each) so that load from other processes on a shared machine hits all cases alike.
    runners: dict[str, Callable[[], object]] = {}
    for name, make in cases:
        params = make_params(shapes, device)
        try:
            opt = make(params)
            t0 = time.perf_counter()
            opt.step()  # first step: state allocation (and compilation for fused=True)
            first = time.perf_counter() - t0
            if first > 1.0:
                print(f"  ({name}: first step {first:.1f} s)")
            runners[name] = opt.step
        except Exception as exc:
            print(f"  ({name}: skipped, {type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
    src = torch.empty(int(3.5 * n_params), device=device)
    dst = torch.empty_like(src)
    runners["bandwidth floor (copy of 28 B/param)"] = lambda: dst.copy_(src)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, fn in runners.items():
            samples[name].append(time_calls(fn, args.steps, args.warmup if r == 0 else 1, device))
    results = {name: min(v) for name, v in samples.items()}  # the least-disturbed round's median
    spread = {name: statistics.median(v) for name, v in samples.items()}
    if device.type == "cuda" and "AdamW fused" in results:
        base_name = "AdamW fused"
    else:
        base_name = min(("AdamW single-tensor", "AdamW foreach"), key=lambda k: results[k])
    adamw = [k for k in ("AdamW single-tensor", "AdamW foreach", "AdamW fused") if k in results]
    best_name = min(adamw, key=lambda k: results[k])
    best_m_name = min(adamw, key=lambda k: spread[k])
    base, base_m = results[base_name], spread[base_name]
    best, best_m = results[best_name], spread[best_m_name]
    print(f"\ngoal baseline: {base_name} = {base:.3f} ms (best round), {base_m:.3f} ms (median round)")
    print(f"fastest AdamW (fused included): {best_name} = {best:.3f} ms (best round); "
          f"{best_m_name} = {best_m:.3f} ms (median round)")
    print("ratios: 'goal' = time / goal baseline; 'vs best' = time / fastest AdamW\n")
    head = ("optimizer step", "best-round ms", "goal", "vs best", "median-round ms", "goal", "vs best")
    print(f"| {head[0]:40s} | {head[1]:>13s} | {head[2]:>5s} | {head[3]:>7s} "
          f"| {head[4]:>15s} | {head[5]:>5s} | {head[6]:>7s} |")
    print(f"|{'-' * 42}|{'-' * 15}|{'-' * 7}|{'-' * 9}|{'-' * 17}|{'-' * 7}|{'-' * 9}|")
    for name, ms in results.items():
        med = spread[name]
        print(f"| {name:40s} | {ms:13.3f} | {ms / base:5.2f} | {ms / best:7.2f} "
              f"| {med:15.3f} | {med / base_m:5.2f} | {med / best_m:7.2f} |")


if __name__ == "__main__":
    main()
