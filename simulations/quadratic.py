"""Experiments 2 and 3b: every update rule on the coupled quadratic objective of Eqs. 6-11.

Per datapoint ``L_α(w) = -½ wᵀHw + ξ_αᵀw`` with ``ξ_α ~ N(0, H)`` (Eqs. 6, 7); a minibatch of B datapoints
gives the summed gradient ``g = -B H μ + Σ_α ξ_α`` (Eq. 8), whose noise ``Σ_α ξ_α ~ N(0, B H)`` is drawn as one
vector per step (the same distribution as B separate draws; the Eq. 11 check below does draw B datapoints).
All rules and hyperparameter-grid points run side by side on the same noise (common random numbers), one
matrix product ``H M`` per step. The coupled optimal weight of Eq. 10, ``w*_i = -H_{-i,i}ᵀ μ_{-i} / H_ii``,
is recorded along AdaBayes's trajectory to test the OU assumption of Eqs. 13-15.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from filtering.validation import check_choice, check_int, check_open_unit_interval, check_positive, check_unit_interval

from .checks import Check, evaluate, print_checks
from .column_rules import ColumnBank, column_bank
from .common import add_common_arguments, blas_threads, last_fraction_mean, output_dir, progress
from .curves import fixed_point_curves, stochastic_rate
from .hessian import make_hessian
from .io import save_json, save_npz
from .quadratic_checks import QUADRATIC_SPECS, tuned_specs
from .quadratic_measure import eq11_check, eq11_identity_error, measure, ou_analysis, tuned_columns
from .registry import help_for
from .stochastic_check import Window, compare, stochastic_specs

__all__ = ["HELP", "QuadraticConfig", "add_arguments", "grid", "run", "run_experiment", "simulate_quadratic"]

HELP = help_for("quadratic")
SGD_REFERENCE_LR = 1e-3  # the paper's lr_sgd = 0.1 diverges here (see Column)
DIVERGED = 1e6  # a column whose |μ| exceeds DIVERGED x init_scale (or is not finite) is frozen and reported
CHUNK = 200  # noise drawn for this many steps at once


@dataclass(frozen=True)
class QuadraticConfig:
    """Parameters of the quadratic experiment.

    Attributes
    ----------
    n : int
        Number of parameters (up to ~2000; cost per step ~ n² × grid size).
    steps : int
        Optimisation steps T.
    batch_size : int
        B datapoints per minibatch (summed objective).
    log10_diag : (float, float)
        log10 range of H_ii.
    mixing : float
        Condition number of the correlation part of H (see :mod:`simulations.hessian`).
    hessian : {"scaled", "haar"}
    init_scale : float
        μ(0) ~ N(0, init_scale² I); the optimum is w = 0.
    eta, lr_sgd : float
        Paper-default AdaBayes hyperparameters used for Fig. 3 (σ² = lr_sgd / B, Eq. 23); also the reference of
        Adam(W) (lr = η), fading memory and VON (lr_sgd). Not SGD's: see :class:`Column`.
    beta1 : float
        Momentum for every rule.
    average_from : float
        Fraction of the run after which per-parameter averages are taken.
    """

    n: int = 400
    steps: int = 3000
    batch_size: int = 100
    log10_diag: tuple[float, float] = (-4.0, 2.0)
    mixing: float = 10.0
    hessian: str = "scaled"
    init_scale: float = 0.1
    eta: float = 1e-3
    lr_sgd: float = 0.1
    beta1: float = 0.9
    average_from: float = 0.5

    @classmethod
    def quick(cls) -> QuadraticConfig:
        """Small sizes for CI."""
        return cls(n=160, steps=1500)

    def validate(self) -> QuadraticConfig:
        """Check every field with :mod:`filtering.validation` (``ValueError`` naming the field and its range)."""
        check_int("n", self.n, lower=2, upper=4001)
        check_int("steps", self.steps, lower=20)
        check_int("batch_size", self.batch_size, lower=1)
        check_open_unit_interval("average_from", self.average_from)
        check_positive("init_scale", self.init_scale)
        check_unit_interval("beta1", self.beta1)
        check_choice("hessian", self.hessian, ("scaled", "haar"))
        return self


@dataclass(frozen=True)
class Column:
    """One rule at one grid point.

    ``reference`` marks the setting used for Fig. 3 and the slopes: the paper defaults (η = 1e-3,
    lr_sgd = 0.1, so σ² = 1e-3 at B = 100) for every rule except SGD. SGD's step is lr_sgd/B · g with
    g ≈ -B H μ, stable with momentum β1 only while lr_sgd λ_max(H) < 2 (1 + β1); the paper's lr_sgd = 0.1 breaks
    that for λ_max(H) ≳ 40 (λ_max ≈ 108 for the default H) and diverges here (the grid keeps 0.1 to show it).
    SGD's reference is lr_sgd = 1e-3 (σ² = 1e-5), a stable value near its tuned optimum; the slopes figure
    labels it so.
    """

    rule: str
    hyper: dict
    reference: bool


def grid(cfg: QuadraticConfig, quick: bool = False) -> list[Column]:
    """The hyperparameter grid (written into the output JSON); ``reference`` as in :class:`Column`.

    ``quick`` keeps, per rule, the reference column and the columns at the ends of its grid (so that a tuned
    value at a grid edge is still recognisable as one).
    """
    lrs = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    sgd_lrs = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
    cols = [Column("sgd", {"lr_sgd": v}, v == SGD_REFERENCE_LR) for v in sgd_lrs]
    cols += [Column("adam", {"lr": v}, v == cfg.eta) for v in lrs]
    cols += [Column("adamw", {"lr": v, "weight_decay": 1e-4}, v == cfg.eta) for v in lrs]
    for eta in (1e-4, 3e-4, 1e-3, 3e-3):
        for lr_sgd in (0.001, 0.003, 0.01, 0.03, 0.1):
            ref = eta == cfg.eta and lr_sgd == cfg.lr_sgd
            cols.append(Column("adabayes", {"lr": eta, "lr_sgd": lr_sgd}, ref))
            cols.append(Column("adabayes_fp", {"lr": eta, "lr_sgd": lr_sgd}, ref))
    forgets = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
    cols += [Column("fading", {"forget": v, "lr_sgd": cfg.lr_sgd}, v == 3e-3) for v in forgets]
    cols += [Column("von", {"lr": v, "lr_sgd": cfg.lr_sgd}, v == 1e-2) for v in (1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0)]
    if quick:
        keep = []
        for rule in dict.fromkeys(c.rule for c in cols):
            mine = [c for c in cols if c.rule == rule]
            keep += [c for k, c in enumerate(mine) if c.reference or k in (0, len(mine) - 1)]
        cols = keep
    return cols


def grid_edges(columns: list[Column], col: Column) -> list[str]:
    """Hyperparameters of ``col`` at the smallest or largest value its rule's grid tried (e.g. ``"lr=0.1 (max)"``)."""
    mine = [c.hyper for c in columns if c.rule == col.rule]
    edges = []
    for key, v in col.hyper.items():
        values = sorted({hp[key] for hp in mine})
        if len(values) == 1:
            continue  # held fixed, not tuned
        if v == values[0]:
            edges.append(f"{key}={v:g} (grid min)")
        elif v == values[-1]:
            edges.append(f"{key}={v:g} (grid max)")
    return edges


