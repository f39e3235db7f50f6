"""The training loop: deterministic batching, per-epoch evaluation and logs, checkpoint and resume.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; epoch ``e`` shuffles (and augments)
with a ``torch.Generator`` seeded by ``(seed, e)`` alone, and the learning-rate schedule is a function of the
epoch, so a run resumed from the checkpoint of epoch ``e`` replays exactly what an uninterrupted run does
(bit for bit on CPU with the same thread count).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .augment import random_crop_flip
from .datasets import CIFAR_LAYOUT, DATASETS, ArrayDataset, load_dataset
from .models import MODELS, build_model, default_model
from .optimizers import apply_schedule, base_rates, build_optimizer, canonical_optimizer, lr_factor
from .records import CHECKPOINT, HISTORY_JSON, load_checkpoint, save_checkpoint, write_history

__all__ = ["EpochCallback", "TrainConfig", "TrainResult", "evaluate", "resolve_device", "train"]

#: called after every epoch with (epoch (1-based), model, optimizer, the epoch's log row)
EpochCallback = Callable[[int, nn.Module, torch.optim.Optimizer, dict[str, Any]], None]


@dataclass
class TrainConfig:
    """Everything that determines a training run's numbers (the device does not belong here).

    Attributes
    ----------
    dataset : str
        One of :data:`simulations.training.datasets.DATASETS`.
    model : str or None
        One of :data:`simulations.training.models.MODELS`; ``None`` picks the data set's default.
    optimizer : str
        One of :data:`simulations.training.optimizers.OPTIMIZERS`.
    epochs : int
        Total epochs; the learning rate drops 10x from 0-based epoch ``max(1, int(milestone * epochs))`` on
        (:func:`~simulations.training.optimizers.drop_epoch`).
    seed : int
        Seed of initialisation, shuffling and augmentation.
    batch_size : int
        Minibatch size B (incomplete last batches are dropped).
    lr, weight_decay, lr_sgd : float or None
        Overrides of the optimiser's paper defaults.
    width : int or None
        Model width override.
    data_dir : str or None
        Folder of the local CIFAR copy (CIFAR only).
    augment : bool or None
        Random crop and flip; ``None`` means on for CIFAR, off otherwise.
    n_train, n_test : int or None
        Use only the first examples of each split (tests and benchmarks).
    milestone : float
        Fraction of the epochs after which the learning rate is divided by 10 (>= 1: never).
    """

    dataset: str = "mnist1d"
    model: str | None = None
    optimizer: str = "sgd"
    epochs: int = 10
    seed: int = 0
    batch_size: int = 128
    lr: float | None = None
    weight_decay: float | None = None
    lr_sgd: float | None = None
    width: int | None = None
    data_dir: str | None = None
    augment: bool | None = None
    n_train: int | None = None
    n_test: int | None = None
    milestone: float = 0.75

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model is None:
            self.model = default_model(self.dataset)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        self.optimizer = canonical_optimizer(self.optimizer)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.milestone > 0:
            raise ValueError(f"milestone must be > 0, got {self.milestone!r}")
        if self.augment is None:
            self.augment = self.dataset in CIFAR_LAYOUT
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, stored in logs and checkpoints."""
        return asdict(self)


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the per-epoch rows, the trained model and optimiser, and the config."""

    config: TrainConfig
    history: list[dict[str, Any]]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return dev


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and error rate (fraction) of ``model`` in eval mode on ``(x, y)``."""
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        target = y[i : i + batch]
        loss += F.cross_entropy(logits, target, reduction="sum").double()
        wrong += (logits.argmax(1) != target).sum()
    n = max(len(y), 1)
    return loss.item() / n, wrong.item() / n


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _check_resumable(saved: dict[str, Any], config: dict[str, Any], out_dir: Path) -> None:
    differ = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in differ)
        raise ValueError(f"resume: checkpoint in {out_dir} was made with a different config ({detail})")


