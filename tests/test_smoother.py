"""RTS smoothers (filtering.smoother) against pykalman's and simdkalman's smoothers and a brute-force Gaussian
conditional."""

from __future__ import annotations

import numpy as np
import pytest
import simdkalman.primitives as sk
from pykalman import KalmanFilter as PykalmanKalmanFilter
from pykalman import standard as pks

from filtering import likelihood as lik
from filtering import ou
from filtering import state_space as ss
from filtering.smoother import joint_rts_smoother, rts_smoother

ETA, SIGMA2 = 0.05, 0.1
STEPS, N = 50, 4


def _problem(seed: int, steps: int = STEPS, n: int = N):
    rng = np.random.default_rng(seed)
    h = 10.0 ** rng.uniform(-2.0, 2.0, size=(steps, n))
    return ss.simulate(h, steps, ETA, SIGMA2, rng, mu=rng.standard_normal((steps, n)), time_varying_h=True)


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(b), 1e-300)))


def _pykalman_smooth(y, h, a, q, mean0, var0):
    means, variances = np.empty_like(y), np.empty_like(y)
    for i in range(y.shape[1]):
        kf = PykalmanKalmanFilter(
            transition_matrices=[[a]],
            observation_matrices=h[:, i].reshape(-1, 1, 1),
            transition_covariance=[[q]],
            observation_covariance=h[:, i].reshape(-1, 1, 1),
            initial_state_mean=[a * mean0],  # pykalman starts from the t = 0 prior (Eq. 17)
            initial_state_covariance=[[a * a * var0 + q]],
        )
        m, v = kf.smooth(y[:, i : i + 1])
        means[:, i], variances[:, i] = m[:, 0], v[:, 0, 0]
    return means, variances


def _simdkalman_smooth(y, h, a, q, mean0, var0):
    n, steps = y.shape[1], y.shape[0]
    mean, cov = np.full((n, 1, 1), mean0), np.full((n, 1, 1), var0)
    trans, noise = np.full((n, 1, 1), a), np.full((n, 1, 1), q)
    posts = []
    for t in range(steps):
        mean, cov = sk.predict(mean, cov, trans, noise)
        hmat = h[t].reshape(n, 1, 1)
        mean, cov = sk.update(mean, cov, hmat, hmat, y[t].reshape(n, 1, 1))
        posts.append((mean, cov))
    sm, sc = posts[-1]
    means, variances = np.empty_like(y), np.empty_like(y)
    means[-1], variances[-1] = sm[:, 0, 0], sc[:, 0, 0]
    for t in range(steps - 2, -1, -1):
        sm, sc = sk.smooth(posts[t][0], posts[t][1], trans, noise, sm, sc)
        means[t], variances[t] = sm[:, 0, 0], sc[:, 0, 0]
    return means, variances


@pytest.mark.parametrize("peer", [_pykalman_smooth, _simdkalman_smooth], ids=["pykalman", "simdkalman"])
@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scalar_smoother_matches_peer(peer, predict, seed):
    sim = _problem(seed)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2, predict))
    filtered = ss.kalman_filter(sim.g, sim.h, ETA, SIGMA2, mu=sim.mu, mean0=0.3, var0=0.2, predict=predict)
    ours = rts_smoother(filtered)
    means, variances = peer(sim.y, sim.h, a, q, 0.3, 0.2)
    assert _rel(ours.mean, means) <= 1e-10
    assert _rel(ours.var, variances) <= 1e-10


