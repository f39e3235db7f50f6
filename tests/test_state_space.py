"""The exact scalar and joint Kalman filters against independent peers and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import simdkalman.primitives as sk
from filterpy.kalman import KalmanFilter as FilterpyKalmanFilter
from pykalman import KalmanFilter as PykalmanKalmanFilter
from scipy.linalg import solve_discrete_are

from filtering import _scalar_kernel, ou
from filtering import state_space as ss

ETA, SIGMA2 = 0.05, 0.1
STEPS, N = 60, 5


def _random_problem(seed: int, predict: str = "paper"):
    """Per-step h spread over 4 decades, gradients evaluated at random fixed points mu."""
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-2.0, 2.0, size=(STEPS, N))
    sim = ss.simulate(
        h, STEPS, ETA, SIGMA2, rng, mu=rng.standard_normal((STEPS, N)), predict=predict, time_varying_h=True
    )
    return sim


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _filterpy(y, h, a, q, mean0, var0):
    means, variances = np.empty_like(y), np.empty_like(y)
    for i in range(y.shape[1]):
        kf = FilterpyKalmanFilter(dim_x=1, dim_z=1)
        kf.x = np.array([[mean0]])
        kf.P = np.array([[var0]])
        kf.F = np.array([[a]])
        kf.Q = np.array([[q]])
        for t in range(y.shape[0]):
            kf.predict()
            kf.update(np.array([[y[t, i]]]), R=np.array([[h[t, i]]]), H=np.array([[h[t, i]]]))
            means[t, i], variances[t, i] = kf.x[0, 0], kf.P[0, 0]
    return means, variances


def _simdkalman(y, h, a, q, mean0, var0):
    n = y.shape[1]
    mean = np.full((n, 1, 1), mean0)
    cov = np.full((n, 1, 1), var0)
    means, variances = np.empty_like(y), np.empty_like(y)
    for t in range(y.shape[0]):
        mean, cov = sk.predict(mean, cov, np.full((n, 1, 1), a), np.full((n, 1, 1), q))
        hmat = h[t].reshape(n, 1, 1)
        mean, cov = sk.update(mean, cov, hmat, hmat, y[t].reshape(n, 1, 1))
        means[t], variances[t] = mean[:, 0, 0], cov[:, 0, 0]
    return means, variances


def _pykalman(y, h, a, q, mean0, var0):
    means, variances = np.empty_like(y), np.empty_like(y)
    for i in range(y.shape[1]):
        kf = PykalmanKalmanFilter(
            transition_matrices=[[a]],
            observation_matrices=h[:, i].reshape(-1, 1, 1),
            transition_covariance=[[q]],
            observation_covariance=h[:, i].reshape(-1, 1, 1),
            initial_state_mean=[a * mean0],  # pykalman's initial state is the t = 0 prior (Eq. 17)
            initial_state_covariance=[[a * a * var0 + q]],
        )
        m, v = kf.filter(y[:, i : i + 1])
        means[:, i], variances[:, i] = m[:, 0], v[:, 0, 0]
    return means, variances


@pytest.mark.parametrize("peer", [_filterpy, _simdkalman, _pykalman], ids=["filterpy", "simdkalman", "pykalman"])
@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scalar_filter_matches_peer(peer, predict, seed):
    sim = _random_problem(seed, predict)
    a, q = ou.transition(ETA, SIGMA2, predict)
    ours = ss.kalman_filter(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, mean0=0.3, var0=0.2, predict=predict)
    means, variances = peer(sim.y, sim.h, float(a), float(q), 0.3, 0.2)
    assert _rel(ours.mean_post, means) <= 1e-10
    assert _rel(ours.var_post, variances) <= 1e-10


def test_paper_setting_is_filter_on_pseudo_observations():
    """With g evaluated at the filter's own mu_prior, the filter equals a peer filter on y = g + h mu_prior."""
    rng = np.random.default_rng(7)
    h = 10.0 ** rng.uniform(-2.0, 2.0, size=(STEPS, N))
    sim = ss.simulate(h, STEPS, ETA, SIGMA2, rng, time_varying_h=True)
    ours = ss.kalman_filter(sim.g, sim.h, ETA, SIGMA2)
    np.testing.assert_allclose(sim.mu, ours.mean_prior, rtol=0, atol=0)
    a, q = ou.transition(ETA, SIGMA2)
    means, variances = _filterpy(sim.y, sim.h, float(a), float(q), 0.0, SIGMA2)
    assert _rel(ours.mean_post, means) <= 1e-10
    assert _rel(ours.var_post, variances) <= 1e-10