def _banks(columns: list[Column], cfg: QuadraticConfig) -> list[tuple[slice | np.ndarray, ColumnBank]]:
    """One :class:`~simulations.column_rules.ColumnBank` per rule, with the columns it steps (a slice if contiguous)."""
    groups: dict[str, list[int]] = {}
    for j, col in enumerate(columns):
        groups.setdefault(col.rule, []).append(j)
    banks: list[tuple[slice | np.ndarray, ColumnBank]] = []
    for rule, idx in groups.items():
        bank = column_bank(rule, [columns[j].hyper for j in idx], batch_size=cfg.batch_size, beta1=cfg.beta1)
        contiguous = idx == list(range(idx[0], idx[-1] + 1))
        banks.append((slice(idx[0], idx[-1] + 1) if contiguous else np.array(idx), bank))
    return banks


class _LossCurves:
    """Excess loss ½ μᵀHμ per column at linearly spaced steps (for tuning) and log-spaced ones (for log axes)."""

    def __init__(self, steps: int, columns: int, n_linear: int, n_log: int) -> None:
        self.linear_t = np.unique(np.linspace(0, steps - 1, n_linear).astype(int))
        self.times = np.union1d(self.linear_t, np.unique(np.geomspace(1, steps, n_log).astype(int) - 1))
        self._row = {int(t): i for i, t in enumerate(self.times)}
        self.loss = np.full((self.times.size, columns), np.nan)

    def record(self, t: int, mus: np.ndarray, hm: np.ndarray, alive: np.ndarray) -> None:
        row = self._row.get(t)
        if row is not None:  # a diverged column's loss is inf from the step it diverged
            self.loss[row] = np.where(alive, 0.5 * np.einsum("ij,ij->j", mus, hm), np.inf)

    def linear(self) -> np.ndarray:
        return self.loss[np.searchsorted(self.times, self.linear_t)]


