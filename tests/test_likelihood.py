"""Log-likelihood of gradient streams (filtering.likelihood) against pykalman, simdkalman and a brute-force
multivariate-normal density of the whole sequence."""

from __future__ import annotations

import numpy as np
import pytest
import simdkalman
import simdkalman.primitives as sk
from pykalman import KalmanFilter as PykalmanKalmanFilter
from pykalman import standard as pks
from scipy.stats import multivariate_normal

from filtering import kalman_step as ks
from filtering import likelihood as lik
from filtering import ou
from filtering import state_space as ss

ETA, SIGMA2 = 0.05, 0.1
STEPS, N = 60, 5
LOG_2PI = np.log(2 * np.pi)


def _problem(seed: int, steps: int = STEPS, n: int = N):
    """Per-step h over 4 decades, OU latents (Eq. 14), gradients at random fixed points μ (Eq. 12)."""
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-2.0, 2.0, size=(steps, n))
    sim = ss.simulate(h, steps, ETA, SIGMA2, rng, mu=rng.standard_normal((steps, n)), time_varying_h=True)
    return sim


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(b), 1e-300)))


# ---------------------------------------------------------------------------------------------------------------
# peers


def _pykalman_loglik(y, h, a, q, r, mean0, var0):
    """pykalman on y/sqrt(h) = sqrt(h) w* + N(0, r) (its log-likelihood needs a constant observation covariance),
    mapped back with the Jacobian -½ Σ log h; its initial state is the t = 0 prior (Eq. 17)."""
    out = np.empty(y.shape[1])
    for i in range(y.shape[1]):
        kf = PykalmanKalmanFilter(
            transition_matrices=[[a]],
            observation_matrices=np.sqrt(h[:, i]).reshape(-1, 1, 1),
            transition_covariance=[[q]],
            observation_covariance=[[r]],
            initial_state_mean=[a * mean0],
            initial_state_covariance=[[a * a * var0 + q]],
        )
        out[i] = kf.loglikelihood(y[:, i : i + 1] / np.sqrt(h[:, i : i + 1])) - 0.5 * np.log(h[:, i]).sum()
    return out


def _simdkalman_loglik(y, h, a, q, r, mean0, var0):
    """simdkalman's update primitive with its log-likelihood (which omits the -½ log 2π per step)."""
    n = y.shape[1]
    mean, cov = np.full((n, 1, 1), mean0), np.full((n, 1, 1), var0)
    total = np.zeros(n)
    for t in range(y.shape[0]):
        mean, cov = sk.predict(mean, cov, np.full((n, 1, 1), a), np.full((n, 1, 1), q))
        hmat = h[t].reshape(n, 1, 1)
        mean, cov, _, ll = sk.priv_update_with_nan_check(
            mean, cov, hmat, r * hmat, y[t].reshape(n, 1, 1), log_likelihood=True
        )
        total += ll - 0.5 * LOG_2PI
    return total


def _brute_force_loglik(y, h, a, q, r, mean0, var0):
    """The density of the whole sequence y(0..T-1) as one multivariate normal (scipy), per column."""
    steps = y.shape[0]
    t = np.arange(steps)
    power = a ** (t[:, None] + t[None, :] + 2)
    k = np.minimum(t[:, None], t[None, :])
    # Cov(w_s, w_t) = a^(s+t+2) var0 + q Σ_{j<=min(s,t)} a^(s-j) a^(t-j)
    geometric = np.array([[sum(a ** (s - j) * a ** (u - j) for j in range(k[s, u] + 1)) for u in t] for s in t])
    cov_w = power * var0 + q * geometric
    out = np.empty(y.shape[1])
    for i in range(y.shape[1]):
        d = np.diag(h[:, i])
        cov_y = d @ cov_w @ d + np.diag(r * h[:, i])
        out[i] = multivariate_normal(mean=h[:, i] * a ** (t + 1) * mean0, cov=cov_y).logpdf(y[:, i])
    return out


@pytest.mark.parametrize("peer", [_pykalman_loglik, _simdkalman_loglik], ids=["pykalman", "simdkalman"])
@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("noise_scale", [1.0, 0.3])
def test_loglik_matches_peer(peer, predict, seed, noise_scale):
    sim = _problem(seed)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2, predict))
    ours = lik.kalman_loglik(
        sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, noise_scale=noise_scale, mean0=0.3, var0=0.2, predict=predict
    )
    theirs = peer(sim.y, sim.h, a, q, noise_scale, 0.3, 0.2)
    assert _rel(ours.loglik, theirs) <= 1e-10