def test_numba_kernel_matches_plain_numpy_loop():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((200, 9000)) * 10
    h = 10.0 ** rng.uniform(-3, 3, size=g.shape)
    ours = ss.kalman_filter(g, h, 1e-3, 1e-3)
    mean_ref, var_ref = ss.kalman_filter_reference(g, h, 1e-3, 1e-3)
    assert _rel(ours.var_post, var_ref) <= 1e-13
    assert np.max(np.abs(ours.mean_post - mean_ref)) <= 1e-12 * np.max(np.abs(mean_ref))


def test_priors_follow_eq17():
    sim = _random_problem(4)
    r = ss.kalman_filter(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu)
    a, q = ou.transition(ETA, SIGMA2)
    np.testing.assert_allclose(r.var_prior[1:], a * a * r.var_post[:-1] + q, rtol=1e-15)
    np.testing.assert_allclose(r.var_prior[0], a * a * SIGMA2 + q, rtol=1e-15)
    np.testing.assert_allclose(1 / r.var_post, 1 / r.var_prior + sim.h, rtol=1e-12)  # Eq. 37


def test_joint_filter_with_diagonal_dynamics_equals_scalar_filters():
    rng = np.random.default_rng(5)
    sim = _random_problem(5)
    eta = 10.0 ** rng.uniform(-2, -1, N)
    sigma2 = 10.0 ** rng.uniform(-1, 0, N)
    scalar = ss.kalman_filter(sim.g, sim.h, eta, sigma2, mu=sim.mu)
    h_mats = np.stack([np.diag(row) for row in sim.h])
    joint = ss.joint_kalman_filter(sim.g, h_mats, eta, sigma2, mu=sim.mu)
    diag = np.arange(N)
    assert _rel(joint.mean_post, scalar.mean_post) <= 1e-12
    assert _rel(joint.cov_post[:, diag, diag], scalar.var_post) <= 1e-12
    off = joint.cov_post.copy()
    off[:, diag, diag] = 0
    assert np.max(np.abs(off)) == 0.0


