"""Reading CIFAR batch files safely: MD5 against the official hashes, then a restricted unpickler.

The python versions of CIFAR-10/100 are pickles, and ``pickle.load`` runs whatever a file asks for: a
crafted ``data_batch_1`` in a data folder would run code as soon as it is read. Two defences:

1. **MD5.** A file with an official name (``cifar-10-batches-py/data_batch_1`` ... ``test_batch``,
   ``cifar-100-python/train``, ``test``) must have the official MD5 (the hashes the data sets are published
   with, which torchvision checks too). A custom copy with those names is read with ``verify=False``
   (``--no-verify``).
2. **Restricted unpickling**, always. :class:`CifarUnpickler` resolves only the globals that a CIFAR batch
   needs to rebuild NumPy arrays (``numpy.core.multiarray._reconstruct``, ``numpy.core.numeric._frombuffer``,
   ``numpy.ndarray``, ``numpy.dtype``, their NumPy 2 names, and ``_codecs.encode``, which Python 3 uses for
   bytes under pickle protocol 2); every other global (``os.system``, ``builtins.eval``,
   ``subprocess.Popen`` ...) raises :class:`UnsafePickleError` before anything is called. Dicts, lists, str,
   bytes and int need no global. The result is then checked for the CIFAR layout.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CIFAR_LAYOUT",
    "OFFICIAL_MD5",
    "CifarUnpickler",
    "UnsafePickleError",
    "cifar_dir",
    "file_md5",
    "read_batch",
]

#: folder name, training files, test files, label key for each CIFAR variant (torchvision's layout)
CIFAR_LAYOUT: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], bytes]] = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), b"fine_labels"),
}

#: (folder, file) -> MD5 of the official file, as published with the data sets
OFFICIAL_MD5: dict[tuple[str, str], str] = {
    ("cifar-10-batches-py", "data_batch_1"): "c99cafc152244af753f735de768cd75f",
    ("cifar-10-batches-py", "data_batch_2"): "d4bba439e000b95fd0a9bffe97cbabec",
    ("cifar-10-batches-py", "data_batch_3"): "54ebc095f3ab1f0389bbae665268c751",
    ("cifar-10-batches-py", "data_batch_4"): "634d18415352ddfa80567beed471001a",
    ("cifar-10-batches-py", "data_batch_5"): "482c414d41f54cd18b22e5b47cb7c3cb",
    ("cifar-10-batches-py", "test_batch"): "40351d587109b95175f43aff81a1287e",
    ("cifar-100-python", "train"): "16019d7e3df5f24257cddd939b257f8d",
    ("cifar-100-python", "test"): "f0ef6b0ae62326f3e7ffdfab6717acfc",
}

# the globals a pickled CIFAR batch refers to: NumPy's array reconstruction (pickle protocols 2-4 and 5), under
# the NumPy 1 and NumPy 2 module names. ``numpy.core.multiarray.scalar`` is left out on purpose: with an object
# dtype it reads a pointer from the file's bytes, and CIFAR's labels are plain ints.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes under protocol 2 (str -> bytes, nothing else)
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle refers to a global that a CIFAR batch never needs; nothing it names was called."""


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only NumPy array reconstruction (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(f"refers to {module}.{name}, which a CIFAR batch never contains")
        return super().find_class(module, name)


def cifar_dir(name: str, root: str | Path) -> Path:
    """The folder holding the pickles of ``name`` under ``root`` (``root`` itself if it is that folder)."""
    if name not in CIFAR_LAYOUT:
        raise ValueError(f"name must be one of {sorted(CIFAR_LAYOUT)}, got {name!r}")
    root = Path(root).expanduser()
    folder = CIFAR_LAYOUT[name][0]
    return root if root.name == folder else root / folder


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path) -> None:
    expected = OFFICIAL_MD5.get((path.parent.name, path.name))
    if expected is None:
        return
    actual = file_md5(path)
    if actual != expected:
        raise ValueError(
            f"{path}: MD5 {actual} is not the official {expected} of that file; refusing to read it (a damaged "
            "or replaced file). For a custom copy with the official names, pass --no-verify (verify=False)"
        )


def _checked_batch(path: Path, batch: object, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of an unpickled batch."""
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{path} is not a CIFAR batch: it lacks the keys b'data' and {label_key!r}")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise ValueError(f"{path}: data must be a uint8 array of shape (N, 3072), got {shape}")
    labels = batch[label_key]
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise ValueError(f"{path}: {label_key!r} must hold one label per image ({len(data)})")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {label_key!r} must hold integers") from exc
    return data.reshape(-1, 3, 32, 32), y


def read_batch(path: Path, label_key: bytes, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch file safely (MD5 when ``verify`` and the name is official; restricted unpickler).

    Returns
    -------
    x : ndarray, shape (N, 3, 32, 32), uint8
    y : ndarray, shape (N,), int64

    Raises
    ------
    ValueError
        For an MD5 mismatch, a pickle that refers to anything but NumPy arrays (nothing is executed), an
        unreadable file or one that is not a CIFAR batch; the message is one line naming the file.
    """
    if verify:
        _verify(path)
    try:
        with path.open("rb") as handle:
            batch = CifarUnpickler(handle, encoding="bytes").load()
    except UnsafePickleError as exc:
        raise ValueError(f"{path} is not a safe CIFAR batch: it {exc}; refusing to load it (nothing was run)") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
    return _checked_batch(path, batch, label_key)
