"""Time N independent scalar Kalman filters (Eqs. 17, 18a, 41) against two anchors, in one process.

Ours: :func:`filtering.state_space.kalman_filter` (numba; time runs inside cache-sized blocks of parameters).
Anchors: the plain NumPy loop over time vectorised over N (:func:`filtering.state_space.kalman_filter_reference`)
on the same problem, and simdkalman's ``primitives.predict`` / ``update`` on a smaller problem, compared per
filter-step (one parameter, one time step). Every timing is the median of ``--repeats`` runs after a warm-up;
the outputs are checked against each other before any number is printed. Both filters are timed writing into
preallocated (T, N) outputs (``out=``) and allocating fresh ones (page faults included); the headline ratio
compares the plain loop's faster mode with ours' faster mode, and the same-mode ratios are printed too.

The likelihood kernel (:mod:`filtering.likelihood`, a sibling of the filter's kernel that also accumulates the
log-likelihood of Eqs. 12, 16a) and the streaming mode (:mod:`filtering.streaming`: no (T, N) outputs, running
averages instead) are timed against ``kalman_filter`` on the same data, interleaved (ours, anchor, ours, ...)
and compared by their fastest runs, which is what survives a loaded machine best. ``--big-stream`` also runs
the streaming filter over 1e6 parameters x 1000 steps in a child process, drawing the gradients chunk by chunk
inside the run, and reports the child's peak resident memory and its time per filter-step against
``kalman_filter`` timed in the same child.

Run:  python benchmarks/filter_speed.py            (N = 1e5, T = 1000, float64, time-varying h)
      python benchmarks/filter_speed.py --n 20000 --steps 200   (a quick look)
      python benchmarks/filter_speed.py --big-stream           (adds the 1e6 x 1000 streaming run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# time the compiled kernel on every call: the ski-rental choice (filtering._filter_choice) would run small
# anchor calls in NumPy (set before filtering is imported; a child process inherits it)
os.environ["ADABAYES_FILTER_PATH"] = "compiled"

import numba
import numpy as np
import simdkalman.primitives as sk

from filtering import likelihood as lik
from filtering import ou
from filtering import state_space as ss
from filtering.streaming import StreamingFilter

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


def _interleaved_min(fns: list[Callable[[], object]], repeats: int) -> tuple[list[float], list[float]]:
    """Fastest of ``repeats`` runs of each function, the functions taking turns (after one warm-up each), on two
    clocks read around the same runs: wall (``time.perf_counter``) and CPU (``time.process_time``, CPU seconds of
    every thread of this process: on a machine shared with other jobs, the work done rather than the time waited
    for a core). Returns ``(wall, cpu)``, one best time per function each."""
    for fn in fns:
        fn()
    wall, cpu = [float("inf")] * len(fns), [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[i] = min(wall[i], time.perf_counter() - start)
            cpu[i] = min(cpu[i], time.process_time() - start_cpu)
    return wall, cpu


def _likelihood_ratios(g: np.ndarray, h: np.ndarray, buffers: tuple[np.ndarray, np.ndarray], repeats: int) -> dict:
    """Per filter-step time of the likelihood kernel and of the streaming mode over kalman_filter's, same data."""
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    n = g.shape[1]

    def anchor() -> None:
        ss.kalman_filter(g, h, ETA, SIGMA2, out=buffers)

    def loglik_keep() -> None:  # writes the same (T, N) moments as the anchor, plus the log-likelihood
        lik.advance(lik.start_state(a, q, 0.0, SIGMA2, n=n), g, h, has_mu=False, out=buffers)

    def loglik_only() -> None:
        lik.advance(lik.start_state(a, q, 0.0, SIGMA2, n=n), g, h, has_mu=False)

    def streaming() -> None:  # chunks of 64 steps, running averages, log-likelihood, final state
        sf = StreamingFilter(n, ETA, SIGMA2)
        for t0 in range(0, g.shape[0], 64):
            sf.update(g[t0 : t0 + 64], h[t0 : t0 + 64])

    # the results agree before anything is timed
    full = lik.kalman_loglik(g, h, ETA, SIGMA2, keep="float64")
    ref = ss.kalman_filter(g, h, ETA, SIGMA2)
    assert np.max(np.abs(full.filtered.var_post / ref.var_post - 1)) < 1e-13  # Eq. 18a's two forms: rounding
    assert np.max(np.abs(full.filtered.mean_post - ref.mean_post)) < 1e-12 * np.max(np.abs(ref.mean_post))
    sf = StreamingFilter(n, ETA, SIGMA2)
    for t0 in range(0, g.shape[0], 64):
        sf.update(g[t0 : t0 + 64], h[t0 : t0 + 64])
    assert np.array_equal(sf.result().loglik, full.loglik)
    out: dict[str, float] = {}
    for suffix, (t_anchor, t_keep, t_only, t_stream) in zip(
        ("", "_cpu"), _interleaved_min([anchor, loglik_keep, loglik_only, streaming], repeats), strict=True
    ):
        out |= {
            f"loglik_kernel_over_kalman_filter{suffix}": t_keep / t_anchor,
            f"loglik_only_over_kalman_filter{suffix}": t_only / t_anchor,
            f"streaming_over_kalman_filter{suffix}": t_stream / t_anchor,
            f"anchor_interleaved_min_s{suffix}": t_anchor,
        }
    return out