def test_joint_filter_matches_simdkalman_with_full_hessian():
    rng = np.random.default_rng(6)
    n, steps = 4, 40
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    hess = basis @ np.diag(10.0 ** rng.uniform(-2, 2, n)) @ basis.T
    y = rng.standard_normal((steps, n))
    joint = ss.joint_kalman_filter(y, hess, ETA, SIGMA2, mu=np.zeros(n))
    a, q = ou.transition(ETA, SIGMA2)
    mean, cov = np.zeros((n, 1)), SIGMA2 * np.eye(n)
    for t in range(steps):
        mean, cov = sk.predict(mean, cov, float(a) * np.eye(n), float(q) * np.eye(n))
        mean, cov = sk.update(mean, cov, hess, hess, y[t].reshape(n, 1))
        np.testing.assert_allclose(joint.mean_post[t], mean[:, 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(joint.cov_post[t], cov, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("h", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_steady_state_variance_solves_discrete_riccati(h, predict):
    steps = 20000
    r = ss.kalman_filter(np.zeros((steps, 1)), h, ETA, SIGMA2, predict=predict)
    a, q = ou.transition(ETA, SIGMA2, predict)
    # the filter's steady prior covariance is the DARE solution with A -> F^T, B -> H^T
    prior = solve_discrete_are(np.array([[a]]), np.array([[h]]), np.array([[q]]), np.array([[h]]))[0, 0]
    np.testing.assert_allclose(r.var_prior[-1, 0], prior, rtol=1e-10)


def test_simulate_is_reproducible_and_shaped():
    h = np.logspace(-2, 2, 6).reshape(2, 3)
    a = ss.simulate(h, 30, ETA, SIGMA2, 11)
    b = ss.simulate(h, 30, ETA, SIGMA2, np.random.default_rng(11))
    assert a.w_star.shape == a.g.shape == a.mu.shape == (30, 2, 3)
    np.testing.assert_array_equal(a.g, b.g)
    np.testing.assert_allclose(a.g, a.y - a.h * a.mu)  # Eq. 12 at mu


def test_latent_has_ou_stationary_variance():
    w = ss.simulate_latent((20000,), 200, 0.1, 0.5, 0)
    expected = float(ou.stationary_variance(0.1, 0.5))
    # 20000 independent chains: sample variance at the last step within 4 standard errors
    assert abs(w[-1].var() / expected - 1) < 4 * np.sqrt(2 / 20000)
    lag1 = np.mean(w[1:] * w[:-1]) / np.mean(w[:-1] ** 2)
    assert abs(lag1 - ou.transition(0.1, 0.5)[0]) < 2e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": -1.0}, "eta"),
        ({"sigma2": float("nan")}, "sigma2"),
        ({"h": -np.ones((3, 2))}, "h"),
        ({"predict": "euler"}, "predict"),
    ],
)
def test_bad_filter_input_raises(kwargs, match):
    args = {"g": np.zeros((3, 2)), "h": np.ones((3, 2)), "eta": ETA, "sigma2": SIGMA2} | kwargs
    with pytest.raises(ValueError, match=match):
        ss.kalman_filter(**args)


def test_simulate_requires_seed():
    with pytest.raises(ValueError, match="rng"):
        ss.simulate(np.ones(3), 5, ETA, SIGMA2, None)
    with pytest.raises(ValueError, match="steps"):
        ss.simulate(np.ones(3), 0, ETA, SIGMA2, 0)


def test_simulated_gradients_follow_eq12():
    """(g - h (w* - mu)) / sqrt(h) must be standard normal, whatever h and mu."""
    rng = np.random.default_rng(8)
    h = 10.0 ** rng.uniform(-3, 3, size=4000)
    sim = ss.simulate(h, 50, ETA, SIGMA2, rng, mu=rng.standard_normal(4000))
    z = (sim.g - sim.h * (sim.w_star - sim.mu)) / np.sqrt(sim.h)
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    # and the residual is independent of the curvature: same variance in the lowest and highest h decades
    low, high = z[:, h < 1e-2], z[:, h > 1e2]
    assert abs(low.var() - high.var()) < 6 * np.sqrt(2 / min(low.size, high.size))


def test_filters_start_from_the_simulated_prior():
    """With defaults, the filter's first prior is the distribution of the simulated w*(0) (Eq. 17 from N(0, σ²))."""
    a, q = ou.transition(ETA, SIGMA2)
    w0 = ss.simulate_latent((200_000,), 1, ETA, SIGMA2, 9)[0]
    expected = float(a * a * SIGMA2 + q)
    assert abs(w0.var() / expected - 1) < 4 * np.sqrt(2 / w0.size)


def test_infinite_prior_variance_matches_reference():
    rng = np.random.default_rng(10)
    g = rng.standard_normal((20, 6))
    h = 10.0 ** rng.uniform(-2, 2, (20, 6))
    ours = ss.kalman_filter(g, h, ETA, np.inf)
    mean_ref, var_ref = ss.kalman_filter_reference(g, h, ETA, np.inf)
    assert np.isfinite(ours.var_post).all()
    np.testing.assert_allclose(ours.var_post[0], 1 / h[0], rtol=1e-15)  # the first observation alone
    assert _rel(ours.var_post, var_ref) <= 1e-13
    assert _rel(ours.mean_post, mean_ref) <= 1e-12
    no_data = ss.kalman_filter(g[:3], np.zeros((3, 6)), ETA, np.inf)
    assert np.isinf(no_data.var_post).all()  # h = 0 keeps the prior infinite
    with pytest.raises(ValueError, match="var0"):
        ss.joint_kalman_filter(g, np.eye(6), ETA, np.inf)
    joint = ss.joint_kalman_filter(g, np.stack([np.diag(r) for r in h]), ETA, np.inf, var0=1.0)
    scalar = ss.kalman_filter(g, h, ETA, np.inf, var0=1.0)
    assert _rel(joint.mean_post, scalar.mean_post) <= 1e-12


def test_bad_initial_state_and_gradients_raise():
    g, h = np.zeros((3, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match="var0"):
        ss.kalman_filter(g, h, ETA, SIGMA2, var0=-1.0)
    with pytest.raises(ValueError, match="g finite"):
        ss.kalman_filter(np.array([[0.0, np.nan], [0, 0], [0, 0]]), h, ETA, SIGMA2)
    with pytest.raises(ValueError, match="var0"):
        ss.joint_kalman_filter(g, np.eye(2), ETA, SIGMA2, var0=np.eye(3))
    with pytest.raises(ValueError, match="mean0"):
        ss.joint_kalman_filter(g, np.eye(2), ETA, SIGMA2, mean0=[0.0, np.nan])


def test_unstable_ou_is_rejected():
    with pytest.raises(ValueError, match="eta"):
        ss.simulate_latent((3,), 4, 1.0, 0.2, 0)  # η² = 1 >= 2σ² = 0.4: the OU factor of Eq. 14 is negative


def test_parallel_and_serial_kernels_do_not_share_a_cache_entry():
    """numba keys its on-disk cache by qualified name: a shared name made the parallel kernel load the serial one."""
    par, ser = _scalar_kernel.scalar_filter_parallel, _scalar_kernel.scalar_filter_serial
    assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")
    assert par.py_func.__qualname__ != ser.py_func.__qualname__


# --------------------------------------------------------------------------------------------------------------
# validation gaps of issue 13 and the mutants of issue 12


def test_non_symmetric_transition_matrix_matches_filterpy():
    """A rotation-like A (A != Aᵀ) with a full Hessian: Eq. 17b needs A Σ Aᵀ, not A Σ A."""
    rng = np.random.default_rng(12)
    n, steps = 3, 25
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    hess = basis @ np.diag(10.0 ** rng.uniform(-1, 1, n)) @ basis.T
    a_mat = np.array([[0.95, 0.30, 0.0], [-0.20, 0.90, 0.10], [0.0, 0.05, 0.99]])
    q_mat = np.diag([1e-3, 2e-3, 5e-4])
    mu = rng.standard_normal((steps, n))
    g = rng.standard_normal((steps, n))
    joint = ss.joint_kalman_filter(g, hess, ETA, SIGMA2, mu=mu, transition_matrix=a_mat, process_noise=q_mat)
    kf = FilterpyKalmanFilter(dim_x=n, dim_z=n)
    kf.x, kf.P, kf.F, kf.Q = np.zeros((n, 1)), SIGMA2 * np.eye(n), a_mat, q_mat
    for t in range(steps):
        kf.predict()
        np.testing.assert_allclose(joint.cov_prior[t], kf.P, rtol=1e-10, atol=1e-14)
        kf.update((g[t] + hess @ mu[t]).reshape(n, 1), R=hess, H=hess)  # pseudo-observation y = g + H μ
        np.testing.assert_allclose(joint.mean_post[t], kf.x[:, 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(joint.cov_post[t], kf.P, rtol=1e-9, atol=1e-14)


def test_kalman_filter_rejects_an_unstable_ou_step():
    g, h = np.zeros((3, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"eta\*\*2 < 2 \* sigma2"):
        ss.kalman_filter(g, h, 1.0, 0.2)  # η² = 1 >= 2σ² = 0.4: the OU factor of Eq. 14 is negative
    with pytest.raises(ValueError, match=r"eta\*\*2 < 2 \* sigma2"):
        ss.kalman_filter(g, h, [0.1, 1.0], 0.2)  # one unstable parameter is enough
    with pytest.raises(ValueError, match=r"eta\*\*2 < 2 \* sigma2"):
        ss.kalman_filter_reference(g, h, 1.0, 0.2)
    with pytest.raises(ValueError, match=r"eta\*\*2 < 2 \* sigma2"):
        ss.joint_kalman_filter(g, np.eye(2), 1.0, 0.2)
    # the exponential discretisation is stable for every η, and a caller's own A needs no OU check
    assert np.isfinite(ss.kalman_filter(g, h, 1.0, 0.2, predict="exponential").var_post).all()
    joint = ss.joint_kalman_filter(g, np.eye(2), 1.0, 0.2, transition_matrix=np.eye(2))
    assert np.isfinite(joint.cov_post).all()


def test_kalman_filter_rejects_aliased_outputs():
    g, h = np.zeros((4, 3)), np.ones((4, 3))
    o = np.empty((4, 3))
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] must not share memory"):
        ss.kalman_filter(g, h, ETA, SIGMA2, out=(o, o))
    with pytest.raises(ValueError, match=r"out\[0\] must not share memory with the inputs"):
        ss.kalman_filter(g, h, ETA, SIGMA2, out=(g, o))
    with pytest.raises(ValueError, match=r"out\[1\] must not share memory with the inputs"):
        ss.kalman_filter(g, h, ETA, SIGMA2, out=(o, h))
    mu = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"out\[1\] must not share memory with the inputs"):
        ss.kalman_filter(g, h, ETA, SIGMA2, mu=mu, out=(o, mu))
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] must not share memory"):
        ss.kalman_filter_reference(g, h, ETA, SIGMA2, out=(o, o))
    with pytest.raises(ValueError, match="writeable"):
        ro = np.empty((4, 3))
        ro.flags.writeable = False
        ss.kalman_filter(g, h, ETA, SIGMA2, out=(o, ro))
    with pytest.raises(ValueError, match="pair"):
        ss.kalman_filter(g, h, ETA, SIGMA2, out=o)
    buf = np.empty((2, 4, 3))  # two halves of one buffer do not overlap: accepted
    r = ss.kalman_filter(g, h, ETA, SIGMA2, out=(buf[0], buf[1]))
    assert np.shares_memory(r.mean_post, buf[0]) and np.shares_memory(r.var_post, buf[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"g": np.array([[0.0, np.nan]] * 3)}, "g"),
        ({"g": np.array([[0.0, np.inf]] * 3)}, "g"),
        ({"h": -np.ones((3, 2))}, "h"),
        ({"h": np.array([[1.0, np.nan]] * 3)}, "h"),
        ({"eta": 0.0}, "eta"),
        ({"eta": np.nan}, "eta"),
        ({"sigma2": -1.0}, "sigma2"),
        ({"var0": -1.0}, "var0"),
        ({"mean0": np.nan}, "mean0"),
        ({"predict": "euler"}, "predict"),
    ],
)
def test_reference_filter_validates_like_the_compiled_one(kwargs, match):
    args = {"g": np.zeros((3, 2)), "h": np.ones((3, 2)), "eta": ETA, "sigma2": SIGMA2} | kwargs
    with pytest.raises(ValueError, match=match):
        ss.kalman_filter_reference(**args)
    with pytest.raises(ValueError, match=match):
        ss.kalman_filter(**args)


@pytest.mark.parametrize("fn", [ss.kalman_filter, ss.kalman_filter_reference])
@pytest.mark.parametrize("bad", [np.zeros((3, 2), dtype=complex), np.zeros((3, 2), dtype=bool)])
def test_filters_refuse_non_real_gradients(fn, bad):
    with pytest.raises(TypeError, match="g must hold real numbers"):
        fn(bad, np.ones((3, 2)), ETA, SIGMA2)


@pytest.mark.parametrize("h", [0.0, -1.0, np.inf, np.nan])
def test_simulate_needs_positive_finite_curvature(h):
    with pytest.raises(ValueError, match=r"^h must be in \(0, inf\)"):
        ss.simulate(np.array([1.0, h]), 5, ETA, SIGMA2, 0)


def test_simulate_checks_steps_type_and_time_axis():
    with pytest.raises(TypeError, match="steps must be an integer"):
        ss.simulate(np.ones(3), 5.0, ETA, SIGMA2, 0)
    with pytest.raises(ValueError, match="time_varying_h"):
        ss.simulate(np.ones((4, 3)), 5, ETA, SIGMA2, 0, time_varying_h=True)
    with pytest.raises(ValueError, match="w0"):
        ss.simulate_latent((2,), 3, ETA, SIGMA2, 0, w0=[0.0, np.nan])
    w = ss.simulate_latent((2,), 3, ETA, SIGMA2, 0, w0=[1.0, -2.0])
    np.testing.assert_array_equal(w[0], [1.0, -2.0])


# --------------------------------------------------------------------------------------------------------------
# the OU coefficients (filtering.ou) that every filter above starts from


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_ou_coefficients_from_lists_match_eq14(predict):
    eta, sigma2 = [0.1, 0.2, 0.3], [0.5, np.inf, 2.0]
    a, q = ou.transition(eta, sigma2, predict)
    e, s = np.array(eta), np.array(sigma2)
    if predict == "paper":  # Eq. 14
        want_a, want_q = 1 - e**2 / (2 * s), e**2
    else:  # the exact discretisation: decay exp(-η²/(2σ²)), noise σ² (1 - exp(-η²/σ²)); a random walk at σ² = inf
        want_a = np.exp(-(e**2) / (2 * s))
        exact = [s[i] * (1 - np.exp(-(e[i] ** 2) / s[i])) for i in (0, 2)]
        want_q = np.array([exact[0], e[1] ** 2, exact[1]])
    np.testing.assert_allclose(a, want_a, rtol=1e-14)
    np.testing.assert_allclose(q, want_q, rtol=1e-12)
    finite = np.isfinite(s)
    stationary = ou.stationary_variance(list(e[finite]), list(s[finite]), predict)  # lists: array_like
    np.testing.assert_allclose(stationary, want_q[finite] / (1 - want_a[finite] ** 2), rtol=1e-10)  # q / (1 - a²)
    factor, noise = ou.variance_predict_coefficients(0.1, 0.5, predict)
    np.testing.assert_allclose([factor, noise], [want_a[0] ** 2, want_q[0]], rtol=1e-14)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ou.transition(ETA, SIGMA2, "euler"),
        lambda: ou.stationary_variance(ETA, SIGMA2, "euler"),
        lambda: ou.variance_predict_coefficients(ETA, SIGMA2, "euler"),
        lambda: ou.broadcast_transition(ETA, SIGMA2, (2,), "euler"),
    ],
)
def test_ou_functions_refuse_an_unknown_discretisation(call):
    with pytest.raises(ValueError, match="predict must be one of"):
        call()


