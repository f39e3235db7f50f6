"""Train a tiny network with ``from adabayes import AdaBayes`` and record its learning rates σ²_post for a Fig. 3.

A 2-layer MLP learns a synthetic 4-class problem (labels from a random teacher network; a training and a held-out
set). AdaBayes (Alg. 1) or AdaBayes-FP (Alg. 2) is a drop-in ``torch.optim.Optimizer``; ``LearningRateRecorder``
samples σ²_post and ⟨g²⟩ of fixed entries of every tensor during training and saves them (``recorder.npz``), and
``opt.readout(p)`` reads them for a whole tensor at the end. The same loop with ``torch.optim.AdamW`` (same lr,
seed and batches) and a do-nothing model (the training-label frequencies) are the baselines beside it.

Writes ``recorder.npz`` and ``summary.json`` under ``--out`` and prints the losses and where the recorded learning
rates lie: the SGD regime (η/sqrt(⟨g²⟩) > σ², σ²_post ≈ σ², Eq. 22) or the Adam regime (σ²_post ≈ η/sqrt(⟨g²⟩),
Eq. 24), and how close each is to Eq. 21.

    python examples/torch_training.py                       # 6 epochs of 32 steps: a few seconds
    python examples/torch_training.py --optimizer adabayes-fp --epochs 20
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adabayes import AdaBayes, AdaBayesFP, LearningRateRecorder

OPTIMIZERS = {"adabayes": AdaBayes, "adabayes-fp": AdaBayesFP}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adabayes")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64, help="B: also AdaBayes's batch_size (σ² = lr_sgd/B)")
    parser.add_argument("--lr", type=float, default=1e-2, help="η = η_Adam")
    parser.add_argument("--lr-sgd", type=float, default=1.0, help="η_SGD (σ² = lr_sgd / batch_size, Eq. 23)")
    parser.add_argument("--record-every", type=int, default=8, help="recorder: sample after every N-th step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "record_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def make_data(seed: int, n_train: int = 2048, n_test: int = 1024, dim: int = 16, classes: int = 4):
    """Inputs x ~ N(0, I) and labels from a random teacher MLP: (x_train, y_train, x_test, y_test)."""
    gen = torch.Generator().manual_seed(seed)
    teacher = nn.Sequential(nn.Linear(dim, 32), nn.Tanh(), nn.Linear(32, classes))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        x = torch.randn(n_train + n_test, dim, generator=gen)
        y = teacher(x).argmax(dim=1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_model(seed: int, dim: int = 16, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, classes))


def train(model: nn.Module, opt: torch.optim.Optimizer, data, args: argparse.Namespace) -> list[float]:
    """Plain torch loop (mean loss over each batch, as AdaBayes expects); returns the training loss per epoch."""
    x, y = data[0], data[1]
    gen = torch.Generator().manual_seed(args.seed)
    losses = []
    for _ in range(args.epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(args.batch_size):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])  # p.grad: gradient of the MEAN batch loss
            loss.backward()
            opt.step()  # never modifies p.grad
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = model(x)
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def do_nothing_loss(y_train: torch.Tensor, y_test: torch.Tensor, classes: int = 4) -> float:
    """Held-out cross-entropy of the best constant prediction: the training-label frequencies."""
    freq = torch.bincount(y_train, minlength=classes).double() / len(y_train)
    return float(-freq.clamp_min(1e-12).log()[y_test].mean())


def regime_summary(rec: dict[str, np.ndarray]) -> dict[str, float]:
    """Where the samples of the last recorded step lie, and their distance from Eq. 21."""
    last = rec["step"] == rec["step"].max()
    var, g2, eta, s2 = rec["var_post"][last], rec["g2"][last], rec["eta"][last], rec["sigma2"][last]
    eq21 = 1.0 / (0.5 / s2 + np.sqrt(0.25 / s2**2 + g2 / eta**2))  # Eq. 21 (the recorder saves η and σ² per sample)
    adam_regime = rec["adam_lr"][last] < s2  # η/sqrt(⟨g²⟩) < σ²: right of the crossover
    return {
        "step": int(rec["step"].max()),
        "samples": int(last.sum()),
        "fraction_adam_regime": float(adam_regime.mean()),
        "median_var_post_over_sigma2": float(np.median(var / s2)),
        "median_abs_log_var_post_over_eq21": float(np.median(np.abs(np.log(var / eq21)))),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-torch-"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they save
    data = make_data(args.seed)

    model = make_model(args.seed)
    opt = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr, lr_sgd=args.lr_sgd, batch_size=args.batch_size)
    recorder = LearningRateRecorder(opt, every=args.record_every, entries_per_tensor=32, seed=args.seed)
    train_losses = train(model, opt, data, args)
    recorder.save(out / "recorder.npz")
    recorder.close()
    test_loss, test_acc = evaluate(model, data[2], data[3])
    first = opt.readout(model[0].weight)  # the whole tensor: σ²_post and ⟨g²⟩ in the paper's units

    adamw_model = make_model(args.seed)
    adamw = torch.optim.AdamW(adamw_model.parameters(), lr=args.lr, weight_decay=0.0)
    train(adamw_model, adamw, data, args)
    adamw_loss, adamw_acc = evaluate(adamw_model, data[2], data[3])
    baseline = do_nothing_loss(data[1], data[3])

    rec = dict(np.load(out / "recorder.npz"))
    summary = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "train_loss": train_losses,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "adamw_test_loss": adamw_loss,
        "adamw_test_accuracy": adamw_acc,
        "do_nothing_test_loss": baseline,
        "recorded_samples": len(rec["var_post"]),
        "last_record": regime_summary(rec),
        "layer0_weight_median_var_post": float(first.var_post.median()),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    name = OPTIMIZERS[args.optimizer].__name__
    steps = args.epochs * math.ceil(len(data[0]) / args.batch_size)
    print(f"{name}(lr={args.lr:g}, lr_sgd={args.lr_sgd:g}, batch_size={args.batch_size}): {steps} steps")
    print(f"  training loss by epoch: {' '.join(f'{v:.3f}' for v in train_losses)}")
    print(f"  held-out loss {test_loss:.3f}, accuracy {test_acc:.3f}")
    print(f"  AdamW(lr={args.lr:g}), same batches: held-out loss {adamw_loss:.3f}, accuracy {adamw_acc:.3f}")
    print(f"  do-nothing model (label frequencies): held-out loss {baseline:.3f}")
    last = summary["last_record"]
    print(f"recorded {summary['recorded_samples']} samples; at step {last['step']} ({last['samples']} entries):")
    sigma2 = args.lr_sgd / args.batch_size
    print(f"  {100 * last['fraction_adam_regime']:.0f} % in the Adam regime (η/√⟨g²⟩ < σ² = {sigma2:g})")
    print(f"  median σ²_post / σ² = {last['median_var_post_over_sigma2']:.3f}")
    print(f"  median |log(σ²_post / Eq. 21)| = {last['median_abs_log_var_post_over_eq21']:.3f}")
    print(f"opt.readout(model[0].weight): median σ²_post {summary['layer0_weight_median_var_post']:.3g} over "
          f"{first.var_post.numel()} entries, median ⟨g²⟩ {float(first.g2.median()):.3g}")  # fmt: skip
    print(f"wrote {out / 'recorder.npz'} and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