def _dask_ratio(steps: int, n: int, block: int, repeats: int) -> dict:
    """The streaming filter over blocks of parameters with Dask's local threaded scheduler against the same
    streaming filter in one process (threaded numba kernel), same in-memory data; results equal bit for bit."""
    import dask
    import dask.array as da

    from filtering.distributed import filter_blocks
    from filtering.streaming import stream_filter

    g, h = _problem(steps, n, 3)
    g_da, h_da = da.from_array(g, chunks=(steps, block)), da.from_array(h, chunks=(steps, block))

    def single() -> object:
        return stream_filter([(g[t : t + 64], h[t : t + 64]) for t in range(0, steps, 64)], n, ETA, SIGMA2)

    def local() -> object:
        return filter_blocks(g_da, h_da, ETA, SIGMA2, block=block, time_chunk=64)

    assert np.array_equal(single().stacked(), local().stacked())  # type: ignore[attr-defined]
    with dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
        (t_single, t_local), (c_single, c_local) = _interleaved_min([single, local], repeats)
    return {
        "dask_problem": f"N={n} x T={steps}, blocks of {block} parameters, local threaded scheduler",
        "dask_single_process_s": t_single,
        "dask_local_s": t_local,
        "dask_local_over_single_process": t_local / t_single,
        "dask_local_over_single_process_cpu": c_local / c_single,
    }


def _anchor_ns_per_step(steps: int, n: int, seed: int) -> tuple[float, float]:
    """kalman_filter's fastest (wall, CPU) time per filter-step (preallocated outputs) on a problem that fits in
    memory."""
    g, h = _problem(steps, n, seed)
    bufs = (np.empty_like(g), np.empty_like(g))
    (wall,), (cpu,) = _interleaved_min([lambda: ss.kalman_filter(g, h, ETA, SIGMA2, out=bufs)], 5)
    return wall * 1e9 / g.size, cpu * 1e9 / g.size


