"""The training loop: deterministic batching, per-epoch evaluation and logs, checkpoint and resume.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; epoch ``e`` shuffles (and augments)
with a ``torch.Generator`` seeded by ``(seed, e)`` alone, and the learning-rate schedule is a function of the
epoch, so a run resumed from the checkpoint of epoch ``e`` replays exactly what an uninterrupted run does
(bit for bit on CPU with the same thread count).

A run with an output folder holds that folder's lock (:func:`~simulations.training.records.run_lock`) from the
check for an existing run to the last write, saves a verified checkpoint after every epoch and then the logs;
Ctrl-C raises :class:`TrainingInterrupted`, which says how many finished epochs the folder keeps.

:func:`train` is a sequence of small steps: :func:`_prepare` (checks and data), :func:`_setup` (model and
optimiser), :func:`_restore` (resume), then per epoch :func:`_train_epoch`, :func:`evaluate`, :func:`_log_row`
and :func:`_checkpoint`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from adabayes.errors import Interrupted
from filtering.validation import check_int, check_scalar

from .augment import random_crop_flip
from .catalog import DATASETS, MODELS, canonical_optimizer, default_model, hyperparameters
from .datasets import CIFAR_LAYOUT, ArrayDataset, load_dataset
from .models import build_model
from .optimizers import apply_schedule, base_rates, build_optimizer, lr_factor
from .records import CHECKPOINT, HISTORY_JSON, load_checkpoint, run_lock, save_checkpoint, write_history

__all__ = ["EpochCallback", "TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "resolve_device", "train"]

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
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.model is None:
            self.model = default_model(self.dataset)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(sorted(MODELS))}, got {self.model!r}")
        self.optimizer = canonical_optimizer(self.optimizer)
        hyperparameters(self.optimizer, self.lr, self.weight_decay, self.lr_sgd)  # checked now, used later
        check_int("epochs", self.epochs, lower=1)
        check_int("batch_size", self.batch_size, lower=1)
        check_int("seed", self.seed, lower=0)
        for name in ("width", "n_train", "n_test"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), lower=1)
        check_scalar("milestone", self.milestone, lower=0.0, allow_inf=True)
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


class TrainingInterrupted(Interrupted):
    """Ctrl-C during :func:`train`; the message says how many finished epochs the run folder keeps."""


@dataclass
class _Run:
    """One run's state between the steps of :func:`train` (tensors on the device)."""

    config: TrainConfig
    device: torch.device
    data: ArrayDataset
    model: nn.Module
    optimizer: torch.optim.Optimizer
    base: list[dict[str, float]]
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    saved: int = 0  # the last epoch written to the checkpoint


def _check_options(out_dir: str | Path | None, resume: bool, stop_after: int | None) -> None:
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the run directory holding checkpoint.pt)")
    if stop_after is not None:
        check_int("stop_after", stop_after, lower=1)


def _refuse_existing_run(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Without ``resume`` or ``overwrite``, a folder that holds a run is not touched."""
    if resume or overwrite:
        return
    existing = [name for name in (CHECKPOINT, HISTORY_JSON) if (out_dir / name).exists()]
    if existing:
        raise FileExistsError(
            f"{out_dir} already holds a run ({', '.join(existing)}); resume it (resume=True, --resume) or "
            "start it afresh and overwrite it (overwrite=True, --overwrite)"
        )


def _prepare(config: TrainConfig, dataset: ArrayDataset | None, verify_data: bool) -> ArrayDataset:
    """The data set of ``config`` (``dataset`` if given), cut to ``n_train``/``n_test``, checked against B."""
    data = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir, verify=verify_data)
    if config.n_train is not None or config.n_test is not None:
        data = data.subset(config.n_train, config.n_test)
    n = len(data.y_train)
    if config.batch_size > n:
        raise ValueError(f"batch_size ({config.batch_size}) must not exceed the number of training examples ({n})")
    return data


def _setup(config: TrainConfig, dev: torch.device, data: ArrayDataset) -> _Run:
    """Seed, then build the model on ``dev`` and its optimiser (this order fixes the initial weights)."""
    torch.manual_seed(config.seed)
    model = build_model(str(config.model), data.input_shape, data.num_classes, config.width).to(dev)
    optimizer = build_optimizer(
        config.optimizer, model.parameters(), config.batch_size, config.lr, config.weight_decay, config.lr_sgd
    )
    steps = len(data.y_train) // config.batch_size
    return _Run(config, dev, data, model, optimizer, base_rates(optimizer), steps)


def _restore(run: _Run, out_dir: Path) -> None:
    """Load the verified checkpoint of ``out_dir`` into ``run`` (model, optimiser, history, epoch)."""
    saved = load_checkpoint(out_dir, run.config.to_dict(), map_location=run.device)
    if saved is None:
        if (out_dir / HISTORY_JSON).exists():
            raise FileNotFoundError(
                f"{out_dir} holds {HISTORY_JSON} but no {CHECKPOINT} to resume from; start it afresh with --overwrite"
            )
        print(f"resume: no checkpoint in {out_dir}; starting from epoch 0", file=sys.stderr)
        return
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.history = list(saved["history"])
    run.start = run.saved = int(saved["epoch"])


def _on_device(run: _Run) -> tuple[torch.Tensor, ...]:
    """Training and test tensors on the run's device: ``x_train, y_train, x_test, y_test``."""
    data, dev = run.data, run.device
    return tuple(torch.as_tensor(a, device=dev) for a in (data.x_train, data.y_train, data.x_test, data.y_test))


def _train_epoch(run: _Run, epoch: int, x: torch.Tensor, y: torch.Tensor, bar: Any) -> tuple[float, float]:
    """One epoch of minibatch steps (0-based ``epoch``); returns the mean training loss and error rate."""
    config, dev = run.config, run.device
    apply_schedule(run.optimizer, run.base, lr_factor(epoch, config.epochs, config.milestone))
    gen = _epoch_generator(config.seed, epoch)
    order = torch.randperm(len(y), generator=gen).to(dev)
    # augmentation pads with black, i.e. each channel's standardised value of intensity 0 (when known)
    pad = run.data.pad_value
    fill = None if pad is None else torch.tensor(pad, dtype=torch.float32, device=dev)
    run.model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    wrong = torch.zeros((), dtype=torch.int64, device=dev)
    for step in range(run.steps):
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb = random_crop_flip(xb, gen, fill=fill)
        run.optimizer.zero_grad(set_to_none=True)
        logits = run.model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        run.optimizer.step()
        loss_sum += loss.detach().double()
        wrong += (logits.detach().argmax(1) != yb).sum()
        bar.update(1)
    return loss_sum.item() / run.steps, wrong.item() / (run.steps * config.batch_size)


def _log_row(run: _Run, epoch: int, train: tuple[float, float], test: tuple[float, float], t0: float) -> dict:
    """The log row of 0-based ``epoch``; a non-finite loss marks the run as diverged."""
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "train_loss": train[0],
        "train_error": train[1],
        "test_loss": test[0],
        "test_error": test[1],
        "time_s": time.perf_counter() - t0,
    }
    if not (math.isfinite(train[0]) and math.isfinite(test[0])):
        row["diverged"] = True
        print(f"epoch {epoch + 1}: non-finite loss; stopping this run", file=sys.stderr)
    return row


