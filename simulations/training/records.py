"""Persistence of a training run: per-epoch logs (JSON and CSV), the verified checkpoint and the folder lock.

A run directory holds

``history.json``   ``{"config": {...}, "history": [{"epoch": 1, "train_loss": ..., ...}, ...]}``
``history.csv``    the same rows, one per epoch
``checkpoint.pt``  model and optimiser state after the last finished epoch (see below)
``.lock``          held (``fcntl.flock``) by the one process writing the run; holds its pid while it runs

Every file is written to a uniquely named temporary file in the same folder, flushed to disk (``fsync``) and
renamed over the old one, so a kill at any moment leaves the previous complete file, and two writers never
share a temporary name. A second process that tries to write the same folder gets :class:`RunFolderBusy`.

``checkpoint.pt`` is ``MAGIC``, one line of JSON (format, payload size, epoch, the run's config and the
SHA-256 of that header and the payload) and the payload, a ``torch.save`` archive read back with
``weights_only=True`` (tensors and plain Python data only, nothing executed). :func:`load_checkpoint`
verifies all of it and raises :class:`CheckpointError` with one line for each way a file can be wrong: empty,
truncated, a flipped byte, text or another format, another run's checkpoint, an impossible epoch or history.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adabayes.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT",
    "HISTORY_CSV",
    "HISTORY_JSON",
    "LOCK",
    "CheckpointError",
    "RunFolderBusy",
    "RunWriteError",
    "atomic_write",
    "load_checkpoint",
    "read_history",
    "run_lock",
    "save_checkpoint",
    "write_history",
]

CHECKPOINT = "checkpoint.pt"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
LOCK = ".lock"
MAGIC = b"ADABAYES-CHECKPOINT\n"
FORMAT = 1
_MAX_HEADER = 1 << 20  # a header line longer than this is not ours


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be resumed from (damaged, foreign or inconsistent); the message is one line."""


class RunFolderBusy(UserError, RuntimeError):
    """Another process holds the run folder's lock."""


class RunWriteError(UserError, OSError):
    """A run file could not be written (disk full, file-size limit, permissions); the previous file is kept."""


# --------------------------------------------------------------------------------------------------------------
# writing


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to disk (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a unique temporary file, ``fsync`` and rename.

    A reader sees the old file or the new one, never a part; the temporary file is removed on any failure
    (including Ctrl-C). A failed write raises :class:`RunWriteError` naming the path and the reason.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # what open() would have given; mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                reason += " (disk full or file-size limit)"
            error = RunWriteError(f"could not write {path}: {reason}; the previous {path.name} (if any) is kept")
            error.errno = exc.errno
            raise error from exc
        raise
    _fsync_folder(path.parent)
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; the CSV keeps them
    return value


def write_history(out_dir: str | Path, config: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Write ``history.json`` and ``history.csv`` (rewritten whole, atomically, after every epoch)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: _json_safe(v) for k, v in row.items()} for row in history]
    atomic_write(out / HISTORY_JSON, (json.dumps({"config": config, "history": rows}, indent=1) + "\n").encode())
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(out / HISTORY_CSV, text.getvalue().encode())


def read_history(out_dir: str | Path) -> dict[str, Any]:
    """Read ``history.json`` of a run directory (``{"config": ..., "history": [...]}``); null losses -> NaN."""
    path = Path(out_dir) / HISTORY_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    data = json.loads(path.read_text())
    for row in data["history"]:
        for k, v in row.items():
            if v is None:
                row[k] = math.nan
    return data


# --------------------------------------------------------------------------------------------------------------
# checkpoint


def _digest(header: dict[str, Any], payload: bytes) -> str:
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical + b"\n" + payload).hexdigest()


