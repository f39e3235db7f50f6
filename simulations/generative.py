"""Experiment 1 (and 4): the generative model of Eqs. 12-14 with the optimiser supplying μ.

N parameters share η and σ² and differ in their curvature h = H_ii, log-spaced over many decades so that
⟨g²⟩ covers the SGD regime (η/sqrt(⟨g²⟩) >> σ²), the Adam regime and the break-down of Eq. 21
(η² ⟨g²⟩ no longer small). The latent w*(t) follows the OU process of Eq. 14; the pseudo-observations
``y = h w* + sqrt(h) ε`` are drawn once and every optimiser gets ``g = y - h μ`` at its own μ (Eq. 12).

Runs, per parameter and step: AdaBayes (Alg. 1), AdaBayes-FP (Alg. 2), fading memory (App. A), AdamW (Adam
with the same decoupled decay λ as AdaBayes, Eq. 26), and the exact Kalman filter with known h (Eqs. 16-18,
41). After burn-in it accumulates the time averages of each rule's learning rate (``state.var_post``) and of
g², and, for the rules whose rate is a posterior variance (the Kalman filter and AdaBayes's two forms), the
z-scores ``(w* - μ_post)/σ_post``.
The mean decay of AdaBayes is set to Eq. 17a's ``λ = η²/(2σ²)`` (Eq. 19a) and β1 = 0 by default, so that
AdaBayes is Alg. 1 as a filter: the exact Kalman filter with H_ii replaced by g² (Eq. 42).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from filtering import rules
from filtering.fixed_point import (
    approx_precision,
    eq21_relative_error,
    eq21_validity_range,
    exact_precision,
    fading_memory_variance,
)
from filtering.ou import variance_predict_coefficients
from filtering.state_space import gradient, kalman_filter, simulate_latent

from .checks import Check, check_at_most, identity, info, print_checks
from .common import add_common_arguments, decade_of, decade_table, output_dir, progress, rel_err
from .io import save_json, save_npz
from .jensen import iid_chi2_rate, jensen_rate
from .registry import help_for

__all__ = [
    "HELP",
    "POSTERIOR_RULES",
    "REGIMES",
    "RULES",
    "GenerativeConfig",
    "add_arguments",
    "calibration_checks",
    "regime_masks",
    "run",
    "simulate_generative",
    "summarise",
]

HELP = help_for("generative")

RULES = ("adabayes", "adabayes_fp", "fading", "adamw", "kalman")
# rules whose σ²_post is a posterior variance of w*, so that z = (w* - μ)/σ_post means something
POSTERIOR_RULES = ("kalman", "adabayes", "adabayes_fp")
# ⟨g²⟩ / (η/σ²)² boundaries of the three regimes (η/sqrt(⟨g²⟩) >= 10 σ²: SGD; <= σ²/10: Adam)
REGIMES = {"sgd": (0.0, 1e-2), "crossover": (1e-2, 1e2), "adam": (1e2, np.inf)}
MIN_REGION = 5  # a regional median over fewer parameters is NaN (and its check fails)
Z_EDGES = np.linspace(-5.0, 5.0, 101)


@dataclass(frozen=True)
class GenerativeConfig:
    """Parameters of the generative-model experiment.

    Attributes
    ----------
    n_params : int
        N, number of independent parameters.
    steps, burn_in : int
        T steps in all; the first ``burn_in`` are not averaged.
    eta, sigma2 : float
        OU process-noise s.d. η (= lr) and prior variance σ² (= lr_sgd / B), Eqs. 14, 23.
    log10_h : (float, float)
        log10 range of the curvatures h, log-spaced over the N parameters.
    forget : float
        Fading-memory forgetting factor λ_f (App. A).
    beta1 : float
        Momentum of the rules' ⟨g⟩ (0: the filter form of Eq. 18b).
    chunk : int
        Time steps generated at once (memory ~ chunk × N floats).
    """

    n_params: int = 1500
    steps: int = 20000
    burn_in: int = 6000
    eta: float = 1e-3
    sigma2: float = 1e-3
    log10_h: tuple[float, float] = (-4.0, 6.0)
    forget: float = 3e-3
    beta1: float = 0.0
    chunk: int = 1000

    @classmethod
    def quick(cls) -> GenerativeConfig:
        """Small sizes for CI."""
        return cls(n_params=300, steps=8000, burn_in=4000)

    def validate(self) -> GenerativeConfig:
        """Raise ValueError naming the offending field."""
        if self.n_params < 10:
            raise ValueError(f"n_params must be >= 10, got {self.n_params}")
        if not 0 <= self.burn_in < self.steps:
            raise ValueError(f"burn_in must be in [0, steps), got {self.burn_in} with steps={self.steps}")
        if not (self.eta > 0 and self.sigma2 > 0 and self.eta**2 < 2 * self.sigma2):
            raise ValueError(f"eta, sigma2 must be > 0 with eta**2 < 2 sigma2, got {self.eta}, {self.sigma2}")
        if not self.log10_h[0] < self.log10_h[1]:
            raise ValueError(f"log10_h must be increasing, got {self.log10_h}")
        if not 0 < self.forget < 1:
            raise ValueError(f"forget must be in (0, 1), got {self.forget}")
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {self.beta1}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        return self


def _make_rules(cfg: GenerativeConfig) -> dict[str, rules.UpdateRule]:
    decay = cfg.eta**2 / (2.0 * cfg.sigma2)  # Eq. 17a as the decoupled decay λ of Eq. 19a
    common = {"lr_sgd": cfg.sigma2, "batch_size": 1.0}
    return {
        "adabayes": rules.adabayes(cfg.eta, betas=(cfg.beta1, 0.999), weight_decay=decay, **common),
        "adabayes_fp": rules.adabayes_fp(cfg.eta, betas=(cfg.beta1, 0.999), weight_decay=decay, **common),
        "fading": rules.fading_memory(cfg.forget, beta1=cfg.beta1, weight_decay=decay, **common),
        "adamw": rules.adamw(cfg.eta, betas=(cfg.beta1, 0.999), eps=1e-8, weight_decay=decay),
    }


class _Accumulator:
    """Per-parameter running sums after burn-in for one rule."""

    def __init__(self, n: int, posterior: bool = True) -> None:
        self.posterior = posterior
        self.count = 0
        self.rate = np.zeros(n)
        self.precision = np.zeros(n)
        self.g2 = np.zeros(n)
        self.z = np.zeros(n)
        self.z2 = np.zeros(n)
        self.in68 = np.zeros(n)
        self.in95 = np.zeros(n)
        self.hist = np.zeros(Z_EDGES.size - 1)

    def add(self, rate: np.ndarray, g: np.ndarray, z: np.ndarray | None) -> None:
        self.count += 1
        self.rate += rate
        self.precision += 1.0 / rate
        self.g2 += g * g
        if not self.posterior:
            return
        self.z += z
        self.z2 += z * z
        az = np.abs(z)
        self.in68 += az <= 1.0
        self.in95 += az <= 1.959963984540054
        self.hist += np.histogram(np.clip(z, Z_EDGES[0], Z_EDGES[-1]), Z_EDGES)[0]

    def result(self, name: str) -> dict[str, np.ndarray]:
        c = max(self.count, 1)
        out = {
            f"{name}_rate": self.rate / c,
            f"{name}_precision": self.precision / c,
            f"{name}_g2": self.g2 / c,
        }
        if not self.posterior:
            return out
        return out | {
            f"{name}_zmean": self.z / c,
            f"{name}_z2": self.z2 / c,
            f"{name}_in68": self.in68 / c,
            f"{name}_in95": self.in95 / c,
            f"{name}_zhist": self.hist,
        }


def simulate_generative(
    cfg: GenerativeConfig, rng: np.random.Generator, show_progress: bool = True
) -> dict[str, np.ndarray]:
    """Run every rule on one draw of the generative model; return per-parameter time averages.

    Parameters
    ----------
    cfg : GenerativeConfig
    rng : np.random.Generator
    show_progress : bool
        tqdm bar on stderr.

    Returns
    -------
    dict of ndarray
        ``h`` (N,); for each rule in :data:`RULES`: ``<rule>_rate``, ``_precision``, ``_g2`` (each (N,)); for
        the rules in :data:`POSTERIOR_RULES` also ``_zmean``, ``_z2``, ``_in68``, ``_in95`` (each (N,)) and
        ``_zhist`` (pooled z histogram on ``z_edges``).
    """
    cfg.validate()
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be an np.random.Generator")
    n = cfg.n_params
    h = np.logspace(*cfg.log10_h, n)
    sqrt_h = np.sqrt(h)
    update_rules = _make_rules(cfg)
    mu = {k: np.zeros(n) for k in update_rules}
    states = {k: r.init(mu[k]) for k, r in update_rules.items()}
    acc = {k: _Accumulator(n, posterior=k in POSTERIOR_RULES) for k in RULES}
    kal_mean, kal_var = np.zeros(n), np.full(n, cfg.sigma2)  # Alg. 1's initial state, t = -1
    w_last = None
    bar = progress(cfg.steps, "generative", show_progress)
    for start in range(0, cfg.steps, cfg.chunk):
        length = min(cfg.chunk, cfg.steps - start)
        if w_last is None:
            w = simulate_latent((n,), length, cfg.eta, cfg.sigma2, rng)  # Eq. 14, stationary start
        else:
            w = simulate_latent((n,), length + 1, cfg.eta, cfg.sigma2, rng, w0=w_last)[1:]
        w_last = w[-1]
        y = h * w + sqrt_h * rng.standard_normal((length, n))  # Eq. 12 plus h μ: pseudo-observations
        kal = kalman_filter(y, h, cfg.eta, cfg.sigma2, mu=0.0, mean0=kal_mean, var0=kal_var)  # Eqs. 16-18, 41
        kal_g = gradient(y, h, kal.mean_prior)  # the gradient at the filter's own μ_prior (Eq. 12)
        kal_mean, kal_var = kal.mean_post[-1], kal.var_post[-1]
        for k in range(length):
            t = start + k
            record = t >= cfg.burn_in
            if record:
                z = (w[k] - kal.mean_post[k]) / np.sqrt(kal.var_post[k])
                acc["kalman"].add(kal.var_post[k], kal_g[k], z)
            for name, rule in update_rules.items():
                g = gradient(y[k], h, mu[name])  # Eq. 12 at this optimiser's μ
                step, states[name] = rule.update(g, states[name], mu[name])
                mu[name] = mu[name] + step
                if record:
                    rate = states[name].var_post
                    z = (w[k] - mu[name]) / np.sqrt(rate) if acc[name].posterior else None
                    acc[name].add(rate, g, z)
        bar.update(length)
    bar.close()
    out: dict[str, np.ndarray] = {"h": h, "z_edges": Z_EDGES, "kalman_final_rate": kal_var}
    for name in RULES:
        out.update(acc[name].result(name))
    return out


def _region_median(err: np.ndarray, mask: np.ndarray, min_count: int = MIN_REGION) -> float:
    """Median of |err| over ``mask``; NaN (a failing check) when fewer than ``min_count`` parameters."""
    return float(np.median(np.abs(err[mask]))) if mask.sum() >= min_count else math.nan


def regime_masks(g2: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`REGIMES` on ``g2`` (boundaries in units of the crossover ⟨g²⟩ = (η/σ²)²)."""
    c = (eta / sigma2) ** 2
    return {k: (g2 >= lo * c) & (g2 < hi * c) for k, (lo, hi) in REGIMES.items()}