@contextlib.contextmanager
def _sigint_deferred() -> Any:
    """Hold Ctrl-C until the block ends, then raise it: the checkpoint on disk and ``run.saved`` (what the
    "interrupted" message reports) change together. Outside the main thread signals cannot be caught: no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _checkpoint(run: _Run, out_dir: Path) -> None:
    """Save the verified checkpoint, then the logs (the checkpoint is what a resume trusts). Ctrl-C is held while
    the checkpoint is written and counted, so the interruption message names the epoch that is on disk."""
    cfg = run.config.to_dict()
    epoch = len(run.history)
    state = {
        "config": cfg,
        "epoch": epoch,
        "history": run.history,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
    }
    with _sigint_deferred():
        save_checkpoint(out_dir, state)
        run.saved = epoch
    write_history(out_dir, cfg, run.history)


def _progress_bar(run: _Run, progress: bool) -> Any:
    from tqdm.auto import tqdm

    config = run.config
    return tqdm(
        total=config.epochs * run.steps,
        initial=run.start * run.steps,
        desc=f"{config.dataset}/{config.model}/{config.optimizer} s{config.seed}",
        file=sys.stderr,
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )


def _epochs(run: _Run, last: int, out_dir: Path | None, progress: bool, callbacks: tuple[EpochCallback, ...]) -> None:
    """Train epochs ``run.start`` .. ``last - 1`` (0-based), evaluating, logging and checkpointing each."""
    x_train, y_train, x_test, y_test = _on_device(run)
    bar = _progress_bar(run, progress)
    try:
        for epoch in range(run.start, last):
            if run.history and run.history[-1].get("diverged"):
                break
            t0 = time.perf_counter()
            train_stats = _train_epoch(run, epoch, x_train, y_train, bar)
            row = _log_row(run, epoch, train_stats, evaluate(run.model, x_test, y_test), t0)
            run.history.append(row)
            bar.set_postfix(test_err=f"{100 * row['test_error']:.2f}%", test_loss=f"{row['test_loss']:.3f}")
            for cb in callbacks:
                cb(epoch + 1, run.model, run.optimizer, row)
            if out_dir is not None:
                _checkpoint(run, out_dir)
    finally:
        bar.close()


def _interrupted(run: _Run, out_dir: Path | None) -> TrainingInterrupted:
    total = run.config.epochs
    if out_dir is None:
        return TrainingInterrupted(f"{len(run.history)} of {total} epochs finished; nothing was saved (no out_dir)")
    return TrainingInterrupted(f"{run.saved} of {total} epochs finished and kept in {out_dir}; continue with --resume")


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
    verify_data: bool = True,
) -> TrainResult:
    """Train one network with one optimiser.

    Parameters
    ----------
    config : TrainConfig
        What to train.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    out_dir : str or Path, optional
        Run directory for ``history.json``/``history.csv``/``checkpoint.pt``, written after every epoch; held
        locked for the whole call (a second process writing it gets ``RunFolderBusy``). Without it nothing is
        written and ``resume`` is not possible.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if present: it is verified (content hash, epoch, history) and
        its config must equal ``config`` (``CheckpointError`` otherwise); start afresh if the folder holds no
        run at all.
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
    verify_data : bool
        Check the MD5 of official CIFAR files (``--no-verify`` turns it off for custom copies).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C; the epochs finished before it are in ``out_dir``.
    """
    _check_options(out_dir, resume, stop_after)
    dev = resolve_device(device) if isinstance(device, str) else device
    folder = None if out_dir is None else Path(out_dir)
    with contextlib.nullcontext() if folder is None else run_lock(folder):
        if folder is not None:
            _refuse_existing_run(folder, resume, overwrite)
        run = _setup(config, dev, _prepare(config, dataset, verify_data))
        if resume and folder is not None:
            _restore(run, folder)
        last = config.epochs if stop_after is None else min(config.epochs, stop_after)
        try:
            _epochs(run, last, folder, progress, callbacks)
        except KeyboardInterrupt as exc:
            raise _interrupted(run, folder) from exc
    return TrainResult(config, run.history, run.model, run.optimizer, resumed_from=run.start)
