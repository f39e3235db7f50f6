"""Simulate the generative model and check the learning rate of AdaBayes against Eq. 21.

N parameters share η and σ² and differ in their curvature h (log-spaced). The latent optimum w*(t) follows the OU
process of Eq. 14 and every gradient is Eq. 12's ``g = y - h μ`` at AdaBayes's *own* μ (closed loop), as in the
paper's Fig. 3. After a burn-in the script averages AdaBayes's σ²_post (Alg. 1 with β1 = 0, i.e. the Kalman
filter with H ≈ g², Eq. 42) and g² per parameter, and compares the average with

- Eq. 21, ``filtering.fixed_point.approx_precision(⟨g²⟩, η, σ²)``, the paper's fixed point;
- ``filtering.stochastic.mean_learning_rate`` (the stationary mean of σ²_post when g ~ N(0, ⟨g²⟩) i.i.d.), if
  that module is installed;
- the two limits Eq. 21 joins, SGD's σ² (Eq. 22) and Adam's η/sqrt(⟨g²⟩) (Eq. 24): the baselines a fixed point
  has to beat, each right only in its own regime.

Errors are reported on the parameters where Eq. 21's assumptions hold (its Taylor step costs <= 1 %,
``filtering.fixed_point.eq21_validity_range``). Writes ``simulate.npz`` (per-parameter arrays) and
``simulate.json`` (the median relative errors) under ``--out``. The burn-in has to cover the slowest relaxation of
σ²_post, about σ²_post/η² steps at the crossover: with the paper's η = 10⁻³ and σ² = 10⁻² use
``--steps 40000 --burn-in 20000``.

    python examples/simulate.py                    # 60 parameters, 8000 steps: a few seconds
    python examples/simulate.py --n-params 300 --steps 20000 --burn-in 6000 --eta 1e-3 --sigma2 1e-3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from filtering import fixed_point, rules
from filtering.state_space import gradient, simulate

try:  # optional: the stationary law of Alg. 1's σ²_post
    from filtering.stochastic import mean_learning_rate
except ImportError:  # pragma: no cover - depends on the installed version
    mean_learning_rate = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--n-params", type=int, default=60, help="number of parameters N")
    parser.add_argument("--steps", type=int, default=8000, help="time steps T")
    parser.add_argument("--burn-in", type=int, default=4000, help="steps not averaged")
    parser.add_argument("--eta", type=float, default=3e-3, help="η (lr): OU process-noise s.d. (Eq. 14)")
    parser.add_argument("--sigma2", type=float, default=1e-2, help="σ² = lr_sgd / B: prior variance (Eq. 23)")
    parser.add_argument("--log10-h", type=float, nargs=2, default=(-4.0, 3.0), help="range of log10 curvature h")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stationary-rtol", type=float, default=1e-3, help="accuracy of filtering.stochastic.mean_learning_rate"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.burn_in < args.steps:
        parser.error(f"--burn-in must lie in [0, --steps), got {args.burn_in}")
    if args.n_params < 1:
        parser.error(f"--n-params must be >= 1, got {args.n_params}")
    return args


def run_closed_loop(h: np.ndarray, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Alg. 1 at its own μ on one draw of the generative model; time averages of σ²_post and g² after burn-in."""
    sim = simulate(h, args.steps, args.eta, args.sigma2, rng=args.seed)  # Eqs. 12, 14 (y does not depend on μ)
    decay = args.eta**2 / (2.0 * args.sigma2)  # Eq. 17a's mean decay as the decoupled λ of Eq. 19a
    rule = rules.adabayes(args.eta, lr_sgd=args.sigma2, batch_size=1.0, betas=(0.0, 0.999), weight_decay=decay)
    mu = np.zeros_like(h)
    state = rule.init(mu)
    rate_sum, g2_sum = np.zeros_like(h), np.zeros_like(h)
    for t in range(args.steps):
        g = gradient(sim.y[t], sim.h[t], mu)  # Eq. 12 at AdaBayes's own μ
        step, state = rule.update(g, state, mu)
        mu = mu + step
        if t >= args.burn_in:
            rate_sum += state.var_post
            g2_sum += g * g
    n = args.steps - args.burn_in
    assert sim.filtered is not None  # simulate(mu=None) runs the exact filter (known h) at its own μ
    return {
        "h": h,
        "rate": rate_sum / n,
        "g2": g2_sum / n,
        "kalman_rate": sim.filtered.var_post[args.burn_in :].mean(axis=0),  # Eqs. 16-18 with the true h
    }


REGIMES = ("SGD", "crossover", "Adam")