def save_checkpoint(out_dir: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (``config``, ``epoch``, ``history``, state dicts) to ``out_dir/checkpoint.pt``.

    The file carries the config, the epoch and a SHA-256 of header and payload (module docstring); it is
    written with :func:`atomic_write`.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = {"format": FORMAT, "size": len(payload), "epoch": state["epoch"], "config": state["config"]}
    line = json.dumps({**header, "sha256": _digest(header, payload)}, sort_keys=True).encode()
    return atomic_write(out / CHECKPOINT, MAGIC + line + b"\n" + payload)


def _split(path: Path, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """Header and payload of a checkpoint file, checked for shape, size and hash."""
    redo = "start the run afresh with --overwrite, or resume from a good copy"
    if not raw:
        raise CheckpointError(f"{path} is empty (0 bytes; a write was cut short?); {redo}")
    if not raw.startswith(MAGIC):
        what = (
            "a checkpoint of an older adabayes, without a content hash to verify"
            if raw[:4] == b"PK\x03\x04"
            else "not an adabayes checkpoint"
        )
        raise CheckpointError(f"{path} is {what} (no {MAGIC[:-1].decode()} marker); {redo}")
    end = raw.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    try:
        header = json.loads(raw[len(MAGIC) : end]) if end > 0 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("size"), int) or "sha256" not in header:
        raise CheckpointError(f"{path} is damaged: its header is unreadable (truncated or altered); {redo}")
    payload = raw[end + 1 :]
    if len(payload) != header["size"]:
        raise CheckpointError(
            f"{path} is truncated or padded: {len(payload)} payload bytes where its header says {header['size']}; "
            f"{redo}"
        )
    expected = header.pop("sha256")
    if _digest(header, payload) != expected:
        raise CheckpointError(f"{path} is damaged: its SHA-256 does not match its content (a changed byte); {redo}")
    return header, payload


def _check_consistent(path: Path, state: dict[str, Any], header: dict[str, Any]) -> None:
    """Epoch, history and config of a verified checkpoint must agree with each other."""
    epoch, history = state.get("epoch"), state.get("history")
    epochs = (state.get("config") or {}).get("epochs")
    if state.get("config") != header.get("config") or epoch != header.get("epoch"):
        raise CheckpointError(f"{path} is inconsistent: header and content disagree; start afresh with --overwrite")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(epochs, int) or not 1 <= epoch <= epochs:
        raise CheckpointError(f"{path} is inconsistent: epoch {epoch!r} is not in [1, {epochs}]; use --overwrite")
    if not isinstance(history, list) or [row.get("epoch") for row in history] != list(range(1, epoch + 1)):
        n = len(history) if isinstance(history, list) else "no"
        raise CheckpointError(f"{path} is inconsistent: {n} history rows for epoch {epoch}; use --overwrite")
    missing = {"model", "optimizer"} - set(state)
    if missing:
        raise CheckpointError(f"{path} is inconsistent: it lacks {', '.join(sorted(missing))}; use --overwrite")


def _check_same_run(path: Path, saved: dict[str, Any], config: dict[str, Any]) -> None:
    differ = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {config.get(k)!r} now" for k in differ)
        raise CheckpointError(
            f"{path} belongs to another run ({detail}); pass the same options to resume it, or choose another --out"
        )


def load_checkpoint(
    out_dir: str | Path, config: dict[str, Any] | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any] | None:
    """Load and verify ``out_dir/checkpoint.pt``; ``None`` if there is none.

    Parameters
    ----------
    out_dir : str or Path
        Run directory.
    config : dict, optional
        The config of the run that resumes; the checkpoint's must equal it.
    map_location : str or torch.device
        Where tensors go (``torch.load``'s argument).

    Raises
    ------
    CheckpointError
        One line for an empty, truncated, altered, foreign-format, other-run or inconsistent checkpoint.
    """
    import torch

    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    header, payload = _split(path, path.read_bytes())
    if config is not None:
        _check_same_run(path, header.get("config") or {}, config)
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # a hash-valid payload that torch cannot read was not written by us
        raise CheckpointError(f"{path} cannot be read by torch.load ({type(exc).__name__}); use --overwrite") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict; use --overwrite")
    _check_consistent(path, state, header)
    return state


# --------------------------------------------------------------------------------------------------------------
# lock


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files of run files that a killed writer left (only the lock holder calls this)."""
    for name in (CHECKPOINT, HISTORY_JSON, HISTORY_CSV):
        for stale in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of a run folder (created if needed) for the ``with`` block.

    The lock is ``fcntl.flock`` on ``out_dir/.lock``, released by the kernel when the process dies, so a
    killed run never leaves a stale lock. The holder writes its pid into the file and removes temporary files
    that a killed writer left behind.

    Raises
    ------
    RunFolderBusy
        Another process holds the lock; the message names its pid.
    """
    import fcntl

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunFolderBusy(
                f"run folder {folder} is in use by another adabayes process (pid {holder}); wait for it to finish "
                "or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _remove_stale_temporaries(folder)
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