def _step_bank(
    bank: ColumnBank,
    state,
    sel: slice | np.ndarray,
    grads: np.ndarray,
    mus: np.ndarray,
    alive: np.ndarray,
    sums: dict[str, np.ndarray] | None,
    limit: float,
):
    """Step the columns ``sel`` of one rule; freeze those that diverge; add rate and g² to ``sums`` (if given).

    ``mus``, ``alive`` and ``sums`` are updated in place; returns the bank's new state. A frozen column keeps
    being stepped at its frozen μ (its results are masked), so the bank never needs to drop columns.
    """
    g = grads[:, sel]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        step, state = bank.update(g, state, mus[:, sel])
        new = mus[:, sel] + step
        ok = alive[sel] & np.isfinite(new).all(axis=0) & (np.abs(new).max(axis=0) <= limit)
    alive[sel] = ok
    mus[:, sel] = np.where(ok, new, mus[:, sel])
    if sums is not None:
        sums["rate"][:, sel] += np.where(ok, state.var_post, 0.0)
        sums["g2"][:, sel] += np.where(ok, g**2, 0.0)
    return state


@dataclass
class _GridRun:
    """State of C columns stepped side by side on one noise sequence (see :func:`simulate_quadratic`)."""

    cfg: QuadraticConfig
    h: np.ndarray
    banks: list[tuple[slice | np.ndarray, ColumnBank]]
    mus: np.ndarray  # (n, C)
    curves: _LossCurves
    track: int | None
    states: list = field(default_factory=list)
    alive: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    tracked: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n, c = self.mus.shape
        self.states = [bank.init(self.mus[:, sel]) for sel, bank in self.banks]
        self.alive = np.ones(c, dtype=bool)
        self.sums = {"rate": np.zeros((n, c)), "g2": np.zeros((n, c))}
        self.diag = np.diag(self.h).copy()
        self.start_avg = int(self.cfg.average_from * self.cfg.steps)
        self.tracked_rate: list[np.ndarray] = []
        self._tracked_at = self._locate(self.track) if self.track is not None else (0, 0)

    def _locate(self, column: int) -> tuple[int, int]:
        """(bank index, column within the bank's state) of grid column ``column``."""
        for i, (sel, _) in enumerate(self.banks):
            cols = np.arange(sel.start, sel.stop) if isinstance(sel, slice) else sel
            hit = np.flatnonzero(cols == column)
            if hit.size:
                return i, int(hit[0])
        raise ValueError(f"track: column {column} is in no bank")

    def step(self, t: int, noise: np.ndarray) -> None:
        """Step ``t`` of every column, with the minibatch noise Σ_α ξ_α of shape (n,)."""
        mus, b = self.mus, float(self.cfg.batch_size)
        hm = self.h @ mus
        grads = -b * hm + noise[:, None]  # Eq. 8, summed over the minibatch
        if not np.isfinite(grads).all():  # the one input check of the step, for every column at once
            raise FloatingPointError(f"non-finite gradient at step {t} (a frozen column's μ should be finite)")
        self.curves.record(t, mus, hm, self.alive)
        averaging = t >= self.start_avg
        if self.track is not None and averaging:
            mu_c = mus[:, self.track]  # w* of Eq. 10: μ - (Hμ)_i / H_ii = -H_{-i,i}ᵀ μ_{-i} / H_ii
            row = (mu_c.copy(), mu_c - hm[:, self.track] / self.diag, grads[:, self.track].copy(), noise.copy())
            self.tracked.append(row)
        limit = DIVERGED * self.cfg.init_scale
        for i, (sel, bank) in enumerate(self.banks):
            adding = self.sums if averaging else None
            self.states[i] = _step_bank(bank, self.states[i], sel, grads, mus, self.alive, adding, limit)
        if self.track is not None and averaging:
            bank_index, local = self._tracked_at
            self.tracked_rate.append(self.states[bank_index].var_post[:, local].copy())  # σ²_post after this step

    def result(self) -> dict[str, np.ndarray]:
        count = self.cfg.steps - self.start_avg
        out = {
            "loss_t": self.curves.linear_t,
            "loss": self.curves.linear(),
            "loss_fine_t": self.curves.times,
            "loss_fine": self.curves.loss,
            "rate": self.sums["rate"] / count,
            "g2": self.sums["g2"] / count,
            "diverged": ~self.alive,
            "final_mu": self.mus.copy(),
        }
        if self.track is not None:
            for key, vals in zip(("mu", "wstar", "g", "noise"), zip(*self.tracked, strict=True), strict=True):
                out[f"{key}_track"] = np.array(vals)
            out["rate_track"] = np.array(self.tracked_rate)
        return out