def train(
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    callbacks: tuple[EpochCallback, ...] = (),
    dataset: ArrayDataset | None = None,
) -> TrainResult:
    """Train one network with one optimiser.

    Parameters
    ----------
    config : TrainConfig
        What to train.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    out_dir : str or Path, optional
        Run directory for ``history.json``/``history.csv``/``checkpoint.pt``, written after every epoch.
        Without it nothing is written and ``resume`` is not possible.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if present (its config must equal ``config``); start afresh
        if there is none.
    overwrite : bool
        Without ``resume``, a run directory that already holds ``checkpoint.pt`` or ``history.json`` is refused
        (``FileExistsError``) unless ``overwrite`` is true; then it is started afresh and overwritten.
    stop_after : int, optional
        Stop once this many epochs are done in total (to split a long run into chunks); the schedule still
        uses ``config.epochs``.
    progress : bool
        Show a tqdm progress bar on stderr.
    callbacks : tuple of callables
        Called after each epoch as ``cb(epoch, model, optimizer, row)``.
    dataset : ArrayDataset, optional
        Pre-loaded data (otherwise loaded from ``config``).

    Returns
    -------
    TrainResult
    """
    from tqdm.auto import tqdm

    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the run directory holding checkpoint.pt)")
    if out_dir is not None and not resume and not overwrite:
        existing = [name for name in (CHECKPOINT, HISTORY_JSON) if (Path(out_dir) / name).exists()]
        if existing:
            raise FileExistsError(
                f"{out_dir} already holds a run ({', '.join(existing)}); resume it (resume=True, --resume) or "
                "start it afresh and overwrite it (overwrite=True, --overwrite)"
            )
    if stop_after is not None and (not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after must be a positive integer or None, got {stop_after!r}")
    dev = resolve_device(device) if isinstance(device, str) else device
    data = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir)
    if config.n_train is not None or config.n_test is not None:
        data = data.subset(config.n_train, config.n_test)
    n = len(data.y_train)
    if config.batch_size > n:
        raise ValueError(f"batch_size ({config.batch_size}) must not exceed the number of training examples ({n})")
    steps = n // config.batch_size
    cfg = config.to_dict()

    torch.manual_seed(config.seed)
    model = build_model(config.model, data.input_shape, data.num_classes, config.width).to(dev)
    optimizer = build_optimizer(
        config.optimizer, model.parameters(), config.batch_size, config.lr, config.weight_decay, config.lr_sgd
    )
    base = base_rates(optimizer)
    history: list[dict[str, Any]] = []
    start = 0
    if resume:
        saved = load_checkpoint(out_dir, map_location=dev)
        if saved is None:
            print(f"resume: no checkpoint in {out_dir}; starting from epoch 0", file=sys.stderr)
        else:
            _check_resumable(saved["config"], cfg, Path(out_dir))
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            history = list(saved["history"])
            start = int(saved["epoch"])

    # augmentation pads with black, i.e. each channel's standardised value of intensity 0 (when known)
    pad_value = None if data.pad_value is None else torch.tensor(data.pad_value, dtype=torch.float32, device=dev)
    x_train = torch.as_tensor(data.x_train, device=dev)
    y_train = torch.as_tensor(data.y_train, device=dev)
    x_test = torch.as_tensor(data.x_test, device=dev)
    y_test = torch.as_tensor(data.y_test, device=dev)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    bar = tqdm(
        total=config.epochs * steps,
        initial=start * steps,
        desc=f"{config.dataset}/{config.model}/{config.optimizer} s{config.seed}",
        file=sys.stderr,
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    for epoch in range(start, last):
        if history and history[-1].get("diverged"):
            break
        t0 = time.perf_counter()
        apply_schedule(optimizer, base, lr_factor(epoch, config.epochs, config.milestone))
        gen = _epoch_generator(config.seed, epoch)
        order = torch.randperm(n, generator=gen).to(dev)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        wrong = torch.zeros((), dtype=torch.int64, device=dev)
        for step in range(steps):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if config.augment:
                xb = random_crop_flip(xb, gen, fill=pad_value)
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double()
            wrong += (logits.detach().argmax(1) != yb).sum()
            bar.update(1)
        train_loss = loss_sum.item() / steps
        test_loss, test_error = evaluate(model, x_test, y_test)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "train_loss": train_loss,
            "train_error": wrong.item() / (steps * config.batch_size),
            "test_loss": test_loss,
            "test_error": test_error,
            "time_s": time.perf_counter() - t0,
        }
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            row["diverged"] = True
            print(f"epoch {epoch + 1}: non-finite loss; stopping this run", file=sys.stderr)
        history.append(row)
        bar.set_postfix(test_err=f"{100 * test_error:.2f}%", test_loss=f"{test_loss:.3f}")
        for cb in callbacks:
            cb(epoch + 1, model, optimizer, row)
        if out_dir is not None:
            write_history(out_dir, cfg, history)
            save_checkpoint(
                out_dir,
                {
                    "config": cfg,
                    "epoch": epoch + 1,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
            )
    bar.close()
    return TrainResult(config, history, model, optimizer, resumed_from=start)
