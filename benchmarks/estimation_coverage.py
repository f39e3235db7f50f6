"""Coverage of the 95 % intervals of :func:`filtering.estimation.fit` on simulated OU and random-walk streams.

Run ``python benchmarks/estimation_coverage.py`` (a few minutes on 2 cores). The 300-stream setting is the one
``tests/test_estimation.py`` asserts (coverage in [90 %, 99 %]); the 1000-stream run narrows the binomial noise
(s.e. ≈ 0.7 % at 95 %). Prints, per setting, the share of intervals that hold the true value of each parameter.
"""

from __future__ import annotations

import numpy as np

from filtering import estimation, state_space

ETA2, SIGMA2 = 0.01, 0.1
STEPS = 800


def ou_coverage(streams: int, seed: int) -> dict[str, float]:
    """Share of 95 % intervals holding η², σ² and the noise scale r = 1 over ``streams`` simulated OU streams."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.5, 2.0, (STEPS, streams))
    w = state_space.simulate_latent((streams,), STEPS, np.sqrt(ETA2), SIGMA2, rng)
    g = h * w + np.sqrt(h) * rng.standard_normal((STEPS, streams))  # Eq. 12
    res = estimation.fit(g, h, model="ou", init="paper")
    truth = {"eta2": ETA2, "sigma2": SIGMA2, "noise_scale": 1.0}
    return {k: float(np.mean((res.ci_low[k] <= v) & (v <= res.ci_high[k]))) for k, v in truth.items()}


def random_walk_coverage(streams: int = 200, steps: int = 1500, eta2: float = 0.02, seed: int = 22) -> float:
    """Share of 95 % intervals holding η² for a random-walk w* (r fixed at 1)."""
    rng = np.random.default_rng(seed)
    w = np.cumsum(rng.standard_normal((steps, streams)) * np.sqrt(eta2), axis=0)
    h = np.full((steps, streams), 2.0)
    g = h * w + np.sqrt(h) * rng.standard_normal((steps, streams))  # Eq. 12
    res = estimation.fit(g, h, model="random_walk", noise_scale=1.0)
    return float(np.mean((res.ci_low["eta2"] <= eta2) & (eta2 <= res.ci_high["eta2"])))


def main() -> None:
    for streams, seed in ((300, 20), (1000, 40)):
        print(f"OU, {streams} streams (seed {seed}), T = {STEPS}: coverage {ou_coverage(streams, seed)}", flush=True)
    print(f"random walk, 200 streams, T = 1500: coverage of eta2 {random_walk_coverage():.3f}")


if __name__ == "__main__":
    main()