def test_scalar_smoother_is_the_gaussian_conditional_of_the_whole_sequence():
    """Smoothed mean, variance, lag covariance and the t = -1 state from the joint Gaussian of (w*(-1..T-1), y)."""
    steps = 8
    sim = _problem(3, steps=steps, n=1)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    mean0, var0 = 0.2, 0.3
    res = lik.ar1_loglik(sim.g, sim.h, a, q, mu=sim.mu, mean0=mean0, var0=var0, keep="float64")
    ours = rts_smoother(res.filtered)
    # latent x = (w(-1), w(0), ..., w(T-1)): Cov(x_s, x_t) = a^|s-t| Var(x_min(s,t))
    var_x = [var0]
    for _ in range(steps):
        var_x.append(a * a * var_x[-1] + q)
    idx = np.arange(steps + 1)
    cov_x = a ** np.abs(idx[:, None] - idx[None, :]) * np.array(var_x)[np.minimum(idx[:, None], idx[None, :])]
    mean_x = mean0 * a**idx
    z = np.zeros((steps, steps + 1))
    z[np.arange(steps), np.arange(1, steps + 1)] = sim.h[:, 0]
    cov_y = z @ cov_x @ z.T + np.diag(sim.h[:, 0])
    gain = cov_x @ z.T @ np.linalg.inv(cov_y)
    post_mean = mean_x + gain @ (sim.y[:, 0] - z @ mean_x)
    post_cov = cov_x - gain @ z @ cov_x
    assert _rel(ours.mean[:, 0], post_mean[1:]) <= 1e-10
    assert _rel(ours.var[:, 0], np.diag(post_cov)[1:]) <= 1e-10
    assert _rel(ours.lag_cov[:, 0], np.diag(post_cov, k=-1)) <= 1e-10
    assert abs(ours.mean_initial[0] / post_mean[0] - 1) <= 1e-10
    assert abs(ours.var_initial[0] / post_cov[0, 0] - 1) <= 1e-10


def test_smoother_accepts_float32_moments_and_fitted_noise_scale():
    """The backward pass does not depend on the observation model: r != 1 only changes the filtered moments."""
    sim = _problem(4)
    a, q = (float(x) for x in ou.transition(ETA, SIGMA2))
    res = lik.ar1_loglik(sim.g, sim.h, a, q, mu=sim.mu, noise_scale=2.0, var0=SIGMA2, keep="float64")
    ours = rts_smoother(res.filtered)
    kf = PykalmanKalmanFilter(
        transition_matrices=[[a]],
        observation_matrices=sim.h[:, 0].reshape(-1, 1, 1),
        transition_covariance=[[q]],
        observation_covariance=(2.0 * sim.h[:, 0]).reshape(-1, 1, 1),
        initial_state_mean=[0.0],
        initial_state_covariance=[[a * a * SIGMA2 + q]],
    )
    m, v = kf.smooth(sim.y[:, 0:1])
    assert _rel(ours.mean[:, 0], m[:, 0]) <= 1e-10
    assert _rel(ours.var[:, 0], v[:, 0, 0]) <= 1e-10
    low = rts_smoother(lik.ar1_loglik(sim.g, sim.h, a, q, mu=sim.mu, var0=SIGMA2, keep="float32").filtered)
    assert low.mean.dtype == np.float64
    assert (
        _rel(
            low.var,
            rts_smoother(lik.ar1_loglik(sim.g, sim.h, a, q, mu=sim.mu, var0=SIGMA2, keep="float64").filtered).var,
        )
        <= 1e-6
    )


def test_diffuse_start_has_no_smoothed_initial_state():
    sim = _problem(5)
    res = lik.ar1_loglik(sim.g, sim.h, 1.0, 0.01, mu=sim.mu, var0=np.inf, keep="float64")
    ours = rts_smoother(res.filtered)
    assert np.isnan(ours.mean_initial).all()
    assert np.isfinite(ours.mean).all() and np.isfinite(ours.var).all()


