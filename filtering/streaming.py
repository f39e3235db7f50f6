"""Streaming mode: N scalar filters run over time in chunks, keeping only their final state and running averages.

:func:`filtering.state_space.kalman_filter` keeps every (T, N) output -- 16 bytes per filter-step for the
moments alone, about 31 GiB for 10⁶ parameters over 1000 steps once the inputs are counted. A
:class:`StreamingFilter` keeps O(N) memory instead: the posterior after the last step, the log-likelihood so far
(Eqs. 12, 16a; :mod:`filtering.likelihood`) and the running sums of μ_post, σ²_post and g², from which the time
averages ⟨σ²_post⟩ and ⟨g²⟩ of a Fig. 3 are read. Gradients arrive chunk by chunk (generated, loaded or
recorded), so the input need never exist whole either.

The compiled loop is the likelihood kernel of :mod:`filtering.likelihood` (Eqs. 17a, 17b, 18a, 41), so the
results are bit for bit those of one :func:`~filtering.likelihood.kalman_loglik` call over the whole sequence,
whatever the chunking in time or in parameters (:mod:`filtering.distributed` relies on this).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .likelihood import FilterState, advance, start_state
from .ou import broadcast_transition
from .validation import ArgumentTypeError, check_array, check_choice

__all__ = ["StreamingFilter", "StreamingResult", "stream_filter"]

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class StreamingResult:
    """What a streaming run keeps, each of shape (...) (the parameter shape).

    Attributes
    ----------
    loglik : ndarray
        Log-likelihood of the gradients seen (Eqs. 12, 16a).
    mean, var : ndarray
        μ_post and σ²_post after the last step.
    mean_avg, var_avg, g2_avg : ndarray
        Time averages of μ_post, σ²_post and g² over the steps seen.
    steps : int
        Number of time steps seen.
    """

    loglik: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    mean_avg: np.ndarray
    var_avg: np.ndarray
    g2_avg: np.ndarray
    steps: int

    def stacked(self) -> np.ndarray:
        """The six arrays stacked, shape (6, ...), in the order of the attributes."""
        return np.stack([self.loglik, self.mean, self.var, self.mean_avg, self.var_avg, self.g2_avg])


class StreamingFilter:
    """N independent scalar Kalman filters fed chunk by chunk, O(N) memory (Eqs. 12, 14, 17, 18a, 41).

    Parameters
    ----------
    shape : int or tuple of int
        Parameter shape (N = its size).
    eta, sigma2 : array_like, broadcastable to ``shape``
        OU parameters of Eq. 14 (η > 0, σ² in (0, inf]; paper discretisation needs η² < 2σ²).
    noise_scale : array_like
        r > 0 in ``Var[g | w*] = r h`` (Eq. 12: 1).
    mean0, var0 : array_like, optional
        Posterior at t = -1 (default 0 and σ², Alg. 1's start; ``var0 = inf``: exact diffuse first step).
    predict : {"paper", "exponential"}
    parallel : bool, optional
        Threaded kernel (default: when N exceeds one block of 4096); :mod:`filtering.distributed` runs the
        serial one inside each worker.

    Examples
    --------
    >>> sf = StreamingFilter(1000, eta=1e-3, sigma2=1e-3)
    >>> for _ in range(10):
    ...     sf.update(np.random.default_rng(0).standard_normal((100, 1000)), h=1.0)
    >>> sf.result().var_avg.shape
    (1000,)
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        eta: ArrayLike,
        sigma2: ArrayLike,
        *,
        noise_scale: ArrayLike = 1.0,
        mean0: ArrayLike | None = None,
        var0: ArrayLike | None = None,
        predict: str = "paper",
        parallel: bool | None = None,
    ) -> None:
        self.shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        if not self.shape or any(s < 1 for s in self.shape):
            raise ValueError(f"shape must have positive sizes, got {shape!r}")
        n = int(np.prod(self.shape, dtype=np.int64))
        a, q, sigma2_b = broadcast_transition(eta, sigma2, self.shape, predict)
        r = np.broadcast_to(check_array("noise_scale", noise_scale, lower=0.0), self.shape)
        m0 = np.zeros(self.shape) if mean0 is None else np.broadcast_to(check_array("mean0", mean0), self.shape)
        v0 = (
            sigma2_b
            if var0 is None
            else np.broadcast_to(check_array("var0", var0, lower=0.0, allow_equal=True, allow_inf=True), self.shape)
        )
        self.state: FilterState = start_state(
            a.reshape(n), q.reshape(n), m0.reshape(n), v0.reshape(n), noise_scale=r.reshape(n), n=n, accumulate=True
        )
        self.parallel = parallel
        self._has_mu: bool | None = None
        self._g2_sum: np.ndarray | None = None  # Σ g² when the chunks carry μ (the kernel then sums y²)

    @property
    def n(self) -> int:
        """Number of filters N."""
        return int(self.state.mean.shape[0])

    def update(self, g: ArrayLike, h: ArrayLike, mu: ArrayLike | None = None) -> None:
        """Feed the next chunk of time steps.

        Parameters
        ----------
        g : array_like, shape (Tc, ...) or (...) for a single step
            Gradients (finite).
        h : array_like, broadcastable to (Tc, ...)
            Curvature > 0; a value without the time axis is used for every step of the chunk without copying.
        mu : array_like, broadcastable to (Tc, ...), optional
            Where the gradients were taken; ``None`` (the paper's setting) at this filter's own μ_prior. Every
            chunk of one run must make the same choice.
        """
        g_arr = _real_array("g", g)  # values are checked by the kernel, in the same pass as the filter
        if g_arr.shape == self.shape:
            g_arr = g_arr[None]
        if g_arr.shape[1:] != self.shape or g_arr.shape[0] < 1:
            raise ValueError(f"g must have shape (T, *{self.shape}) with T >= 1, got {g_arr.shape}")
        has_mu = mu is not None
        if self._has_mu is None:
            self._has_mu = has_mu
            self._g2_sum = np.zeros(self.n) if has_mu else None
        elif self._has_mu != has_mu:
            raise ValueError("mu must be given for every chunk of a run or for none")
        steps = g_arr.shape[0]
        flat_g = np.ascontiguousarray(g_arr).reshape(steps, self.n)
        h_arr = _real_array("h", h)
        if h_arr.ndim <= len(self.shape):
            h_rows = np.ascontiguousarray(np.broadcast_to(h_arr, self.shape)).reshape(1, self.n)
        else:
            h_rows = np.ascontiguousarray(np.broadcast_to(h_arr, g_arr.shape)).reshape(steps, self.n)
        obs = flat_g
        if mu is not None:
            mu_arr = np.broadcast_to(check_array("mu", mu), g_arr.shape).reshape(steps, self.n)
            obs = flat_g + h_rows * mu_arr  # y = g + h μ (Eq. 41's pseudo-observation)
            assert self._g2_sum is not None
            self._g2_sum += np.einsum("tn,tn->n", flat_g, flat_g)
        advance(self.state, obs, h_rows, has_mu=has_mu, parallel=self.parallel)

    def result(self, dtype: str = "float64") -> StreamingResult:
        """The kept quantities so far, as new arrays of the parameter shape in ``dtype`` ("float64"/"float32")."""
        check_choice("dtype", dtype, DTYPES)
        st = self.state
        if st.steps == 0:
            raise ValueError("no steps seen yet: call update() first")
        assert st.sums is not None
        g2 = st.sums[2] if self._g2_sum is None else self._g2_sum

        def out(x: np.ndarray) -> np.ndarray:
            return np.asarray(x, dtype=dtype).reshape(self.shape)

        return StreamingResult(
            loglik=out(st.loglik),
            mean=out(st.mean),
            var=out(st.var),
            mean_avg=out(st.sums[0] / st.steps),
            var_avg=out(st.sums[1] / st.steps),
            g2_avg=out(g2 / st.steps),
            steps=st.steps,
        )