def simulate_quadratic(
    cfg: QuadraticConfig,
    columns: list[Column],
    hess: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    track: int | None = None,
    show_progress: bool = True,
    n_curve: int = 100,
    n_curve_log: int = 60,
) -> dict[str, np.ndarray]:
    """Run every column on one noise sequence, all columns of a rule in one vectorised step.

    Parameters
    ----------
    cfg : QuadraticConfig
    columns : list of Column, length C
    hess : (H, eigenvalues, L) from :func:`simulations.hessian.make_hessian`
    rng : np.random.Generator
    track : int, optional
        Column whose μ(t) and w*(t) (Eq. 10) are kept after ``average_from``.
    n_curve, n_curve_log : int
        Points of the loss curve, linearly spaced (``loss``) and log-spaced (added in ``loss_fine``).

    Returns
    -------
    dict of ndarray
        ``loss_t`` (K,), ``loss`` (K, C) excess loss ½ μᵀHμ at linearly spaced steps; ``loss_fine_t`` (K',),
        ``loss_fine`` (K', C) at those and log-spaced steps; ``rate``, ``g2`` (n, C) averages after
        ``average_from``; ``diverged`` (C,); ``final_mu`` (n, C); with ``track``: ``mu_track``, ``wstar_track``,
        ``g_track``, ``noise_track`` (T', n) before each step and ``rate_track`` (T', n), the tracked column's
        σ²_post after it.
    """
    cfg.validate()
    h, _, sqrt_h = hess
    n, c = cfg.n, len(columns)
    mu0 = cfg.init_scale * rng.standard_normal(n)
    run = _GridRun(
        cfg,
        h,
        _banks(columns, cfg),
        np.repeat(mu0[:, None], c, axis=1),
        _LossCurves(cfg.steps, c, n_curve, n_curve_log),
        track,
    )
    bar = progress(cfg.steps, "quadratic", show_progress)
    with blas_threads(1):  # thousands of small products: one thread is fastest (same numbers)
        for t0 in range(0, cfg.steps, CHUNK):
            length = min(CHUNK, cfg.steps - t0)
            noise = np.sqrt(float(cfg.batch_size)) * (sqrt_h @ rng.standard_normal((n, length)))  # N(0, B H), Eq. 7
            for k in range(length):
                run.step(t0 + k, noise[:, k])
            bar.update(length)
    bar.close()
    return run.result()


