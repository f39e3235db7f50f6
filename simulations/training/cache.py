"""An on-disk cache of generated data sets (MNIST-1D), so that only the first run pays for the generation.

Entries live in ``$ADABAYES_CACHE`` or, without it, ``~/.cache/adabayes``: one ``.npz`` per set of
generation arguments, named by the SHA-256 of those arguments (and the generator's version) and holding them
too, written atomically (unique temporary file, ``fsync``, rename), read with ``allow_pickle=False``. An
entry that cannot be read or whose stored arguments differ is regenerated and replaced; a cache folder that
cannot be written is skipped with one warning (the data are generated as before).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_dir", "cached_arrays"]

_KEY = "__key__"


def cache_dir() -> Path:
    """``$ADABAYES_CACHE`` if set (and not empty), else ``~/.cache/adabayes``."""
    root = os.environ.get("ADABAYES_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "adabayes"


def _entry(kind: str, key: Mapping[str, Any]) -> tuple[Path, str]:
    text = json.dumps(dict(key), sort_keys=True)
    return cache_dir() / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz", text


def _read(path: Path, key_text: str) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or ``None`` when it is missing, unreadable or made with other arguments."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        print(f"cache: {path} is unreadable ({type(exc).__name__}); regenerating it", file=sys.stderr)
        return None
    if str(arrays.pop(_KEY, "")) != key_text:
        return None
    return arrays


def _write(path: Path, key_text: str, arrays: Mapping[str, np.ndarray]) -> None:
    from .records import atomic_write

    buffer = io.BytesIO()
    entries: dict[str, Any] = {**arrays, _KEY: np.asarray(key_text)}
    np.savez(buffer, **entries)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buffer.getvalue())
    except OSError as exc:
        print(f"cache: not caching in {path.parent} ({exc}); set ADABAYES_CACHE to a writable folder", file=sys.stderr)


def cached_arrays(
    kind: str, key: Mapping[str, Any], make: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays ``make()`` returns for ``key``, from the cache when an entry exists, else made and stored.

    Parameters
    ----------
    kind : str
        Prefix of the entry's file name (``"mnist1d"``).
    key : mapping
        Every argument that determines the arrays (JSON-serialisable); the entry is keyed by its SHA-256.
    make : callable
        Produces the arrays (a mapping name -> ndarray, no object arrays).

    Returns
    -------
    dict
        name -> ndarray, bit for bit what ``make`` returned when the entry was written.
    """
    path, key_text = _entry(kind, key)
    arrays = _read(path, key_text)
    if arrays is None:
        arrays = {name: np.asarray(value) for name, value in make().items()}
        _write(path, key_text, arrays)
    return arrays
