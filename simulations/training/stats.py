"""Statistics over training seeds: bootstrap intervals, paired differences, ranks, epoch selection.

Every number of the verdict is a statistic of a few seeds (5 by default), so the choices are spelled out here:

* **Per run**, the epoch is selected on the *validation* split: the first epoch of minimal validation loss
  (:func:`run_statistics`). Test error and test loss are read at that epoch. The paper's Table 1 statistic,
  the minimum of test error and of test loss over epochs (test-set selection, optimistic), is reported
  separately under ``paper_min_*`` names.
* **Interval of a mean**: a percentile bootstrap at 95 % (:func:`mean_interval`). For n <= 6 seeds the
  bootstrap distribution is computed *exactly*, by enumerating all n^n equally likely resamples (3125 for
  n = 5), so it is deterministic; above, ``n_resamples`` seeded Monte-Carlo resamples. Quantiles are
  NumPy's default (linear interpolation), as in ``scipy.stats.bootstrap``, the peer in the tests. BCa is
  available (``method="bca"``, Efron & Tibshirani 1993 §14.3 with the jackknife acceleration of Eq. 14.15).
  With 5 seeds any bootstrap interval of a mean is too narrow (it ignores the t-distribution's extra width):
  the Student-t interval is reported beside it as ``t_low``/``t_high``.
* **Paired comparisons** use shared seeds (same initialisation and batch order for both optimisers): the
  interval is that of the mean of per-seed differences, with the number of seeds where the first is better
  and the exact two-sided sign-flip p-value (all 2^n sign patterns; with 5 seeds it cannot go below 1/16).
* **Ranks**: 1 = lowest mean, ties share the average rank (:func:`ranks`); :func:`rank_probabilities`
  resamples the shared seeds jointly (exact for n <= 6) and counts how often each optimiser has each rank.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from filtering.validation import check_choice, check_int, check_scalar

__all__ = [
    "EARLY_FRACTION",
    "EXACT_UP_TO",
    "METRICS",
    "PAIRS",
    "Interval",
    "PairedDifference",
    "bootstrap_means",
    "mean_interval",
    "paired_difference",
    "rank_probabilities",
    "ranks",
    "run_statistics",
    "select_epoch",
    "sign_flip_p",
    "summarise_protocol",
]

#: sample sizes up to which the bootstrap distribution is enumerated exactly (6^6 = 46 656 resamples)
EXACT_UP_TO = 6


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its 95 % intervals.

    Attributes
    ----------
    mean : float
    low, high : float or None
        Bootstrap interval (``None`` for a single value).
    t_low, t_high : float or None
        Student-t interval ``mean ± t_{n-1} s / sqrt(n)`` (``None`` for a single value).
    n : int
        Number of values.
    method : str
        ``"percentile"`` or ``"bca"``, plus ``" exact"`` or ``" monte-carlo"``.
    """

    mean: float
    low: float | None
    high: float | None
    t_low: float | None
    t_high: float | None
    n: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-seed differences ``a - b`` on shared seeds, with its interval.

    Attributes
    ----------
    interval : Interval
        Of the mean difference.
    seeds : list of int
        The shared seeds used.
    a_better : int
        Seeds where ``a < b`` (lower error or loss is better).
    p_sign_flip : float or None
        Exact two-sided sign-flip (paired permutation) p-value of mean difference 0.
    """

    interval: Interval
    seeds: list[int]
    a_better: int
    p_sign_flip: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return {
            "interval": self.interval.to_dict(),
            "seeds": self.seeds,
            "a_better": self.a_better,
            "p_sign_flip": self.p_sign_flip,
        }


def _values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {x.tolist()}")
    return x


def _resample_indices(n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """Index arrays of shape (R, n): all n^n resamples when n <= EXACT_UP_TO, else R seeded draws."""
    if n <= EXACT_UP_TO:
        return np.array(list(itertools.product(range(n), repeat=n)), dtype=np.int64), True
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n)), False


def bootstrap_means(
    values: Sequence[float] | np.ndarray, n_resamples: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """Bootstrap distribution of the mean.

    Parameters
    ----------
    values : sequence of float, shape (n,)
        Finite values.
    n_resamples : int
        Monte-Carlo resamples when ``n > EXACT_UP_TO``.
    seed : int
        Seed of the Monte-Carlo resamples.

    Returns
    -------
    means : ndarray, shape (n^n,) or (n_resamples,)
        Resampled means.
    exact : bool
        Whether all n^n resamples were enumerated.
    """
    x = _values(values)
    check_int("n_resamples", n_resamples, lower=100)
    idx, exact = _resample_indices(x.size, n_resamples, seed)
    return x[idx].mean(axis=1), exact


def _t_interval(x: np.ndarray, level: float) -> tuple[float, float]:
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.5 + level / 2, x.size - 1)) * float(np.std(x, ddof=1)) / math.sqrt(x.size)
    return float(x.mean()) - half, float(x.mean()) + half


def _bca_levels(x: np.ndarray, means: np.ndarray, alpha: float) -> tuple[float, float]:
    """BCa quantile levels: bias correction z0 from the bootstrap distribution, acceleration from the jackknife."""
    from scipy.special import ndtr, ndtri

    theta = x.mean()
    z0 = float(ndtri(((means < theta).sum() + (means <= theta).sum()) / (2.0 * means.size)))
    jack = (x.sum() - x) / (x.size - 1)  # the mean without each value
    u = jack.mean() - jack
    accel = float((u**3).sum() / (6.0 * (u**2).sum() ** 1.5))
    levels = []
    for z in (float(ndtri(alpha)), float(ndtri(1 - alpha))):
        levels.append(float(ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
    return levels[0], levels[1]


def mean_interval(
    values: Sequence[float] | np.ndarray,
    level: float = 0.95,
    method: str = "percentile",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` with a bootstrap and a Student-t interval.

    Parameters
    ----------
    values : sequence of float, shape (n,)
        One value per seed, finite.
    level : float
        Confidence level in (0, 1).
    method : {"percentile", "bca"}
        Bootstrap interval.
    n_resamples, seed : int
        Monte-Carlo resamples and their seed, used when n > :data:`EXACT_UP_TO`.

    Returns
    -------
    Interval
        For n = 1 the intervals are ``None``; when all values are equal, both are that value.
    """
    x = _values(values)
    level = check_scalar("level", level, lower=0.0, upper=1.0)
    method = check_choice("method", method, ("percentile", "bca"))
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, None, None, None, None, 1, method)
    if np.all(x == x[0]):
        return Interval(mean, mean, mean, mean, mean, x.size, method + " degenerate")
    means, exact = bootstrap_means(x, n_resamples, seed)
    alpha = (1 - level) / 2
    levels = (alpha, 1 - alpha) if method == "percentile" else _bca_levels(x, means, alpha)
    low, high = (float(v) for v in np.quantile(means, levels))
    t_low, t_high = _t_interval(x, level)
    return Interval(mean, low, high, t_low, t_high, x.size, f"{method} {'exact' if exact else 'monte-carlo'}")


