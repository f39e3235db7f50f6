"""Which implementation runs the scalar filters of :func:`filtering.state_space.kalman_filter` (Eqs. 17-18, 41).

Two implementations of one loop give bit-for-bit the same numbers (both evaluate the primitives of
:mod:`filtering.kalman_step` in the same order; tested): a NumPy loop over time, vectorised over parameters, and
the compiled kernel of :mod:`filtering._scalar_kernel`. The compiled kernel is 3-14x faster per call, but its
first call in a process costs about :data:`LOAD_SECONDS` (importing numba, loading the cached machine code), which
is more than the whole of a small filter. The choice is the ski-rental rule: calls run in NumPy while the time
spent there, including the call at hand, stays within :data:`LOAD_SECONDS`; after that the kernel is loaded once
and used for every call. A process that filters a little never imports numba; one that filters a lot pays at most
about twice the best choice made in hindsight.

``ADABAYES_FILTER_PATH=compiled`` (or ``numpy``) in the environment fixes the choice (benchmarks, tests).
"""

from __future__ import annotations

import os
import time

import numpy as np

from . import kalman_step as ks

__all__ = ["ELEMENT_SECONDS", "LOAD_SECONDS", "STEP_SECONDS", "numpy_seconds", "run", "run_numpy"]

#: first call of the compiled kernel in a fresh process, warm disk cache (numba import + load + dispatch):
#: ``python benchmarks/startup.py`` measures 0.8-1.1 s on the project's 2-core box (BENCHMARKS.md)
LOAD_SECONDS = 0.8
#: the NumPy loop's cost model, per time step and per element of a step (same benchmark, sizes 10 to 1e5)
STEP_SECONDS = 12e-6
ELEMENT_SECONDS = 15e-9

_PATHS = ("auto", "compiled", "numpy")


class _Ledger:
    """Time spent in the NumPy loop so far, and whether the compiled kernel has been chosen for good."""

    spent = 0.0
    compiled = False


def numpy_seconds(steps: int, n: int) -> float:
    """Predicted seconds of :func:`run_numpy` on ``steps`` x ``n`` (the cost model above)."""
    return steps * (STEP_SECONDS + ELEMENT_SECONDS * n)


def _path() -> str:
    path = os.environ.get("ADABAYES_FILTER_PATH", "auto").strip().lower() or "auto"
    if path not in _PATHS:
        raise ValueError(f"ADABAYES_FILTER_PATH must be one of {', '.join(_PATHS)}, got {path!r}")
    return path


def _use_compiled(steps: int, n: int) -> bool:
    path = _path()
    if path != "auto":
        return path == "compiled"
    if not _Ledger.compiled and _Ledger.spent + numpy_seconds(steps, n) > LOAD_SECONDS:
        _Ledger.compiled = True
    return _Ledger.compiled


def run(
    observations: np.ndarray,
    h_t: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    mean0: np.ndarray,
    var0: np.ndarray,
    *,
    has_mu: bool,
    mean_out: np.ndarray,
    var_out: np.ndarray,
) -> int:
    """Run the filters on the implementation chosen above, writing μ_post and σ²_post into the outputs.

    Arguments, outputs and the returned count of bad inputs (h < 0 or NaN, observation not finite) are those of
    :func:`filtering._scalar_kernel.run`: ``observations``, ``h_t``, ``mean_out``, ``var_out`` of shape (T, ...),
    the OU coefficients ``a``, ``q`` (Eq. 14) and the t = -1 posterior ``mean0``, ``var0`` of shape (...).
    """
    steps = observations.shape[0]
    n = int(np.prod(observations.shape[1:], dtype=np.int64))
    if _use_compiled(steps, n):
        from . import _scalar_kernel  # imports numba: only here

        return _scalar_kernel.run(
            observations, h_t, a, q, mean0, var0, has_mu=has_mu, mean_out=mean_out, var_out=var_out
        )
    start = time.perf_counter()
    try:
        return run_numpy(observations, h_t, a, q, mean0, var0, has_mu=has_mu, mean_out=mean_out, var_out=var_out)
    finally:
        _Ledger.spent += time.perf_counter() - start


def run_numpy(
    observations: np.ndarray,
    h_t: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    mean0: np.ndarray,
    var0: np.ndarray,
    *,
    has_mu: bool,
    mean_out: np.ndarray,
    var_out: np.ndarray,
) -> int:
    """The NumPy loop: same arguments, outputs and count of bad inputs as the compiled kernel, same bits."""
    steps = observations.shape[0]
    n = int(np.prod(observations.shape[1:], dtype=np.int64))
    obs, h = observations.reshape(steps, n), h_t.reshape(steps, n)
    bad = int(np.count_nonzero(~(h >= 0.0)) + np.count_nonzero(~(np.abs(obs) < np.inf)))
    m_out, v_out = mean_out.reshape(steps, n), var_out.reshape(steps, n)
    a_n, q_n = a.reshape(n), q.reshape(n)
    factor = a_n * a_n
    m, v = mean0.reshape(n), var0.reshape(n)
    with np.errstate(all="ignore"):  # 1/0 = inf (σ²_prior = inf, h = 0), as in the kernel's error model
        for t in range(steps):
            m_prior = ks.predict_mean(m, a_n)  # Eq. 17a
            v = ks.update_variance(ks.predict_variance(v, factor, q_n), h[t])  # Eqs. 17b, 18a
            innovation = ks.pseudo_innovation(obs[t], h[t], m_prior) if has_mu else obs[t]  # Eq. 41
            m = ks.update_mean(m_prior, v, innovation)  # Eqs. 18b, 41
            m_out[t], v_out[t] = m, v
    return bad