def _reference_arrays(cols: list[Column], res: dict, h: np.ndarray, eig: np.ndarray) -> dict[str, np.ndarray]:
    """The Fig. 3 / slopes arrays: H's diagonal and spectrum, each rule's reference rate and ⟨g²⟩."""
    arrays: dict[str, np.ndarray] = {"h_diag": np.diag(h), "eigenvalues": eig, "loss_t": res["loss_t"]}
    for rule in dict.fromkeys(c.rule for c in cols):
        j = next(j for j, c in enumerate(cols) if c.rule == rule and c.reference)
        arrays[f"fig3_{rule}_rate"] = res["rate"][:, j]
        arrays[f"fig3_{rule}_g2"] = res["g2"][:, j]
    return arrays


def _tuned_summary(cols: list[Column], best: dict[str, int], res: dict, fresh: dict) -> dict[str, dict]:
    """Per rule: tuned hyperparameters, fresh-seed final loss, loss on the tuning seed, grid edges hit."""
    final_grid = last_fraction_mean(res["loss"])
    final_tuned = last_fraction_mean(fresh["loss"])
    return {
        cols[j].rule: {
            "hyper": cols[j].hyper,
            "final_excess_loss": float(final_tuned[i]),
            "loss_on_tuning_seed": float(final_grid[j]),
            "grid_edges": grid_edges(cols, cols[j]),
        }
        for i, j in enumerate(best.values())
    }


def _stochastic(res: dict, track: int, h: np.ndarray, cfg: QuadraticConfig, sigma2: float) -> tuple[dict, dict]:
    """Issue 9: the AdaBayes reference run's σ²_post against the stationary law of its own gradients.

    The observation noise of g is the minibatch sum Σ_α ξ_α, variance B H_ii (Eqs. 7, 8). Returns the measured
    numbers of :func:`simulations.stochastic_check.compare` and the arrays for the figure.
    """
    rates = res["rate_track"]
    steps = rates.shape[0]
    cut = steps // 2
    window = Window(
        res["g_track"],
        res["rate"][:, track],
        np.stack([rates[:cut].mean(axis=0), rates[cut:].mean(axis=0)]),
        rates[[0, cut]],
        steps,
    )
    g2 = res["g2"][:, track]
    span = (float(g2.min()), float(g2.max()))  # the curves' range: the same cached solves

    def gaussian(x: np.ndarray) -> np.ndarray:
        return stochastic_rate(x, cfg.eta, sigma2, span=span)

    m = compare(window, g2, cfg.batch_size * np.diag(h), cfg.eta, sigma2, gaussian)
    return m, {"stochastic_points_g2": m["stoch_g2"], "stochastic_points_rate": m["stoch_empirical"]}


