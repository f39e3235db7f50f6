"""The Kalman primitives against the paper's equations written inline, and every filter against the primitives.

Each reference below is typed from the paper (Eqs. 17a, 17b, 18a, 18b/41, 37-38), not from filtering/.
"""

from __future__ import annotations

import numpy as np
import pytest

from filtering import _filter_choice, _scalar_kernel, kalman_step, ou
from filtering import kalman_step as ks
from filtering import state_space as ss


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------------------------
# scalar primitives


def test_scalar_primitives_are_the_printed_equations():
    rng = _rng(0)
    m, v = rng.standard_normal(50), 10.0 ** rng.uniform(-4, 2, 50)
    a, q, h = rng.uniform(0.5, 1.0, 50), 10.0 ** rng.uniform(-6, -1, 50), 10.0 ** rng.uniform(-3, 3, 50)
    g, mu = rng.standard_normal(50), rng.standard_normal(50)
    np.testing.assert_array_equal(ks.predict_mean(m, a), a * m)  # Eq. 17a
    np.testing.assert_array_equal(ks.predict_variance(v, a * a, q), a * a * v + q)  # Eq. 17b
    v_post = ks.update_variance(v, h)
    np.testing.assert_allclose(1 / v_post, 1 / v + h, rtol=1e-14)  # Eqs. 37-38: precisions add
    np.testing.assert_allclose(v_post, v / (1 + v * h), rtol=1e-14)  # the same in Kalman-gain form
    np.testing.assert_array_equal(ks.update_precision(1 / v, h), 1 / v + h)
    np.testing.assert_allclose(ks.pseudo_innovation(g + h * mu, h, m), g + h * (mu - m), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ks.update_mean(m, v_post, g), m + v_post * g)  # Eqs. 18b, 41
    lam = 10.0 ** rng.uniform(-2, 4, 50)
    want = 1 / (a * a * (1 / lam) + q) + h  # precision after predict (Eq. 17b) and update (Eq. 18a)
    np.testing.assert_allclose(ks.precision_step(lam, a * a, q, h), want, rtol=1e-13)


def test_scalar_primitives_handle_infinite_prior_and_curvature():
    assert ks.update_variance(np.inf, 4.0) == 0.25  # σ²_prior = inf: the first observation alone
    assert ks.update_variance(2.0, np.inf) == 0.0  # h = inf: certainty
    with np.errstate(divide="ignore"):
        assert ks.precision_step(np.float64(0.0), 1.0, 0.1, 3.0) == 3.0  # λ = 0 (σ²_post = inf): prior precision 0
        assert np.isinf(ks.update_variance(np.inf, np.float64(0.0)))  # no data: the prior stays infinite


def test_scalar_primitives_run_on_floats_and_tensors():
    torch = pytest.importorskip("torch")
    assert ks.update_mean(1.0, 0.5, 2.0) == 2.0
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out = ks.update_variance(ks.predict_variance(t, 0.81, 0.01), t * t)
    np.testing.assert_allclose(out.numpy(), 1 / (1 / (0.81 * t.numpy() + 0.01) + t.numpy() ** 2), rtol=1e-15)


# --------------------------------------------------------------------------------------------------------------
# matrix-form primitives


