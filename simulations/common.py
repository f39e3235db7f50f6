"""Pieces shared by the experiment modules: common CLI options, progress bars, binning by decade.

Every experiment writes into one data folder, by default ``results/data`` (:data:`DEFAULT_DATA`): the layout
``adabayes reproduce --out results`` uses (``results/data``, ``results/figures``), so that ``adabayes slopes``
and ``adabayes figures`` find the other experiments' outputs without being told where.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = [
    "DEFAULT_DATA",
    "add_common_arguments",
    "blas_threads",
    "decade_of",
    "decade_table",
    "last_fraction_mean",
    "log_log_slope",
    "output_dir",
    "progress",
    "rel_err",
]


DEFAULT_DATA = "results/data"


def add_common_arguments(parser: argparse.ArgumentParser, default_out: str = DEFAULT_DATA) -> None:
    """``--out DIR``, ``--seed S``, ``--quick`` and ``--no-progress``, shared by every experiment.

    ``default_out`` should stay :data:`DEFAULT_DATA` for an experiment whose outputs ``slopes`` or ``figures``
    read, so that the commands find each other's files without options.
    """
    where = (
        ", the data folder of 'adabayes reproduce --out results', where 'adabayes slopes' and 'adabayes figures' look"
        if default_out == DEFAULT_DATA
        else ""
    )
    parser.add_argument(
        "--out", default=default_out, help=f"data folder for the npz/json outputs (default: %(default)s{where})"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sizes for CI (seconds)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


@contextlib.contextmanager
def blas_threads(limit: int) -> Iterator[None]:
    """Run the block with at most ``limit`` BLAS threads (needs threadpoolctl; without it, a no-op).

    For loops of many small matrix products (the quadratic experiment's ``H @ M``, 400 x 400 x 69): one thread
    avoids the hand-over cost of two and is several times faster when the cores are busy (e.g. with the
    derivations running beside the simulations in ``adabayes reproduce``). OpenBLAS splits a product over output
    blocks, so the numbers are the same for any thread count (checked against the baselines).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def output_dir(path: str | Path) -> Path:
    """Create and return the output directory.

    Raises
    ------
    NotADirectoryError
        When ``path`` (or a parent) is an existing file: nothing is created.
    """
    out = Path(path)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise NotADirectoryError(f"--out {str(path)!r}: {str(p)!r} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def progress(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr (disabled with ``enabled=False``)."""
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, mininterval=0.5, leave=False)


def rel_err(measured: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """``measured / predicted - 1`` elementwise."""
    return np.asarray(measured, dtype=np.float64) / np.asarray(predicted, dtype=np.float64) - 1.0


def decade_of(x: np.ndarray) -> np.ndarray:
    """``floor(log10 x)`` as int: the decade each positive value falls in (the binning of every per-decade table)."""
    x = np.asarray(x, dtype=np.float64)
    if not (x > 0).all():
        raise ValueError("values binned by decade must be > 0")
    return np.floor(np.log10(x)).astype(int)


def last_fraction_mean(curve: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """NaN-mean over the last ``fraction`` of the rows of ``curve`` (K, ...) (at least one row)."""
    curve = np.asarray(curve, dtype=np.float64)
    k = max(1, int(curve.shape[0] * fraction))
    return np.nanmean(curve[-k:], axis=0)


def decade_table(g2: np.ndarray, err: np.ndarray) -> dict[str, np.ndarray]:
    """Median and max of ``|err|`` per decade of ``g2``.

    Parameters
    ----------
    g2 : ndarray, shape (N,)
        Positive ⟨g²⟩ per parameter.
    err : ndarray, shape (N,)
        Relative errors per parameter.

    Returns
    -------
    dict with ``decade`` (int, floor(log10 g2)), ``count``, ``median``, ``max``, each of shape (D,).
    """
    g2 = np.asarray(g2, dtype=np.float64)
    err = np.abs(np.asarray(err, dtype=np.float64))
    if g2.shape != err.shape or g2.ndim != 1:
        raise ValueError(f"g2 and err must be 1-D arrays of equal shape, got {g2.shape} and {err.shape}")
    if not (g2 > 0).all():
        raise ValueError("g2 must be > 0")
    dec = decade_of(g2)
    decades = np.unique(dec)
    count = np.array([(dec == d).sum() for d in decades])
    med = np.array([np.median(err[dec == d]) for d in decades])
    mx = np.array([np.max(err[dec == d]) for d in decades])
    return {"decade": decades, "count": count, "median": med, "max": mx}


def log_log_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """OLS slope of ``log10 y`` on ``log10 x`` with its standard error and the number of points.

    Parameters
    ----------
    x, y : ndarray, shape (N,)
        Positive values; N >= 3.

    Returns
    -------
    slope, stderr, n
    """
    lx, ly = np.log10(np.asarray(x, dtype=np.float64)), np.log10(np.asarray(y, dtype=np.float64))
    n = lx.size
    if n < 3:
        raise ValueError(f"x needs at least 3 points for a slope with standard error, got {n}")
    xc = lx - lx.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        raise ValueError("x must not be constant")
    slope = float(xc @ (ly - ly.mean()) / sxx)
    resid = ly - ly.mean() - slope * xc
    stderr = float(np.sqrt(resid @ resid / (n - 2) / sxx))
    return slope, stderr, n
