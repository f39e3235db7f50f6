"""AdaBayes in the Hugging Face ``Trainer``: ``optimizer_cls_and_kwargs=(AdaBayes, {...})`` on a tiny BERT, on CPU.

The model is built from a tiny ``BertConfig`` (1 layer, width 16; nothing is downloaded: ``HF_HUB_OFFLINE=1``) and
learns a synthetic sequence-classification task (is the first token in the lower half of the vocabulary?). The
Trainer builds the optimiser itself from the class and keyword arguments, so checkpoints, gradient accumulation,
its learning-rate scheduler and ``Trainer.save_model`` work as with its own optimisers. Two things to know:

- ``TrainingArguments.weight_decay`` is put into the parameter groups and becomes AdaBayes's λ, a decay *per step*
  (``p <- (1 - λ) p``; torch's AdamW equivalent is ``weight_decay = λ / lr``): leave it 0 or set it to λ;
- ``batch_size`` in the kwargs is the number of examples the loss averages: ``per_device_train_batch_size ×
  gradient_accumulation_steps × number of processes`` (sequence classification averages over examples).

The script prints the held-out loss against the do-nothing model's (the training-label frequencies) and the
learning rates σ²_post that ``opt.readout(p)`` reports, and writes ``summary.json`` under ``--out``.

    python examples/hf_trainer_example.py             # 48 steps on CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")  # never reach the network: the model is built from a config
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from adabayes import AdaBayes  # noqa: E402

VOCAB, LENGTH = 32, 12


class FirstTokenTask(Dataset):
    """Random token sequences labelled 1 when the first token is below VOCAB / 2."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, VOCAB, (n, LENGTH), generator=gen)
        self.labels = (self.input_ids[:, 0] < VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def tiny_bert(seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--steps", type=int, default=48, help="optimiser steps (TrainingArguments.max_steps)")
    parser.add_argument("--batch-size", type=int, default=16, help="per_device_train_batch_size")
    parser.add_argument("--lr", type=float, default=1e-2, help="η = η_Adam")
    parser.add_argument("--lr-sgd", type=float, default=1.0, help="η_SGD (σ² = lr_sgd / batch_size, Eq. 23)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-hf-"))
    out.mkdir(parents=True, exist_ok=True)
    transformers.logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)

    train_set, test_set = FirstTokenTask(1024, args.seed), FirstTokenTask(512, args.seed + 1)
    training_args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=256,
        gradient_accumulation_steps=1,
        weight_decay=0.0,  # becomes AdaBayes's per-step λ (see the module docstring)
        lr_scheduler_type="constant",
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
        dataloader_num_workers=0,
    )
    effective_batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    trainer = Trainer(
        model=tiny_bert(args.seed),
        args=training_args,
        train_dataset=train_set,
        eval_dataset=test_set,
        optimizer_cls_and_kwargs=(AdaBayes, {"lr": args.lr, "lr_sgd": args.lr_sgd, "batch_size": effective_batch}),
    )
    trainer.remove_callback(PrinterCallback)  # the summary below says what matters
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]

    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)  # accelerate wraps the optimiser; the AdaBayes instance is inside
    params = [p for group in opt.param_groups for p in group["params"]]
    readouts = [opt.readout(p) for p in params]
    var_post = torch.cat([r.var_post.reshape(-1) for r in readouts]).double()
    freq = train_set.labels.float().mean().item()
    do_nothing = -(freq * math.log(freq) + (1 - freq) * math.log(1 - freq))  # entropy of the label frequencies
    summary = {
        "transformers": transformers.__version__,
        "optimizer": type(opt).__name__,
        "steps": int(trainer.state.global_step),
        "optimizer_steps": sorted({r.step for r in readouts}),
        "eval_loss_before": before,
        "eval_loss_after": after,
        "do_nothing_loss": do_nothing,
        "sigma2": args.lr_sgd / effective_batch,
        "var_post_median": float(var_post.median()),
        "var_post_min": float(var_post.min()),
        "var_post_max": float(var_post.max()),
        "n_parameters": int(var_post.numel()),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"transformers {transformers.__version__}: Trainer built {summary['optimizer']} from optimizer_cls_and_kwargs"
    )
    print(f"{summary['steps']} steps of batch {effective_batch} (optimizer state step {summary['optimizer_steps']})")
    print(f"held-out loss {before:.3g} -> {after:.3g}; do-nothing model (label frequencies) {do_nothing:.3g}")
    print(f"σ²_post over {summary['n_parameters']} entries: median {summary['var_post_median']:.3g}, range "
          f"[{summary['var_post_min']:.3g}, {summary['var_post_max']:.3g}] (σ² = {summary['sigma2']:.3g})")  # fmt: skip
    print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