def test_loglik_matches_simdkalman_high_level_api():
    """simdkalman's KalmanFilter.compute(log_likelihood=True) with a constant h per column."""
    rng = np.random.default_rng(11)
    h = 10.0 ** rng.uniform(-1.0, 1.0, size=N)
    sim = ss.simulate(h, STEPS, ETA, SIGMA2, rng, mu=np.zeros(N))
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    ours = lik.kalman_loglik(sim.g, h, ETA, SIGMA2, mu=np.zeros(N), mean0=0.1, var0=0.5)
    for i in range(N):
        kf = simdkalman.KalmanFilter(
            state_transition=[[a]], process_noise=[[q]], observation_model=[[h[i]]], observation_noise=[[h[i]]]
        )
        res = kf.compute(
            sim.y[:, i],
            0,
            initial_value=[a * 0.1],
            initial_covariance=[[a * a * 0.5 + q]],
            filtered=False,
            smoothed=False,
            log_likelihood=True,
        )
        theirs = float(np.sum(res.log_likelihood)) - 0.5 * LOG_2PI * STEPS
        assert abs(ours.loglik[i] / theirs - 1) <= 1e-10


@pytest.mark.parametrize("seed", [3, 4])
def test_loglik_equals_brute_force_mvn_density(seed):
    sim = _problem(seed, steps=12, n=3)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    ours = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, noise_scale=0.7, mean0=0.2, var0=0.3)
    # fixed μ: g = y - h μ with y ~ N(h a^(t+1) mean0, D Σ_w D + r diag(h)); the shift has unit Jacobian
    brute = _brute_force_loglik(sim.y, sim.h, a, q, 0.7, 0.2, 0.3)
    assert _rel(ours.loglik, brute) <= 1e-10


def test_paper_setting_density_is_the_pseudo_observation_density():
    """g taken at the filter's own μ_prior: p(g) = p_y(g + h μ_prior(g)) (a triangular map with unit Jacobian)."""
    rng = np.random.default_rng(5)
    h = 10.0 ** rng.uniform(-1.0, 1.0, size=(12, 3))
    sim = ss.simulate(h, 12, ETA, SIGMA2, rng, time_varying_h=True)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    ours = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2)
    brute = _brute_force_loglik(sim.y, sim.h, a, q, 1.0, 0.0, SIGMA2)
    assert _rel(ours.loglik, brute) <= 1e-10
    # and the fixed-μ form with μ = the filter's own μ_prior gives the same number
    fixed = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu)
    assert _rel(fixed.loglik, ours.loglik) <= 1e-13


# ---------------------------------------------------------------------------------------------------------------
# the kernel's own properties


def test_moments_equal_kalman_filter_and_the_primitives():
    sim = _problem(6, steps=200, n=9000)
    res = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, keep="float64")
    ref = ss.kalman_filter(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu)
    assert _rel(res.filtered.var_post, ref.var_post) <= 1e-13
    assert np.max(np.abs(res.filtered.mean_post - ref.mean_post)) <= 1e-13 * np.max(np.abs(ref.mean_post))
    # each step's σ²_post is Eq. 18a of the previous one (Eq. 17b) to rounding
    a, q = ou.transition(ETA, SIGMA2)
    v_prior = ks.predict_variance(res.filtered.var_post[:-1], a * a, q)
    assert _rel(res.filtered.var_post[1:], ks.update_variance(v_prior, sim.h[1:])) <= 4e-16 * 4


@pytest.mark.parametrize("noise_scale", [1.0, 0.37, 12.0])
def test_shared_division_form_of_eq18a_equals_update_variance(noise_scale):
    """The kernel's σ²_prior h / S' (one division shared with the likelihood) against kalman_step.update_variance."""
    rng = np.random.default_rng(18)
    v_prior = 10.0 ** rng.uniform(-12, 6, 100_000)
    h = 10.0 ** rng.uniform(-8, 8, 100_000)
    s = h * (h / noise_scale * v_prior + 1.0)
    ours = lik.posterior_variance(v_prior, h, 1.0 / s)
    exact = ks.update_variance(v_prior, h / noise_scale)
    assert _rel(ours, exact) <= 5 * np.finfo(float).eps


def test_loglik_equals_numpy_reference_from_prior_moments():
    sim = _problem(7, steps=300, n=9000)  # three blocks: the threaded kernel
    for r in (1.0, 2.5):
        res = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, noise_scale=r, keep="float64")
        terms = lik.loglik_from_moments(
            sim.g, sim.h, res.filtered.mean_prior, res.filtered.var_prior, mu=sim.mu, noise_scale=r
        )
        assert _rel(res.loglik, terms.sum(axis=0)) <= 1e-12