def _decade_medians(g2: np.ndarray, err: np.ndarray, mask: np.ndarray) -> dict[int, float]:
    """Median |err| per decade of ⟨g²⟩ within ``mask`` (decades with >= MIN_REGION parameters only)."""
    dec = decade_of(g2)
    out = {}
    for d in np.unique(dec[mask]):
        sel = mask & (dec == d)
        if sel.sum() >= MIN_REGION:
            out[int(d)] = float(np.median(np.abs(err[sel])))
    return out


def _regional_checks(prefix: str, what: str, g2: np.ndarray, err: np.ndarray, region: np.ndarray, cfg) -> list[Check]:
    """Median |err| ≤ 2 % in each regime of :data:`REGIMES` within ``region``, and per decade (max of medians)."""
    masks = regime_masks(g2, cfg.eta, cfg.sigma2)
    words = {
        "sgd": "SGD regime ⟨g²⟩ < 0.01 (η/σ²)²",
        "crossover": "crossover 0.01 (η/σ²)² <= ⟨g²⟩ < 100 (η/σ²)²",
        "adam": "Adam regime ⟨g²⟩ >= 100 (η/σ²)²",
    }
    checks = []
    for key, mask in masks.items():
        sel = mask & region
        lo, hi = (g2[sel].min(), g2[sel].max()) if sel.any() else (math.nan, math.nan)
        checks.append(
            check_at_most(
                f"{prefix}_{key}",
                _region_median(err, sel),
                0.02,
                f"median |{what} - 1| in the {words[key]}, {int(sel.sum())} parameters with ⟨g²⟩ in "
                f"[{lo:.3g}, {hi:.3g}] (needs >= {MIN_REGION})",
            )
        )
    per_dec = _decade_medians(g2, err, region)
    worst = max(per_dec, key=per_dec.get) if per_dec else None
    checks.append(
        check_at_most(
            f"{prefix}_decade_max",
            per_dec[worst] if per_dec else math.nan,
            0.02,
            f"max over decades of ⟨g²⟩ of the median |{what} - 1| in the same region "
            f"({len(per_dec)} decades with >= {MIN_REGION} parameters; worst 1e{worst})",
        )
    )
    return checks


