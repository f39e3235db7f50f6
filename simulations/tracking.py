"""The experiments of docs/STOCHASTIC.md (issue 9): Alg. 1's learning rate with random gradients, and tracking.

1. :func:`learning_rate_curves`, :func:`monte_carlo_rates`, :func:`draw_learning_rate_figure`: the stationary
   E[σ²_post] of :mod:`filtering.stochastic` beside Eq. 21, the exact fixed point, the second-order Jensen estimate
   and an independent Monte Carlo of the recursion (``docs/figures/stochastic_learning_rate.png``).
2. Tracking on the generative model: where AdaBayes stops following w*, and what σ²_post is there.

The generative model of Eqs. 12-14 (an OU optimum w*, gradients ``g = h (w* - μ) + sqrt(h) ε``) is run with
AdaBayes (Alg. 1, β1 = 0, decay η²/(2σ²) as Eq. 17a) supplying μ, for curvatures h across the transition
``η sqrt(h) ~ 1``. Per h it records the time averages of σ²_post, of ``z² = (w* - μ)²/σ²_post``, of g² and of the
squared tracking error, and keeps a thinned sample of the gradients the filter saw.

Why tracking fails (docs/STOCHASTIC.md): with σ²_post = 1/(y + g²) and y <= 1/q = 1/η², AdaBayes's step
``g/(y + g²)`` is bounded by ``1/(2 sqrt y)``, and for ``|g| >> sqrt(y)`` it is ``≈ 1/g`` -- it *shrinks* as the
error grows. The restoring pull on an error e is strong only while ``|e| sqrt(h) <~ 1`` (the observation noise
hides it); w* moves by η per step, so once ``η sqrt(h) >> 1`` one step of w* throws the error out of that window and
the pull, ``≈ 1/(h e)``, cannot bring it back: μ stays near 0 and the error takes the size of w* itself (σ²). Then
``⟨g²⟩ ≈ h (1 + h σ²)`` (so ``⟨g²⟩/h >> 1``), z² is huge, and σ²_post is set by the density of g at zero
(``E σ²_post ≈ π η p_g(0)``), which the stationary law of :mod:`filtering.stochastic` computes from the empirical
sample of g.

``python -m simulations.tracking [--quick] [--seed S]`` prints the tracking table (:func:`run` returns it);
``python -m simulations.tracking --figure [--points N]`` draws the figure and prints its runtime and the Monte Carlo
comparison.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from filtering import rules
from filtering.fixed_point import approx_precision, exact_precision
from filtering.kalman_step import precision_step
from filtering.ou import variance_predict_coefficients
from filtering.state_space import gradient, simulate_latent
from filtering.stochastic import (
    EmpiricalGradients,
    GaussianGradients,
    fixed_point_mean_learning_rate,
    stationary_law,
)
from filtering.validation import check_rng

from .jensen import jensen_rate

__all__ = [
    "TrackingConfig",
    "draw_learning_rate_figure",
    "learning_rate_curves",
    "monte_carlo_rates",
    "predict",
    "run",
    "simulate_tracking",
    "tracking_lost",
]

FIGURE = Path("docs/figures/stochastic_learning_rate.png")


# --------------------------------------------------------------------------------------------------------------
# 1. the learning rate with i.i.d. gradients


def learning_rate_curves(
    g2: np.ndarray, eta: float, sigma2: float, predict: str = "paper", rtol: float = 1e-3
) -> dict[str, np.ndarray]:
    """Learning-rate curves over ⟨g²⟩ (arrays of the shape of ``g2``).

    Returns ``g2``, ``adam_x`` (η/sqrt⟨g²⟩, Fig. 3's x-axis), ``mean``, ``q10``, ``q90`` (stationary law of Alg. 1),
    ``error`` (its error estimate), ``eq21``, ``exact`` (the exact deterministic fixed point), ``jensen``
    (:func:`simulations.jensen.jensen_rate`), ``fp_mean`` (AdaBayes-FP, β2 = 0.999) and ``seconds`` (wall time of
    the stationary-law loop, 0-d).
    """
    g2 = np.asarray(g2, dtype=np.float64)
    mean, q10, q90, err = (np.empty_like(g2) for _ in range(4))
    start = time.perf_counter()
    for i, v in enumerate(g2):
        law = stationary_law(GaussianGradients(float(v)), eta, sigma2, predict, rtol=rtol)
        mean[i], err[i] = law.mean(), law.error_estimate
        q10[i], q90[i] = law.quantile(np.array([0.1, 0.9]))
    return {
        "g2": g2,
        "adam_x": eta / np.sqrt(g2),
        "mean": mean,
        "q10": q10,
        "q90": q90,
        "error": err,
        "eq21": 1.0 / approx_precision(g2, eta, sigma2),
        "exact": 1.0 / exact_precision(g2, eta, sigma2, predict),
        "jensen": jensen_rate(g2, eta, sigma2, predict),
        "fp_mean": fixed_point_mean_learning_rate(g2, eta, sigma2, rtol=rtol),
        "seconds": np.array(time.perf_counter() - start),
    }


def monte_carlo_rates(
    g2: np.ndarray,
    eta: float,
    sigma2: float,
    rng: int | np.random.Generator,
    predict: str = "paper",
    chains: int = 64,
    relaxations: float = 20.0,
) -> dict[str, np.ndarray]:
    """Alg. 1's precision recursion (``precision_step``, Eqs. 17b + 18a) driven by g ~ N(0, ⟨g²⟩), all points at once.

    ``chains`` chains per point start at the deterministic fixed point; a third of ``relaxations`` relaxation times
    ``1/(1 - φ'(λ*))`` of the slowest point is burn-in, the rest is averaged. Returns ``mean`` / ``se``: the time
    average of ``E[σ²_post | y] = sqrt(π/(2⟨g²⟩y)) erfcx(sqrt(y/(2⟨g²⟩)))`` (y the prior precision; unbiased and far
    less noisy than σ²_post when η²⟨g²⟩ is large) and its standard error from the spread of independent chains;
    ``raw`` / ``raw_se`` the same for σ²_post itself.
    """
    from scipy import special

    rng = check_rng(rng)
    g2 = np.asarray(g2, dtype=np.float64)[:, None]
    f, q = variance_predict_coefficients(eta, sigma2, predict)
    lam = np.repeat(exact_precision(g2, eta, sigma2, predict), chains, axis=1)
    tau = float(np.max(1.0 / (1.0 - f / (f + q * lam[:, 0]) ** 2)))
    burn, steps = max(2000, int(relaxations * tau / 3)), max(4000, int(2 * relaxations * tau / 3))
    raw, cond = np.zeros_like(lam), np.zeros_like(lam)
    for t in range(burn + steps):
        y = precision_step(lam, f, q, 0.0)  # prior precision (Eq. 17b)
        lam = y + g2 * rng.standard_normal(lam.shape) ** 2  # Eq. 18a
        if t >= burn:
            raw += 1.0 / lam
            cond += np.sqrt(np.pi / (2.0 * g2 * y)) * special.erfcx(np.sqrt(y / (2.0 * g2)))
    out = {"g2": g2[:, 0]}
    for name, total in (("mean", cond), ("raw", raw)):
        per_chain = total / steps
        out[name] = per_chain.mean(axis=1)
        out["se" if name == "mean" else "raw_se"] = per_chain.std(axis=1, ddof=1) / math.sqrt(chains)
    return out


def draw_learning_rate_figure(
    data: dict[str, np.ndarray], mc: dict[str, np.ndarray], eta: float, sigma2: float, path: Path
) -> None:
    """Two panels: the learning rates against η/sqrt⟨g²⟩, and each divided by Eq. 21."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, mx = data["adam_x"], eta / np.sqrt(mc["g2"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.fill_between(x, data["q10"], data["q90"], color="tab:green", alpha=0.18, lw=0, label="10-90 % of σ²_post")
    lines = (
        ("mean", "E[σ²_post], stationary law (filtering.stochastic)", {"color": "tab:green", "lw": 2.2}),
        ("eq21", "Eq. 21", {"color": "k", "lw": 1.2, "ls": "--"}),
        ("exact", "exact deterministic fixed point", {"color": "tab:brown", "lw": 1.2}),
        ("jensen", "Jensen, second order (simulations.jensen)", {"color": "tab:purple", "lw": 1.0, "ls": ":"}),
        ("fp_mean", "AdaBayes-FP E[σ²_post] (β2 = 0.999)", {"color": "tab:orange", "lw": 1.0, "ls": "-."}),
    )
    for key, label, style in lines:
        top.plot(x, data[key], label=label, **style)
        bottom.plot(x, data[key] / data["eq21"], **style)
    top.errorbar(mx, mc["mean"], yerr=2 * mc["se"], fmt="o", ms=4, color="k", label="Monte Carlo of Alg. 1 (±2 s.e.)")
    top.plot(x, np.sqrt(np.pi / 2) * x, color="gray", lw=0.8, ls=(0, (1, 3)), label="sqrt(π/2) η/sqrt⟨g²⟩")
    for where, text, colour in ((sigma2, "x = 1 ", "tab:blue"), (eta**2, " η²⟨g²⟩ = 1", "tab:red")):
        top.axvline(where, color=colour, lw=0.6)
        top.text(where, 2e-12, text, color=colour, fontsize=8, ha="right" if text.endswith(" ") else "left")
    top.set(xscale="log", yscale="log", ylabel="learning rate σ²_post", ylim=(1e-12, 3e-3))
    top.legend(fontsize=7.5, loc="upper left")
    top.set_title(f"Alg. 1 with g ~ N(0, ⟨g²⟩) i.i.d., η = {eta:g}, σ² = {sigma2:g}", fontsize=10)
    bottom.fill_between(x, data["q10"] / data["eq21"], data["q90"] / data["eq21"], color="tab:green", alpha=0.18, lw=0)
    eq21_mc = 1.0 / approx_precision(mc["g2"], eta, sigma2)
    bottom.errorbar(mx, mc["mean"] / eq21_mc, yerr=2 * mc["se"] / eq21_mc, fmt="o", ms=4, color="k")
    bottom.axhline(np.sqrt(np.pi / 2), color="gray", lw=0.8, ls=(0, (1, 3)))
    bottom.set(xscale="log", ylim=(0.0, 1.6), xlabel="Adam learning rate η/sqrt⟨g²⟩", ylabel="÷ Eq. 21")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _figure(points: int, seed: int, path: Path) -> None:
    eta, sigma2 = 1e-3, 1e-3
    data = learning_rate_curves(np.logspace(-4, 12, points), eta, sigma2)
    mc = monte_carlo_rates(np.logspace(-4, 12, 17), eta, sigma2, seed)
    print(f"stationary law, mean and 10/90 % quantiles at {points} points: {float(data['seconds']):.1f} s wall; "
          f"largest error estimate {float(np.max(data['error'] / data['mean'])):.1e} (relative)")  # fmt: skip
    for i, v in enumerate(mc["g2"]):
        solved = stationary_law(GaussianGradients(float(v)), eta, sigma2, rtol=1e-4).mean()
        rel, se = solved / mc["mean"][i] - 1, mc["se"][i] / mc["mean"][i]
        vs_eq21, vs_exact = solved * approx_precision(v, eta, sigma2), solved * exact_precision(v, eta, sigma2)
        print(f"<g2>={v:9.2e} solver/MC-1={rel:+.2e} MC s.e.={se:.1e} /Eq21={vs_eq21:.4f} /exact={vs_exact:.3g} "
              f"jensen/solver={jensen_rate(v, eta, sigma2) / solved:.3f}")  # fmt: skip
    draw_learning_rate_figure(data, mc, eta, sigma2, path)
    print("figure:", path)


# --------------------------------------------------------------------------------------------------------------
# 2. tracking on the generative model


@dataclass(frozen=True)
class TrackingConfig:
    """Sizes of the tracking experiment.

    Attributes
    ----------
    eta, sigma2 : float
        η (= lr) and σ² (= lr_sgd / B).
    log10_h : (float, float)
        Range of log10 h; ``n_h`` values, log-spaced.
    replicas : int
        Independent parameters per h.
    steps, burn_in : int
        Steps in all, and steps before averaging starts.
    chunk : int
        Time steps drawn at once.
    """

    eta: float = 1e-3
    sigma2: float = 1e-3
    log10_h: tuple[float, float] = (-2.0, 8.5)
    n_h: int = 22
    replicas: int = 16
    steps: int = 30000
    burn_in: int = 10000
    chunk: int = 2000

    @classmethod
    def quick(cls) -> TrackingConfig:
        """Small sizes for tests (seconds)."""
        return cls(log10_h=(2.0, 8.0), n_h=7, replicas=8, steps=6000, burn_in=3000)

    def validate(self) -> TrackingConfig:
        """Raise ValueError naming the offending field."""
        if not (self.eta > 0 and self.sigma2 > 0 and self.eta**2 < 2 * self.sigma2):
            raise ValueError(f"eta, sigma2 must be > 0 with eta**2 < 2 sigma2, got {self.eta}, {self.sigma2}")
        if not self.log10_h[0] < self.log10_h[1] or self.n_h < 2:
            raise ValueError(f"log10_h must be increasing and n_h >= 2, got {self.log10_h}, {self.n_h}")
        if self.replicas < 1 or self.chunk < 1:
            raise ValueError(f"replicas and chunk must be >= 1, got {self.replicas}, {self.chunk}")
        if not 0 <= self.burn_in < self.steps:
            raise ValueError(f"burn_in must be in [0, steps), got {self.burn_in} with steps={self.steps}")
        return self


def tracking_lost(eta: float, h: np.ndarray) -> np.ndarray:
    """The derived condition: AdaBayes loses w* where ``η sqrt(h) > 1`` (one step of w* leaves the noise window)."""
    return eta * np.sqrt(np.asarray(h, dtype=np.float64)) > 1.0


class _Sums:
    """Running sums per parameter after burn-in, and every gradient seen after burn-in (the empirical law)."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.rate = np.zeros(n)
        self.z2 = np.zeros(n)
        self.g2 = np.zeros(n)
        self.err2 = np.zeros(n)
        self.kept: list[np.ndarray] = []

    def add(self, rate: np.ndarray, err: np.ndarray, g: np.ndarray) -> None:
        self.count += 1
        self.rate += rate
        self.z2 += err * err / rate
        self.g2 += g * g
        self.err2 += err * err
        self.kept.append(g.copy())


def simulate_tracking(cfg: TrackingConfig, rng: int | np.random.Generator) -> dict[str, np.ndarray]:
    """Run AdaBayes on the generative model for every h of ``cfg``; return per-h time averages and gradients.

    Returns
    -------
    dict
        ``h`` (n_h,); ``rate``, ``z2``, ``g2``, ``err2`` (n_h,): means over replicas of the time averages of
        σ²_post, z², g² and (w* - μ)², with ``<name>_se`` their standard errors over replicas; ``gradients``
        (n_h, (steps - burn_in) replicas): every gradient AdaBayes saw after burn-in.
    """
    cfg = cfg.validate()
    rng = check_rng(rng)
    h_values = np.logspace(*cfg.log10_h, cfg.n_h)
    h = np.repeat(h_values, cfg.replicas)  # parameter k has curvature h_values[k // replicas]
    decay = cfg.eta**2 / (2.0 * cfg.sigma2)  # Eq. 17a as the decoupled decay of Eq. 19a
    rule = rules.adabayes(cfg.eta, lr_sgd=cfg.sigma2, batch_size=1.0, betas=(0.0, 0.999), weight_decay=decay)
    mu = np.zeros(h.size)
    state = rule.init(mu)
    sums = _Sums(h.size)
    w_last = None
    for start in range(0, cfg.steps, cfg.chunk):
        length = min(cfg.chunk, cfg.steps - start)
        if w_last is None:
            w = simulate_latent(h.shape, length, cfg.eta, cfg.sigma2, rng)  # Eq. 14, stationary start
        else:
            w = simulate_latent(h.shape, length + 1, cfg.eta, cfg.sigma2, rng, w0=w_last)[1:]
        w_last = w[-1]
        y = h * w + np.sqrt(h) * rng.standard_normal(w.shape)  # Eq. 12 plus h μ (pseudo-observations)
        for k in range(length):
            g = gradient(y[k], h, mu)  # Eq. 12 at AdaBayes's μ
            step, state = rule.update(g, state, mu)
            mu = mu + step
            if start + k >= cfg.burn_in:
                sums.add(state.var_post, w[k] - mu, g)
    shape = (cfg.n_h, cfg.replicas)
    kept = np.stack(sums.kept).reshape(len(sums.kept), *shape).transpose(1, 0, 2).reshape(cfg.n_h, -1)
    out = {"h": h_values, "gradients": kept}
    for name in ("rate", "z2", "g2", "err2"):
        per_replica = (getattr(sums, name) / sums.count).reshape(shape)
        out[name] = per_replica.mean(axis=1)
        out[name + "_se"] = (
            per_replica.std(axis=1, ddof=1) / math.sqrt(cfg.replicas) if cfg.replicas > 1 else 0 * out[name]
        )
    return out


def predict(data: dict[str, np.ndarray], cfg: TrackingConfig, rtol: float = 1e-3) -> dict[str, np.ndarray]:
    """σ²_post predicted per h: from the empirical law of the gradients seen, from Gaussian g with the same ⟨g²⟩,
    Eq. 21 and the exact fixed point at ⟨g²⟩, and ``π η p_g(0)`` with p_g(0) from the sample (the fraction with
    |g| < 1/η). ``near_zero_count`` is that number of samples: the empirical prediction and the simulated mean
    are both set by these rare steps when η² ⟨g²⟩ >> 1, and both are noisy unless it is large."""
    eta, sigma2 = cfg.eta, cfg.sigma2
    g2 = data["g2"]
    empirical = np.array(
        [stationary_law(EmpiricalGradients(g), eta, sigma2, rtol=rtol).mean() for g in data["gradients"]]
    )
    gaussian = np.array([stationary_law(GaussianGradients(v), eta, sigma2, rtol=rtol).mean() for v in g2])
    near_zero = np.array([(np.abs(g) < 1.0 / eta).sum() for g in data["gradients"]])  # |g| < 1/η: σ²_post ~ η²
    density = near_zero / (2.0 / eta * data["gradients"].shape[1])  # p_g(0), histogram bin |g| < 1/η
    return {
        "empirical": empirical,
        "gaussian": gaussian,
        "eq21": 1.0 / approx_precision(g2, eta, sigma2),
        "exact": 1.0 / exact_precision(g2, eta, sigma2),
        "density_at_zero": np.pi * eta * density,
        "near_zero_count": near_zero.astype(float),
    }


def run(cfg: TrackingConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Simulate, predict and return one table: columns are arrays over h."""
    data = simulate_tracking(cfg, seed)
    pred = predict(data, cfg)
    table = {
        "h": data["h"],
        "eta_sqrt_h": cfg.eta * np.sqrt(data["h"]),
        "lost_predicted": tracking_lost(cfg.eta, data["h"]).astype(float),
        "g2_over_h": data["g2"] / data["h"],
        "z2": data["z2"],
        "err2_over_sigma2": data["err2"] / cfg.sigma2,
        "rate": data["rate"],
        "rate_se": data["rate_se"],
    }
    table.update({f"pred_{k}": v for k, v in pred.items()})
    return table


def _print(table: dict[str, np.ndarray]) -> None:
    cols = ("h", "eta_sqrt_h", "g2_over_h", "z2", "err2_over_sigma2", "rate", "rate_se", "pred_empirical",
            "pred_gaussian", "pred_density_at_zero", "pred_near_zero_count", "pred_eq21", "pred_exact")  # fmt: skip
    print(" ".join(f"{c:>14s}" for c in (*cols, "emp/sim-1")))
    for i in range(table["h"].size):
        vals = [table[c][i] for c in cols]
        print(" ".join(f"{v:14.4g}" for v in vals), f"{table['pred_empirical'][i] / table['rate'][i] - 1:+14.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations.tracking", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", action="store_true", help=f"draw {FIGURE} instead of the tracking table")
    parser.add_argument("--points", type=int, default=400, help="points of the figure's curves")
    args = parser.parse_args(argv)
    if args.figure:
        _figure(args.points, args.seed, FIGURE)
        return 0
    cfg = TrackingConfig.quick() if args.quick else TrackingConfig()
    print("config:", asdict(cfg))
    _print(run(cfg, args.seed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
