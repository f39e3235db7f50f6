"""Alg. 1's time-averaged σ²_post predicted from the gradients each parameter really got, checked per decade.

The prediction (issue 9): the stationary mean of σ²_post under i.i.d. gradients drawn from the *empirical law of
that parameter's own gradients* over the averaging window (:func:`filtering.stochastic.stationary_law` with
:class:`~filtering.stochastic.EmpiricalGradients`). In the experiments g is only approximately i.i.d. -- the filter's
own μ makes it correlated -- and only approximately Gaussian, so the empirical law is the honest input: it needs no
assumption on the shape of g's law, only that successive draws are independent. Two corrections make it a
prediction of the measured number, a time average over a finite window of T steps:

* **atoms**: the sorted g² of the window are cut into :data:`ATOMS` slices of equal mass, each replaced by its
  mean (⟨g²⟩ is kept exactly); this changes the prediction by < 2e-4 against the full sample (measured on the
  generative model, 14 000 gradients per parameter) and makes a solve cost ~0.05 s;
* **relaxation**: σ²_post starts the window at its measured value, not in the stationary law; the window average of
  the deterministic recursion (Eqs. 17b + 18a with g² = ⟨g²⟩) started there, divided by its fixed point, is the
  factor applied to every fixed-point-type prediction (1 to 1e-9 after a long burn-in; up to 1 % in the SGD regime
  of the quadratic, whose window starts 1.5 memory times after the start).

**The check** (one per decade of ⟨g²⟩): the median over the decade's evaluated parameters of
``|log(measured / predicted)|`` must be at most ``4 × noise + solver``, where ``noise`` is the median that Monte
Carlo noise alone gives a correct prediction, measured in the same run: each half of the window is predicted from
its own gradients and starting value, and ``|e₁ - e₂|/2`` (``e_k`` the half's log ratio) estimates the error of the
whole-window log ratio (for independent halves its median is that of ``|e|`` under a correct prediction);
``solver`` is the median relative error estimate of the solves. The check is made on the parameters whose gradients
satisfy the theory's hypothesis -- observation noise dominates g², ⟨g²⟩ <= :data:`NOISE_SHARE` × its variance
(Eq. 12's H_ii), so that the tracking error, which is what correlates successive gradients, is at most 10 % of
⟨g²⟩. A decade with fewer than :data:`MIN_REGION` such parameters is reported, not checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from filtering.fixed_point import approx_precision, exact_precision
from filtering.kalman_step import predict_variance, update_variance
from filtering.ou import variance_predict_coefficients
from filtering.stochastic import EmpiricalGradients, stationary_law

from .checks import INFO, AtMost, Spec
from .common import decade_of

__all__ = [
    "ATOMS",
    "MIN_REGION",
    "NOISE_SHARE",
    "NOISE_UNITS",
    "PER_DECADE",
    "Window",
    "compare",
    "compress_gradients",
    "pick_per_decade",
    "relaxation_factor",
    "stochastic_specs",
]

ATOMS = 256  # equal-count groups of g² per law (per half: ATOMS // 2)
PER_DECADE = 16  # parameters evaluated per decade of ⟨g²⟩ (evenly spread; all when fewer)
NOISE_UNITS = 4.0  # the bound, in units of the Monte-Carlo noise of the median
NOISE_SHARE = 1.1  # hypothesis region: ⟨g²⟩ <= NOISE_SHARE × the observation-noise variance of g
MIN_REGION = 5  # parameters needed for a decade's check
RTOL = 1e-3  # solver accuracy target
#: the predictions compared per decade (key -> label); "none" is the do-nothing baseline σ²_post ≡ σ²
PREDICTIONS = {
    "eq21": "Eq. 21",
    "exact": "exact fixed point",
    "gaussian": "stochastic, g ~ N(0, ⟨g²⟩)",
    "empirical": "stochastic, empirical g",
    "none": "σ²_post ≡ σ² (do nothing)",
}


@dataclass(frozen=True)
class Window:
    """What an experiment recorded about Alg. 1 over its averaging window of ``steps`` steps, N parameters.

    Attributes
    ----------
    g : ndarray, shape (S, N)
        The gradients Alg. 1 was given at every ``stride``-th step of the window (S = ceil(steps / stride)).
    rate : ndarray, shape (N,)
        Time average of σ²_post over the window.
    half_rate : ndarray, shape (2, N)
        Time averages over steps ``[0, steps // 2)`` and ``[steps // 2, steps)``.
    start_rate : ndarray, shape (2, N)
        σ²_post after steps 0 and ``steps // 2`` of the window (the starts of the halves).
    steps, stride : int
    """

    g: np.ndarray
    rate: np.ndarray
    half_rate: np.ndarray
    start_rate: np.ndarray
    steps: int
    stride: int = 1

    def half_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """The gradient samples of the two halves, shapes (S₁, N) and (S₂, N)."""
        cut = -(-(self.steps // 2) // self.stride)  # first sample at or after step steps // 2
        return self.g[:cut], self.g[cut:]


def compress_gradients(g: np.ndarray, atoms: int = ATOMS, weights: np.ndarray | None = None) -> np.ndarray:
    """|g| atoms of equal weight: the mean g² of each of ``atoms`` equal-mass slices of the sorted sample.

    Slice j holds the sample's quantiles from j/atoms to (j+1)/atoms (a sample on a boundary is shared between two
    slices in proportion), so the atoms' mean g² is the sample's exactly and every atom has weight 1/atoms. With
    ``weights`` (shape of ``g``, >= 0, not all 0) the sample is the weighted empirical law: each value carries mass
    proportional to its weight. An unweighted sample of n <= ``atoms`` values is returned as is. Returns shape
    (min(atoms, n),) unweighted, (atoms,) weighted.
    """
    g = np.asarray(g, dtype=np.float64).ravel()
    order = np.argsort(g * g)
    g2 = (g * g)[order]
    if weights is None:
        if g2.size <= atoms:
            return np.sqrt(g2)
        w = np.ones_like(g2)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()[order]
        if w.shape != g2.shape or not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError("weights must have the shape of g, be finite and >= 0, and not all 0")
    mass = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()  # cumulative mass at the samples' edges
    value = np.concatenate([[0.0], np.cumsum(w * g2)]) / w.sum()  # E[g²; below that edge]
    edges = np.interp(np.linspace(0.0, 1.0, atoms + 1), mass, value)  # linear inside a sample: its g² is constant
    return np.sqrt(np.maximum(np.diff(edges), 0.0) * atoms)


def relaxation_factor(g2: np.ndarray, start: np.ndarray, steps: int, eta: float, sigma2: float) -> np.ndarray:
    """Window average of the deterministic recursion from σ²_post = ``start``, over its fixed point.

    Iterates Eqs. 17b + 18a with g² = ⟨g²⟩ (``g2``, shape (K,)) for ``steps`` steps, the first being ``start``
    itself; returns shape (K,). It tends to 1 when the window is long against the memory 1/(1 - φ'(λ*)).
    """
    f, q = variance_predict_coefficients(eta, sigma2)
    var = np.array(start, dtype=np.float64)
    total = np.zeros_like(var)
    for t in range(steps):
        if t:
            var = update_variance(predict_variance(var, f, q), g2)  # Eqs. 17b, 18a
        total += var
    return total / steps * exact_precision(g2, eta, sigma2)


def pick_per_decade(g2: np.ndarray, per_decade: int = PER_DECADE) -> np.ndarray:
    """Indices of at most ``per_decade`` parameters per decade of ``g2``, evenly spread in ⟨g²⟩ (sorted)."""
    dec = decade_of(g2)
    picked = []
    for d in np.unique(dec):
        members = np.flatnonzero(dec == d)
        members = members[np.argsort(g2[members])]
        take = np.unique(np.linspace(0, members.size - 1, min(per_decade, members.size)).round().astype(int))
        picked.append(members[take])
    return np.sort(np.concatenate(picked))


def _empirical_mean(g: np.ndarray, atoms: int, eta: float, sigma2: float) -> tuple[float, float]:
    """(E[σ²_post], relative error estimate) under i.i.d. draws from the empirical law of ``g`` (shape (S,))."""
    law = stationary_law(EmpiricalGradients(compress_gradients(g, atoms)), eta, sigma2, rtol=RTOL)
    return law.mean(), law.error_estimate / law.mean()


def _predict(window: Window, idx: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """Empirical-law predictions over the window and over each half, with their relaxation factors."""
    halves = window.half_samples()
    half_steps = (window.steps // 2, window.steps - window.steps // 2)
    out = {key: np.empty(idx.size) for key in ("empirical", "solver", "half_1", "half_2")}
    for k, i in enumerate(idx):
        out["empirical"][k], out["solver"][k] = _empirical_mean(window.g[:, i], ATOMS, eta, sigma2)
        for h in (0, 1):
            out[f"half_{h + 1}"][k] = _empirical_mean(halves[h][:, i], ATOMS // 2, eta, sigma2)[0]
    g2 = (window.g[:, idx] ** 2).mean(axis=0)
    out["factor"] = relaxation_factor(g2, window.start_rate[0, idx], window.steps, eta, sigma2)
    for h in (0, 1):
        g2_half = (halves[h][:, idx] ** 2).mean(axis=0)
        factor = relaxation_factor(g2_half, window.start_rate[h, idx], half_steps[h], eta, sigma2)
        out[f"half_{h + 1}"] *= factor
    return out


def _lag1(g: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each column of ``g`` (S, K) (consecutive samples)."""
    c = g - g.mean(axis=0)
    return (c[1:] * c[:-1]).mean(axis=0) / (c * c).mean(axis=0)


def compare(
    window: Window,
    g2: np.ndarray,
    noise_var: np.ndarray,
    eta: float,
    sigma2: float,
    gaussian: Callable[[np.ndarray], np.ndarray],
) -> dict[str, Any]:
    """Predictions of every kind at the evaluated parameters, and the per-decade numbers the checks read.

    Parameters
    ----------
    window : Window
    g2 : ndarray, shape (N,)
        ⟨g²⟩ per parameter over the window (the decade binning).
    noise_var : ndarray, shape (N,)
        Variance of the observation noise in g (Eq. 12's H_ii, times B for a minibatch sum).
    eta, sigma2 : float
    gaussian : callable
        ⟨g²⟩ (K,) -> E[σ²_post] for g ~ N(0, ⟨g²⟩) (e.g. :func:`simulations.curves.stochastic_rate`).

    Returns
    -------
    dict
        ``stoch_idx`` (K,) evaluated parameters; ``stoch_<key>`` (K,) each prediction of :data:`PREDICTIONS` (the
        fixed-point kinds times the relaxation factor); ``stoch_noise``, ``stoch_region``, ``stoch_lag1``; the
        per-decade table ``stoch_table`` and, per decade ``d``, ``stoch_<d>_value``, ``_bound``, ``_n``, ...
    """
    idx = pick_per_decade(g2)
    p = _predict(window, idx, eta, sigma2)
    rate, x, factor = window.rate[idx], g2[idx], p["factor"]
    pred = {
        "eq21": factor / approx_precision(x, eta, sigma2),  # Eq. 21
        "exact": factor / exact_precision(x, eta, sigma2),  # Eqs. 17b + 18a at ⟨g²⟩
        "gaussian": factor * gaussian(x),
        "empirical": factor * p["empirical"],
        "none": np.full(idx.size, sigma2),
    }
    half_err = np.log(window.half_rate[:, idx] / np.stack([p["half_1"], p["half_2"]]))
    out: dict[str, Any] = {"stoch_idx": idx, "stoch_g2": x, "stoch_factor": factor, "stoch_solver": p["solver"]}
    out |= {f"stoch_{k}": v for k, v in pred.items()}
    out["stoch_noise"] = np.abs(half_err[0] - half_err[1]) / 2.0
    out["stoch_region"] = x <= NOISE_SHARE * noise_var[idx]
    out["stoch_lag1"] = _lag1(window.g[:, idx])
    logerr = {k: np.abs(np.log(rate / v)) for k, v in pred.items()}
    return out | _per_decade(out, logerr)


def _per_decade(out: dict[str, Any], logerr: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per decade: medians of every |log ratio| (all evaluated parameters) and the check's numbers (region)."""
    dec = decade_of(out["stoch_g2"])
    table: dict[str, list] = {k: [] for k in ("decade", "n", "n_region", *PREDICTIONS, "noise", "bound", "lag1")}
    flat: dict[str, Any] = {}
    for d in np.unique(dec):
        sel = dec == d
        reg = sel & out["stoch_region"]
        noise = float(np.median(out["stoch_noise"][reg])) if reg.any() else math.nan
        solver = float(np.median(out["stoch_solver"][reg])) if reg.any() else math.nan
        bound = NOISE_UNITS * noise + solver
        for key, count in (("decade", int(d)), ("n", int(sel.sum())), ("n_region", int(reg.sum()))):
            table[key].append(count)
        for key in PREDICTIONS:
            table[key].append(float(np.median(logerr[key][sel])))
        table["noise"].append(noise)
        table["bound"].append(bound)
        table["lag1"].append(float(np.median(out["stoch_lag1"][sel])))
        value = float(np.median(logerr["empirical"][reg])) if reg.sum() >= MIN_REGION else math.nan
        flat |= {f"stoch_{d}_value": value, f"stoch_{d}_bound": bound, f"stoch_{d}_noise": noise}
        flat |= {f"stoch_{d}_n": int(reg.sum()), f"stoch_{d}_all": float(np.median(logerr["empirical"][sel]))}
        flat |= {f"stoch_{d}_eq21": float(np.median(logerr["eq21"][sel])), f"stoch_{d}_size": int(sel.sum())}
        flat[f"stoch_{d}_lag1"] = table["lag1"][-1]
    return flat | {"stoch_table": {k: np.array(v) for k, v in table.items()}}


def stochastic_specs(prefix: str, measured: dict[str, Any], noise_name: str) -> list[Spec]:
    """One spec per decade of ``measured["stoch_table"]``: a check where the hypothesis region holds enough
    parameters, an informational number elsewhere.

    ``noise_name`` says in the detail what the observation-noise variance is (e.g. ``"h"``).
    """
    specs = []
    for d in measured["stoch_table"]["decade"]:
        key = f"stoch_{d}"
        name = f"{prefix}/stochastic_vs_points_1e{d}"
        if measured[f"{key}_n"] >= MIN_REGION:
            specs.append(
                Spec(
                    name,
                    "Eqs. 17b, 18a",
                    f"{key}_value",
                    AtMost(f"{key}_bound", "<= {limit:.3g} (4 × MC noise + solver)"),
                    detail=f"median |log(σ²_post time avg / stochastic prediction)| over the {{{key}_n}} evaluated "
                    f"parameters with ⟨g²⟩ in [1e{d}, 1e{d + 1}) and ⟨g²⟩ <= {NOISE_SHARE} {noise_name} (i.i.d. "
                    f"hypothesis); prediction: stationary law of Alg. 1 under each parameter's empirical gradient "
                    f"law, times the window's relaxation factor; MC noise {{{key}_noise:.2g}} (split-half); Eq. 21 "
                    f"on the same decade: {{{key}_eq21:.2g}}",
                )
            )
        else:
            specs.append(
                Spec(
                    name,
                    "Eqs. 17b, 18a",
                    f"{key}_all",
                    INFO,
                    detail=f"median |log(σ²_post / stochastic prediction)| over the {{{key}_size}} evaluated "
                    f"parameters with ⟨g²⟩ in [1e{d}, 1e{d + 1}): not checked, only {{{key}_n}} satisfy the i.i.d. "
                    f"hypothesis (⟨g²⟩ <= {NOISE_SHARE} {noise_name}); lag-1 autocorrelation of g "
                    f"{{{key}_lag1:.2f}}; Eq. 21: {{{key}_eq21:.2g}}",
                )
            )
    return specs
