"""Experiment 5: the joint full-covariance Kalman filter against factorised filters on small quadratics.

Model: a static optimum w_opt ~ N(0, σ² I) and summed minibatch gradients ``g = B H (w_opt - μ) + N(0, B H)``
(Eqs. 8, 12 with the full Hessian). The joint filter (:func:`filtering.state_space.joint_kalman_filter`, A = I,
Q = 0, prior N(0, σ² I)) is the exact posterior over w_opt -- the Bayes-optimal estimate. The factorised
filters see only their own coordinate: the exact scalar filter with known h_i = B H_ii and an OU prior of
process noise η² (Eqs. 14-18, 41), scanned over η; and AdaBayes (Alg. 1, g² for h_i, β1 = 0) at the paper's η.
Every filter evaluates the gradient at its own prior mean, step by step.
Reported: the excess loss ½ (μ - w_opt)ᵀ H (μ - w_opt) averaged over the run, the distance of the factorised
posterior means from the joint ones, and the effective η² (the grid value that minimises the factorised error).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np

from filtering import rules
from filtering.state_space import joint_kalman_filter

from .checks import INFO, AtLeast, Check, Spec, evaluate, print_checks
from .common import add_common_arguments, output_dir, progress
from .hessian import make_hessian
from .io import save_json, save_npz
from .registry import help_for

__all__ = ["HELP", "FvJConfig", "add_arguments", "compare_once", "run"]

HELP = help_for("factorised-vs-joint")


@dataclass(frozen=True)
class FvJConfig:
    """Parameters: sizes n (each <= 50), steps T, seeds per size, B, σ², log10 range of H_ii, the η grid."""

    sizes: tuple[int, ...] = (10, 30, 50)
    steps: int = 800
    seeds: int = 3
    batch_size: int = 10
    sigma2: float = 1e-2
    log10_diag: tuple[float, float] = (-2.0, 2.0)
    eta_grid: tuple[float, ...] = (0.0, *np.logspace(-7, -1, 19).tolist())  # η = 0: a static prior
    eta_adabayes: float = 1e-3

    @classmethod
    def quick(cls) -> FvJConfig:
        """Small sizes for CI."""
        return cls(sizes=(10, 30), steps=300, seeds=2)

    def validate(self) -> FvJConfig:
        """Raise ValueError naming the offending field."""
        if not self.sizes or any(not 2 <= n <= 50 for n in self.sizes):
            raise ValueError(f"sizes must be in [2, 50], got {self.sizes}")
        if self.steps < 10 or self.seeds < 1:
            raise ValueError(f"steps must be >= 10 and seeds >= 1, got {self.steps}, {self.seeds}")
        if not (np.isfinite(self.sigma2) and self.sigma2 > 0):
            raise ValueError(f"sigma2 must be finite and > 0, got {self.sigma2}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size}")
        if len(self.log10_diag) != 2 or not self.log10_diag[0] < self.log10_diag[1]:
            raise ValueError(f"log10_diag must be (lo, hi) with lo < hi, got {self.log10_diag}")
        if len(self.eta_grid) < 2 or any(e < 0 for e in self.eta_grid) or self.eta_adabayes <= 0:
            raise ValueError("eta_grid needs >= 2 values >= 0 and eta_adabayes must be > 0")
        if any(e**2 >= 2 * self.sigma2 for e in (*self.eta_grid, self.eta_adabayes)):
            raise ValueError("every eta must satisfy eta**2 < 2 sigma2")
        return self


def compare_once(n: int, cfg: FvJConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One Hessian and one noise sequence; every filter in closed loop.

    Returns
    -------
    dict with ``joint_loss`` (T,), ``fact_loss`` (T, K) for the η grid, ``ada_loss`` (T,),
    ``fact_dist`` (K,) and ``ada_dist`` () -- RMS over time of ||μ - μ_joint|| / ||w_opt|| --
    and ``fact_implied_eta2`` (K,) -- median over i of Var Δw*_i (Eq. 10) along each factorised run.
    """
    h, _, sqrt_h = make_hessian(n, cfg.log10_diag, rng)
    b, s2, steps = float(cfg.batch_size), cfg.sigma2, cfg.steps
    bh = b * h
    w_opt = np.sqrt(s2) * rng.standard_normal(n)
    noise = np.sqrt(b) * (sqrt_h @ rng.standard_normal((n, steps)))  # N(0, B H) per step
    etas = np.asarray(cfg.eta_grid)
    k = etas.size
    m_joint, cov_joint = np.zeros(n), s2 * np.eye(n)
    m_fact, v_fact = np.zeros((n, k)), np.full((n, k), s2)
    a_fact = 1.0 - etas**2 / (2 * s2)  # Eq. 17a
    ada = rules.adabayes(
        cfg.eta_adabayes, s2, batch_size=1.0, betas=(0.0, 0.999), weight_decay=cfg.eta_adabayes**2 / (2 * s2)
    )
    mu_ada = np.zeros(n)
    st_ada = ada.init(mu_ada)
    diag_b = np.diag(bh)
    out = {k_: np.empty(steps) for k_ in ("joint_loss", "ada_loss")}
    out["fact_loss"] = np.empty((steps, k))
    dist_fact, dist_ada = np.zeros(k), 0.0
    wstar = np.empty((steps, n, k))

    def loss(mu: np.ndarray) -> np.ndarray:
        d = mu - (w_opt if mu.ndim == 1 else w_opt[:, None])
        return 0.5 * np.einsum("i...,ij,j...->...", d, h, d)

    for t in range(steps):
        # joint: prior mean = posterior mean (A = I), gradient there (Eq. 8 with the full H)
        g = bh @ (w_opt - m_joint) + noise[:, t]
        res = joint_kalman_filter(
            g[None],
            bh,
            1.0,
            s2,
            mean0=m_joint,
            var0=cov_joint,
            transition_matrix=np.eye(n),
            process_noise=np.zeros((n, n)),
        )
        m_joint, cov_joint = res.mean_post[0], res.cov_post[0]
        # factorised exact scalar filters, one column per η: gradient at each column's μ_prior = a μ_post
        m_prior = a_fact * m_fact
        g_f = bh @ (w_opt[:, None] - m_prior) + noise[:, t : t + 1]
        wstar[t] = m_prior - (bh @ m_prior) / diag_b[:, None]  # Eq. 10 (B cancels)
        # one step of the exact scalar filter, inline: the compiled filtering.state_space.kalman_filter costs
        # ~10 ms per call (parallel launch), too much for a closed loop of single steps
        v_prior = a_fact**2 * v_fact + etas**2  # Eq. 17b
        v_fact = v_prior / (1.0 + v_prior * diag_b[:, None])  # Eq. 18a with known h_i = B H_ii
        m_fact = m_prior + v_fact * g_f  # Eq. 41
        # AdaBayes (Alg. 1, g² for h)
        g_a = bh @ (w_opt - mu_ada) + noise[:, t]
        step, st_ada = ada.update(g_a, st_ada, mu_ada)
        mu_ada = mu_ada + step
        out["joint_loss"][t], out["fact_loss"][t], out["ada_loss"][t] = loss(m_joint), loss(m_fact), loss(mu_ada)
        scale = np.linalg.norm(w_opt)
        dist_fact += (np.linalg.norm(m_fact - m_joint[:, None], axis=0) / scale) ** 2
        dist_ada += (np.linalg.norm(mu_ada - m_joint) / scale) ** 2
    burn = steps // 2
    implied = np.median(np.diff(wstar[burn:], axis=0).var(axis=0), axis=0)
    out.update(fact_dist=np.sqrt(dist_fact / steps), ada_dist=np.sqrt(dist_ada / steps), fact_implied_eta2=implied)
    return out