def _spd(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return basis @ np.diag(10.0 ** rng.uniform(low, high, n)) @ basis.T


def test_matrix_primitives_are_the_printed_equations_with_non_symmetric_transition():
    rng = _rng(1)
    n = 4
    cov, q, h = _spd(rng, n, -2, 0), _spd(rng, n, -4, -2), _spd(rng, n, -2, 2)
    a = np.eye(n) + 0.3 * np.triu(rng.standard_normal((n, n)), 1)  # upper triangular: A != Aᵀ
    m, g = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_array_equal(ks.predict_mean_vector(m, a), a @ m)  # Eq. 17a
    want_prior = np.einsum("ij,jk,lk->il", a, cov, a) + q  # A Σ Aᵀ + Q, index by index
    np.testing.assert_allclose(ks.predict_covariance(cov, a, q), want_prior, rtol=1e-13)  # Eq. 17b
    post = ks.update_covariance(want_prior, h)
    np.testing.assert_allclose(post, np.linalg.inv(np.linalg.inv(want_prior) + h), rtol=1e-10)  # Eq. 18a
    np.testing.assert_array_equal(post, post.T)  # symmetrised
    np.testing.assert_allclose(ks.update_mean_vector(m, post, g), m + post @ g, rtol=1e-14)  # Eq. 41


def test_update_covariance_accepts_a_singular_hessian():
    rng = _rng(2)
    cov = _spd(rng, 3, -1, 0)
    h = np.diag([2.0, 0.0, 0.0])  # rank 1: only the first coordinate is observed
    post = ks.update_covariance(cov, h)
    gain = cov[:, :1] / (cov[0, 0] + 1 / 2.0)  # scalar-observation Kalman gain K = Σ e₀ / (Σ₀₀ + R), R = 1/h₀₀
    np.testing.assert_allclose(post, cov - gain @ cov[:1, :], rtol=1e-12)


def test_matrix_primitives_reduce_to_scalar_ones_on_diagonal_matrices():
    rng = _rng(3)
    a, v, q, h = rng.uniform(0.5, 1, 5), rng.uniform(0.1, 1, 5), rng.uniform(0, 0.1, 5), rng.uniform(0, 10, 5)
    prior = ks.predict_covariance(np.diag(v), np.diag(a), np.diag(q))
    np.testing.assert_allclose(np.diag(prior), ks.predict_variance(v, a * a, q), rtol=1e-15)
    post = ks.update_covariance(prior, np.diag(h))
    np.testing.assert_allclose(np.diag(post), ks.update_variance(np.diag(prior), h), rtol=1e-14)
    assert np.count_nonzero(post - np.diag(np.diag(post))) == 0


# --------------------------------------------------------------------------------------------------------------
# every filter against the primitives


def _primitive_loop(obs, h, a, q, mean0, var0, has_mu):
    """The scalar filter as a loop over the primitives, one parameter column at a time."""
    steps, n = obs.shape
    means, variances = np.empty_like(obs), np.empty_like(obs)
    for j in range(n):
        m, v = mean0[j], var0[j]
        for t in range(steps):
            m_prior = ks.predict_mean(m, a[j])
            v = ks.update_variance(ks.predict_variance(v, a[j] * a[j], q[j]), h[t, j])
            innovation = ks.pseudo_innovation(obs[t, j], h[t, j], m_prior) if has_mu else obs[t, j]
            m = ks.update_mean(m_prior, v, innovation)
            means[t, j], variances[t, j] = m, v
    return means, variances


# the two implementations of kalman_filter's loop (filtering._filter_choice picks one per call)
RUNS = {"numba": _scalar_kernel.run, "numpy": _filter_choice.run_numpy}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
@pytest.mark.parametrize("n", [7, _scalar_kernel.BLOCK + 5], ids=["serial", "parallel"])
@pytest.mark.parametrize("has_mu", [False, True])
def test_numba_kernel_and_numpy_loop_are_bitwise_the_primitives(n, has_mu, run):
    rng = _rng(4)
    steps = 12
    obs = rng.standard_normal((steps, n)) * 10.0 ** rng.uniform(-3, 3, n)
    h = 10.0 ** rng.uniform(-3, 3, (steps, n))
    h[3, 0] = 0.0  # no information at one step
    a, q = rng.uniform(0.9, 1.0, n), 10.0 ** rng.uniform(-6, -2, n)
    mean0, var0 = rng.standard_normal(n), 10.0 ** rng.uniform(-3, 0, n)
    var0[1] = np.inf  # σ²_prior = inf before the first step
    mean_out, var_out = np.empty((steps, n)), np.empty((steps, n))
    bad = run(obs, h, a, q, mean0, var0, has_mu=has_mu, mean_out=mean_out, var_out=var_out)
    assert bad == 0
    cols = np.r_[0:7, n - 3 : n] if n > 7 else np.arange(n)  # both ends of the last (partial) block
    want_m, want_v = _primitive_loop(obs[:, cols], h[:, cols], a[cols], q[cols], mean0[cols], var0[cols], has_mu)
    np.testing.assert_array_equal(mean_out[:, cols], want_m)
    np.testing.assert_array_equal(var_out[:, cols], want_v)


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_kernel_counts_bad_inputs(run):
    obs, h = np.zeros((3, 4)), np.ones((3, 4))
    obs[0, 1], obs[2, 2], h[1, 3], h[2, 0] = np.inf, np.nan, -1.0, np.nan
    out = np.empty((2, 3, 4))
    bad = run(obs, h, np.ones(4), np.ones(4), np.zeros(4), np.ones(4), has_mu=False, mean_out=out[0], var_out=out[1])
    assert bad == 4


def test_reference_filter_and_result_priors_are_the_primitives():
    rng = _rng(5)
    g, h = rng.standard_normal((30, 6)), 10.0 ** rng.uniform(-2, 2, (30, 6))
    eta, sigma2 = 0.05, 0.1
    a, q = ou.transition(eta, sigma2)
    a_n, q_n = np.full(6, a), np.full(6, q)
    want_m, want_v = _primitive_loop(g, h, a_n, q_n, np.zeros(6), np.full(6, sigma2), False)
    mean_ref, var_ref = ss.kalman_filter_reference(g, h, eta, sigma2)
    np.testing.assert_array_equal(mean_ref, want_m)
    np.testing.assert_array_equal(var_ref, want_v)
    r = ss.kalman_filter(g, h, eta, sigma2)
    np.testing.assert_array_equal(r.mean_post, want_m)
    prev_m, prev_v = np.vstack([np.zeros((1, 6)), want_m[:-1]]), np.vstack([np.full((1, 6), sigma2), want_v[:-1]])
    np.testing.assert_array_equal(r.mean_prior, ks.predict_mean(prev_m, a))
    np.testing.assert_array_equal(r.var_prior, ks.predict_variance(prev_v, a * a, q))


def test_kernel_cache_names_follow_the_primitives_source():
    """numba does not see edits to inlined functions of another file: the kernels' names carry their hash."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(Path(kalman_step.__file__).read_bytes()).hexdigest()[:12]
    for kernel in (_scalar_kernel.scalar_filter_parallel, _scalar_kernel.scalar_filter_serial):
        assert kernel.py_func.__qualname__.endswith(digest)
