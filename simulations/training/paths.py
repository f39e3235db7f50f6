"""Output paths of the training commands: default run-folder names and checks made before any work.

A default run folder is named by the data set, model, optimiser and seed plus every field of the config that
differs from its default (``runs/mnist1d-resnet1d-adabayes-s0-lr=0.01-batch_size=64``), so a sweep over any
hyperparameter writes one folder per point instead of refusing, or resuming, a neighbour's run.

The ``check_*`` functions run before data are loaded or anything is trained, so ``--out FILE`` fails at once
with one line instead of after the first epoch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_output_dir", "check_output_file", "differing_fields", "run_name"]

#: config fields that name the run anyway (dataset, model, optimiser, seed) or are not hyperparameters
_NAMED_OR_PLACE = ("dataset", "model", "optimizer", "seed", "data_dir")


def _text(value: Any) -> str:
    """Exact, filename-safe text of a field value (``repr`` of a float round-trips)."""
    return repr(value) if isinstance(value, float) else str(value)


def differing_fields(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """``name=value`` for each field of ``config`` (other than dataset/model/optimiser/seed/data_dir) that
    differs from ``defaults``, in the config's order."""
    return [
        f"{name}={_text(value)}"
        for name, value in config.items()
        if name not in _NAMED_OR_PLACE and value is not None and value != defaults.get(name)
    ]


def run_name(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """Folder name of a run: ``DATASET-MODEL-OPTIMIZER-sSEED`` plus :func:`differing_fields`, ``-``-joined."""
    base = [str(config["dataset"]), str(config["model"]), str(config["optimizer"]), f"s{config['seed']}"]
    return "-".join(base + differing_fields(config, defaults))


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_creatable(path: Path, option: str) -> None:
    """``path`` (a folder) exists as a folder or can be created: its nearest existing ancestor is a writable
    folder."""
    anchor = _first_existing(path)
    if not anchor.is_dir():
        raise NotADirectoryError(f"{option} {path}: {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: the folder {anchor} is not writable")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Check that ``path`` is, or can become, a writable folder; return it as a ``Path``.

    Raises
    ------
    NotADirectoryError
        ``path`` or one of its parents is a file.
    PermissionError
        The folder, or the nearest existing parent, is not writable.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{option} {out} is a file; it must name a folder (existing or new)")
    _check_creatable(out, option)
    return out


def check_output_file(path: str | Path, option: str) -> Path:
    """Check that ``path`` can be written as a file (not a folder; its folder exists or can be created)."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise IsADirectoryError(f"{option} {out} is a folder; it must name a file")
    if out.exists() and not os.access(out, os.W_OK):
        raise PermissionError(f"{option} {out} is not writable")
    _check_creatable(out.parent, option)
    return out
