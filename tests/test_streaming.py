"""Streaming mode (filtering.streaming) and its Dask version (filtering.distributed): same numbers as the full
filter, bit for bit, on the local scheduler and on a two-worker LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

from filtering import likelihood as lik
from filtering import ou
from filtering import state_space as ss
from filtering.streaming import StreamingFilter, stream_filter

ETA, SIGMA2 = 1e-2, 1e-1


def _data(steps: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-2, 2, size=(steps, n))
    g = rng.standard_normal((steps, n)) * np.sqrt(h)
    return g, h


def _full_filter(g, h):
    """One call over all steps keeping every (T, N) moment, on one thread (the threaded kernel runs the same
    arithmetic per parameter: tests/test_likelihood.py checks blocks and threads against one block)."""
    state = lik.start_state(*ou.transition(ETA, SIGMA2), 0.0, SIGMA2, n=g.shape[1])
    out = (np.empty_like(g), np.empty_like(g))
    lik.advance(state, g, h, has_mu=False, out=out, parallel=False)
    return state, out


def test_streaming_equals_the_full_filter_bit_for_bit():
    g, h = _data(157, 9000, seed=0)
    full, (mean_post, var_post) = _full_filter(g, h)
    ref = ss.kalman_filter(g, h, ETA, SIGMA2)
    chunks = [(g[a:b], h[a:b]) for a, b in ((0, 1), (1, 17), (17, 100), (100, 157))]
    res = stream_filter(chunks, 9000, ETA, SIGMA2)  # 9000 parameters: the threaded kernel
    np.testing.assert_array_equal(res.loglik, full.loglik)  # the same kernel: bit for bit
    np.testing.assert_array_equal(res.mean, mean_post[-1])
    np.testing.assert_array_equal(res.var, var_post[-1])
    # against the filter of filtering.state_space (Eq. 18a in its 1/(1/σ² + h) form): rounding only
    np.testing.assert_allclose(res.var, ref.var_post[-1], rtol=1e-13)
    np.testing.assert_allclose(res.mean, ref.mean_post[-1], rtol=1e-11, atol=1e-13 * np.abs(ref.mean_post).max())
    # running averages: same values, summed in time order
    np.testing.assert_allclose(res.var_avg, ref.var_post.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(res.mean_avg, ref.mean_post.mean(axis=0), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(res.g2_avg, (g**2).mean(axis=0), rtol=1e-13)
    assert res.steps == 157


def test_streaming_with_evaluation_points_and_float32_outputs():
    g, h = _data(60, 50, seed=1)
    mu = np.random.default_rng(2).standard_normal(g.shape)
    full = lik.kalman_loglik(g, h, ETA, SIGMA2, mu=mu, noise_scale=0.5)
    sf = StreamingFilter((5, 10), ETA, SIGMA2, noise_scale=0.5)
    for a in range(0, 60, 7):
        sf.update(g[a : a + 7].reshape(-1, 5, 10), h[a : a + 7].reshape(-1, 5, 10), mu[a : a + 7].reshape(-1, 5, 10))
    res = sf.result()
    np.testing.assert_array_equal(res.loglik.reshape(-1), full.loglik)
    np.testing.assert_allclose(res.g2_avg.reshape(-1), (g**2).mean(axis=0), rtol=1e-13)  # g², not y²
    small = sf.result("float32")
    assert small.var.dtype == np.float32 and small.var.shape == (5, 10)
    with pytest.raises(ValueError, match="every chunk"):
        sf.update(g[:2].reshape(-1, 5, 10), 1.0)


def test_constant_h_without_time_axis_and_single_steps():
    g, _ = _data(30, 20, seed=3)
    h = np.linspace(0.5, 2.0, 20)
    sf = StreamingFilter(20, ETA, SIGMA2)
    for row in g:
        sf.update(row, h)  # one step at a time, no time axis
    full = lik.kalman_loglik(g, h, ETA, SIGMA2)
    np.testing.assert_array_equal(sf.result().loglik, full.loglik)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda sf: sf.update(np.ones((3, 4)), 1.0), r"g must have shape \(T, \*\(5,\)\) with T >= 1"),
        (lambda sf: sf.update(np.ones((0, 5)), 1.0), r"g must have shape .* with T >= 1, got \(0, 5\)"),
        (lambda sf: sf.update(np.ones((3, 5, 1)), 1.0), "g must have shape"),
        (lambda sf: sf.update(np.ones((3, 5)), -1.0), "h must be > 0"),
        (lambda sf: sf.result("float16"), "dtype"),
        (lambda sf: sf.result(), "no steps"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(StreamingFilter(5, ETA, SIGMA2))


def test_a_single_filter_and_exact_or_known_starts():
    """shape 1 is one filter; var0 = inf (exact diffuse) and var0 = 0 (w*(-1) known) are valid starts, each equal
    bit for bit to the in-memory likelihood from the same start."""
    g, h = _data(40, 1, seed=5)
    for var0 in (np.inf, 0.0, None):
        sf = StreamingFilter(1, ETA, SIGMA2, var0=var0)
        sf.update(g, h)
        full = lik.kalman_loglik(g, h, ETA, SIGMA2, var0=var0)
        np.testing.assert_array_equal(sf.result().loglik, full.loglik)


@pytest.mark.parametrize("bad", [np.ones((2, 3), dtype=complex), np.ones((2, 3), dtype=bool), np.full((2, 3), "x")])
def test_non_real_gradients_are_a_type_error(bad):
    with pytest.raises(TypeError, match="g must hold real numbers"):
        StreamingFilter(3, ETA, SIGMA2).update(bad, 1.0)


def test_stream_filter_checks_chunks():
    with pytest.raises(ValueError, match="each chunk"):
        stream_filter([(np.ones((2, 3)),)], 3, ETA, SIGMA2)


# ---------------------------------------------------------------------------------------------------------------
# Dask


def _single_process(g, h):
    return stream_filter([(g[a : a + 64], h[a : a + 64]) for a in range(0, g.shape[0], 64)], g.shape[1], ETA, SIGMA2)


def test_dask_local_scheduler_equals_single_process_bit_for_bit():
    da = pytest.importorskip("dask.array")
    from filtering.distributed import filter_blocks, simulated_gradients

    g_da, h_da = simulated_gradients(130, 10_000, seed=4, block=3000)
    g, h = g_da.compute(), h_da.compute()
    single = _single_process(g, h)
    for block, time_chunk in ((3000, 64), (1234, 50)):
        res = filter_blocks(g_da, h_da, ETA, SIGMA2, block=block, time_chunk=time_chunk)
        np.testing.assert_array_equal(res.stacked(), single.stacked())
    # plain NumPy input and a constant curvature without a time axis
    hc = np.linspace(0.1, 3.0, 10_000)
    res = filter_blocks(da.from_array(g), hc, ETA, SIGMA2, block=4096)
    ref = stream_filter([(g, hc)], 10_000, ETA, SIGMA2)
    np.testing.assert_array_equal(res.stacked(), ref.stacked())


def test_dask_local_cluster_of_two_workers_equals_single_process_bit_for_bit():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    from filtering.distributed import filter_blocks, simulated_gradients

    g_da, h_da = simulated_gradients(80, 6000, seed=5, block=1500)
    single = _single_process(g_da.compute(), h_da.compute())
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cl,
        distributed.Client(cl) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        res = filter_blocks(g_da, h_da, ETA, SIGMA2, block=1500, client=client)
    np.testing.assert_array_equal(res.stacked(), single.stacked())


def test_dask_rejects_bad_shapes():
    pytest.importorskip("dask.array")
    from filtering.distributed import filter_blocks

    with pytest.raises(ValueError, match="h must have shape"):
        filter_blocks(np.ones((5, 4)), np.ones((3, 4)), ETA, SIGMA2)
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        filter_blocks(np.ones(5), 1.0, ETA, SIGMA2)
