"""AdaBayes in PyTorch Lightning: ``configure_optimizers`` returns it, ``Trainer.fit`` trains, ``ckpt_path=`` resumes.

A tiny regression network is trained on a synthetic dataset on CPU three ways:

1. ``Trainer(max_epochs=2).fit`` straight through (the reference);
2. ``Trainer(max_epochs=1).fit``, then ``trainer.save_checkpoint``;
3. a *new* module and ``Trainer(max_epochs=2).fit(..., ckpt_path=checkpoint)``.

The script checks, and exits with status 1 if any check fails, that Lightning's resume restores AdaBayes's state
exactly (each parameter's ``step`` tensor, momentum ``exp_avg``, ⟨g²⟩ EMA ``exp_avg_sq`` and σ²_post ``var_post``,
read in ``on_train_start`` after the restore, equal the checkpoint's), that ``step`` is still a tensor, and that
the resumed run ends with the same parameters and optimiser state as the uninterrupted one (the data are not
shuffled, so the runs see the same batches). Writes ``resume.ckpt``, ``summary.json`` and ``states.pt`` (the
optimiser states compared: ``restored``, ``final``, ``uninterrupted``) under ``--out``.

    python examples/lightning_example.py                # 2 epochs of 16 steps on CPU
    python examples/lightning_example.py --optimizer adabayes-fp
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adabayes import AdaBayes, AdaBayesFP

warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")  # lightning 2.6 on torch >= 2.10, at import
import lightning as L  # noqa: E402

OPTIMIZERS = {"adabayes": AdaBayes, "adabayes-fp": AdaBayesFP}


class TinyRegression(L.LightningModule):
    """A 2-layer MLP on mean-squared error; ``configure_optimizers`` returns an AdaBayes optimiser."""

    def __init__(  # the arguments are read by save_hyperparameters(), so unused here
        self,
        optimizer: str = "adabayes",  # noqa: ARG002
        lr: float = 1e-2,  # noqa: ARG002
        lr_sgd: float = 1.0,  # noqa: ARG002
        batch_size: int = 32,  # noqa: ARG002
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)  # the same initial weights in every run
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: ARG002
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)  # the MEAN over the batch, as AdaBayes's batch_size assumes

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return OPTIMIZERS[hp.optimizer](self.parameters(), lr=hp.lr, lr_sgd=hp.lr_sgd, batch_size=hp.batch_size)


class StateAtTrainStart(L.Callback):
    """Keep a copy of the optimiser's state as the fit loop starts (after Lightning restored a checkpoint)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: ARG002
        self.state = clone_state(trainer.optimizers[0].state_dict())


def clone_state(state_dict: dict[str, Any]) -> dict[str, Any]:
    return {i: {k: v.clone() for k, v in s.items()} for i, s in state_dict["state"].items()}


def states_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same parameters, same keys, and every tensor equal bit for bit (and of the same dtype)."""
    if a.keys() != b.keys():
        return False
    return all(
        a[i].keys() == b[i].keys()
        and all(a[i][k].dtype == b[i][k].dtype and torch.equal(a[i][k], b[i][k]) for k in a[i])
        for i in a
    )


def make_loader(batch_size: int) -> DataLoader:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(512, 8, generator=gen)
    y = torch.sin(x @ torch.randn(8, 1, generator=gen)) + 0.1 * torch.randn(512, 1, generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)  # same batches in every run


def make_trainer(out: Path, max_epochs: int, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,  # the checkpoint is saved explicitly below
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
        callbacks=callbacks,
    )


def quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    hp = {"optimizer": args.optimizer, "lr": args.lr, "lr_sgd": args.lr_sgd, "batch_size": args.batch_size}

    straight = TinyRegression(**hp)
    straight_trainer = make_trainer(out, 2)
    straight_trainer.fit(straight, make_loader(args.batch_size))
    ref_opt_state = clone_state(straight_trainer.optimizers[0].state_dict())

    first = TinyRegression(**hp)
    first_trainer = make_trainer(out, 1)
    first_trainer.fit(first, make_loader(args.batch_size))
    ckpt = out / "resume.ckpt"
    first_trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    saved_state = clone_state(saved["optimizer_states"][0])

    resumed = TinyRegression(**hp)
    probe = StateAtTrainStart()
    resumed_trainer = make_trainer(out, 2, [probe])
    resumed_trainer.fit(resumed, make_loader(args.batch_size), ckpt_path=ckpt)
    assert probe.state is not None
    final_state = clone_state(resumed_trainer.optimizers[0].state_dict())
    states = {"restored": probe.state, "final": final_state, "uninterrupted": ref_opt_state}
    torch.save(states, out / "states.pt")  # the optimiser states compared below, for a look (or a test)

    steps_in_ckpt = sorted({float(s["step"]) for s in saved_state.values()})
    return {
        "optimizer": type(resumed_trainer.optimizers[0]).__name__,
        "state_keys": sorted(next(iter(saved_state.values())).keys()),
        "checkpoint_global_step": int(saved["global_step"]),
        "checkpoint_step": steps_in_ckpt,
        "step_is_tensor_after_resume": all(isinstance(s["step"], torch.Tensor) for s in probe.state.values()),
        "restored_state_equals_checkpoint": states_equal(probe.state, saved_state),
        "final_step": sorted({float(s["step"]) for s in final_state.values()}),
        "final_params_equal_uninterrupted": all(
            torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(), strict=True)
        ),
        "final_state_equals_uninterrupted": states_equal(final_state, ref_opt_state),
        "resumed_global_step": int(resumed_trainer.global_step),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adabayes")
    parser.add_argument("--lr", type=float, default=1e-2, help="η = η_Adam")
    parser.add_argument("--lr-sgd", type=float, default=1.0, help="η_SGD (σ² = lr_sgd / batch_size, Eq. 23)")
    parser.add_argument("--batch-size", type=int, default=32, help="B (AdaBayes's batch_size and the loader's)")
    return parser.parse_args(argv)


CHECKS = (
    "step_is_tensor_after_resume",
    "restored_state_equals_checkpoint",
    "final_params_equal_uninterrupted",
    "final_state_equals_uninterrupted",
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-lightning-"))
    out.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    torch.set_num_threads(1)
    summary = run(args, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"Lightning {L.__version__}, {summary['optimizer']} from configure_optimizers, state {summary['state_keys']}")
    print(f"checkpoint after epoch 1: global_step {summary['checkpoint_global_step']}, "
          f"optimizer step {summary['checkpoint_step']}; resumed to global_step {summary['resumed_global_step']}, "
          f"optimizer step {summary['final_step']}")  # fmt: skip
    for key in CHECKS:
        print(f"  {key:<36s} {'yes' if summary[key] else 'NO'}")
    print(f"wrote {out / 'resume.ckpt'}, {out / 'summary.json'} and {out / 'states.pt'}")
    failed = [k for k in CHECKS if not summary[k]]
    if failed:
        print(f"lightning_example.py: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