def _joint_problem(seed, steps, a_mat, q_mat, cov0):
    """A 3-dimensional w* with a full Hessian H (random basis, eigenvalues 0.1-10), gradients g and evaluation
    points μ drawn after H from one generator; returns ``(hess, y, filtered)`` with y = g + μ H the
    pseudo-observations and the joint filter run from the t = -1 posterior N(0, cov0)."""
    rng = np.random.default_rng(seed)
    n = a_mat.shape[0]
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    hess = basis @ np.diag(10.0 ** rng.uniform(-1, 1, n)) @ basis.T
    g, mu = rng.standard_normal((steps, n)), rng.standard_normal((steps, n))
    filtered = ss.joint_kalman_filter(g, hess, 0.1, 0.1, mu=mu, var0=cov0, transition_matrix=a_mat, process_noise=q_mat)
    return hess, g + mu @ hess, filtered


@pytest.mark.parametrize("seed", [6, 7])
def test_joint_smoother_matches_pykalman(seed):
    n = 3
    a_mat = np.array([[0.9, 0.05, 0.0], [-0.1, 0.8, 0.02], [0.0, 0.03, 0.95]])
    q_mat = np.diag([0.02, 0.03, 0.01])
    cov0 = np.diag([0.3, 0.2, 0.1])
    hess, y, filtered = _joint_problem(seed, 30, a_mat, q_mat, cov0)
    ours = joint_rts_smoother(filtered, a_mat, cov0=cov0)
    kf = PykalmanKalmanFilter(
        transition_matrices=a_mat,
        observation_matrices=hess,
        transition_covariance=q_mat,
        observation_covariance=hess,
        initial_state_mean=np.zeros(n),
        initial_state_covariance=a_mat @ cov0 @ a_mat.T + q_mat,
    )
    m, c = kf.smooth(y)
    assert _rel(ours.mean, m) <= 1e-10
    assert np.max(np.abs(ours.cov - c)) <= 1e-10 * np.max(np.abs(c))
    # lag covariances Cov(x_t, x_{t-1} | all) from pykalman's own smoother helpers
    p0 = a_mat @ cov0 @ a_mat.T + q_mat
    pred_m, pred_c, _, filt_m, filt_c = pks._filter(
        a_mat, hess, q_mat, hess, np.zeros(n), np.zeros(n), np.zeros(n), p0, y
    )
    _, smooth_c, gains = pks._smooth(a_mat, filt_m, filt_c, pred_m, pred_c)
    pairs = pks._smooth_pair(smooth_c, gains)
    assert np.max(np.abs(ours.lag_cov[1:] - pairs[1:])) <= 1e-10 * np.max(np.abs(pairs[1:]))


def test_joint_lag_covariances_including_the_initial_one_are_the_gaussian_conditional():
    """Cov(w(t), w(t-1) | all y) for t = 0..T-1, with a full t = -1 covariance and a non-symmetric A (so that no
    transpose can be dropped), from the joint Gaussian of (w(-1), ..., w(T-1), y) written out block by block."""
    n, steps = 3, 6
    a_mat = np.array([[0.9, 0.3, 0.0], [-0.2, 0.8, 0.1], [0.05, 0.0, 0.95]])
    q_mat = np.array([[0.02, 0.005, 0.0], [0.005, 0.03, 0.0], [0.0, 0.0, 0.01]])
    root = np.random.default_rng(13).standard_normal((n, n))
    cov0 = root @ root.T + 0.1 * np.eye(n)
    hess, _, filtered = _joint_problem(12, steps, a_mat, q_mat, cov0)
    ours = joint_rts_smoother(filtered, a_mat, cov0=cov0)
    # prior of x = (w(-1), ..., w(T-1)), mean 0: Cov(w(i), w(j)) = A^(i-j) V_j for i >= j, V_t = A V_(t-1) Aᵀ + Q
    var = [cov0]
    for _ in range(steps):
        var.append(a_mat @ var[-1] @ a_mat.T + q_mat)
    big = np.zeros((n * (steps + 1), n * (steps + 1)))
    for i in range(steps + 1):
        for j in range(i + 1):
            block = np.linalg.matrix_power(a_mat, i - j) @ var[j]
            big[i * n : (i + 1) * n, j * n : (j + 1) * n] = block
            big[j * n : (j + 1) * n, i * n : (i + 1) * n] = block.T
    # y(t) = H w(t) + N(0, H) adds H to the precision of w(t), t >= 0
    precision = np.linalg.inv(big)
    for t in range(steps):
        precision[(t + 1) * n : (t + 2) * n, (t + 1) * n : (t + 2) * n] += hess
    post = np.linalg.inv(precision)
    want = np.stack([post[(t + 1) * n : (t + 2) * n, t * n : (t + 1) * n] for t in range(steps)])
    assert np.max(np.abs(ours.lag_cov - want)) <= 1e-9 * np.max(np.abs(want))
    covs = np.stack([post[(t + 1) * n : (t + 2) * n, (t + 1) * n : (t + 2) * n] for t in range(steps)])
    assert np.max(np.abs(ours.cov - covs)) <= 1e-9 * np.max(np.abs(covs))


