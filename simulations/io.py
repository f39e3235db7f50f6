"""Saving and loading simulation results: arrays to ``.npz``, scalars and checks to ``.json``.

Every experiment writes ``DIR/<name>.npz`` (arrays only) and ``DIR/<name>.json`` (configuration, summary
numbers and checks). Figures read these files and nothing else (with their own reader, :mod:`figures.data`), so
they can be redrawn without rerunning; the file formats are the interface between the two packages.

Writes are atomic: the data go to a temporary file in the same folder, which then replaces the target
(:func:`atomic_write`). A killed run leaves the old file or the new one, never half of one, and a symbolic link
at the target's name is replaced, never followed. Each folder keeps the names of the files adabayes wrote there
in ``.adabayes-written`` (:data:`WRITTEN`, one name per line; :mod:`figures` keeps the same list), so that
``adabayes reproduce`` can tell its own outputs from a user's files of the same name.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["WRITTEN", "atomic_write", "jsonable", "load_json", "load_npz", "save_json", "save_npz", "written_here"]

WRITTEN = ".adabayes-written"


def written_here(folder: str | Path) -> set[str]:
    """Names of the files adabayes wrote in ``folder`` (from its :data:`WRITTEN` list; empty if none)."""
    log = Path(folder) / WRITTEN
    if log.is_symlink() or not log.is_file():
        return set()
    return {line for line in log.read_text(encoding="utf-8").splitlines() if line}


def _note_written(path: Path) -> None:
    if path.name not in written_here(path.parent):
        with open(path.parent / WRITTEN, "a", encoding="utf-8") as f:
            f.write(path.name + "\n")


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` (``os.replace``), else it is removed.

    The parent folder is created. ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. The file is flushed and
    fsynced before the rename, so the new content is complete on disk when it appears under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_with(path: str | Path, write: Callable[[IO[Any]], object], mode: str) -> Path:
    with atomic_write(path, mode) as f:
        write(f)
    _note_written(Path(path))
    return Path(path)


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
    text = json.dumps(jsonable(data), indent=2) + "\n"
    return _write_with(path, lambda f: f.write(text), "w")


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file written by :func:`save_json`."""
    return json.loads(Path(path).read_text())


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write arrays to a compressed ``.npz``; returns the path."""
    data: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    return _write_with(path, lambda f: np.savez_compressed(f, **data), "wb")


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into a dict (the file is closed afterwards)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