def regime_masks(g2: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """SGD regime ⟨g²⟩ < 0.01 (η/σ²)² (η/√⟨g²⟩ > 10 σ²), Adam regime ⟨g²⟩ >= 100 (η/σ²)², crossover between."""
    cross = (eta / sigma2) ** 2  # η/√⟨g²⟩ = σ²: where the limits of Eqs. 22 and 24 meet
    return {"SGD": g2 < 0.01 * cross, "crossover": (g2 >= 0.01 * cross) & (g2 < 100 * cross), "Adam": g2 >= 100 * cross}


def median_relative_error(predicted: np.ndarray, measured: np.ndarray, mask: np.ndarray) -> float | None:
    return float(np.median(np.abs(predicted[mask] / measured[mask] - 1.0))) if mask.any() else None


def compare(data: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, object]:
    """Predictions of the measured time-averaged σ²_post and their median relative errors, overall and per regime.

    Only parameters where Eq. 21 is within 1 % of the exact fixed point (its Taylor step holds) are scored.
    """
    g2, eta, s2 = data["g2"], args.eta, args.sigma2
    data["eq21"] = 1.0 / fixed_point.approx_precision(g2, eta, s2)  # Eq. 21
    data["sgd_limit"] = fixed_point.sgd_limit(np.full_like(g2, s2))  # Eq. 22
    data["adam_limit"] = fixed_point.adam_limit(g2, eta)  # Eq. 24
    if mean_learning_rate is not None:
        data["stationary_mean"] = mean_learning_rate(g2, eta, s2, rtol=args.stationary_rtol)
    valid = fixed_point.eq21_validity_range(eta, s2, rtol=0.01)
    lo, hi = valid if valid is not None else (np.inf, -np.inf)
    masks = {"all": (g2 >= lo) & (g2 <= hi)}
    masks.update({name: m & masks["all"] for name, m in regime_masks(g2, eta, s2).items()})
    names = [k for k in PREDICTIONS if k in data]
    errors = {where: {k: median_relative_error(data[k], data["rate"], m) for k in names} for where, m in masks.items()}
    return {
        "eq21_valid_g2": [lo, hi],
        "n_scored": {where: int(m.sum()) for where, m in masks.items()},
        "median_relative_error": errors,
    }


PREDICTIONS = {
    "eq21": "Eq. 21 fixed point",
    "stationary_mean": "stationary mean (filtering.stochastic)",
    "sgd_limit": "SGD limit σ² (Eq. 22), baseline",
    "adam_limit": "Adam limit η/√⟨g²⟩ (Eq. 24), baseline",
}


def print_summary(data: dict[str, np.ndarray], summary: dict, args: argparse.Namespace) -> None:
    hi = summary["eq21_valid_g2"][1]
    n = summary["n_scored"]
    print(
        f"AdaBayes (Alg. 1, β1 = 0) at its own μ: N = {args.n_params}, T = {args.steps} (last "
        f"{args.steps - args.burn_in} averaged), η = {args.eta:g}, σ² = {args.sigma2:g}"
    )
    print(
        f"⟨g²⟩ spans {data['g2'].min():.3g} .. {data['g2'].max():.3g}; scored where Eq. 21 is within 1 % of the "
        f"exact fixed point, ⟨g²⟩ <= {hi:.3g}: {n['all']} parameters"
    )
    print("median |predicted / measured - 1| of the time-averaged σ²_post, in %:")
    print(f"  {'':<40s} {'all':>9s}" + "".join(f" {r:>9s}" for r in REGIMES))
    print(f"  {'(parameters)':<40s} {n['all']:>9d}" + "".join(f" {n[r]:>9d}" for r in REGIMES))
    errors = summary["median_relative_error"]
    for key, label in PREDICTIONS.items():
        if key in errors["all"]:
            cells = [errors[w][key] for w in ("all", *REGIMES)]
            print(f"  {label:<40s}" + "".join(f" {'-':>9s}" if c is None else f" {100 * c:9.3f}" for c in cells))
    if mean_learning_rate is None:
        print("  (filtering.stochastic.mean_learning_rate is not installed: skipped)")
    ratio = np.median(data["kalman_rate"] / data["rate"])
    print(f"exact Kalman filter with the true h: median of its σ²_post / AdaBayes's = {ratio:.3f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-simulate-"))
    out.mkdir(parents=True, exist_ok=True)
    h = np.logspace(*args.log10_h, args.n_params)
    data = run_closed_loop(h, args)
    summary = compare(data, args)
    np.savez(out / "simulate.npz", **data)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    (out / "simulate.json").write_text(json.dumps({"config": config, **summary}, indent=2) + "\n", encoding="utf-8")

    print_summary(data, summary, args)
    print(f"wrote {out / 'simulate.npz'} and {out / 'simulate.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