def _first_exceed(g2: np.ndarray, err: np.ndarray, level: float, above: float, window: int = 15) -> float:
    """Smallest ⟨g²⟩ > ``above`` from which the running median of |err| stays above ``level``.

    The running median (``window`` points, sorted by ⟨g²⟩) counts as within tolerance where it is <= ``level``
    or where ⟨g²⟩ <= ``above``. The answer is the ⟨g²⟩ at (last index within tolerance) + 1: ``inf`` when the
    series ends within tolerance, the smallest ⟨g²⟩ when no point is within tolerance.
    """
    order = np.argsort(g2)
    x, e = g2[order], np.abs(err[order])
    med = np.array([np.median(e[max(0, i - window // 2) : i + window // 2 + 1]) for i in range(e.size)])
    ok = (med <= level) | (x <= above)
    good = np.flatnonzero(ok)
    first_bad = good[-1] + 1 if good.size else 0
    return float(x[first_bad]) if first_bad < x.size else math.inf


def summarise(data: dict[str, np.ndarray], cfg: GenerativeConfig, rng: np.random.Generator) -> dict:
    """Compare the measured learning rates with Eq. 21, the exact fixed point and the Jensen estimates.

    Returns a dict with ``curves`` (arrays for the figures), ``tables`` (per-decade errors), ``summary``
    (scalars) and ``checks`` (list of :class:`Check`).
    """
    eta, s2 = cfg.eta, cfg.sigma2
    g2 = data["adabayes_g2"]
    rate = data["adabayes_rate"]
    eq21 = 1.0 / approx_precision(g2, eta, s2)  # Eq. 21
    exact = 1.0 / exact_precision(g2, eta, s2)
    jensen = jensen_rate(g2, eta, s2)
    taylor_err = eq21_relative_error(g2, eta, s2)  # Eq. 21 vs exact (Taylor step of Eq. 47)
    jensen_gap_pred = jensen / exact - 1.0
    err_eq21 = rel_err(rate, eq21)
    err_exact = rel_err(rate, exact)
    err_jensen = rel_err(rate, jensen)
    # Eq. 21's two assumptions: the Taylor step of Eq. 47 and g² -> ⟨g²⟩ (Eq. 45), each costing <= 1 %
    valid = (np.abs(taylor_err) <= 0.01) & (np.abs(jensen_gap_pred) <= 0.01)
    validity = eq21_validity_range(eta, s2, 0.02) or (math.nan, math.nan)

    fp_g2 = data["adabayes_fp_g2"]
    fp_err = rel_err(data["adabayes_fp_rate"], 1.0 / approx_precision(fp_g2, eta, s2))
    fp_valid = np.abs(eq21_relative_error(fp_g2, eta, s2)) <= 0.02
    kal_star = 1.0 / exact_precision(data["h"], eta, s2)
    kal_exact_err = rel_err(data["kalman_final_rate"], kal_star)
    # linearised geometric convergence from σ²_post = σ² at t = -1: |error(T)| <= |σ²/σ²* - 1| φ'(λ*)^T
    f, q = variance_predict_coefficients(eta, s2)
    lam_star = 1.0 / kal_star
    contraction = f / (f + q * lam_star) ** 2
    kal_tol = float(np.max(2.0 * np.abs(s2 / kal_star - 1.0) * contraction**cfg.steps)) + 1e-12
    kal_eq21_err = rel_err(data["kalman_rate"], 1.0 / approx_precision(data["h"], eta, s2))
    kal_valid = np.abs(eq21_relative_error(data["h"], eta, s2)) <= 0.01

    # Eq. 31 (fading memory): σ²_post = 1/P with P an exponential average of g² over ~1/λ_f steps, and the time
    # average of 1/P equals λ_f/⟨g²⟩ only when (a) the start 1/σ² has been forgotten by burn-in and (b) g² is
    # dominated by the observation noise h ε² (independent from step to step), so that P has small relative
    # fluctuations. Where the tracking error h²(w* - μ)² dominates g² (⟨g²⟩/h well above 1), g² is correlated
    # over longer than 1/λ_f steps, P fluctuates by O(1) and E[1/P] > 1/E[P] (Jensen). Region: (a) and
    # ⟨g²⟩/h <= 1.1 (the tracking-error term at most 10 % of ⟨g²⟩), stated before looking at the errors.
    fade_g2 = data["fading_g2"]
    fade_star = fading_memory_variance(fade_g2, cfg.forget)  # Eq. 31
    fade_err = rel_err(data["fading_rate"], fade_star)
    fade_converged = (1.0 - cfg.forget) ** cfg.burn_in / s2 <= 1e-3 / fade_star
    fade_noise_dominated = fade_g2 / data["h"] <= 1.1
    fade_region = fade_converged & fade_noise_dominated

    # smooth curves over the measured range
    grid = np.logspace(np.log10(g2.min()), np.log10(g2.max()), 200)
    mc_grid = np.logspace(np.log10(g2.min()), np.log10(g2.max()), 40)
    mc_rate = iid_chi2_rate(mc_grid, eta, s2, cfg.steps, cfg.burn_in, rng, replicas=8)
    err_mc = rel_err(rate, np.exp(np.interp(np.log(g2), np.log(mc_grid), np.log(mc_rate))))
    crossover = (eta / s2) ** 2  # η/sqrt(⟨g²⟩) = σ²
    jensen_region = eta * np.sqrt(g2) <= 0.1

    gap_measured = rel_err(rate, exact)
    tables = {
        "adabayes_vs_eq21": decade_table(g2, err_eq21),
        "adabayes_vs_exact": decade_table(g2, err_exact),
        "adabayes_vs_jensen": decade_table(g2, err_jensen),
        "adabayes_fp_vs_eq21": decade_table(fp_g2, fp_err),
        "kalman_vs_eq21_at_h": decade_table(data["h"], kal_eq21_err),
        "fading_vs_eq31": decade_table(fade_g2, fade_err),
    }
    break_2 = _first_exceed(g2, err_eq21, 0.02, crossover)
    break_10 = _first_exceed(g2, err_eq21, 0.10, crossover)
    fade_break_10 = _first_exceed(fade_g2, fade_err, 0.10, 0.0)
    decades = float(np.log10(data["kalman_g2"].max() / data["kalman_g2"].min()))
    adam_valid = regime_masks(g2, eta, s2)["adam"] & valid
    checks: list[Check] = [
        identity(
            "generative/g2_decades",
            decades,
            ">= 8 (by construction)",
            decades >= 8,
            f"decades of ⟨g²⟩ spanned (exact filter's own gradients): a design property, h spans "
            f"{cfg.log10_h[1] - cfg.log10_h[0]:g} decades",
        ),
        check_at_most(
            "generative/adabayes_vs_eq21_median_valid",
            _region_median(err_eq21, valid),
            0.02,
            "median |σ²_post(Alg. 1, time avg) / Eq. 21(⟨g²⟩) - 1| where Eq. 21's Taylor step and g²→⟨g²⟩ "
            f"each cost <= 1 % ({int(valid.sum())} parameters, all regimes pooled: mostly SGD regime)",
        ),
        *_regional_checks("generative/adabayes_vs_eq21", "σ²_post(Alg. 1) / Eq. 21(⟨g²⟩)", g2, err_eq21, valid, cfg),
        check_at_most(
            "generative/adabayes_vs_jensen_median",
            _region_median(err_jensen, jensen_region),
            0.02,
            "median |σ²_post(Alg. 1) / second-order χ²₁ Jensen estimate - 1| for η sqrt(⟨g²⟩) <= 0.1",
        ),
        check_at_most(
            "generative/adabayes_fp_vs_eq21_median",
            _region_median(fp_err, fp_valid),
            0.02,
            "median |σ²_post(Alg. 2, time avg) / Eq. 21(⟨g²⟩) - 1| where Eq. 21 is within 2 % of exact, pooled",
        ),
        *_regional_checks(
            "generative/adabayes_fp_vs_eq21", "σ²_post(Alg. 2) / Eq. 21(⟨g²⟩)", fp_g2, fp_err, fp_valid, cfg
        ),
        check_at_most(
            "generative/kalman_vs_exact_max",
            float(np.max(np.abs(kal_exact_err))),
            kal_tol,
            "max |σ²_post(T) of the exact Kalman filter (known h) / exact fixed point(h) - 1|; bound = "
            "linearised convergence 2|σ²/σ²* - 1| φ'^T",
        ),
        check_at_most(
            "generative/fading_vs_eq31_median",
            _region_median(fade_err, fade_region),
            0.02,
            f"median |σ²_post(fading memory) / (λ_f/⟨g²⟩) - 1| (Eq. 31) over the {int(fade_region.sum())} of "
            f"{fade_region.size} parameters where its assumptions hold: start 1/σ² decayed by burn-in and g² "
            "dominated by observation noise (⟨g²⟩/h <= 1.1)",
        ),
        check_at_most(
            "generative/fading_vs_eq31_decade_max",
            max(_decade_medians(fade_g2, fade_err, fade_region).values(), default=math.nan),
            0.02,
            f"max over decades of ⟨g²⟩ of the median of the same ratio in the same region (>= {MIN_REGION} per decade)",
        ),
        info(
            "generative/fading_vs_eq31_median_outside",
            float(np.median(np.abs(fade_err[~fade_region]))) if (~fade_region).any() else math.nan,
            f"median of the same ratio over the {int((~fade_region).sum())} parameters outside that region "
            f"(⟨g²⟩/h > 1.1: the tracking error dominates g²; ⟨g²⟩ from {fade_g2[~fade_region].min():.3g})"
            if (~fade_region).any()
            else "no parameter outside the region",
        ),
        info(
            "generative/fading_eq31_breaks_10pct_g2",
            fade_break_10,
            "⟨g²⟩ above which fading memory's σ²_post stays > 10 % from Eq. 31 (running median)",
        ),
        info(
            "generative/kalman_vs_eq21_median_valid",
            _region_median(kal_eq21_err, kal_valid),
            "median |σ²_post(exact Kalman) / Eq. 21(h) - 1| where Eq. 21 is within 1 % of exact: follows from "
            "kalman_vs_exact_max and that region's definition, not an independent result",
        ),
        info(
            "generative/adabayes_vs_eq21_max_valid",
            float(np.max(np.abs(err_eq21[valid]))) if valid.any() else math.nan,
            "max of the same ratio where Eq. 21's assumptions hold",
        ),
        info(
            "generative/adabayes_vs_eq21_adam_valid_upper_g2",
            float(g2[adam_valid].max()) if adam_valid.any() else math.nan,
            "largest ⟨g²⟩ where Eq. 21's assumptions hold in the Adam regime (the Jensen gap 0.75 η√⟨g²⟩ reaches "
            "1 % near ⟨g²⟩ = 178 at η = 1e-3)",
        ),
        info(
            "generative/adabayes_vs_iid_chi2_median",
            float(np.median(np.abs(err_mc))),
            "median |σ²_post(Alg. 1) / mean of the recursion under i.i.d. ⟨g²⟩χ²₁ - 1|, all parameters",
        ),
        info(
            "generative/eq21_breaks_2pct_g2",
            break_2,
            "⟨g²⟩ above which Alg. 1's σ²_post stays > 2 % from Eq. 21 (running median)",
        ),
        info(
            "generative/eq21_breaks_10pct_g2",
            break_10,
            "⟨g²⟩ above which Alg. 1's σ²_post stays > 10 % from Eq. 21 (running median)",
        ),
        info(
            "generative/eq21_vs_exact_valid_upper_g2",
            validity[1],
            "eq21_validity_range(η, σ², 2 %): deterministic Taylor-step limit of Eq. 21",
        ),
        info(
            "generative/kalman_g2_over_h_max",
            float(np.max(data["kalman_g2"] / data["h"])),
            "max ⟨g²⟩/h for the exact filter: g² estimates h only near the optimum (Eq. 42)",
        ),
    ]
    curves = {
        "grid_g2": grid,
        "grid_eq21": 1.0 / approx_precision(grid, eta, s2),
        "grid_exact": 1.0 / exact_precision(grid, eta, s2),
        "grid_jensen": jensen_rate(grid, eta, s2),
        "mc_g2": mc_grid,
        "mc_rate": mc_rate,
        "err_eq21": err_eq21,
        "err_exact": err_exact,
        "err_jensen": err_jensen,
        "gap_measured": gap_measured,
        "gap_predicted": jensen_gap_pred,
        "valid": valid,
        "fading_region": fade_region,
    }
    summary = {
        "crossover_g2": crossover,
        "eq21_validity_2pct": validity,
        "eq21_breaks_2pct_g2": break_2,
        "eq21_breaks_10pct_g2": break_10,
        "fading_eq31_breaks_10pct_g2": fade_break_10,
        "valid_decade_medians": {str(k): v for k, v in _decade_medians(g2, err_eq21, valid).items()},
    }
    return {"curves": curves, "tables": tables, "summary": summary, "checks": checks}


def calibration_checks(data: dict[str, np.ndarray], cfg: GenerativeConfig) -> tuple[dict, list[Check]]:
    """Experiment 4: z-scores of w* under each filter's posterior (pooled over parameters and time).

    Returns the per-rule pooled statistics and the checks (exact Kalman must be calibrated).
    """
    stats = {}
    for name in ("kalman", "adabayes", "adabayes_fp"):
        stats[name] = {
            "z_mean": float(np.mean(data[f"{name}_zmean"])),
            "z_var": float(np.mean(data[f"{name}_z2"]) - np.mean(data[f"{name}_zmean"]) ** 2),
            "cover68": float(np.mean(data[f"{name}_in68"])),
            "cover95": float(np.mean(data[f"{name}_in95"])),
        }
        dec = decade_of(data[f"{name}_g2"])
        z2 = data[f"{name}_z2"]
        stats[name]["mean_z2_by_decade"] = {int(d): float(np.mean(z2[dec == d])) for d in np.unique(dec)}
    k, a = stats["kalman"], stats["adabayes"]
    n = data["kalman_zmean"].size

    def se(x: np.ndarray) -> float:  # parameters are independent; time samples within one are not
        return float(np.std(x, ddof=1) / np.sqrt(n))

    k_se = {
        "z_mean": se(data["kalman_zmean"]),
        "z_var": se(data["kalman_z2"]),
        "cover68": se(data["kalman_in68"]),
        "cover95": se(data["kalman_in95"]),
    }
    targets = {"z_mean": 0.0, "z_var": 1.0, "cover68": 0.682689492, "cover95": 0.95}
    labels = {
        "z_mean": "mean of z = (w* - μ_post)/σ_post",
        "z_var": "variance of z",
        "cover68": "fraction |z| <= 1",
        "cover95": "fraction |z| <= 1.96",
    }
    checks = []
    for key, target in targets.items():
        tol = 4.0 * k_se[key]
        checks.append(
            Check(
                f"calibration/kalman_{key}",
                k[key],
                f"{target:.3g} ± {tol:.2g} (4 s.e.)",
                bool(abs(k[key] - target) <= tol),
                f"{labels[key]}, exact filter with known h; s.e. from the spread over independent parameters",
            )
        )
    stats["kalman"]["standard_errors"] = k_se
    valid = np.abs(eq21_relative_error(data["adabayes_g2"], cfg.eta, cfg.sigma2)) <= 0.02
    checks += [
        info("calibration/adabayes_z_var", a["z_var"], "variance of z under Alg. 1's posterior (g² for H_ii), all"),
        info(
            "calibration/adabayes_z_var_eq21_valid",
            float(np.mean(data["adabayes_z2"][valid])),
            "mean z² under Alg. 1 where Eq. 21 is within 2 % (η²⟨g²⟩ small)",
        ),
        info("calibration/adabayes_cover68", a["cover68"], "fraction |z| <= 1, Alg. 1"),
        info("calibration/adabayes_cover95", a["cover95"], "fraction |z| <= 1.96, Alg. 1"),
    ]
    return stats, checks


def error_map(eta: float, n_g2: int = 400, n_sigma2: int = 160) -> dict[str, np.ndarray]:
    """Relative error of Eq. 21 against the exact fixed point over (⟨g²⟩, σ²) at fixed η, for the error-map figure.

    Returns ``map_g2`` (n_g2,), ``map_sigma2`` (n_sigma2,) and ``map_err`` (n_sigma2, n_g2) =
    σ²_21/σ²_exact - 1; σ² runs from η² (just above the OU stability limit η² < 2σ²) to 10⁴ η.
    """
    g2 = np.logspace(-6, 10, n_g2)
    sigma2 = np.logspace(np.log10(eta**2), np.log10(1e4 * eta), n_sigma2)
    err = np.array([eq21_relative_error(g2, eta, s) for s in sigma2])
    return {"map_g2": g2, "map_sigma2": sigma2, "map_err": err, "map_eta": np.array(eta)}


# --------------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes generative``."""
    add_common_arguments(parser, "results/generative")
    d = GenerativeConfig()
    parser.add_argument("--n-params", type=int, default=None, help=f"N (default {d.n_params}; quick 300)")
    parser.add_argument("--steps", type=int, default=None, help=f"T (default {d.steps}; quick 8000)")
    parser.add_argument("--burn-in", type=int, default=None, help=f"steps not averaged (default {d.burn_in})")
    parser.add_argument("--eta", type=float, default=d.eta, help="η = lr (default 1e-3)")
    parser.add_argument("--sigma2", type=float, default=d.sigma2, help="σ² = lr_sgd/B (default 1e-3)")
    parser.add_argument("--log10-h", type=float, nargs=2, default=d.log10_h, metavar=("LO", "HI"))
    parser.add_argument("--forget", type=float, default=d.forget, help=f"fading-memory λ_f (default {d.forget})")
    parser.add_argument("--beta1", type=float, default=d.beta1, help="momentum β1 (default 0)")


def config_from_args(args: argparse.Namespace) -> GenerativeConfig:
    """Build the configuration: ``--quick`` sizes unless overridden."""
    cfg = GenerativeConfig.quick() if args.quick else GenerativeConfig()
    overrides = {"n_params": args.n_params, "steps": args.steps, "burn_in": args.burn_in}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return replace(
        cfg, eta=args.eta, sigma2=args.sigma2, log10_h=tuple(args.log10_h), forget=args.forget, beta1=args.beta1
    ).validate()


def run(args: argparse.Namespace) -> int:
    """Simulate, compare with Eq. 21, write ``generative.npz``/``.json`` and ``calibration.json``."""
    cfg = config_from_args(args)
    out = output_dir(args.out)
    rng = np.random.default_rng(args.seed)
    data = simulate_generative(cfg, rng, show_progress=not args.no_progress)
    result = summarise(data, cfg, rng)
    calib, calib_checks = calibration_checks(data, cfg)
    save_npz(out / "generative.npz", **data, **result["curves"], **error_map(cfg.eta))
    save_json(
        out / "generative.json",
        {
            "config": asdict(cfg),
            "seed": args.seed,
            "summary": result["summary"],
            "tables": result["tables"],
            "checks": [c.to_dict() for c in result["checks"]],
        },
    )
    save_json(
        out / "calibration.json",
        {"config": asdict(cfg), "seed": args.seed, "stats": calib, "checks": [c.to_dict() for c in calib_checks]},
    )
    return print_checks(result["checks"] + calib_checks)
