"""The streaming filter over chunks of parameters with Dask: more parameters than one machine's memory holds.

The N parameters are independent filters (Eqs. 17, 18a, 41), so a (T, N) gradient array split into blocks of
columns is N/n_b independent jobs. Each Dask task runs the serial streaming kernel of
:mod:`filtering.streaming` over its block, walking time in chunks, and returns its six kept quantities
(log-likelihood, final μ_post and σ²_post, time averages of μ_post, σ²_post and g²). The kernel's arithmetic
per parameter does not depend on the block it sits in nor on the time chunks, so the result equals the
single-process :func:`filtering.streaming.stream_filter` bit for bit.

Scheduling is Dask's: the local threaded scheduler by default (``dask.compute``), or any
``dask.distributed.Client`` passed as ``client`` (a ``LocalCluster`` or a real cluster). Dask is imported
lazily; it is only needed here.

Gradients can be a ``dask.array`` built lazily (generated chunk by chunk, read from a zarr/HDF5 store ...), so
the whole (T, N) input never exists in one place: the memory of a task is one (T, n_b) block plus O(n_b).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .ou import broadcast_transition
from .streaming import StreamingFilter, StreamingResult
from .validation import check_array, check_int

__all__ = ["filter_blocks", "simulated_gradients"]


def _run_block(g_block, h_block, eta_block, sigma2_block, r_block, m0_block, v0_block, *, time_chunk, predict):
    """One Dask task: the streaming filter over a (T, n_b) block, returning the kept quantities (6, n_b)."""
    n_b = g_block.shape[1]
    var0 = None if np.isnan(v0_block).all() else v0_block[0]
    sf = StreamingFilter(
        n_b,
        eta_block[0],
        sigma2_block[0],
        noise_scale=r_block[0],
        mean0=m0_block[0],
        var0=var0,
        predict=predict,
        parallel=False,
    )
    constant_h = h_block.shape[0] == 1
    for t0 in range(0, g_block.shape[0], time_chunk):
        t1 = min(t0 + time_chunk, g_block.shape[0])
        sf.update(g_block[t0:t1], h_block[0] if constant_h else h_block[t0:t1])
    return sf.result().stacked()


def filter_blocks(
    g: Any,
    h: Any,
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    noise_scale: ArrayLike = 1.0,
    mean0: ArrayLike | None = None,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    block: int = 65536,
    time_chunk: int = 64,
    client: Any = None,
) -> StreamingResult:
    """Streaming filters over blocks of parameters as Dask tasks (paper setting: g taken at μ_prior).

    Parameters
    ----------
    g : dask.array.Array or ndarray, shape (T, N)
        Gradients; rechunked to blocks of ``block`` columns holding all T steps.
    h : dask.array.Array, ndarray or float, shape (T, N), (N,) or scalar
        Curvature > 0 (without a time axis: the same at every step).
    eta, sigma2, noise_scale, mean0, var0 : array_like, broadcastable to (N,)
        As :class:`filtering.streaming.StreamingFilter`.
    predict : {"paper", "exponential"}
    block : int
        Parameters per task.
    time_chunk : int
        Time steps per kernel call inside a task.
    client : dask.distributed.Client, optional
        Where to compute; by default Dask's local threaded scheduler.

    Returns
    -------
    StreamingResult
        Arrays of shape (N,) (float64), equal bit for bit to :func:`filtering.streaming.stream_filter`.
    """
    import dask.array as da

    block = check_int("block", block, lower=1)
    time_chunk = check_int("time_chunk", time_chunk, lower=1)
    g_da = da.asarray(g)
    if g_da.ndim != 2:
        raise ValueError(f"g must have shape (T, N), got {g_da.shape}")
    steps, n = g_da.shape
    g_da = g_da.rechunk((steps, block))
    h_da = _curvature(h, steps, n, block)
    broadcast_transition(eta, sigma2, (n,), predict)  # validate here, before any task runs
    cols = g_da.chunks[1]
    per_param = [
        da.from_array(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,))[None], chunks=((1,), cols))
        for x in (eta, sigma2, noise_scale, 0.0 if mean0 is None else mean0, np.nan if var0 is None else var0)
    ]
    if var0 is not None:
        check_array("var0", var0, lower=0.0, allow_equal=True, allow_inf=True)
    stacked = da.map_blocks(
        _run_block,
        g_da,
        h_da,
        *per_param,
        time_chunk=time_chunk,
        predict=predict,
        chunks=((6,), cols),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    out = client.compute(stacked).result() if client is not None else stacked.compute()
    loglik, mean, var, mean_avg, var_avg, g2_avg = out
    return StreamingResult(loglik, mean, var, mean_avg, var_avg, g2_avg, steps=int(steps))


def _curvature(h: Any, steps: int, n: int, block: int) -> Any:
    """h as a dask array of shape (T, N) or (1, N), chunked like the gradients."""
    import dask.array as da

    h_da = da.asarray(h) if hasattr(h, "chunks") else da.from_array(np.asarray(h, dtype=np.float64))
    if h_da.ndim < 2:
        h_da = da.broadcast_to(h_da, (n,))[None]
    if h_da.shape not in ((steps, n), (1, n)):
        raise ValueError(f"h must have shape ({steps}, {n}), ({n},) or be a scalar, got {h_da.shape}")
    return h_da.rechunk((h_da.shape[0], block))


def simulated_gradients(steps: int, n: int, *, seed: int, block: int = 65536, log10_h: tuple[float, float] = (-2, 2)):
    """Lazy dask arrays ``(g, h)`` of shape (T, N) for benchmarks and tests: h = 10^U(log10_h) per step,
    g ~ N(0, h) (Eq. 12 at the optimum); each block is drawn by its own task from a seeded generator."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    chunks = ((steps,), tuple(min(block, n - i) for i in range(0, n, block)))
    h = 10.0 ** rng.uniform(log10_h[0], log10_h[1], size=(steps, n), chunks=chunks)
    g = rng.standard_normal(size=(steps, n), chunks=chunks) * da.sqrt(h)
    return g, h
