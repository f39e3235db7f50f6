"""Draw a Fig. 3-style plot: AdaBayes's learning rate σ²_post against Adam's, η/sqrt(⟨g²⟩), on the generative model.

Runs the library's generative-model experiment (``simulations.generative.simulate_generative``: AdaBayes and
AdaBayes-FP at their own μ on Eqs. 12-14, N parameters with log-spaced curvatures) at a small size, computes the
curves from ``filtering.fixed_point`` (Eq. 21, the exact fixed point of the recursion) and draws them with
``figures.fig3.draw_fig3``, which adds the SGD line σ² (Eq. 22), the Adam line η/sqrt(⟨g²⟩) (Eq. 24) and the
crossover η/sqrt(⟨g²⟩) = σ². Writes ``fig3.png`` and ``fig3.npz`` (the plotted points and curves) under ``--out``
and prints how far the points lie from Eq. 21 and from each limit.

    python examples/fig3.py                        # 150 parameters, 8000 steps: a few seconds
    python examples/fig3.py --n-params 1500 --steps 20000 --burn-in 6000 --eta 1e-3 --sigma2 1e-3 --log10-h -4 6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")  # draw to files only, before matplotlib is imported

from figures.fig3 import draw_fig3
from figures.style import new_figure, save
from filtering import fixed_point
from simulations.generative import GenerativeConfig, simulate_generative


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--n-params", type=int, default=150, help="number of parameters N (>= 10)")
    parser.add_argument("--steps", type=int, default=8000, help="time steps T")
    parser.add_argument("--burn-in", type=int, default=4000, help="steps not averaged")
    parser.add_argument("--eta", type=float, default=3e-3, help="η (lr): OU process-noise s.d. (Eq. 14)")
    parser.add_argument("--sigma2", type=float, default=1e-2, help="σ² = lr_sgd / B: prior variance (Eq. 23)")
    parser.add_argument("--log10-h", type=float, nargs=2, default=(-4.0, 4.0), help="range of log10 curvature h")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def curves(g2: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """Eq. 21 and the exact fixed point on a log grid of ⟨g²⟩ spanning the measured values."""
    grid = np.logspace(np.log10(g2.min()) - 0.5, np.log10(g2.max()) + 0.5, 400)
    return {
        "grid_g2": grid,
        "grid_eq21": 1.0 / fixed_point.approx_precision(grid, eta, sigma2),  # Eq. 21
        "grid_exact": 1.0 / fixed_point.exact_precision(grid, eta, sigma2),
    }


def median_relative_error(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.median(np.abs(predicted / measured - 1.0)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-fig3-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = GenerativeConfig(
            n_params=args.n_params,
            steps=args.steps,
            burn_in=args.burn_in,
            eta=args.eta,
            sigma2=args.sigma2,
            log10_h=tuple(args.log10_h),
        ).validate()
    except ValueError as exc:
        print(f"fig3.py: error: {exc}", file=sys.stderr)
        return 2
    data = simulate_generative(cfg, np.random.default_rng(args.seed), show_progress=False)
    eta, s2 = cfg.eta, cfg.sigma2
    g2 = {rule: data[f"{rule}_g2"] for rule in ("adabayes", "adabayes_fp")}
    rate = {rule: data[f"{rule}_rate"] for rule in ("adabayes", "adabayes_fp")}
    lines = curves(np.concatenate(list(g2.values())), eta, s2)

    fig, ax = new_figure(width=6.6, height=5.0)
    x = {rule: eta / np.sqrt(g2[rule]) for rule in g2}  # the x-axis of Fig. 3: Adam's learning rate (Eq. 24)
    title = rf"Generative model, $\eta$={eta:g}, $\sigma^2$={s2:g}, N={cfg.n_params}, T={cfg.steps}"
    draw_fig3(ax, x, rate, lines, eta, s2, title)
    png = save(fig, out / "fig3.png")
    np.savez(out / "fig3.npz", eta=eta, sigma2=s2, **{f"{r}_x": x[r] for r in x}, **{f"{r}_rate": rate[r] for r in x},
             **{f"{r}_g2": g2[r] for r in x}, **lines)  # fmt: skip

    valid = fixed_point.eq21_validity_range(eta, s2, rtol=0.01)
    hi = valid[1] if valid is not None else -np.inf
    scored = g2["adabayes"] <= hi
    measured = rate["adabayes"][scored]
    g2_ok = g2["adabayes"][scored]
    print(f"Fig. 3 of AdaBayes on the generative model: N = {cfg.n_params}, η = {eta:g}, σ² = {s2:g}")
    print(f"{scored.sum()} of {cfg.n_params} parameters have ⟨g²⟩ <= {hi:.3g}, where Eq. 21 is within 1 % of the exact")
    print("fixed point; there, median |line / point - 1| of AdaBayes's time-averaged σ²_post:")
    for label, line in (
        ("Eq. 21 fixed point", 1.0 / fixed_point.approx_precision(g2_ok, eta, s2)),
        ("SGD line σ² (Eq. 22), baseline", fixed_point.sgd_limit(np.full_like(g2_ok, s2))),
        ("Adam line η/√⟨g²⟩ (Eq. 24), baseline", fixed_point.adam_limit(g2_ok, eta)),
    ):
        print(f"  {label:<38s} {100 * median_relative_error(line, measured):8.3f} %")
    print(f"wrote {png} and {out / 'fig3.npz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
