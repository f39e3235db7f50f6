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
from dataclasses import asdict, dataclass, replace

import numpy as np

from filtering import rules
from filtering.state_space import gradient, kalman_filter, simulate_latent
from filtering.validation import (
    check_int,
    check_open_unit_interval,
    check_ou_stable,
    check_positive,
    check_scalar,
    check_unit_interval,
)

from .checks import Check, evaluate, print_checks
from .common import add_common_arguments, output_dir, progress
from .curves import error_map, fixed_point_curves, stochastic_rate
from .generative_checks import CALIBRATION_SPECS, GENERATIVE_SPECS
from .generative_measure import (
    COVER95_Z,
    REGIMES,
    calibration_measure,
    decade_medians,
    measure,
    regime_masks,
    tables,
)
from .io import save_json, save_npz
from .registry import help_for
from .stochastic_check import Window, compare, stochastic_specs

__all__ = [
    "HELP",
    "POSTERIOR_RULES",
    "REGIMES",
    "RULES",
    "GenerativeConfig",
    "add_arguments",
    "calibration_checks",
    "config_from_args",
    "regime_masks",
    "run",
    "simulate_generative",
    "stochastic_checks",
    "summarise",
]

HELP = help_for("generative")

RULES = ("adabayes", "adabayes_fp", "fading", "adamw", "kalman")
#: AdaBayes gradients kept per parameter after burn-in (evenly thinned): the empirical gradient law that
#: :mod:`filtering.stochastic` turns into a prediction of σ²_post (issue 9)
GRADIENT_SAMPLE = 16384
#: arrays of the run used by the measure step only, not saved (the gradient sample is N × GRADIENT_SAMPLE floats)
NOT_SAVED = ("adabayes_g_sample",)
# rules whose σ²_post is a posterior variance of w*, so that z = (w* - μ)/σ_post means something
POSTERIOR_RULES = ("kalman", "adabayes", "adabayes_fp")
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
        """Check every field with :mod:`filtering.validation`.

        Raises
        ------
        ValueError
            A field out of range; the message names it and the allowed range (``burn_in`` must lie in
            ``[0, steps)``, and η² < 2σ² for a stable OU step, Eq. 14).
        TypeError
            A field of the wrong type (e.g. a float number of steps); also a ``ValueError`` subclass.
        """
        check_int("n_params", self.n_params, lower=10)
        steps = check_int("steps", self.steps, lower=1)
        check_int("burn_in", self.burn_in, lower=0, upper=steps)
        check_ou_stable(check_positive("eta", self.eta), check_positive("sigma2", self.sigma2), ("eta", "sigma2"))
        lo, hi = (check_scalar(f"log10_h[{i}]", v) for i, v in enumerate(self.log10_h))
        if not lo < hi:
            raise ValueError(f"log10_h must be increasing, got {self.log10_h}")
        check_open_unit_interval("forget", self.forget)
        check_unit_interval("beta1", self.beta1)
        check_int("chunk", self.chunk, lower=1)
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
    """Per-parameter running sums after burn-in for one rule (the z histogram is filled once per chunk)."""

    def __init__(self, n: int, posterior: bool = True) -> None:
        self.posterior = posterior
        self.steps = 0
        self.rate = np.zeros(n)
        self.precision = np.zeros(n)
        self.g2 = np.zeros(n)
        self.z = np.zeros(n)
        self.z2 = np.zeros(n)
        self.in68 = np.zeros(n)
        self.in95 = np.zeros(n)
        self.hist = np.zeros(Z_EDGES.size - 1)
        self._pending: list[np.ndarray] = []  # z of this chunk, histogrammed by flush()

    def add(self, rate: np.ndarray, g: np.ndarray, z: np.ndarray | None) -> None:
        """Add one step (``z`` is ignored for a rule whose rate is no posterior variance)."""
        self.steps += 1
        self.rate += rate
        self.precision += 1.0 / rate
        self.g2 += g * g
        if not self.posterior or z is None:
            return
        self.z += z
        self.z2 += z * z
        az = np.abs(z)
        self.in68 += az <= 1.0
        self.in95 += az <= COVER95_Z
        self._pending.append(z)

    def flush(self) -> None:
        """Histogram the z values added since the last flush (integer counts: the sum is exact in any order)."""
        if self._pending:
            z = np.concatenate(self._pending)
            self.hist += np.histogram(np.clip(z, Z_EDGES[0], Z_EDGES[-1]), Z_EDGES)[0]
            self._pending = []

    def result(self, name: str) -> dict[str, np.ndarray]:
        self.flush()
        c = max(self.steps, 1)
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