def sign_flip_p(differences: Sequence[float] | np.ndarray) -> float:
    """Exact two-sided sign-flip p-value: the fraction of the 2^n sign patterns whose |mean| >= the observed.

    Parameters
    ----------
    differences : sequence of float, shape (n,), n <= 20
        Paired differences.
    """
    d = _values(differences, "differences")
    if d.size > 20:
        raise ValueError(f"differences must hold at most 20 values for the exact test, got {d.size}")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    stats = np.abs(signs @ d)
    observed = abs(float(d.sum()))
    return float(np.mean(stats >= observed * (1 - 1e-12)))


def paired_difference(
    a: Mapping[int, float],
    b: Mapping[int, float],
    level: float = 0.95,
    method: str = "percentile",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """Interval of the mean per-seed difference ``a[s] - b[s]`` over the seeds both have.

    Parameters
    ----------
    a, b : mapping seed -> value
        Per-seed statistics of two optimisers (lower is better).
    level, method, n_resamples, seed
        As for :func:`mean_interval`.

    Raises
    ------
    ValueError
        When the two share no seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"a and b must share at least one seed, got {sorted(a)} and {sorted(b)}")
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    interval = mean_interval(d, level, method, n_resamples, seed)
    p = sign_flip_p(d) if d.size <= 20 else None
    return PairedDifference(interval, seeds, int(np.sum(d < 0)), p)


def ranks(means: Mapping[str, float]) -> dict[str, float]:
    """Rank of each key by value, 1 = lowest; ties share the average of their ranks; NaN ranks last."""
    from scipy.stats import rankdata

    keys = list(means)
    values = np.array([means[k] for k in keys], dtype=np.float64)
    values = np.where(np.isnan(values), np.inf, values)
    return {k: float(r) for k, r in zip(keys, rankdata(values, method="average"), strict=True)}


def rank_probabilities(
    values: Mapping[str, Mapping[int, float]], n_resamples: int = 10_000, seed: int = 0
) -> dict[str, list[float]]:
    """How often each optimiser has each rank when the shared seeds are resampled jointly.

    Parameters
    ----------
    values : mapping optimiser -> (mapping seed -> value)
        Per-seed statistics; only seeds every optimiser has are used.
    n_resamples, seed : int
        Monte-Carlo resamples beyond :data:`EXACT_UP_TO` seeds.

    Returns
    -------
    dict
        optimiser -> list of K probabilities (K optimisers), entry k = P(rank k + 1); a tie at the best value
        counts as a share (1/m each for an m-way tie).
    """
    names = list(values)
    seeds = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    if not seeds:
        raise ValueError("values must share at least one seed across all optimisers")
    table = np.array([[values[o][s] for s in seeds] for o in names], dtype=np.float64)  # (K, n)
    idx, _ = _resample_indices(len(seeds), n_resamples, seed)
    means = table[:, idx].mean(axis=2)  # (K, R)
    k = len(names)
    counts = np.zeros((k, k))
    for r in range(means.shape[1]):
        col = means[:, r]
        order = np.argsort(col, kind="stable")
        position = 0
        while position < k:  # groups of equal values share their positions
            tied = order[position:][col[order[position:]] == col[order[position]]]
            for i in tied:
                counts[i, position : position + len(tied)] += 1.0 / len(tied)
            position += len(tied)
    probs = counts / means.shape[1]
    return {name: probs[i].tolist() for i, name in enumerate(names)}


def select_epoch(history: Sequence[Mapping[str, Any]], key: str = "val_loss") -> int | None:
    """Index of the first row with the minimal finite ``key``; ``None`` when no row has a finite one."""
    best: int | None = None
    for i, row in enumerate(history):
        value = row.get(key)
        if value is None or not math.isfinite(value):
            continue
        if best is None or value < history[best][key]:
            best = i
    return best


def _number(row: Mapping[str, Any], key: str) -> float:
    """``row[key]`` as a float; missing or ``None`` (a non-finite value stored as JSON null) is NaN."""
    value = row.get(key)
    return math.nan if value is None else float(value)


#: the early-training statistic is read after this share of the planned epochs (the paper's Fig. 4 claim)
EARLY_FRACTION = 0.25


def run_statistics(history: Sequence[Mapping[str, Any]], planned_epochs: int | None = None) -> dict[str, Any]:
    """Per-run statistics of a history with ``val_loss``, ``val_error``, ``test_loss``, ``test_error`` rows.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch rows (``None`` stands for a non-finite value).
    planned_epochs : int, optional
        The run's epoch budget (default: the rows present), for the early-training epoch.

    Returns
    -------
    dict
        ``selected_epoch`` (1-based, by validation loss), ``test_error_pct`` and ``test_loss`` there,
        ``val_loss`` there (the tuning objective), ``final_val_loss``, the paper's ``paper_min_test_error_pct``
        and ``paper_min_test_loss`` (minimum over epochs, test-set selection), ``early_test_error_pct`` and
        ``early_test_loss`` after ``max(1, round(EARLY_FRACTION * planned_epochs))`` epochs (early training,
        Fig. 4), ``epochs`` and ``diverged``. A run without a finite validation loss gets error 100 % and loss
        NaN at ``selected_epoch`` None; a run that stopped before the early epoch gets 100 % and NaN there.
    """
    pick = select_epoch(history)
    finite = [r for r in history if math.isfinite(_number(r, "test_loss"))]
    last = history[-1] if history else {}
    early = max(1, round(EARLY_FRACTION * (planned_epochs or len(history))))
    early_row = history[early - 1] if len(history) >= early else None
    early_ok = early_row is not None and math.isfinite(_number(early_row, "test_loss"))
    return {
        "selected_epoch": None if pick is None else int(history[pick]["epoch"]),
        "test_error_pct": 100.0 if pick is None else 100.0 * _number(history[pick], "test_error"),
        "test_loss": math.nan if pick is None else _number(history[pick], "test_loss"),
        "val_loss": math.inf if pick is None else _number(history[pick], "val_loss"),
        "final_val_loss": _number(last, "val_loss"),
        "paper_min_test_error_pct": 100.0 * min(_number(r, "test_error") for r in finite) if finite else 100.0,
        "paper_min_test_loss": min(_number(r, "test_loss") for r in finite) if finite else math.nan,
        "early_epoch": early,
        "early_test_error_pct": 100.0 * _number(early_row, "test_error") if early_ok and early_row else 100.0,
        "early_test_loss": _number(early_row, "test_loss") if early_ok and early_row else math.nan,
        "epochs": len(history),
        "diverged": any(bool(r.get("diverged")) for r in history),
    }


#: the paired comparisons of the verdict: (a, b) reports a - b on shared seeds
PAIRS = (("adabayes", "adam"), ("adabayes_fp", "adamw"), ("adabayes", "sgd"), ("adabayes_fp", "sgd"))
#: the per-run statistics summarised: validation-selected test error and loss, the paper's min over epochs, and
#: the early-training values
METRICS = (
    "test_error_pct",
    "test_loss",
    "paper_min_test_error_pct",
    "paper_min_test_loss",
    "early_test_error_pct",
    "early_test_loss",
)


def _per_seed(runs: Mapping[int, Mapping[str, Any]], metric: str) -> dict[int, float]:
    """seed -> finite value of ``metric`` (a diverged run's NaN loss is left out)."""
    values = {int(s): r.get(metric) for s, r in runs.items()}
    return {s: float(v) for s, v in values.items() if v is not None and math.isfinite(v)}


def summarise_protocol(
    runs: Mapping[str, Mapping[int, Mapping[str, Any]]], pairs: Sequence[tuple[str, str]] = PAIRS
) -> dict[str, Any]:
    """Statistics of one task under one protocol.

    Parameters
    ----------
    runs : mapping optimiser -> (mapping seed -> :func:`run_statistics` dict)
        Optimisers without any run are skipped.
    pairs : sequence of (a, b)
        Paired differences a - b to report (where both have runs).

    Returns
    -------
    dict
        ``optimizers[opt][metric]`` -> :class:`Interval` dict (plus ``seeds`` and ``diverged``);
        ``ranks[metric]`` -> optimiser -> rank of the mean; ``p_best[metric]`` -> optimiser -> probability
        of rank 1 under joint resampling of the shared seeds; ``pairs["a-b"][metric]`` ->
        :class:`PairedDifference` dict.
    """
    present = {o: r for o, r in runs.items() if r}
    out: dict[str, Any] = {"optimizers": {}, "ranks": {}, "p_best": {}, "pairs": {}}
    for opt, seeds in present.items():
        entry: dict[str, Any] = {"seeds": sorted(int(s) for s in seeds)}
        entry["diverged"] = sum(bool(r.get("diverged")) for r in seeds.values())
        for metric in METRICS:
            values = _per_seed(seeds, metric)
            entry[metric] = mean_interval(list(values.values())).to_dict() if values else None
        out["optimizers"][opt] = entry
    for metric in METRICS:
        table = {o: _per_seed(r, metric) for o, r in present.items()}
        table = {o: v for o, v in table.items() if v}
        out["ranks"][metric] = ranks({o: float(np.mean(list(v.values()))) for o, v in table.items()})
        shared = set.intersection(*(set(v) for v in table.values())) if table else set()
        if len(table) > 1 and shared:
            probs = rank_probabilities(table)
            out["p_best"][metric] = {o: p[0] for o, p in probs.items()}
    for a, b in pairs:
        if a in present and b in present:
            diffs = {}
            for metric in METRICS:
                va, vb = _per_seed(present[a], metric), _per_seed(present[b], metric)
                if set(va) & set(vb):
                    diffs[metric] = paired_difference(va, vb).to_dict()
            out["pairs"][f"{a}-{b}"] = diffs
    return out
