"""Time N independent scalar Kalman filters (Eqs. 17, 18a, 41) against two anchors, in one process.

Ours: :func:`filtering.state_space.kalman_filter` (numba; time runs inside cache-sized blocks of parameters).
Anchors: the plain NumPy loop over time vectorised over N (:func:`filtering.state_space.kalman_filter_reference`)
on the same problem, and simdkalman's ``primitives.predict`` / ``update`` on a smaller problem, compared per
filter-step (one parameter, one time step). Every timing is the median of ``--repeats`` runs after a warm-up;
the outputs are checked against each other before any number is printed. Both filters are timed writing into
preallocated (T, N) outputs (``out=``) and allocating fresh ones (page faults included); the headline ratio
compares the plain loop's faster mode with ours' faster mode, and the same-mode ratios are printed too.

Run:  python benchmarks/filter_speed.py            (N = 1e5, T = 1000, float64, time-varying h)
      python benchmarks/filter_speed.py --n 20000 --steps 200   (a quick look)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
import simdkalman.primitives as sk

from filtering import ou
from filtering import state_space as ss

ETA, SIGMA2 = 1e-3, 1e-3


@numba.njit(parallel=True, cache=True)
def _copy_floor(g, h, out_a, out_b):  # pragma: no cover
    """Move the bytes a filter must move (read g and h, write two outputs) and do nothing else."""
    for t in numba.prange(g.shape[0]):
        out_a[t] = g[t]
        out_b[t] = h[t]


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (and numba compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _simdkalman_filter(g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same filters through simdkalman's vectorised primitives (pseudo-observation y = g + h μ_prior)."""
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    n = g.shape[1]
    mean, cov = np.zeros((n, 1, 1)), np.full((n, 1, 1), SIGMA2)
    transition, noise = np.full((n, 1, 1), a), np.full((n, 1, 1), q)
    means, variances = np.empty_like(g), np.empty_like(g)
    for t in range(g.shape[0]):
        mean, cov = sk.predict(mean, cov, transition, noise)
        hmat = h[t].reshape(n, 1, 1)
        y = g[t].reshape(n, 1, 1) + hmat * mean  # gradient evaluated at μ_prior
        mean, cov = sk.update(mean, cov, hmat, hmat, y)
        means[t], variances[t] = mean[:, 0, 0], cov[:, 0, 0]
    return means, variances


def _problem(steps: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-2.0, 2.0, size=(steps, n))
    g = rng.standard_normal((steps, n)) * np.sqrt(h)
    return g, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="independent filters (default 1e5)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps (default 1000)")
    parser.add_argument("--simd-n", type=int, default=2000, help="filters for the simdkalman anchor")
    parser.add_argument("--simd-steps", type=int, default=200, help="time steps for the simdkalman anchor")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    g, h = _problem(args.steps, args.n, 0)
    ours = ss.kalman_filter(g, h, ETA, SIGMA2)
    mean_ref, var_ref = ss.kalman_filter_reference(g, h, ETA, SIGMA2)
    err_plain = max(
        float(np.max(np.abs(ours.var_post / var_ref - 1))),
        float(np.max(np.abs(ours.mean_post - mean_ref)) / np.max(np.abs(mean_ref))),
    )
    assert err_plain < 1e-12, err_plain
    # filter work alone: both write into the same preallocated outputs
    buffers = (ours.mean_post, ours.var_post)
    t_ours = _median_seconds(lambda: ss.kalman_filter(g, h, ETA, SIGMA2, out=buffers), args.repeats)
    t_plain = _median_seconds(lambda: ss.kalman_filter_reference(g, h, ETA, SIGMA2, out=buffers), args.repeats)
    t_floor = _median_seconds(lambda: _copy_floor(g, h, *buffers), args.repeats)
    # end to end: each call allocates its (T, N) outputs (page faults included)
    del ours, mean_ref, var_ref
    t_ours_alloc = _median_seconds(lambda: ss.kalman_filter(g, h, ETA, SIGMA2), args.repeats)
    t_plain_alloc = _median_seconds(lambda: ss.kalman_filter_reference(g, h, ETA, SIGMA2), args.repeats)

    gs, hs = _problem(args.simd_steps, args.simd_n, 1)
    simd_mean, simd_var = _simdkalman_filter(gs, hs)
    small = ss.kalman_filter(gs, hs, ETA, SIGMA2)
    err_simd = max(
        float(np.max(np.abs(small.var_post / simd_var - 1))),
        float(np.max(np.abs(small.mean_post - simd_mean)) / np.max(np.abs(simd_mean))),
    )
    assert err_simd < 1e-10, err_simd
    t_simd_small = _median_seconds(lambda: _simdkalman_filter(gs, hs), max(1, args.repeats // 2))
    t_ours_small = _median_seconds(lambda: ss.kalman_filter(gs, hs, ETA, SIGMA2), args.repeats)

    per_step = 1e9 / (args.n * args.steps)
    per_step_small = 1e9 / (args.simd_n * args.simd_steps)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "numba_threads": numba.get_num_threads(),
        "problem": f"N={args.n} filters x T={args.steps} steps, float64, time-varying h",
        "ours_out_s": t_ours,
        "ours_alloc_s": t_ours_alloc,
        "plain_out_s": t_plain,
        "plain_alloc_s": t_plain_alloc,
        "copy_floor_s": t_floor,
        "ours_out_over_copy_floor": t_ours / t_floor,
        "speedup_same_mode_out": t_plain / t_ours,
        "speedup_same_mode_alloc": t_plain_alloc / t_ours_alloc,
        # headline, conservative: the plain loop's faster mode against ours' faster mode
        "speedup_vs_plain_numpy_loop": min(t_plain, t_plain_alloc) / min(t_ours, t_ours_alloc),
        "simdkalman_problem": f"N={args.simd_n} x T={args.simd_steps}",
        "ours_ns_per_filter_step": min(t_ours, t_ours_alloc) * per_step,
        "ours_small_ns_per_filter_step": t_ours_small * per_step_small,
        "simdkalman_ns_per_filter_step": t_simd_small * per_step_small,
        "speedup_vs_simdkalman_same_problem": t_simd_small / t_ours_small,
        "max_rel_diff_vs_plain": err_plain,  # means (relative to their max) and variances
        "max_rel_diff_vs_simdkalman": err_simd,
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
