"""How the own-gradient prediction of ``adabayes fig3-network`` depends on the gradient window's length.

Usage: ``python tools/fig3_window_length.py RUN/fig3_network.npz [STEP]`` (a run made with
``--gradient-steps 1240``). Keeps the last K of each recorded window (K = 256, 512, 768, 1240) and reruns
:func:`simulations.training.fig3_theory.step_theory` at ``STEP`` (default 1240), printing per K the median ratio,
median and 90 % |log10 ratio| of σ²_post to Eq. 21, Eq. 21 at the memory-weighted mean, the Gaussian and the
empirical-law stochastic predictions, on the testable points and on x ≤ σ².
"""

from __future__ import annotations

import sys

import numpy as np

from simulations.training.fig3_theory import step_theory

KEYS = ("eq21", "eq21_memory", "gaussian_memory", "stochastic")


def main(path: str, step: int = 1240) -> None:
    arrays = dict(np.load(path))
    at_step = arrays["step"] == step
    arrays = {k: (v[at_step] if v.shape[:1] == at_step.shape else v) for k, v in arrays.items()}
    full = arrays["grad_window"]
    for k in (256, 512, 768, full.shape[1]):
        arrays["grad_window"] = full[:, -k:]
        summary = step_theory(arrays, step, 800)["summary"]
        for name, part in (("testable", summary["snapshot_vs"]), ("x<=s2", summary["x_le_sigma2"])):
            cells = "  ".join(
                f"{key} {part[key]['median_ratio']:.3f}/{part[key]['median_abs_log10']:.4f}/"
                f"{part[key]['q90_abs_log10']:.4f}"
                for key in KEYS
            )
            print(f"K={k:5d} {name:8s} {cells}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1240)