def _big_stream_child(n: int, steps: int, chunk: int, seed: int) -> dict:
    """In a fresh process: kalman_filter per step (1e5 x 100, same process), then the streaming filter over
    n x steps with gradients drawn chunk by chunk into three reused buffers; peak RSS at the end."""
    rng = np.random.default_rng(seed)
    anchor_ns, anchor_cpu_ns = _anchor_ns_per_step(100, 100_000, seed + 1)
    warm = StreamingFilter(2 * lik.BLOCK, ETA, SIGMA2)  # compile (or load) the threaded kernel before timing
    warm.update(np.ones((2, 2 * lik.BLOCK)), 1.0)
    sf = StreamingFilter(n, ETA, SIGMA2)
    g, h, root = np.empty((chunk, n)), np.empty((chunk, n)), np.empty(n)  # one row of sqrt(h) at a time
    kernel_s = draw_s = kernel_cpu_s = 0.0
    for t0 in range(0, steps, chunk):
        rows = min(chunk, steps - t0)
        start = time.perf_counter()
        rng.random(out=h[:rows])  # h = 10^U(-2, 2), g ~ N(0, h), as _problem draws them
        h[:rows] *= 4.0 * np.log(10.0)
        h[:rows] -= 2.0 * np.log(10.0)
        np.exp(h[:rows], out=h[:rows])
        rng.standard_normal(out=g[:rows])
        for row in range(rows):
            np.sqrt(h[row], out=root)
            g[row] *= root
        mid, mid_cpu = time.perf_counter(), time.process_time()
        sf.update(g[:rows], h[:rows])
        kernel_s += time.perf_counter() - mid
        kernel_cpu_s += time.process_time() - mid_cpu
        draw_s += mid - start
    res = sf.result()
    assert np.isfinite(res.loglik).all()
    peak_kib = _peak_rss_kib()
    stream_ns = kernel_s * 1e9 / (n * steps)
    return {
        "big_stream_problem": f"N={n} x T={steps}, chunks of {chunk} steps drawn inside the run",
        "big_stream_peak_rss_mib": peak_kib / 1024,
        "big_stream_kernel_s": kernel_s,
        "big_stream_draw_s": draw_s,
        "big_stream_ns_per_filter_step": stream_ns,
        "big_stream_anchor_ns_per_filter_step": anchor_ns,
        "big_stream_over_kalman_filter": stream_ns / anchor_ns,
        "big_stream_cpu_ns_per_filter_step": kernel_cpu_s * 1e9 / (n * steps),
        "big_stream_anchor_cpu_ns_per_filter_step": anchor_cpu_ns,
        "big_stream_over_kalman_filter_cpu": kernel_cpu_s * 1e9 / (n * steps) / anchor_cpu_ns,
    }


def _peak_rss_kib() -> int:
    """This process's peak resident memory: VmHWM from /proc (getrusage's ru_maxrss survives exec, so a child
    started by a large parent would report the parent's peak); ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _big_stream(n: int, steps: int, chunk: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--big-stream-child", str(n), str(steps), str(chunk)]
    cmd += ["--threads", str(threads)] if threads else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def _anchors(g: np.ndarray, h: np.ndarray, args: argparse.Namespace) -> dict:
    """kalman_filter against the plain NumPy loop, the copy floor and simdkalman; the likelihood ratios."""
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
    likelihood = _likelihood_ratios(g, h, buffers, args.repeats)
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
    return {
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
        **likelihood,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="independent filters (default 1e5)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps (default 1000)")
    parser.add_argument("--simd-n", type=int, default=2000, help="filters for the simdkalman anchor")
    parser.add_argument("--simd-steps", type=int, default=200, help="time steps for the simdkalman anchor")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--big-stream", action="store_true", help="also stream 1e6 params x 1000 steps (child)")
    parser.add_argument("--big-n", type=int, default=1_000_000, help="parameters of the big streaming run")
    parser.add_argument("--big-steps", type=int, default=1000, help="steps of the big streaming run")
    parser.add_argument("--big-chunk", type=int, default=32, help="steps per drawn chunk in the big run")
    parser.add_argument("--big-stream-child", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: numba's, one per core)")
    parser.add_argument("--dask", action="store_true", help="also time Dask's local scheduler vs one process")
    parser.add_argument("--dask-n", type=int, default=400_000, help="parameters of the Dask comparison")
    parser.add_argument("--dask-steps", type=int, default=200, help="steps of the Dask comparison")
    parser.add_argument("--only-ratios", action="store_true", help="skip the plain-loop and simdkalman anchors")
    args = parser.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    if args.big_stream_child:
        print(json.dumps(_big_stream_child(*args.big_stream_child, seed=2)))
        return 0

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "numba_threads": numba.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
    }
    g, h = _problem(args.steps, args.n, 0)
    if args.only_ratios:
        result["problem"] = f"N={args.n} filters x T={args.steps} steps, float64, time-varying h"
        result.update(_likelihood_ratios(g, h, (np.empty_like(g), np.empty_like(g)), args.repeats))
    else:
        result.update(_anchors(g, h, args))
    if args.big_stream:
        result.update(_big_stream(args.big_n, args.big_steps, args.big_chunk, args.threads))
    if args.dask:
        result.update(_dask_ratio(args.dask_steps, args.dask_n, 65536, args.repeats))
    result["load_average_1min_end"] = os.getloadavg()[0]
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
