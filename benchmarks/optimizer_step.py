"""Time one optimiser step: fused AdaBayes kernels and every torch path, against torch's AdamW and a copy floor.

Parameters are fixed sets of shapes with random gradients (no model is run); each timed call is one step over the
whole set, with ``torch.cuda.synchronize()`` around it on GPU. All cases share the parameters and gradients (each
has its own state), are built first and are timed round-robin, ``--rounds`` rounds of ``--steps`` (>= 20) steps
each, so that load from other processes hits every case alike. Reported per case: the median step time of the
least-disturbed round and of the median round, as ratios to

- ``fused AdamW``: ``torch.optim.AdamW(fused=True)`` (one C++ / CUDA kernel: the goal of issue 15 is <= 1.0), and
- ``copy``: ``dst.copy_(src)`` over 3.5 fp32 words per parameter, i.e. the 28 bytes per parameter an Adam-type
  fp32 step moves (read p, grad, m, v; write p, m, v). AdaBayes moves 28 B without its ⟨g²⟩ EMA (p, grad, m,
  σ²_post) and 36 B with it.

Cases: AdamW fused / foreach / single-tensor; the fused AdaBayes kernels called directly (CPU: numba,
:mod:`filtering._fused_cpu`; CUDA: Triton, :mod:`filtering._triton_kernels`) for AdaBayes without and with the
⟨g²⟩ EMA and AdaBayes-FP; the optimiser classes' single-tensor, foreach and default paths (the default is the fused
kernel: numba on CPU, Triton on CUDA; ``--compiled`` adds the torch.compile path, the fallback of ``fused=True``
where numba / Triton are missing: minutes of compiling on the larger sets). The first step of the numba kernels is
timed in fresh processes (``--first-step``, CPU): cold (an empty numba cache, ``NUMBA_CACHE_DIR`` set to a new
folder: compiles) and warm (the same folder again: loads), as import of the kernel module + the first call.

Parameter sets (``--set``):

- CPU ``small``: 2.2 M fp32 parameters in 62 ResNet-like tensors (stem, 4 stages x 2 basic blocks, classifier);
- CPU ``resnet50``: the parameter shapes of torchvision's ResNet-50 (25.6 M in 161 tensors);
- CUDA ``resnet136``: a 2.45x-wide ResNet-34-style net, 136.3 M parameters in 116 tensors;
- CUDA ``transformer1000``: 83 pre-norm blocks of width 384 plus embeddings, 1000 tensors, 167 M parameters.

Usage::

    python benchmarks/optimizer_step.py [--threads 1|2] [--set small|resnet50|all] [--steps 20] [--rounds 5]
                                        [--compiled] [--no-first-step] [--only numba,foreach]
    python benchmarks/optimizer_step.py --device cuda [--set resnet136|transformer1000|all]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

Shapes = list[tuple[int, ...]]

# the paper's defaults (DESIGN.md): lr 1e-3, lr_sgd 0.1, betas (0.9, 0.999), λ 5e-5; B = 128
LR, LR_SGD, BATCH, BETAS, DECAY = 1e-3, 0.1, 128.0, (0.9, 0.999), 5e-5


# --------------------------------------------------------------------------------------------------------------
# parameter sets


def _bn(c: int) -> Shapes:
    return [(c,), (c,)]


def resnet_like_shapes() -> Shapes:
    """62 tensors, 2.2 M parameters: stem, 4 stages x 2 basic blocks (3x3 convs + BN), 1x1 downsamples, fc."""
    shapes: Shapes = [(32, 3, 3, 3), *_bn(32)]
    c_in = 32
    for c in (32, 64, 128, 216):
        for block in range(2):
            shapes += [(c, c_in if block == 0 else c, 3, 3), *_bn(c), (c, c, 3, 3), *_bn(c)]
        if c != c_in:
            shapes += [(c, c_in, 1, 1), *_bn(c)]
        c_in = c
    return [*shapes, (100, c_in), (100,)]


def resnet50_shapes() -> Shapes:
    """torchvision ResNet-50: 161 tensors, 25.56 M parameters (bottlenecks [3, 4, 6, 3], expansion 4)."""
    shapes: Shapes = [(64, 3, 7, 7), *_bn(64)]
    c_in = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            shapes += [(width, c_in, 1, 1), *_bn(width), (width, width, 3, 3), *_bn(width)]
            shapes += [(4 * width, width, 1, 1), *_bn(4 * width)]
            if b == 0:
                shapes += [(4 * width, c_in, 1, 1), *_bn(4 * width)]
            c_in = 4 * width
    return [*shapes, (1000, c_in), (1000,)]


def wide_resnet_shapes() -> Shapes:
    """ResNet-34-style basic blocks [3, 4, 7, 3] at 2.45x width (157..1256 channels): 136.3 M in 116 tensors."""
    shapes: Shapes = [(157, 3, 7, 7), *_bn(157)]
    c_in = 157
    for width, blocks in ((157, 3), (314, 4), (628, 7), (1256, 3)):
        for b in range(blocks):
            shapes += [(width, c_in if b == 0 else width, 3, 3), *_bn(width), (width, width, 3, 3), *_bn(width)]
            if b == 0 and width != c_in:
                shapes += [(width, c_in, 1, 1), *_bn(width)]
        c_in = width
    return [*shapes, (1000, c_in), (1000,)]


def transformer_1000_shapes() -> Shapes:
    """1000 tensors: token and position embeddings, 83 pre-norm blocks (12 tensors each, width 384), final norm."""
    d = 384
    shapes: Shapes = [(50304, d), (1024, d)]
    for _ in range(83):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [*shapes, (d,), (d,)]


SETS: dict[str, dict[str, Callable[[], Shapes]]] = {
    "cpu": {"small": resnet_like_shapes, "resnet50": resnet50_shapes},
    "cuda": {"resnet136": wide_resnet_shapes, "transformer1000": transformer_1000_shapes},
}


def make_params(shapes: Shapes, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    """fp32 parameters ~ N(0, 1/fan-in) with gradients ~ N(0, 1e-6), on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.randn(s, generator=gen).div_(math.sqrt(s[-1])).to(device).requires_grad_()
        p.grad = torch.randn(s, generator=gen).mul_(1e-3).to(device)
        params.append(p)
    return params


