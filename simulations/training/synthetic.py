"""Synthetic CIFAR-format folders (random pixels and labels) for smoke runs and throughput benchmarks.

The files have exactly the layout that :func:`simulations.training.datasets.load_cifar` reads, so a
benchmark or a smoke test exercises the real loader and the real CIFAR networks without the data set.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .datasets import CIFAR_LAYOUT

__all__ = ["write_synthetic_cifar"]


def write_synthetic_cifar(
    root: str | Path, name: str = "cifar10", n_train: int = 50, n_test: int = 10, seed: int = 0
) -> Path:
    """Write random CIFAR-shaped batches in torchvision's pickle layout under ``root``.

    Parameters
    ----------
    root : str or Path
        Folder to create ``cifar-10-batches-py`` / ``cifar-100-python`` in.
    name : {"cifar10", "cifar100"}
        Which layout.
    n_train : int
        Training images in total (split over the five CIFAR-10 batches, at least one each).
    n_test : int
        Test images.
    seed : int
        Seed of the ``np.random.Generator`` drawing pixels and labels.

    Returns
    -------
    Path
        The data-set folder that was written.
    """
    if name not in CIFAR_LAYOUT:
        raise ValueError(f"name must be one of {sorted(CIFAR_LAYOUT)}, got {name!r}")
    folder_name, train_files, test_files, label_key = CIFAR_LAYOUT[name]
    if not isinstance(n_train, int) or n_train < len(train_files):
        raise ValueError(f"n_train must be an integer >= {len(train_files)}, got {n_train!r}")
    if not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"n_test must be a positive integer, got {n_test!r}")
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [len(part) for part in np.array_split(np.arange(n_train), len(train_files))]
    for file, n in [*zip(train_files, sizes, strict=True), *((f, n_test) for f in test_files)]:
        batch = {
            b"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            label_key: rng.integers(0, classes, size=n).tolist(),
        }
        with (folder / file).open("wb") as handle:
            pickle.dump(batch, handle)
    return folder