def test_joint_smoother_matches_simdkalman():
    """simdkalman's multivariate predict / update / smooth primitives (one batch of a 3-dimensional state)."""
    n, steps = 3, 25
    a_mat = np.array([[0.95, 0.02, 0.0], [-0.05, 0.85, 0.01], [0.02, 0.0, 0.9]])
    q_mat = np.array([[0.02, 0.004, 0.0], [0.004, 0.03, 0.0], [0.0, 0.0, 0.01]])
    cov0 = np.diag([0.2, 0.3, 0.1])
    hess, y, filtered = _joint_problem(10, steps, a_mat, q_mat, cov0)
    ours = joint_rts_smoother(filtered, a_mat, cov0=cov0)
    trans, noise = a_mat[None], q_mat[None]
    mean, cov = np.zeros((1, n, 1)), cov0[None]  # the t = -1 posterior
    posts = []
    for t in range(steps):
        mean, cov = sk.predict(mean, cov, trans, noise)
        mean, cov = sk.update(mean, cov, hess[None], hess[None], y[t].reshape(1, n, 1))
        posts.append((mean, cov))
    sm, sc = posts[-1]
    means, covs = np.empty((steps, n)), np.empty((steps, n, n))
    means[-1], covs[-1] = sm[0, :, 0], sc[0]
    for t in range(steps - 2, -1, -1):
        sm, sc = sk.smooth(posts[t][0], posts[t][1], trans, noise, sm, sc)
        means[t], covs[t] = sm[0, :, 0], sc[0]
    assert _rel(ours.mean, means) <= 1e-10
    assert np.max(np.abs(ours.cov - covs)) <= 1e-10 * np.max(np.abs(covs))


def test_joint_smoother_with_diagonal_dynamics_equals_scalar_smoothers():
    sim = _problem(8)
    eta, sigma2 = np.array([0.05, 0.1, 0.07, 0.2]), np.array([0.1, 0.2, 0.3, 0.4])
    scalar = rts_smoother(ss.kalman_filter(sim.g, sim.h, eta, sigma2, mu=sim.mu))
    joint_f = ss.joint_kalman_filter(sim.g, np.stack([np.diag(r) for r in sim.h]), eta, sigma2, mu=sim.mu)
    a, _ = ou.transition(eta, sigma2)
    joint = joint_rts_smoother(joint_f, np.diag(a), cov0=np.diag(sigma2))
    diag = np.arange(N)
    assert _rel(joint.mean, scalar.mean) <= 1e-10
    assert _rel(joint.cov[:, diag, diag], scalar.var) <= 1e-10
    assert _rel(joint.lag_cov[:, diag, diag], scalar.lag_cov) <= 1e-10


def test_joint_smoother_checks_the_transition_shape():
    sim = _problem(9, n=2)
    f = ss.joint_kalman_filter(sim.g, np.diag([1.0, 2.0]), 0.05, 0.1)
    with pytest.raises(ValueError, match="transition_matrix"):
        joint_rts_smoother(f, np.eye(3))
