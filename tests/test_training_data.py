"""Datasets, augmentation, models and optimiser factory of simulations.training (fast, CPU)."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulations.training.augment import random_crop_flip  # noqa: E402
from simulations.training.datasets import (  # noqa: E402
    _standardise_channels,
    load_cifar,
    load_dataset,
    load_digits,
    load_mnist1d,
)
from simulations.training.models import build_model  # noqa: E402
from simulations.training.optimizers import (  # noqa: E402
    apply_schedule,
    base_rates,
    build_optimizer,
    drop_epoch,
    lr_factor,
)


def write_cifar(root, name: str, n_per_file: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny CIFAR copy in torchvision's pickle layout; return the raw arrays written."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, files, key, classes = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            b"labels",
            10,
        )
    else:
        folder, files, key, classes = root / "cifar-100-python", ["train", "test"], b"fine_labels", 100
    folder.mkdir(parents=True)
    raw = {}
    for file in files:
        data = rng.integers(0, 256, size=(n_per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=n_per_file).tolist()
        with open(folder / file, "wb") as handle:
            pickle.dump({b"data": data, key: labels, b"batch_label": file.encode()}, handle)
        raw[file] = (data, np.asarray(labels))
    return raw


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loader_reads_torchvision_pickles(tmp_path, name):
    raw = write_cifar(tmp_path, name, n_per_file=3)
    ds = load_cifar(name, tmp_path, verify=False)  # random files under the official names
    n_train = 15 if name == "cifar10" else 3
    assert ds.x_train.shape == (n_train, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    first = "data_batch_1" if name == "cifar10" else "train"
    np.testing.assert_array_equal(ds.y_train[:3], raw[first][1])
    np.testing.assert_array_equal(ds.y_test, raw["test_batch" if name == "cifar10" else "test"][1])
    # undo the per-channel standardisation and compare with the raw bytes (row layout R..., G..., B...)
    all_train = np.concatenate([raw[f][0] for f in raw if f not in ("test_batch", "test")]) / 255.0
    images = all_train.reshape(-1, 3, 32, 32)
    mean = images.mean(axis=(0, 2, 3), keepdims=True)
    std = images.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(ds.x_train * std + mean, images, atol=1e-5)
    assert ds.x_train[0, 1, 0, 5] == pytest.approx((all_train[0, 1024 + 5] - mean[0, 1, 0, 0]) / std[0, 1, 0, 0], 1e-5)
    # augmentation pads with the standardised black of each channel
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.pad_value, (-mean / std).ravel(), rtol=1e-6)
    # the data-set folder itself is accepted as root
    same = load_cifar(
        name, tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"), verify=False
    )
    np.testing.assert_array_equal(same.x_test, ds.x_test)


def test_missing_cifar_names_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py[/\\]data_batch_1"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python[/\\]train"):
        load_dataset("cifar100", tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("cifar10", None)
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("imagenet")


def test_cifar_bad_labels_rejected(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for file in ("train", "test"):
        with open(folder / file, "wb") as handle:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}, handle)
    with pytest.raises(ValueError, match="labels"):
        load_cifar("cifar100", tmp_path, verify=False)


def test_mnist1d_offline_and_leaves_global_rng_alone():
    np.random.seed(123)  # noqa: NPY002 (the global RNG is what is checked)
    random.seed(5)
    expected_np, expected_py = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    ds = load_mnist1d()
    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1.0) < 1e-4
    np.testing.assert_array_equal(np.random.get_state()[1], expected_np)  # noqa: NPY002
    assert random.getstate() == expected_py


def test_digits_split_is_stratified_and_seeded():
    a, b = load_digits(), load_digits()
    assert a.x_train.shape[1:] == (1, 8, 8) and len(a.y_train) + len(a.y_test) == 1797
    np.testing.assert_array_equal(a.y_test, b.y_test)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_random_crop_flip_is_a_shifted_or_flipped_copy():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_crop_flip(x, g1), random_crop_flip(x, g2))
    padded = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    assert padded.shape == x.shape
    with pytest.raises(ValueError, match="x must"):
        random_crop_flip(x[0], torch.Generator())


@pytest.mark.parametrize(
    ("name", "shape", "params"),
    [("resnet34", (3, 32, 32), 21_282_122), ("densenet121", (3, 32, 32), 6_956_298)],
)
def test_cifar_models_have_published_sizes(name, shape, params):
    # 21.28 M (ResNet-34) and 6.96 M (DenseNet-121) are the usual CIFAR-variant parameter counts
    model = build_model(name, shape, 10)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize(("name", "shape"), [("mlp", (1, 40)), ("resnet1d", (1, 40)), ("cnn", (1, 8, 8))])
def test_small_models_forward(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 7, width=8)
    assert model(torch.randn(3, *shape)).shape == (3, 7)


def test_model_input_checks():
    with pytest.raises(ValueError, match="model"):
        build_model("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("resnet1d", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", (40,), 10, width=0)


def test_optimizer_defaults_follow_the_paper():
    p = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer("sgd", p, 128)
    assert sgd.defaults["lr"] == 0.1 and sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 5e-4
    adamw = build_optimizer("AdamW", p, 128)
    assert adamw.defaults["lr"] * adamw.defaults["weight_decay"] == pytest.approx(5e-5)
    assert build_optimizer("amsgrad", p, 128).defaults["amsgrad"] is True
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer("adagrad", p, 128)
    with pytest.raises(ValueError, match="lr_sgd"):
        build_optimizer("adam", p, 128, lr_sgd=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        build_optimizer("adam", p, 0)


def test_schedule_divides_by_ten_at_75_percent():
    assert [lr_factor(e, 200) for e in (0, 149, 150, 199)] == [1.0, 1.0, 0.1, 0.1]
    assert lr_factor(10, 10, milestone=1.0) == 1.0
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    opt.param_groups[0]["lr_sgd"] = 0.5  # as AdaBayes groups carry it: the filter's σ² is not scheduled
    base = base_rates(opt)
    apply_schedule(opt, base, 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and opt.param_groups[0]["lr_sgd"] == 0.5
    apply_schedule(opt, base, 1.0)
    assert opt.param_groups[0]["lr"] == 0.1


def test_chunked_channel_standardisation_matches_whole_array_float64():
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(7, 3, 4, 5), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(3, 3, 4, 5), dtype=np.uint8)
    a_train, a_test, mean, std = _standardise_channels(x_train, x_test, 255.0, chunk=2)
    ref = x_train / 255.0
    ref_mean, ref_std = ref.mean(axis=(0, 2, 3)), ref.std(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-12)
    assert a_train.dtype == np.float32 and a_test.dtype == np.float32
    expected = (x_test / 255.0 - ref_mean[None, :, None, None]) / ref_std[None, :, None, None]
    np.testing.assert_allclose(a_test, expected, rtol=1e-6, atol=1e-6)


def test_subset_refuses_more_examples_than_a_split_holds():
    ds = load_digits()
    n_train, n_test = len(ds.y_train), len(ds.y_test)
    assert len(ds.subset(n_train=n_train, n_test=5).y_test) == 5
    with pytest.raises(ValueError, match=rf"n_train must be <= {n_train}.*got {n_train + 1}"):
        ds.subset(n_train=n_train + 1)
    with pytest.raises(ValueError, match=rf"n_test must be <= {n_test}.*got 100000"):
        ds.subset(n_test=100_000)
    with pytest.raises(ValueError, match="n_train must be a positive integer"):
        ds.subset(n_train=True)


def test_random_crop_pads_with_the_given_per_channel_fill():
    x = torch.full((64, 3, 4, 4), 5.0)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2, fill=fill)
    for c in range(3):
        values = set(out[:, c].unique().tolist())
        assert values == {5.0, fill[c].item()}  # image or that channel's fill, nothing else
    zero = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(zero == 0, out != 5.0)  # same crops; only the padding value differs
    with pytest.raises(ValueError, match="fill"):
        random_crop_flip(x, torch.Generator(), fill=torch.zeros(2))


def test_every_factory_value_follows_the_paper():
    p = [torch.nn.Parameter(torch.zeros(3))]
    for name, amsgrad in (("adam", False), ("amsgrad", True)):
        opt = build_optimizer(name, p, 128)
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 5e-4  # coupled L2
        assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["amsgrad"] is amsgrad
    adamw = build_optimizer("adamw", p, 128)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["lr"] == 1e-3 and adamw.defaults["weight_decay"] == 0.05  # λ / lr, bit for bit
    from filtering.torch_adapter import AdaBayes, AdaBayesFP

    for name, cls in (("adabayes", AdaBayes), ("AdaBayes-FP", AdaBayesFP)):
        opt = build_optimizer(name, p, 96)
        assert type(opt) is cls
        d = opt.defaults
        assert (d["lr"], d["lr_sgd"], d["weight_decay"], d["batch_size"]) == (1e-3, 0.1, 5e-5, 96)
        assert d["betas"] == (0.9, 0.999)
        d = build_optimizer(name, p, 32, lr=2e-3, weight_decay=1e-4, lr_sgd=0.5).defaults
        assert (d["lr"], d["lr_sgd"], d["weight_decay"], d["batch_size"]) == (2e-3, 0.5, 1e-4, 32)


def test_adamw_weight_decay_override_is_lambda_per_step():
    p = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer("adamw", p, 128, weight_decay=5e-5)
    assert opt.defaults["lr"] * opt.defaults["weight_decay"] == pytest.approx(5e-5, rel=1e-12)
    opt = build_optimizer("adamw", p, 128, lr=1e-2)  # changing lr keeps the default λ
    assert opt.defaults["lr"] * opt.defaults["weight_decay"] == pytest.approx(5e-5, rel=1e-12)
    opt = build_optimizer("adamw", p, 128, lr=1e-2, weight_decay=2e-4)
    assert opt.defaults["weight_decay"] == pytest.approx(2e-2, rel=1e-12)
    # one step on a zero gradient shrinks the weights by exactly (1 - λ)
    w = torch.nn.Parameter(torch.ones(4))
    opt = build_optimizer("adamw", [w], 128, lr=0.3, weight_decay=1e-2)
    w.grad = torch.zeros(4)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((4,), 0.99), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="weight_decay"):
        build_optimizer("adamw", p, 128, weight_decay=1.0)


def test_schedule_never_drops_at_epoch_zero():
    assert drop_epoch(20) == 15 and drop_epoch(200) == 150 and drop_epoch(60) == 45
    assert drop_epoch(1) is None and lr_factor(0, 1) == 1.0  # a one-epoch run trains at the full rate
    assert drop_epoch(4, 0.2) == 1  # int(0.8) = 0 would have dropped at once
    assert [lr_factor(e, 4, 0.2) for e in range(4)] == [1.0, 0.1, 0.1, 0.1]
    assert drop_epoch(10, 1.0) is None and drop_epoch(10, 0.99) == 9
    with pytest.raises(ValueError, match="milestone"):
        lr_factor(0, 10, milestone=0.0)
    with pytest.raises(ValueError, match="epochs"):
        drop_epoch(0)


def test_gpu_benchmark_rejects_zero_steps(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_training.py"
    spec = importlib.util.spec_from_file_location("gpu_training_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--device", "cpu", "--tiny", "--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err


def _forbid_generation(*_args, **_kwargs):
    raise AssertionError("MNIST-1D was generated although it is cached")


def test_mnist1d_is_cached_on_disk_keyed_by_its_arguments(tmp_path, monkeypatch, capsys):
    import mnist1d.data

    from simulations.training import datasets

    monkeypatch.setenv("ADABAYES_CACHE", str(tmp_path / "cache"))
    datasets._mnist1d_arrays.cache_clear()
    fresh = {seed: load_mnist1d(num_samples=200, data_seed=seed) for seed in (3, 4)}
    entries = sorted((tmp_path / "cache").iterdir())
    assert len(entries) == 2 and all(p.name.startswith("mnist1d-") and p.suffix == ".npz" for p in entries)
    datasets._mnist1d_arrays.cache_clear()
    monkeypatch.setattr(mnist1d.data, "make_dataset", _forbid_generation)
    for seed, ds in fresh.items():  # read back from disk, bit for bit
        cached = load_mnist1d(num_samples=200, data_seed=seed)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            a, b = getattr(ds, name), getattr(cached, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert not np.array_equal(fresh[3].x_train, fresh[4].x_train)
    monkeypatch.undo()
    # a damaged entry is regenerated (with a warning) and replaced by a good one
    monkeypatch.setenv("ADABAYES_CACHE", str(tmp_path / "cache"))
    for entry in entries:
        entry.write_bytes(b"not an npz")
    datasets._mnist1d_arrays.cache_clear()
    again = load_mnist1d(num_samples=200, data_seed=3)
    assert np.array_equal(again.x_train, fresh[3].x_train)
    assert "unreadable" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [p.name for p in entries]  # no temporaries
    datasets._mnist1d_arrays.cache_clear()


def test_an_unwritable_cache_is_skipped_with_a_warning(tmp_path, monkeypatch, capsys):
    from simulations.training import datasets

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("ADABAYES_CACHE", str(blocker / "cache"))
    datasets._mnist1d_arrays.cache_clear()
    ds = load_mnist1d(num_samples=100, data_seed=1)
    assert ds.x_train.shape == (80, 1, 40)
    assert "cache: not caching" in capsys.readouterr().err
    datasets._mnist1d_arrays.cache_clear()