def test_extreme_factors_are_logged_one_by_one():
    """Innovation variances far outside 2**±120 (h from 1e-60 to 1e60) do not overflow the windowed product."""
    rng = np.random.default_rng(8)
    h = 10.0 ** rng.uniform(-60, 60, size=(40, 6))
    g = rng.standard_normal(h.shape) * np.sqrt(h)
    res = lik.kalman_loglik(g, h, ETA, SIGMA2, keep="float64")
    terms = lik.loglik_from_moments(g, h, res.filtered.mean_prior, res.filtered.var_prior)
    assert np.isfinite(res.loglik).all()
    assert _rel(res.loglik, terms.sum(axis=0)) <= 1e-12


def test_results_do_not_depend_on_chunks_of_time_or_of_parameters():
    sim = _problem(9, steps=103, n=5000)
    whole = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, keep="float64")
    a, q = ou.transition(ETA, SIGMA2)
    y = sim.g + sim.h * sim.mu
    state = lik.start_state(a, q, 0.0, SIGMA2, n=5000)
    for lo, hi in ((0, 5), (5, 6), (6, 50), (50, 103)):  # windows of 8 steps straddle the chunk edges
        y_chunk, h_chunk = np.ascontiguousarray(y[lo:hi]), np.ascontiguousarray(sim.h[lo:hi])
        lik.advance(state, y_chunk, h_chunk, has_mu=True, parallel=False)  # one block of 5000 vs two threaded
    np.testing.assert_array_equal(state.loglik, whole.loglik)
    np.testing.assert_array_equal(state.mean, whole.filtered.mean_post[-1])
    part = lik.kalman_loglik(sim.g[:, 4000:4100], sim.h[:, 4000:4100], ETA, SIGMA2, mu=sim.mu[:, 4000:4100])
    np.testing.assert_array_equal(part.loglik, whole.loglik[4000:4100])


def test_float32_outputs_and_burn():
    sim = _problem(10)
    full = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, keep="float64")
    small = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, keep="float32")
    assert small.filtered.mean_post.dtype == np.float32
    np.testing.assert_array_equal(small.filtered.var_post, full.filtered.var_post.astype(np.float32))
    np.testing.assert_array_equal(small.loglik, full.loglik)
    burnt = lik.kalman_loglik(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, burn=7)
    terms = lik.loglik_from_moments(sim.g, sim.h, full.filtered.mean_prior, full.filtered.var_prior, mu=sim.mu)
    assert burnt.steps == STEPS - 7
    assert _rel(burnt.loglik, terms[7:].sum(axis=0)) <= 1e-12


def test_constant_h_may_be_given_without_a_time_axis():
    rng = np.random.default_rng(12)
    h = 10.0 ** rng.uniform(-1, 1, size=N)
    g = rng.standard_normal((STEPS, N))
    one = lik.kalman_loglik(g, h, ETA, SIGMA2)
    tiled = lik.kalman_loglik(g, np.tile(h, (STEPS, 1)), ETA, SIGMA2)
    np.testing.assert_array_equal(one.loglik, tiled.loglik)