def run_experiment(cfg: QuadraticConfig, seed: int, quick: bool, show_progress: bool) -> tuple[dict, dict, list[Check]]:
    """Everything of experiments 2 and 3b: simulate, measure, check, curves; returns (arrays, json, checks)."""
    rng = np.random.default_rng(seed)
    hess = make_hessian(cfg.n, cfg.log10_diag, rng, cfg.hessian, cfg.mixing)
    h, eig, sqrt_h = hess
    cols = grid(cfg, quick)
    track = next(j for j, c in enumerate(cols) if c.rule == "adabayes" and c.reference)
    res = simulate_quadratic(cfg, cols, hess, rng, track=track, show_progress=show_progress)
    best = tuned_columns([c.rule for c in cols], res)
    best_cols = [cols[j] for j in best.values()]
    fresh = simulate_quadratic(cfg, best_cols, hess, np.random.default_rng(seed + 1), show_progress=show_progress)

    sigma2 = cfg.lr_sgd / cfg.batch_size
    ou = ou_analysis(res, h, cfg.eta, sigma2)
    mc = eq11_check(h, sqrt_h, res["final_mu"][:, track], cfg.batch_size, 20 if quick else 40, rng)
    reference_diverged = [f"{c.rule} {c.hyper}" for j, c in enumerate(cols) if c.reference and res["diverged"][j]]
    tuned = _tuned_summary(cols, best, res, fresh)
    m = measure(
        eigenvalues=eig,
        res=res,
        track=track,
        identity_err=eq11_identity_error(res, h, cfg.batch_size),
        mc=mc,
        ou=ou,
        eta=cfg.eta,
        sigma2=sigma2,
        reference_diverged=reference_diverged,
    )
    t_specs, t_measured = tuned_specs(tuned)
    stoch, stoch_arrays = _stochastic(res, track, h, cfg, sigma2)
    s_specs = stochastic_specs("quadratic", stoch, "B H_ii")
    checks = evaluate([*QUADRATIC_SPECS, *t_specs, *s_specs], m | t_measured | stoch)

    g2_ref = res["g2"][:, track]
    arrays = _reference_arrays(cols, res, h, eig)
    arrays |= fixed_point_curves(g2_ref.min(), g2_ref.max(), cfg.eta, sigma2)
    arrays |= {"grid_loss": res["loss"], "tuned_loss": fresh["loss"]}
    arrays |= {"loss_fine_t": fresh["loss_fine_t"], "tuned_loss_fine": fresh["loss_fine"]}
    arrays |= {f"ou_{k}": v for k, v in ou.items()} | stoch_arrays
    meta = {
        "config": asdict(cfg),
        "seed": seed,
        "grid": [{"rule": c.rule, "hyper": c.hyper, "reference": c.reference} for c in cols],
        "grid_final_loss": last_fraction_mean(res["loss"]),
        "grid_diverged": res["diverged"],
        "tuned": tuned,
        "tuned_columns": [c.rule for c in best_cols],
        "fig3": {"eta": cfg.eta, "sigma2": sigma2, "sgd_lr_sgd": SGD_REFERENCE_LR},
        "eq11_monte_carlo": mc,
        "stochastic_by_decade": stoch["stoch_table"],
        "ou": {
            "implied_eta2_quantiles": np.quantile(ou["implied_eta2"], [0.1, 0.5, 0.9]),
            "paper_eta2": cfg.eta**2,
        },
        "checks": [c.to_dict() for c in checks],
    }
    return arrays, meta, checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes quadratic`` (``--help`` shows each default)."""
    add_common_arguments(parser)
    d, q = QuadraticConfig(), QuadraticConfig.quick()
    parser.add_argument(
        "--n", type=int, default=None, help=f"parameters, up to ~2000 (default {d.n}; with --quick {q.n})"
    )
    parser.add_argument("--steps", type=int, default=None, help=f"steps (default {d.steps}; with --quick {q.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="B, datapoints per minibatch (Eq. 8)")
    parser.add_argument(
        "--log10-diag", type=float, nargs=2, default=d.log10_diag, metavar=("LO", "HI"), help="log10 range of H_ii"
    )
    parser.add_argument(
        "--hessian", choices=("scaled", "haar"), default=d.hessian, help="random Hessian family (simulations.hessian)"
    )
    parser.add_argument("--mixing", type=float, default=d.mixing, help="condition number of H's correlation part")


def run(args: argparse.Namespace) -> int:
    """Run, write ``quadratic.npz``/``.json``; exit 1 if a check fails."""
    cfg = QuadraticConfig.quick() if args.quick else QuadraticConfig()
    cfg = replace(cfg, **{k: v for k, v in {"n": args.n, "steps": args.steps}.items() if v is not None})
    cfg = replace(
        cfg, batch_size=args.batch_size, log10_diag=tuple(args.log10_diag), hessian=args.hessian, mixing=args.mixing
    ).validate()
    out = output_dir(args.out)
    arrays, meta, checks = run_experiment(cfg, args.seed, args.quick, not args.no_progress)
    save_npz(out / "quadratic.npz", **arrays)
    save_json(out / "quadratic.json", meta)
    return print_checks(checks)
