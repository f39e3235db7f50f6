"""Persistence of a training run: per-epoch logs (JSON and CSV) and the resumable checkpoint.

A run directory holds

``history.json``   ``{"config": {...}, "history": [{"epoch": 1, "train_loss": ..., ...}, ...]}``
``history.csv``    the same rows, one per epoch
``checkpoint.pt``  model and optimiser state after the last finished epoch (written atomically)
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT",
    "HISTORY_CSV",
    "HISTORY_JSON",
    "load_checkpoint",
    "read_history",
    "save_checkpoint",
    "write_history",
]

CHECKPOINT = "checkpoint.pt"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"


def _atomic_replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; the CSV keeps them
    return value


def write_history(out_dir: str | Path, config: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Write ``history.json`` and ``history.csv`` (rewritten whole after every epoch)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: _json_safe(v) for k, v in row.items()} for row in history]
    tmp = out / (HISTORY_JSON + ".tmp")
    tmp.write_text(json.dumps({"config": config, "history": rows}, indent=1) + "\n")
    _atomic_replace(tmp, out / HISTORY_JSON)
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]
    tmp = out / (HISTORY_CSV + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)
    _atomic_replace(tmp, out / HISTORY_CSV)


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


def save_checkpoint(out_dir: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (state dicts, epoch, history, config) to ``out_dir/checkpoint.pt`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CHECKPOINT
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    _atomic_replace(tmp, path)
    return path


def load_checkpoint(out_dir: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Load ``out_dir/checkpoint.pt`` (tensors and plain Python data only), or ``None`` if there is none."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)
