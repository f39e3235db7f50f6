"""Tracking on the generative model: where AdaBayes stops following w*, and what σ²_post is there (issue 9).

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

``python -m simulations.tracking [--quick] [--seed S]`` prints the table; :func:`run` returns it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

import numpy as np

from filtering import rules
from filtering.fixed_point import approx_precision, exact_precision
from filtering.state_space import gradient, simulate_latent
from filtering.stochastic import EmpiricalGradients, GaussianGradients, stationary_law
from filtering.validation import check_rng

__all__ = ["TrackingConfig", "predict", "run", "simulate_tracking", "tracking_lost"]


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
    args = parser.parse_args(argv)
    cfg = TrackingConfig.quick() if args.quick else TrackingConfig()
    print("config:", asdict(cfg))
    _print(run(cfg, args.seed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