def test_filters_check_shapes():
    h = np.ones((3, 2))
    for bad_g in (np.zeros((0, 2)), np.float64(0.0)):
        with pytest.raises(ValueError, match=r"g must have shape \(T, \.\.\.\) with T >= 1"):
            ss.kalman_filter(bad_g, h, ETA, SIGMA2)
    with pytest.raises(ValueError, match="time_varying_h"):
        ss.simulate(np.float64(1.0), 3, ETA, SIGMA2, 0, time_varying_h=True)
    g = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"g must have shape \(T, n\)"):
        ss.joint_kalman_filter(np.zeros(3), np.eye(2), ETA, SIGMA2)
    with pytest.raises(ValueError, match=r"h must have shape \(2, 2\) or \(3, 2, 2\)"):
        ss.joint_kalman_filter(g, np.eye(3), ETA, SIGMA2)
    for name in ("transition_matrix", "process_noise"):
        with pytest.raises(ValueError, match=rf"{name} must have shape \(2, 2\)"):
            ss.joint_kalman_filter(g, np.eye(2), ETA, SIGMA2, **{name: np.eye(3)})


def test_joint_filter_initial_state_and_time_varying_hessian():
    """A full var0 and mean0 are used as given; h of shape (T, n, n) is read step by step (Eqs. 17, 18a, 41)."""
    rng = np.random.default_rng(13)
    steps, n = 4, 2
    g = rng.standard_normal((steps, n))
    h = np.stack([np.diag(10.0 ** rng.uniform(-1, 1, n)) for _ in range(steps)])
    var0 = np.array([[0.2, 0.05], [0.05, 0.1]])
    mean0 = np.array([0.3, -0.4])
    joint = ss.joint_kalman_filter(g, h, ETA, SIGMA2, mean0=mean0, var0=var0)
    a, q = ou.transition(ETA, SIGMA2)
    m, cov = mean0, var0
    for t in range(steps):  # the textbook filter on y = g + H μ_prior, written out
        m_prior, cov_prior = a * m, a * a * cov + q * np.eye(n)
        gain = cov_prior @ h[t] @ np.linalg.inv(h[t] @ cov_prior @ h[t] + h[t])
        cov = (np.eye(n) - gain @ h[t]) @ cov_prior
        m = m_prior + gain @ (g[t] + h[t] @ m_prior - h[t] @ m_prior)
        np.testing.assert_allclose(joint.mean_prior[t], m_prior, rtol=1e-12)
        np.testing.assert_allclose(joint.mean_post[t], m, rtol=1e-10)
        np.testing.assert_allclose(joint.cov_post[t], cov, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": 0}, "steps"), ({"eta": -0.1}, "eta"), ({"sigma2": 0.0}, "sigma2"), ({"sigma2": np.inf}, "sigma2")],
)
def test_simulate_latent_checks_its_parameters(kwargs, match):
    args = {"shape": (2,), "steps": 3, "eta": ETA, "sigma2": SIGMA2, "rng": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        ss.simulate_latent(**args)


def test_simulation_draws_follow_eqs_12_and_14_in_order():
    """The generative recipe written inline with the same generator: w*(-1) ~ N(0, σ²), then Eq. 14, then Eq. 12."""
    shape, steps, eta, sigma2 = (3,), 6, 0.2, 0.5
    h = np.array([0.5, 2.0, 8.0])
    mu = np.array([0.1, -0.2, 0.3])
    sim = ss.simulate(h, steps, eta, sigma2, 21, mu=mu)
    rng = np.random.default_rng(21)
    a, q = 1 - eta**2 / (2 * sigma2), eta**2
    w = [a * rng.standard_normal(shape) * np.sqrt(sigma2) + rng.standard_normal(shape) * np.sqrt(q)]
    noise = rng.standard_normal((steps - 1, *shape)) * np.sqrt(q)
    for t in range(1, steps):
        w.append(a * w[-1] + noise[t - 1])
    w = np.array(w)
    y = h * w + np.sqrt(h) * rng.standard_normal((steps, *shape))
    np.testing.assert_allclose(sim.w_star, w, rtol=1e-14)
    np.testing.assert_allclose(sim.y, y, rtol=1e-14)
    np.testing.assert_allclose(sim.g, y - h * mu, rtol=1e-13, atol=1e-15)


def test_one_dimensional_gradients_are_one_scalar_filter():
    rng = np.random.default_rng(22)
    g, h = rng.standard_normal(8), 10.0 ** rng.uniform(-1, 1, 8)
    one = ss.kalman_filter(g, h, ETA, SIGMA2)
    column = ss.kalman_filter(g[:, None], h[:, None], ETA, SIGMA2)
    assert one.mean_post.shape == (8,)
    np.testing.assert_array_equal(one.mean_post, column.mean_post[:, 0])
    np.testing.assert_array_equal(one.var_post, column.var_post[:, 0])


def test_infinite_curvature_gives_certainty():
    """h = inf at a step: σ²_post = 0 there (Eq. 18a), and μ_post = μ_prior since σ²_post g = 0."""
    g = np.array([[0.5], [1.0], [-2.0]])
    h = np.array([[1.0], [np.inf], [1.0]])
    r = ss.kalman_filter(g, h, ETA, SIGMA2)
    assert r.var_post[1, 0] == 0.0
    assert r.mean_post[1, 0] == r.mean_prior[1, 0]
    assert r.var_post[2, 0] > 0.0


def test_kalman_filter_checks_out_arrays():
    g, h = np.zeros((4, 3)), np.ones((4, 3))
    o = np.empty((4, 3))
    for bad in ((o, np.empty((4, 3)), np.empty((4, 3))), np.empty((2, 4, 3))):
        with pytest.raises(ValueError, match="pair"):
            ss.kalman_filter(g, h, ETA, SIGMA2, out=bad)
    for bad in (np.empty((4, 2)), np.empty((4, 3), dtype=np.float32), [[0.0] * 3] * 4):
        with pytest.raises(ValueError, match=r"out\[1\] must be a float64 ndarray of shape \(4, 3\)"):
            ss.kalman_filter(g, h, ETA, SIGMA2, out=(o, bad))
    with pytest.raises(ValueError, match="C-contiguous"):
        ss.kalman_filter(g, h, ETA, SIGMA2, out=(np.empty((3, 4)).T, o))


@pytest.mark.parametrize(
    ("g", "error"),
    [
        (np.array([[0.0, np.nan]] * 3), ValueError),
        (np.array([[0.0, np.inf]] * 3), ValueError),
        (np.zeros((3, 2), dtype=complex), TypeError),
    ],
)
def test_joint_filter_checks_gradients(g, error):
    with pytest.raises(error, match="g must"):
        ss.joint_kalman_filter(g, np.eye(2), ETA, SIGMA2)


def test_compiled_filter_counts_bad_gradients_and_curvatures_in_one_pass():
    """g may hold inf/NaN on entry: the compiled loop counts bad g and bad h together (one pass over the data),
    so one inf gradient and one negative curvature are reported as 2 bad entries in a single message."""
    g, h = np.zeros((3, 2)), np.ones((3, 2))
    g[1, 0], h[2, 1] = np.inf, -1.0
    with pytest.raises(ValueError, match=r"^h must be >= 0 and g finite everywhere \(2 entries are not\)$"):
        ss.kalman_filter(g, h, ETA, SIGMA2)
    g[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"\(2 entries are not\)$"):
        ss.kalman_filter(g, h, ETA, SIGMA2)
    h[2, 1] = np.nan  # a NaN curvature is counted by the loop too
    with pytest.raises(ValueError, match=r"\(2 entries are not\)$"):
        ss.kalman_filter(g, h, ETA, SIGMA2)


def test_zero_initial_variance_is_a_certain_start():
    """var0 = 0 (closed end of its range): σ²_prior(0) = q, σ²_post(0) = q / (1 + q h), μ_post(0) = a μ0 + σ²_post g
    (Eqs. 17, 18a, 18b written out for one step of the paper's OU)."""
    g, h, mean0 = np.array([[0.4, -1.5]]), np.array([[2.0, 0.5]]), np.array([0.7, -0.2])
    r = ss.kalman_filter(g, h, ETA, SIGMA2, mean0=mean0, var0=0.0)
    a, q = 1 - ETA**2 / (2 * SIGMA2), ETA**2
    var_post = q / (1 + q * h[0])
    np.testing.assert_allclose(r.var_post[0], var_post, rtol=1e-14)
    np.testing.assert_allclose(r.mean_post[0], a * mean0 + var_post * g[0], rtol=1e-14)


def test_joint_filter_checks_the_hessian_and_reads_nested_lists():
    """H is checked like g (a NaN or inf Hessian is refused, naming h) and may be given as nested lists."""
    g = np.array([[0.3, -0.1], [0.2, 0.4]])
    for bad in ([[1.0, np.nan], [np.nan, 1.0]], [[np.inf, 0.0], [0.0, 1.0]]):
        with pytest.raises(ValueError, match=r"^h must be in"):
            ss.joint_kalman_filter(g, bad, ETA, SIGMA2)
    with pytest.raises(TypeError, match="h must hold real numbers"):
        ss.joint_kalman_filter(g, np.eye(2, dtype=complex), ETA, SIGMA2)
    from_lists = ss.joint_kalman_filter(g, [[2.0, 0.0], [0.0, 0.5]], ETA, SIGMA2)
    scalar = ss.kalman_filter(g, np.array([2.0, 0.5]), ETA, SIGMA2)  # a diagonal H: two scalar filters
    np.testing.assert_allclose(from_lists.mean_post, scalar.mean_post, rtol=1e-12)


def test_simulate_one_step_follows_the_recipe():
    """steps = 1 (the smallest T): w*(0) is one OU step from w*(-1) ~ N(0, σ²) (Eq. 14), y = h w* + √h ε (Eq. 12)."""
    h, eta, sigma2 = np.array([0.5, 2.0, 8.0]), 0.2, 0.5
    sim = ss.simulate(h, 1, eta, sigma2, 21, mu=np.zeros(3))
    rng = np.random.default_rng(21)
    a, q = 1 - eta**2 / (2 * sigma2), eta**2
    w0 = a * rng.standard_normal(3) * np.sqrt(sigma2) + rng.standard_normal(3) * np.sqrt(q)
    y = h * w0 + np.sqrt(h) * rng.standard_normal((1, 3))
    np.testing.assert_allclose(sim.w_star, w0[None], rtol=1e-14)
    np.testing.assert_allclose(sim.y, y, rtol=1e-14)
    assert ss.simulate(h, 1, eta, sigma2, 21).filtered.mean_post.shape == (1, 3)


def test_simulate_one_parameter_with_a_curvature_per_step():
    """time_varying_h=True with h of shape (T,): a scalar parameter whose curvature changes every step."""
    h = np.array([0.5, 1.0, 2.0, 4.0])
    sim = ss.simulate(h, 4, ETA, SIGMA2, 3, time_varying_h=True)
    assert sim.w_star.shape == (4,)
    np.testing.assert_array_equal(sim.h, h)
    with pytest.raises(ValueError, match="time_varying_h"):
        ss.simulate(h, 5, ETA, SIGMA2, 3, time_varying_h=True)
