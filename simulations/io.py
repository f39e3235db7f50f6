"""Saving and loading simulation results: arrays to ``.npz``, scalars and checks to ``.json``.

Every experiment writes ``DIR/<name>.npz`` (arrays only) and ``DIR/<name>.json`` (configuration, summary
numbers and checks). Figures read these files and nothing else, so they can be redrawn without rerunning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jsonable", "load_json", "load_npz", "save_json", "save_npz"]


def jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples and non-finite floats into plain JSON values (NaN/inf -> str)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else str(x)
    return obj


def save_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (NumPy values converted); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    return path


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file written by :func:`save_json`."""
    return json.loads(Path(path).read_text())


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write arrays to a compressed ``.npz``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into a dict (the file is closed afterwards)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
