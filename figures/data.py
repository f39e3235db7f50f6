"""Reading the saved simulation data, the only input of a figure (no matplotlib, no simulation code imported).

The experiments of :mod:`simulations` write ``DIR/<name>.npz`` (arrays, no pickles) and ``DIR/<name>.json``
(configuration, summaries, checks; NaN and inf as the strings ``"nan"`` / ``"inf"``). These two readers are all
:mod:`figures` needs of that format, so data flow one way: simulations -> saved files -> figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["find_data_dir", "load_json", "load_npz"]


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file written by an experiment."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into a dict (no pickles; the file is closed afterwards)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def find_data_dir(path: str | Path, inputs: tuple[str, ...]) -> Path:
    """The folder that holds the saved data: ``path`` itself, or ``path/data`` (a ``reproduce --out`` folder).

    ``path/data`` is chosen only when ``path`` holds none of ``inputs`` and ``path/data`` holds at least one, so
    ``adabayes figures --data results`` works right after ``adabayes reproduce --out results``.
    """
    path = Path(path)
    sub = path / "data"
    if not any((path / f).exists() for f in inputs) and sub.is_dir() and any((sub / f).exists() for f in inputs):
        return sub
    return path