def test_diffuse_first_step_is_the_limit_of_a_large_prior():
    """var0 = inf: the loglik is the large-var0 limit with the divergent -½ log var0 term (and log a²) removed."""
    sim = _problem(13)
    diffuse = lik.ar1_loglik(sim.g, sim.h, 1.0, 0.01, mu=sim.mu, var0=np.inf)
    big = 1e10
    wide = lik.ar1_loglik(sim.g, sim.h, 1.0, 0.01, mu=sim.mu, var0=big)
    # step 0 of the wide run: -½ log(2π (h² (var0 + q) + h)) → -½ log(2π h²) - ½ log(var0)
    assert np.max(np.abs(wide.loglik + 0.5 * np.log(big) - diffuse.loglik)) <= 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h": -1.0}, "h must be > 0"),
        ({"h": 0.0}, "h must be > 0"),
        ({"noise_scale": 0.0}, "noise_scale"),
        ({"keep": "float16"}, "keep"),
        ({"burn": 61}, "burn"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    args = {"h": 1.0, **kwargs}
    g = np.ones((STEPS, N))
    with pytest.raises(ValueError, match=match):
        lik.kalman_loglik(g, args.pop("h"), ETA, SIGMA2, **args)


def test_non_finite_gradient_is_rejected():
    g = np.ones((STEPS, N))
    g[3, 2] = np.inf
    with pytest.raises(ValueError, match="g finite"):
        lik.kalman_loglik(g, 1.0, ETA, SIGMA2)


# ---------------------------------------------------------------------------------------------------------------
# joint filter


def _joint_problem(seed: int, steps: int, n: int):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    hess = basis @ np.diag(10.0 ** rng.uniform(-1, 1, n)) @ basis.T
    g = rng.standard_normal((steps, n))
    mu = rng.standard_normal((steps, n))
    return hess, g, mu


def test_joint_loglik_matches_pykalman():
    n, steps = 3, 40
    hess, g, mu = _joint_problem(14, steps, n)
    eta, sigma2 = np.array([0.05, 0.1, 0.2]), np.array([0.1, 0.2, 0.3])
    ours, _ = lik.joint_loglik(g, hess, eta, sigma2, mu=mu, mean0=np.full(n, 0.1), var0=np.full(n, 0.2))
    a, q = ou.transition(eta, sigma2)
    y = g + mu @ hess  # pseudo-observations y = g + H μ (H symmetric)
    kf = PykalmanKalmanFilter(
        transition_matrices=np.diag(a),
        observation_matrices=hess,
        transition_covariance=np.diag(q),
        observation_covariance=hess,
        initial_state_mean=a * 0.1,
        initial_state_covariance=np.diag(a * a * 0.2 + q),
    )
    assert abs(ours / kf.loglikelihood(y) - 1) <= 1e-10


def test_joint_loglik_equals_brute_force_mvn_and_scalar_sum():
    n, steps = 2, 6
    hess, g, mu = _joint_problem(15, steps, n)
    a_mat = np.array([[0.9, 0.05], [-0.1, 0.8]])
    q_mat = np.array([[0.02, 0.005], [0.005, 0.03]])
    cov0 = np.array([[0.3, 0.1], [0.1, 0.2]])
    ours, _ = lik.joint_loglik(g, hess, 0.1, 0.1, mu=mu, var0=cov0, transition_matrix=a_mat, process_noise=q_mat)
    # stacked W = (w(0), ..., w(T-1)): Cov(w_s, w_t) = A^(s-t) Cov(w_t) for s >= t
    covs, c = [], cov0
    for _ in range(steps):
        c = a_mat @ c @ a_mat.T + q_mat
        covs.append(c)
    big = np.zeros((n * steps, n * steps))
    for s in range(steps):
        for t in range(s + 1):
            block = np.linalg.matrix_power(a_mat, s - t) @ covs[t]
            big[s * n : (s + 1) * n, t * n : (t + 1) * n] = block
            big[t * n : (t + 1) * n, s * n : (s + 1) * n] = block.T
    hh = np.kron(np.eye(steps), hess)
    cov_g = hh @ big @ hh + hh
    mean_g = -(hh @ mu.reshape(-1))  # E[w] = 0 (mean0 = 0)
    brute = multivariate_normal(mean=mean_g, cov=cov_g).logpdf(g.reshape(-1))
    assert abs(ours / brute - 1) <= 1e-10
    # a diagonal model is N independent scalar streams
    h_diag = np.diag([2.0, 0.5])
    joint, _ = lik.joint_loglik(g, h_diag, np.array([0.05, 0.1]), np.array([0.1, 0.2]), mu=mu)
    scalar = lik.kalman_loglik(g, np.array([2.0, 0.5]), np.array([0.05, 0.1]), np.array([0.1, 0.2]), mu=mu)
    assert abs(joint / scalar.loglik.sum() - 1) <= 1e-12


def test_joint_loglik_rejects_singular_curvature():
    g = np.ones((5, 2))
    with pytest.raises(ValueError, match="positive definite"):
        lik.joint_loglik(g, np.diag([1.0, 0.0]), 0.05, 0.1, var0=np.full(2, 0.1))


# ---------------------------------------------------------------------------------------------------------------
# second-order latent (AR(2) / integrated AR(1))


def test_ar2_loglik_matches_pykalman_two_state_filter():
    rng = np.random.default_rng(16)
    steps, n = 50, 4
    h = 10.0 ** rng.uniform(-1, 1, size=(steps, n))
    g = rng.standard_normal((steps, n)) * 2
    phi1, phi2, q, r, m0, v0 = 1.3, -0.4, 0.05, 0.8, 0.2, 0.5
    ours = lik.ar2_loglik(g, h, phi1, phi2, q, noise_scale=r, mean0=m0, var0=v0, burn=3)
    f = np.array([[phi1, phi2], [1.0, 0.0]])
    for i in range(n):
        z = np.zeros((steps, 1, 2))
        z[:, 0, 0] = np.sqrt(h[:, i])
        # pykalman's filter and per-step log-likelihoods (its initial state is the t = 0 prior, Eq. 17)
        y = g[:, i : i + 1] / np.sqrt(h[:, i : i + 1])  # = sqrt(h) w + N(0, r); Jacobian -½ log h
        pred_m, pred_c, _, _, _ = pks._filter(
            f, z, np.diag([q, 0.0]), np.array([[r]]), np.zeros(2), np.zeros(1), f @ np.array([m0, m0]),
            f @ np.diag([v0, v0]) @ f.T + np.diag([q, 0.0]), y,
        )  # fmt: skip
        per_step = pks._loglikelihoods(z, np.zeros(1), np.array([[r]]), pred_m, pred_c, y)
        theirs = per_step[3:].sum() - 0.5 * np.log(h[3:, i]).sum()
        assert abs(ours[i] / theirs - 1) <= 1e-10


def test_ar2_nests_ou_and_integrated_ar1_nests_random_walk():
    sim = _problem(17)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    first = lik.ar1_loglik(sim.g, sim.h, a, q, mu=sim.mu, mean0=0.1, var0=0.3, burn=2)
    second = lik.ar2_loglik(sim.g, sim.h, a, 0.0, q, mu=sim.mu, mean0=0.1, var0=0.3, burn=2)
    assert _rel(second, first.loglik) <= 1e-11
    rw = lik.ar1_loglik(sim.g, sim.h, 1.0, 0.02, mu=sim.mu, var0=0.3)
    iar = lik.ar2_loglik(sim.g, sim.h, 1.0 + 0.0, -0.0, 0.02, mu=sim.mu, var0=0.3)
    assert _rel(iar, rw.loglik) <= 1e-11


def test_ar2_rejects_bad_curvature():
    # h = 0 for one parameter at each of the 5 steps: 5 bad entries, counted
    with pytest.raises(ValueError, match=r"h must be > 0 and g finite everywhere \(5 entries are not\)"):
        lik.ar2_loglik(np.ones((5, 2)), np.array([1.0, 0.0]), 0.5, 0.1, 0.1, var0=1.0)


def test_ar2_parallel_and_serial_kernels_do_not_share_a_cache_entry():
    """numba keys its disk cache by qualified name: both AR(2) builds once had `_ar2_loops`'s, and the parallel
    one loaded the serial machine code (no speed-up on two threads)."""
    par, ser = lik._AR2_PARALLEL, lik._AR2_SERIAL
    assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")
    assert par.py_func.__qualname__ != ser.py_func.__qualname__
    assert lik._SOURCE_HASH in par.py_func.__qualname__


def test_a_static_latent_q_zero_is_bayesian_regression():
    """q = 0 with a = 1 (w* constant) is allowed: after T steps σ²_post = 1 / (1/var0 + Σ h) (Eq. 18a summed)."""
    rng = np.random.default_rng(30)
    g, h = rng.standard_normal((25, 4)), rng.uniform(0.5, 2.0, (25, 4))
    res = lik.ar1_loglik(g, h, 1.0, 0.0, mu=0.0, var0=0.7, keep="float64")
    np.testing.assert_allclose(res.filtered.var_post[-1], 1.0 / (1.0 / 0.7 + h.sum(axis=0)), rtol=1e-12)


def test_a_single_step_is_one_gaussian_density():
    """T = 1: ℓ = log N(g; 0, S) with S = h² σ²_prior + h (Eqs. 12, 16a), σ²_prior = a² σ² + q (Eq. 17b)."""
    g, h = np.array([[0.3, -1.2]]), np.array([[0.8, 2.5]])
    a, q = ou.transition(ETA, SIGMA2)
    s = h[0] ** 2 * (a * a * SIGMA2 + q) + h[0]
    want = -0.5 * (np.log(2 * np.pi * s) + g[0] ** 2 / s)
    np.testing.assert_allclose(lik.kalman_loglik(g, h, ETA, SIGMA2).loglik, want, rtol=1e-13)


def test_advance_checks_the_chunk_it_is_given():
    state = lik.start_state(0.99, 0.01, 0.0, 1.0, n=3)
    with pytest.raises(ValueError, match=r"obs must have shape \(T, 3\) with T >= 1, got \(2, 4\)"):
        lik.advance(state, np.zeros((2, 4)), np.ones((1, 3)), has_mu=False)
    with pytest.raises(ValueError, match=r"with T >= 1, got \(0, 3\)"):
        lik.advance(state, np.zeros((0, 3)), np.ones((1, 3)), has_mu=False)