def _summary(mean: dict[str, np.ndarray], etas: np.ndarray) -> dict:
    """Seed-averaged losses of one size: best factorised η, ratios to the joint filter, distances."""
    joint = mean["joint_loss"].mean()
    fact = mean["fact_loss"].mean(axis=0)
    best = int(np.argmin(fact))
    return {
        "effective_eta2_grid_edge": "grid min" if best == 0 else ("grid max" if best == etas.size - 1 else ""),
        "joint_mean_loss": joint,
        "fact_best_mean_loss": fact[best],
        "fact_over_joint": fact[best] / joint,
        "adabayes_over_joint": mean["ada_loss"].mean() / joint,
        "effective_eta2": etas[best] ** 2,
        "fact_dist_from_joint_at_best": mean["fact_dist"][best],
        "adabayes_dist_from_joint": float(mean["ada_dist"]),
        "implied_eta2_at_best": mean["fact_implied_eta2"][best],
        "best_index": best,
    }


def _specs(n: int, s: dict, cfg: FvJConfig) -> tuple[list[Spec], dict]:
    """Declared checks of one size n and the numbers they read."""
    etas = np.asarray(cfg.eta_grid)
    edge = s["effective_eta2_grid_edge"]
    where = ""
    if edge:
        where = f"; AT THE {edge.upper()}: " + (
            "η = 0 (a static prior) is best" if s["best_index"] == 0 else "the optimum may lie beyond"
        )
    measured = {f"n{n}_{k}": v for k, v in s.items()} | {f"n{n}_edge_what": where}
    p = f"factorised/n{n}"
    specs = [
        Spec(
            f"{p}_joint_not_worse",
            "Eqs. 16-18",
            f"n{n}_fact_over_joint",
            AtLeast(0.95),
            detail="time-averaged excess loss, best factorised exact filter / joint filter (joint is Bayes-optimal)",
        ),
        Spec(
            f"{p}_adabayes_over_joint",
            "Alg. 1",
            f"n{n}_adabayes_over_joint",
            INFO,
            detail=f"time-averaged excess loss, AdaBayes (η={cfg.eta_adabayes:g}) / joint filter",
        ),
        Spec(
            f"{p}_effective_eta2",
            "Eq. 14",
            f"n{n}_effective_eta2",
            INFO,
            detail="η² minimising the factorised exact filter's excess loss over the grid "
            f"{{{{0}}}} ∪ [{etas[1] ** 2:.0e}, {etas[-1] ** 2:.0e}]{{n{n}_edge_what}}",
        ),
        Spec(
            f"{p}_implied_eta2",
            "Eq. 10",
            f"n{n}_implied_eta2_at_best",
            INFO,
            detail="median Var Δw*_i (Eq. 10) along the factorised run at that η",
        ),
        Spec(
            f"{p}_mean_distance",
            "",
            f"n{n}_fact_dist_from_joint_at_best",
            INFO,
            detail="RMS over time of ||μ_fact - μ_joint|| / ||w_opt|| at the effective η",
        ),
    ]
    return specs, measured


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes factorised-vs-joint``."""
    add_common_arguments(parser)
    d, q = FvJConfig(), FvJConfig.quick()
    full, quick = " ".join(map(str, d.sizes)), " ".join(map(str, q.sizes))
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help=f"n values, each <= 50 (default {full}; with --quick {quick})",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"steps per run (default {d.steps}; with --quick {q.steps})"
    )


def config_from_args(args: argparse.Namespace) -> FvJConfig:
    """``--quick`` sizes unless overridden, validated."""
    cfg = FvJConfig.quick() if args.quick else FvJConfig()
    if args.sizes is not None:
        cfg = FvJConfig(**{**asdict(cfg), "sizes": tuple(args.sizes)})
    if args.steps is not None:
        cfg = FvJConfig(**{**asdict(cfg), "steps": args.steps})
    return cfg.validate()


def run(args: argparse.Namespace) -> int:
    """Run every size and seed; write ``factorised_vs_joint.npz/.json``."""
    cfg = config_from_args(args)
    out = output_dir(args.out)
    rng = np.random.default_rng(args.seed)
    etas = np.asarray(cfg.eta_grid)
    arrays: dict[str, np.ndarray] = {"eta_grid": etas}
    summary: dict = {}
    checks: list[Check] = []
    bar = progress(len(cfg.sizes) * cfg.seeds, "factorised-vs-joint", not args.no_progress)
    for n in cfg.sizes:
        runs = []
        for _ in range(cfg.seeds):
            runs.append(compare_once(n, cfg, rng))
            bar.update(1)
        mean = {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}
        arrays |= {f"n{n}_{k}": v for k, v in mean.items()}
        s = _summary(mean, etas)
        specs, measured = _specs(n, s, cfg)
        checks += evaluate(specs, measured)
        del s["best_index"]
        summary[n] = s
    bar.close()
    save_npz(out / "factorised_vs_joint.npz", **arrays)
    save_json(
        out / "factorised_vs_joint.json",
        {"config": asdict(cfg), "seed": args.seed, "summary": summary, "checks": [c.to_dict() for c in checks]},
    )
    return print_checks(checks)