def _real_array(name: str, x: ArrayLike) -> np.ndarray:
    """``x`` as float64 without a pass over its values (a bool, complex or string dtype is a TypeError)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def stream_filter(
    chunks: Iterable[tuple[ArrayLike, ...]],
    shape: int | tuple[int, ...],
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    noise_scale: ArrayLike = 1.0,
    mean0: ArrayLike | None = None,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    dtype: str = "float64",
    parallel: bool | None = None,
) -> StreamingResult:
    """Run a :class:`StreamingFilter` over an iterable of ``(g, h)`` or ``(g, h, mu)`` chunks and return its result.

    Parameters
    ----------
    chunks : iterable of tuple
        Each ``(g, h)`` (paper setting) or ``(g, h, mu)``, with g of shape (Tc, ...).
    shape, eta, sigma2, noise_scale, mean0, var0, predict, parallel
        As :class:`StreamingFilter`.
    dtype : {"float64", "float32"}
        dtype of the returned arrays (the filter itself runs in float64).
    """
    sf = StreamingFilter(
        shape, eta, sigma2, noise_scale=noise_scale, mean0=mean0, var0=var0, predict=predict, parallel=parallel
    )
    for chunk in chunks:
        if len(chunk) not in (2, 3):
            raise ValueError("each chunk must be (g, h) or (g, h, mu)")
        sf.update(*chunk)
    return sf.result(dtype)