class _Trace:
    """Alg. 1's own gradients (every ``stride``-th step after burn-in), and its σ²_post over the two halves.

    What :class:`simulations.stochastic_check.Window` needs: the gradient sample, the time averages of σ²_post over
    the halves ``[0, averaged // 2)`` and ``[averaged // 2, averaged)`` of the averaging window and σ²_post at the
    start of each.

    Parameters
    ----------
    n : int
        Parameters.
    averaged : int
        Steps after burn-in (>= 2).
    samples : int
        Largest number of gradients kept per parameter (the stride is ``ceil(averaged / samples)``).
    """

    def __init__(self, n: int, averaged: int, samples: int) -> None:
        self.averaged = averaged
        self.stride = max(1, -(-averaged // samples))
        self.g = np.empty((-(-averaged // self.stride), n))
        self.half = np.zeros((2, n))
        self.start = np.zeros((2, n))

    def add(self, i: int, rate: np.ndarray, g: np.ndarray) -> None:
        """Step ``i`` (counted from the end of burn-in): its σ²_post and gradient."""
        if i % self.stride == 0:
            self.g[i // self.stride] = g
        h = int(i >= self.averaged // 2)
        if i in (0, self.averaged // 2):
            self.start[h] = rate
        self.half[h] += rate

    def result(self) -> dict[str, np.ndarray]:
        first = self.averaged // 2
        counts = np.array([[first], [self.averaged - first]], dtype=np.float64)
        return {
            "adabayes_g_sample": self.g,
            "adabayes_g_stride": np.array(self.stride),
            "adabayes_half_rate": self.half / counts,
            "adabayes_start_rate": self.start,
        }


class _Chunks:
    """The latent w*(t) (Eq. 14) and pseudo-observations y (Eq. 12) in chunks, continuing one OU path."""

    def __init__(self, cfg: GenerativeConfig, h: np.ndarray, rng: np.random.Generator) -> None:
        self.cfg, self.h, self.sqrt_h, self.rng = cfg, h, np.sqrt(h), rng
        self.w_last: np.ndarray | None = None

    def __iter__(self):
        cfg, n = self.cfg, self.h.size
        for start in range(0, cfg.steps, cfg.chunk):
            length = min(cfg.chunk, cfg.steps - start)
            if self.w_last is None:
                w = simulate_latent((n,), length, cfg.eta, cfg.sigma2, self.rng)  # Eq. 14, stationary start
            else:
                w = simulate_latent((n,), length + 1, cfg.eta, cfg.sigma2, self.rng, w0=self.w_last)[1:]
            self.w_last = w[-1]
            y = self.h * w + self.sqrt_h * self.rng.standard_normal((length, n))  # Eq. 12 plus h μ
            yield start, w, y


def _step_rules(
    update_rules: dict[str, rules.UpdateRule],
    states: dict,
    mu: dict[str, np.ndarray],
    y: np.ndarray,
    h: np.ndarray,
) -> dict[str, np.ndarray]:
    """One step of every rule at its own μ (Eq. 12); updates ``states`` and ``mu`` in place, returns each g."""
    grads = {}
    for name, rule in update_rules.items():
        g = gradient(y, h, mu[name])  # Eq. 12 at this optimiser's μ
        step, states[name] = rule.update(g, states[name], mu[name])
        mu[name] = mu[name] + step
        grads[name] = g
    return grads


def simulate_generative(
    cfg: GenerativeConfig, rng: np.random.Generator, show_progress: bool = True, gradient_sample: int = GRADIENT_SAMPLE
) -> dict[str, np.ndarray]:
    """Run every rule on one draw of the generative model; return per-parameter time averages.

    Parameters
    ----------
    cfg : GenerativeConfig
    rng : np.random.Generator
    show_progress : bool
        tqdm bar on stderr.
    gradient_sample : int
        AdaBayes gradients kept per parameter after burn-in (every ``ceil((steps - burn_in) / gradient_sample)``-th
        step); they do not change the run (no random numbers are drawn for them).

    Returns
    -------
    dict of ndarray
        ``h`` (N,); for each rule in :data:`RULES`: ``<rule>_rate``, ``_precision``, ``_g2`` (each (N,)); for
        the rules in :data:`POSTERIOR_RULES` also ``_zmean``, ``_z2``, ``_in68``, ``_in95`` (each (N,)) and
        ``_zhist`` (pooled z histogram on ``z_edges``); ``adabayes_g_sample`` (S, N), AdaBayes's gradients at
        every ``adabayes_g_stride``-th step after burn-in, ``adabayes_half_rate`` and ``adabayes_start_rate``
        (2, N), its σ²_post averaged over and at the start of each half of the averaging window.
    """
    cfg.validate()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    n = cfg.n_params
    h = np.logspace(*cfg.log10_h, n)
    update_rules = _make_rules(cfg)
    mu = {k: np.zeros(n) for k in update_rules}
    states = {k: r.init(mu[k]) for k, r in update_rules.items()}
    acc = {k: _Accumulator(n, posterior=k in POSTERIOR_RULES) for k in RULES}
    check_int("gradient_sample", gradient_sample, lower=1)
    trace = _Trace(n, cfg.steps - cfg.burn_in, gradient_sample)
    kal_mean, kal_var = np.zeros(n), np.full(n, cfg.sigma2)  # Alg. 1's initial state, t = -1
    bar = progress(cfg.steps, "generative", show_progress)
    for start, w, y in _Chunks(cfg, h, rng):
        kal = kalman_filter(y, h, cfg.eta, cfg.sigma2, mu=0.0, mean0=kal_mean, var0=kal_var)  # Eqs. 16-18, 41
        kal_g = gradient(y, h, kal.mean_prior)  # the gradient at the filter's own μ_prior (Eq. 12)
        kal_mean, kal_var = kal.mean_post[-1], kal.var_post[-1]
        for k in range(len(y)):
            if start + k >= cfg.burn_in:
                z = (w[k] - kal.mean_post[k]) / np.sqrt(kal.var_post[k])
                acc["kalman"].add(kal.var_post[k], kal_g[k], z)
            grads = _step_rules(update_rules, states, mu, y[k], h)
            if start + k >= cfg.burn_in:
                for name, g in grads.items():
                    rate = states[name].var_post
                    z = (w[k] - mu[name]) / np.sqrt(rate) if acc[name].posterior else None
                    acc[name].add(rate, g, z)
                trace.add(start + k - cfg.burn_in, states["adabayes"].var_post, grads["adabayes"])
        for a in acc.values():
            a.flush()
        bar.update(len(y))
    bar.close()
    out: dict[str, np.ndarray] = {"h": h, "z_edges": Z_EDGES, "kalman_final_rate": kal_var}
    for name in RULES:
        out.update(acc[name].result(name))
    return out | trace.result()


def summarise(data: dict[str, np.ndarray], cfg: GenerativeConfig, rng: np.random.Generator) -> dict:
    """Measure, check and draw: compare the learning rates with Eq. 21, the exact fixed point and Jensen's estimate.

    Returns a dict with ``curves`` (arrays for the figures), ``tables`` (per-decade errors), ``summary``
    (scalars) and ``checks`` (list of :class:`~simulations.checks.Check`, from :data:`GENERATIVE_SPECS`).
    """
    m = measure(data, cfg, rng)
    curves = fixed_point_curves(m["g2"].min(), m["g2"].max(), cfg.eta, cfg.sigma2)
    curves |= {key: m[key] for key in ("mc_g2", "mc_rate", "err_eq21", "err_exact", "err_jensen")}
    curves |= {key: m[key] for key in ("gap_measured", "gap_predicted", "valid")}
    curves["fading_region"] = m["fade_region"]
    summary = {
        "crossover_g2": m["crossover"],
        "eq21_validity_2pct": m["validity"],
        "eq21_breaks_2pct_g2": m["break_2"],
        "eq21_breaks_10pct_g2": m["break_10"],
        "fading_eq31_breaks_10pct_g2": m["fade_break_10"],
        "valid_decade_medians": {str(k): v for k, v in decade_medians(m["g2"], m["err_eq21"], m["valid"]).items()},
    }
    return {"curves": curves, "tables": tables(m), "summary": summary, "checks": evaluate(GENERATIVE_SPECS, m)}


def calibration_checks(data: dict[str, np.ndarray], cfg: GenerativeConfig) -> tuple[dict, list[Check]]:
    """Experiment 4: z-scores of w* under each filter's posterior (pooled over parameters and time).

    Returns the per-rule pooled statistics and the checks of :data:`CALIBRATION_SPECS` (the exact Kalman filter
    must be calibrated; AdaBayes's numbers are informational).
    """
    m = calibration_measure(data, cfg)
    return m["stats"], evaluate(CALIBRATION_SPECS, m)


def stochastic_checks(data: dict[str, np.ndarray], cfg: GenerativeConfig) -> tuple[dict, dict, list[Check]]:
    """Issue 9: Alg. 1's time-averaged σ²_post against the stationary law of its own gradients, per decade of ⟨g²⟩.

    See :mod:`simulations.stochastic_check` (the observation noise of g has variance h, Eq. 12).

    Returns
    -------
    arrays : dict of ndarray
        ``stochastic_points_g2``, ``stochastic_points_rate`` (K,): the evaluated parameters' ⟨g²⟩ and their
        empirical-law predictions, for the figure.
    table : dict of ndarray
        Per decade: the median |log(measured/predicted)| of every prediction, counts, noise and bound.
    checks : list of Check
    """
    window = Window(
        data["adabayes_g_sample"],
        data["adabayes_rate"],
        data["adabayes_half_rate"],
        data["adabayes_start_rate"],
        cfg.steps - cfg.burn_in,
        int(data["adabayes_g_stride"]),
    )
    g2 = data["adabayes_g2"]
    span = (float(g2.min()), float(g2.max()))  # the figure's curve range: the same cached solves

    def gaussian(x: np.ndarray) -> np.ndarray:
        return stochastic_rate(x, cfg.eta, cfg.sigma2, span=span)

    m = compare(window, g2, data["h"], cfg.eta, cfg.sigma2, gaussian)
    arrays = {"stochastic_points_g2": m["stoch_g2"], "stochastic_points_rate": m["stoch_empirical"]}
    return arrays, m["stoch_table"], evaluate(stochastic_specs("generative", m, "h"), m)


# --------------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes generative`` (``--help`` shows each default)."""
    add_common_arguments(parser)
    d, q = GenerativeConfig(), GenerativeConfig.quick()
    sizes = (
        ("--n-params", "N, number of parameters", d.n_params, q.n_params),
        ("--steps", "T, steps in all", d.steps, q.steps),
        ("--burn-in", "steps before the time averages start", d.burn_in, q.burn_in),
    )
    for flag, what, full, quick in sizes:
        parser.add_argument(flag, type=int, default=None, help=f"{what} (default {full}; with --quick {quick})")
    parser.add_argument("--eta", type=float, default=d.eta, help="η = lr, the OU process-noise s.d. (Eq. 14)")
    parser.add_argument("--sigma2", type=float, default=d.sigma2, help="σ² = lr_sgd / B, the prior variance (Eq. 23)")
    parser.add_argument(
        "--log10-h",
        type=float,
        nargs=2,
        default=d.log10_h,
        metavar=("LO", "HI"),
        help="log10 range of the curvatures h",
    )
    parser.add_argument("--forget", type=float, default=d.forget, help="fading-memory forgetting factor λ_f (App. A)")
    parser.add_argument("--beta1", type=float, default=d.beta1, help="momentum β1 of every rule")


def config_from_args(args: argparse.Namespace) -> GenerativeConfig:
    """Build the configuration: ``--quick`` sizes unless overridden."""
    cfg = GenerativeConfig.quick() if args.quick else GenerativeConfig()
    if args.steps is not None and args.burn_in is None and args.steps <= cfg.burn_in:
        raise ValueError(
            f"--steps {args.steps} leaves nothing after the default --burn-in {cfg.burn_in}; set --burn-in"
        )
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
    stoch_arrays, stoch_table, stoch_checks = stochastic_checks(data, cfg)
    kept = {k: v for k, v in data.items() if k not in NOT_SAVED}
    save_npz(out / "generative.npz", **kept, **result["curves"], **stoch_arrays, **error_map(cfg.eta))
    head = {"config": asdict(cfg), "seed": args.seed}
    checks = result["checks"] + stoch_checks
    save_json(
        out / "generative.json",
        head
        | {
            "summary": result["summary"],
            "tables": result["tables"] | {"stochastic_by_decade": stoch_table},
            "checks": [c.to_dict() for c in checks],
        },
    )
    save_json(out / "calibration.json", head | {"stats": calib, "checks": [c.to_dict() for c in calib_checks]})
    return print_checks(checks + calib_checks)