# --------------------------------------------------------------------------------------------------------------
# the fused kernels called directly (the scalars as filtering._torch_kernels documents them)


def ab_scalars(count: int, dtype: torch.dtype, sigma2_inf: bool = False) -> dict[str, float]:
    """AdaBayes's kernel scalars at step ``count`` for the paper's defaults (Eqs. 17b, 18a, 19, 23)."""
    from filtering.ou import variance_predict_coefficients

    factor, noise = variance_predict_coefficients(LR, LR_SGD / BATCH, "paper")
    return dict(w1=1.0 - BETAS[0], beta2=BETAS[1], w2=1.0 - BETAS[1], factor=factor, noise=noise, b2=BATCH * BATCH,
                rate_max=torch.finfo(dtype).max if sigma2_inf else math.inf, decay=1.0 - DECAY,
                scale=-BATCH / (1.0 - BETAS[0] ** count))  # fmt: skip


def fp_scalars(count: int, dtype: torch.dtype) -> dict[str, float]:
    """AdaBayes-FP's kernel scalars at step ``count`` (Eq. 21 in p.grad units, k = η / (2 η_SGD))."""
    k = LR / (2.0 * LR_SGD)
    bc2 = 1.0 - BETAS[1] ** count
    tiny = torch.finfo(dtype).tiny
    return dict(w1=1.0 - BETAS[0], beta2=BETAS[1], w2=1.0 - BETAS[1], k2bc2=k * k * bc2, kbc=k * math.sqrt(bc2),
                tiny=tiny if k * math.sqrt(bc2) < tiny else 0.0, decay=1.0 - DECAY,
                scale=-LR * math.sqrt(bc2) / (1.0 - BETAS[0] ** count))  # fmt: skip


