"""The compiled loop behind :func:`filtering.state_space.kalman_filter`: N independent scalar Kalman filters.

Each step calls the primitives of :mod:`filtering.kalman_step` (Eqs. 17a, 17b, 18a, 41), compiled with
``numba.njit(inline="always")`` so that they are inlined into the loop. Time runs inside cache-sized blocks of
parameters; blocks run in parallel when there is more than one.

numba's on-disk cache is keyed by the kernel's qualified name and invalidated only when *this* file changes, not
when an inlined primitive does; the kernels' names therefore carry a hash of :mod:`filtering.kalman_step`'s
source, so an edit there compiles afresh instead of loading a stale kernel.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from . import kalman_step

__all__ = ["BLOCK", "run"]

BLOCK = 4096  # parameters per cache block in the compiled filter (4 KiB of float64 per state array)

_inline = numba.njit(inline="always")
_predict_mean = _inline(kalman_step.predict_mean)
_predict_variance = _inline(kalman_step.predict_variance)
_update_variance = _inline(kalman_step.update_variance)
_pseudo_innovation = _inline(kalman_step.pseudo_innovation)
_update_mean = _inline(kalman_step.update_mean)


def _scalar_filter_loops(innov_or_y, h, a, q, mean0, var0, has_mu, mean_post, var_post):  # pragma: no cover
    # innov_or_y: (T, N) gradients g (paper setting) or pseudo-observations y = g + h mu (fixed mu)
    # h: (T, N); a, q, mean0, var0: (N,); outputs (T, N). Returns the number of bad inputs (h < 0 or NaN,
    # g or y not finite), counted in the loop instead of in extra passes over the data.
    # Rows are sliced once per step and the h check is branch-free, so LLVM vectorises the inner loop.
    steps, n = innov_or_y.shape
    n_blocks = (n + BLOCK - 1) // BLOCK
    bad_h = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        m = mean0[lo:hi].copy()
        v = var0[lo:hi].copy()
        ab = a[lo:hi]
        a2b = ab * ab
        qb = q[lo:hi]
        bad = np.int64(0)
        for t in range(steps):
            obs, ht = innov_or_y[t, lo:hi], h[t, lo:hi]
            m_out, v_out = mean_post[t, lo:hi], var_post[t, lo:hi]
            for j in range(hi - lo):
                hk = ht[j]
                bad += 1 - np.int64(hk >= 0.0) + 1 - np.int64(abs(obs[j]) < np.inf)
                m_prior = _predict_mean(m[j], ab[j])  # Eq. 17a
                v_prior = _predict_variance(v[j], a2b[j], qb[j])  # Eq. 17b
                v_new = _update_variance(v_prior, hk)  # Eq. 18a (this form also holds for σ²_prior = inf)
                # Eq. 41: the innovation is g itself when g was taken at μ_prior, else y - h μ_prior
                innovation = _pseudo_innovation(obs[j], hk, m_prior) if has_mu else obs[j]
                m_new = _update_mean(m_prior, v_new, innovation)  # Eqs. 18b, 41
                m[j], v[j] = m_new, v_new
                m_out[j], v_out[j] = m_new, v_new
        bad_h[b] = bad
    return bad_h.sum()


def _named_copy(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """The same function under another name: numba's on-disk cache is keyed by the qualified name, so two
    compilations of one function would otherwise overwrite each other (the parallel one then ran serially)."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = name
    return clone


# a new name (so a new cache entry) whenever the inlined primitives change
_PRIMITIVES_HASH = hashlib.sha256(Path(kalman_step.__file__).read_bytes()).hexdigest()[:12]

# one body, two compilations: threads pay off only with more than one block (thread start-up costs ~10 ms)
# error_model="numpy": 1/0 gives inf (σ²_prior = inf with h = 0), as in NumPy, instead of raising
scalar_filter_parallel = numba.njit(parallel=True, cache=True, error_model="numpy")(
    _named_copy(_scalar_filter_loops, f"_scalar_filter_parallel_{_PRIMITIVES_HASH}")
)
scalar_filter_serial = numba.njit(cache=True, error_model="numpy")(
    _named_copy(_scalar_filter_loops, f"_scalar_filter_serial_{_PRIMITIVES_HASH}")
)


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
    """Run the filters, writing μ_post and σ²_post into ``mean_out`` and ``var_out``.

    Parameters
    ----------
    observations : ndarray, shape (T, ...)
        Gradients g taken at the filter's own μ_prior (``has_mu=False``) or pseudo-observations ``y = g + h μ``.
    h_t : ndarray, shape (T, ...)
        Curvature.
    a, q, mean0, var0 : ndarray, shape (...)
        OU coefficients (Eq. 14) and the posterior at t = -1.
    has_mu : bool
        Whether ``observations`` are pseudo-observations.
    mean_out, var_out : ndarray, shape (T, ...), C-contiguous float64
        Outputs.

    Returns
    -------
    int
        The number of bad inputs met (h < 0 or NaN, observation not finite); the outputs are not valid if > 0.
    """
    steps = observations.shape[0]
    n = int(np.prod(observations.shape[1:], dtype=np.int64))
    flat = (steps, n)
    kernel = scalar_filter_parallel if n > BLOCK else scalar_filter_serial
    return int(
        kernel(
            np.ascontiguousarray(observations).reshape(flat),
            np.ascontiguousarray(h_t).reshape(flat),
            a.reshape(n),
            q.reshape(n),
            mean0.reshape(n),
            var0.reshape(n),
            has_mu,
            mean_out.reshape(flat),
            var_out.reshape(flat),
        )
    )