class KernelStep:
    """One optimiser's state and step count, stepped by a fused kernel (``kind``: ab, ab+g2 or fp)."""

    def __init__(self, params: list[torch.Tensor], kind: str, device: torch.device) -> None:
        if device.type == "cuda":
            from filtering import _triton_kernels as kernels

            self.ab, self.fp = kernels.adabayes_triton_step, kernels.adabayes_fp_triton_step
        else:
            from filtering import _fused_cpu as cpu

            self.ab, self.fp = cpu.adabayes_cpu_step, cpu.adabayes_fp_cpu_step
        self.kind, self.params, self.count = kind, params, 0
        self.grads = [p.grad for p in params]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params] if kind != "ab" else None
        self.var = [torch.full_like(p, LR_SGD / BATCH) for p in params] if kind != "fp" else None

    @torch.no_grad()
    def step(self) -> None:
        self.count += 1
        if self.kind == "fp":
            assert self.v is not None
            self.fp(self.params, self.grads, self.m, self.v, **fp_scalars(self.count, torch.float32))
        else:
            assert self.var is not None
            self.ab(self.params, self.grads, self.m, self.v, self.var, **ab_scalars(self.count, torch.float32))


# --------------------------------------------------------------------------------------------------------------
# cases


def cases(device: torch.device, compiled: bool) -> list[tuple[str, Callable[[list[torch.Tensor]], Callable]]]:
    """(name, build) pairs: ``build(params)`` returns the step function of one optimiser on ``params``."""
    fused = "Triton" if device.type == "cuda" else "numba"
    hyper = dict(lr=LR, lr_sgd=LR_SGD, batch_size=BATCH, betas=BETAS, weight_decay=DECAY)
    wd = DECAY / LR  # torch's AdamW decays by lr * weight_decay per step
    out: list[tuple[str, Callable[[list[torch.Tensor]], Callable]]] = [
        ("AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=wd, fused=True).step),
        ("AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=wd, foreach=True).step),
        ("AdamW single-tensor", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=wd, foreach=False).step),
        (f"AdaBayes {fused} (no <g2> EMA, 28 B)", lambda ps: KernelStep(ps, "ab", device).step),
        (f"AdaBayes {fused} (+<g2> EMA, 36 B)", lambda ps: KernelStep(ps, "ab+g2", device).step),
        (f"AdaBayesFP {fused}", lambda ps: KernelStep(ps, "fp", device).step),
    ]
    paths = [("single-tensor", {"foreach": False}), ("foreach", {"foreach": True}), ("default path", {})]
    for cls in (AdaBayes, AdaBayesFP):
        for label, kw in paths:
            out.append((f"{cls.__name__} {label}", lambda ps, cls=cls, kw=kw: cls(ps, **hyper, **kw).step))
        if compiled:
            build = lambda ps, cls=cls: on_path(cls(ps, **hyper, fused=True).step, device.type, "compiled")  # noqa: E731
            out.append((f"{cls.__name__} compiled (torch.compile)", build))
    return out


def on_path(step: Callable[[], object], device_type: str, path: str) -> Callable[[], None]:
    """``step`` with ``fused=True`` sent to kernel path ``path`` (e.g. the torch.compile fallback) while it runs."""
    from filtering import torch_functional as TF

    def run() -> None:
        old = TF.FUSED[device_type]
        TF.FUSED[device_type] = path
        try:
            step()
        finally:
            TF.FUSED[device_type] = old

    return run


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


def build_runners(
    params: list[torch.Tensor], device: torch.device, compiled: bool, only: list[str] | None = None
) -> dict[str, Callable]:
    """Every case's step function (its first step taken: state allocation, compilation), then the copy floor.

    ``only``: keep the cases whose name contains one of these strings (fused AdamW and the floor are always kept).
    """
    runners: dict[str, Callable] = {}
    for name, build in cases(device, compiled):
        if only and name != "AdamW fused" and not any(s in name for s in only):
            continue
        try:
            step = build(params)
            t0 = time.perf_counter()
            step()
            first = time.perf_counter() - t0
            if first > 1.0:
                print(f"  ({name}: first step {first:.1f} s in this process)")
            runners[name] = step
        except Exception as exc:  # a path this torch / machine lacks: report and go on
            print(f"  ({name}: skipped, {type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
    n = sum(p.numel() for p in params)
    src = torch.empty(int(3.5 * n), device=device)
    dst = torch.empty_like(src)
    runners["copy of 28 B/param (floor)"] = lambda: dst.copy_(src)
    return runners


def report(results: dict[str, float], medians: dict[str, float]) -> None:
    fused, floor = "AdamW fused", "copy of 28 B/param (floor)"
    print(f"\n| {'step':38s} | {'best-round ms':>13s} | {'x fused AdamW':>13s} | {'x copy':>6s} "
          f"| {'median-round ms':>15s} | {'x fused AdamW':>13s} |")  # fmt: skip
    print(f"|{'-' * 40}|{'-' * 15}|{'-' * 15}|{'-' * 8}|{'-' * 17}|{'-' * 15}|")
    for name, ms in results.items():
        med = medians[name]
        print(f"| {name:38s} | {ms:13.3f} | {ms / results[fused]:13.2f} | {ms / results[floor]:6.2f} "
              f"| {med:15.3f} | {med / medians[fused]:13.2f} |")  # fmt: skip


def run_set(name: str, shapes: Shapes, device: torch.device, args: argparse.Namespace) -> None:
    n = sum(math.prod(s) for s in shapes)
    print(f"\n## {name}: {n / 1e6:.2f} M fp32 params in {len(shapes)} tensors, {args.rounds} interleaved rounds of "
          f"{args.steps} timed steps after {args.warmup} warm-up steps; load {_load()}")  # fmt: skip
    params = make_params(shapes, device)
    runners = build_runners(params, device, args.compiled, args.only.split(",") if args.only else None)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(args.rounds):
        for k, fn in runners.items():
            samples[k].append(time_calls(fn, args.steps, args.warmup if r == 0 else 1, device))
    report({k: min(v) for k, v in samples.items()}, {k: statistics.median(v) for k, v in samples.items()})
    print(f"(load after: {_load()})")


# --------------------------------------------------------------------------------------------------------------
# first step of the numba kernels in fresh processes


def first_step_child(kind: str, set_name: str, threads: int) -> None:
    """Print the seconds of ``import filtering._fused_cpu`` + the first step of ``kind`` (run in a fresh process)."""
    torch.set_num_threads(threads)
    params = make_params(SETS["cpu"][set_name](), torch.device("cpu"))
    t0 = time.perf_counter()
    KernelStep(params, kind, torch.device("cpu")).step()
    print(f"{time.perf_counter() - t0:.3f}")


def first_step_times(set_name: str, threads: int) -> None:
    print(
        f"\nfirst step of the numba kernels ({set_name}, {threads} thread(s)): import of filtering._fused_cpu + the"
        " first call, in a fresh process; cold = empty numba cache (compiles), warm = that cache again"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for kind in ("ab", "fp"):
            times = []
            for _ in ("cold", "warm"):
                cmd = [sys.executable, __file__, "--first-step-child", kind, "--set", set_name]
                cmd += ["--threads", str(threads)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
                times.append(float(out.stdout.strip().splitlines()[-1]))
            label = {"ab": "AdaBayes", "fp": "AdaBayesFP"}[kind]
            print(f"  {label:10s}: cold {times[0]:.2f} s, warm {times[1]:.2f} s")


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f} (1/5/15-min load average)".format(*os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--set", default="all", help="parameter set: small|resnet50 (cpu), resnet136|transformer1000 "
                    "(cuda), or all")  # fmt: skip
    ap.add_argument("--steps", type=int, default=20, help="timed steps per case and round (>= 20)")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (the numba kernels follow it)")
    ap.add_argument("--compiled", action="store_true", help="also time fused=True (torch.compile: slow to build)")
    ap.add_argument("--no-first-step", action="store_true", help="skip the cold/warm first-step timing (CPU)")
    ap.add_argument("--only", default=None, help="comma-separated parts of case names to time (e.g. 'numba,foreach'); "
                    "fused AdamW and the copy floor are always timed")  # fmt: skip
    ap.add_argument("--first-step-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.first_step_child:
        first_step_child(args.first_step_child, args.set, args.threads or torch.get_num_threads())
        return
    if args.steps < 20:
        ap.error(f"--steps must be >= 20 (the goal is stated for the median of >= 20 steps), got {args.steps}")
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    names = list(SETS[args.device]) if args.set == "all" else [args.set]
    if any(n not in SETS[args.device] for n in names):
        ap.error(f"--set for --device {args.device} must be one of {[*SETS[args.device], 'all']}, got {args.set}")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    for name in names:
        run_set(name, SETS[args.device][name](), device, args)
    if device.type == "cpu" and not args.no_first_step:
        for name in names:
            first_step_times(name, torch.get_num_threads())


if __name__ == "__main__":
    main()
