"""Parameter learning (filtering.estimation): recovery of known values with calibrated 95 % intervals, EM, the
maximiser itself and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from filtering import estimation as est
from filtering import likelihood as lik
from filtering import state_space as ss

ETA2, SIGMA2 = 0.01, 0.1


def _simulate(seeds: int, steps: int, seed: int, noise_scale: float = 1.0):
    """One OU stream (Eq. 14) per seed, gradients at μ = 0 with noise variance r h (Eq. 12), h in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.5, 2.0, (steps, seeds))
    w = ss.simulate_latent((seeds,), steps, np.sqrt(ETA2), SIGMA2, rng)
    g = h * w + np.sqrt(noise_scale * h) * rng.standard_normal((steps, seeds))
    return g, h


def test_coverage_of_95_percent_intervals_over_300_seeds():
    """η², σ² and r fitted per seed (all seeds in one vectorised fit): each interval covers the truth 90-99 %."""
    g, h = _simulate(300, 800, seed=20)
    res = est.fit(g, h, model="ou", init="paper")
    assert res.converged.mean() >= 0.99
    truth = {"eta2": ETA2, "sigma2": SIGMA2, "noise_scale": 1.0}
    for name, value in truth.items():
        covered = np.mean((res.ci_low[name] <= value) & (value <= res.ci_high[name]))
        assert 0.90 <= covered <= 0.99, (name, covered)
        # the estimates are centred on the truth (median within 10 %)
        assert abs(np.median(res.params[name]) / value - 1) < 0.1, name
    # delta method: se(p) = p se(log p)
    ok = res.converged
    se_log = np.sqrt(res.cov_log[ok, 0, 0])
    np.testing.assert_allclose(res.stderr["eta2"][ok], res.params["eta2"][ok] * se_log, rtol=1e-12)


def test_fit_matches_scipy_on_a_few_streams():
    """The vectorised Newton maximum equals scipy's Nelder-Mead maximum of the same log-likelihood."""
    g, h = _simulate(4, 400, seed=21, noise_scale=1.5)
    res = est.fit(g, h, model="ou", init="diffuse")
    for i in range(4):

        def neg(theta, i=i):
            eta2, sigma2, r = np.exp(theta)
            a = 1 - eta2 / (2 * sigma2)
            out = lik.ar1_loglik(g[:, i], h[:, i], a, eta2, mu=0.0, noise_scale=r, var0=np.inf)
            return -float(out.loglik)

        start = np.log([res.params[k][i] for k in res.names]) + 0.3
        sp = minimize(neg, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
        assert res.loglik[i] >= -sp.fun - 1e-7
        assert abs(res.loglik[i] + sp.fun) <= 1e-6
        np.testing.assert_allclose(np.log([res.params[k][i] for k in res.names]), sp.x, atol=1e-3)


@pytest.mark.parametrize("model", ["ou", "ar2"])
def test_fits_do_not_depend_on_how_the_perturbed_copies_are_batched(monkeypatch, model):
    """The likelihood's perturbed copies go through the kernel in equal parts, the last padded: with a tile that
    holds 5 copies (so 18 or 32 copies of a Newton step split into padded parts) every number equals the one-call
    fit bit for bit."""
    g, h = _simulate(6, 300, seed=24)
    init = (np.zeros(6), np.full(6, 10.0))  # a second-order prior needs a proper start
    whole = est.fit(g, h, model=model, init=init)
    monkeypatch.setattr(est, "TILE_BYTES", 5 * 300 * 6 * 8)
    monkeypatch.setattr(est, "TILED_KEPT", 1)  # every change of batch rebuilds its tiling
    parts = est.fit(g, h, model=model, init=init)
    np.testing.assert_array_equal(parts.loglik, whole.loglik)
    for name in whole.names:
        np.testing.assert_array_equal(parts.params[name], whole.params[name])


def test_a_burn_in_with_time_varying_h_counts_exactly_the_later_steps():
    """ℓ with ``burn = b`` is log p(y(b..T-1) | y(0..b-1)) = ℓ(all steps) - ℓ(first b steps) (chain rule), each
    side from :func:`filtering.likelihood.ar1_loglik` without a burn-in; h varies in time, so the burn-in must
    hand the filter h's first b rows, not any others."""
    g, h = _simulate(5, 60, seed=25)
    eta2, burn = 0.02, 7
    fun = est._loglik_function(est.observations(g, h), est._Model("random_walk", "paper", 1.0), "diffuse", burn)
    ours = fun(np.log(np.full((1, 5), eta2)), np.arange(5))
    full = lik.ar1_loglik(g, h, 1.0, eta2, mu=0.0, var0=np.inf).loglik
    first = lik.ar1_loglik(g[:burn], h[:burn], 1.0, eta2, mu=0.0, var0=np.inf).loglik
    np.testing.assert_allclose(ours, full - first, rtol=1e-10)


def test_a_known_initial_state_var0_zero_is_accepted():
    """``init=(mean0, 0)``: w*(-1) known exactly is a valid start (var0 = 0 is allowed, as in the filters)."""
    g, h = _simulate(4, 200, seed=26)
    res = est.fit(g, h, model="ou", init=(np.zeros(4), np.zeros(4)))
    assert np.isfinite(res.loglik).all() and res.converged.all()


def test_a_problem_that_stops_improving_stops_after_stall_iterations():
    """A flat objective never converges (its Hessian is not negative definite) and never rises: it stops after
    :data:`STALL` iterations, not at ``max_iter``."""
    opt = est.maximise(lambda theta, _cols: np.zeros(theta.shape[1]), np.zeros((2, 3)), max_iter=100)
    assert opt.iterations == est.STALL and not opt.converged.any()


def test_random_walk_and_fixed_noise_scale():
    rng = np.random.default_rng(22)
    steps, n = 1500, 200
    w = np.cumsum(rng.standard_normal((steps, n)) * np.sqrt(0.02), axis=0)
    h = np.full((steps, n), 2.0)
    g = h * w + np.sqrt(h) * rng.standard_normal((steps, n))
    res = est.fit(g, h, model="random_walk", noise_scale=1.0)
    assert res.names == ("eta2",)
    covered = np.mean((res.ci_low["eta2"] <= 0.02) & (0.02 <= res.ci_high["eta2"]))
    assert 0.90 <= covered <= 0.99


def test_em_never_lowers_the_likelihood():
    g, h = _simulate(12, 600, seed=23)
    res = est.em(g, h, mean0=0.0, var0=SIGMA2, a=0.5, q=0.05, noise_scale=2.0, iterations=60)
    steps = np.diff(res.loglik_trace, axis=0)
    assert steps.min() >= -1e-9 * np.abs(res.loglik_trace).max()
    assert np.all(res.loglik_trace[-1] - res.loglik_trace[0] > 1.0)  # and it does climb
    best = est.fit(g, h, init=(0.0, SIGMA2))
    assert np.all(res.loglik_trace[-1] <= best.loglik + 1e-6)  # the fit is the maximum


def test_em_reaches_the_maximum_likelihood_fit():
    """With informative gradients (h ~ 35) EM converges in ~100 iterations, to the same maximum as fit()."""
    rng = np.random.default_rng(27)
    steps, n = 600, 12
    h = rng.uniform(20, 50, (steps, n))
    w = ss.simulate_latent((n,), steps, 0.1, 0.1, rng)
    g = h * w + np.sqrt(h) * rng.standard_normal((steps, n))
    res = est.em(g, h, mean0=0.0, var0=0.1, a=0.5, q=0.05, noise_scale=2.0, iterations=120)
    best = est.fit(g, h, init=(0.0, 0.1))
    np.testing.assert_allclose(res.loglik_trace[-1], best.loglik, rtol=0, atol=1e-5)
    for name, value in (("eta2", res.eta2), ("sigma2", res.sigma2), ("noise_scale", res.noise_scale)):
        np.testing.assert_allclose(value, best.params[name], rtol=1e-3, err_msg=name)


def test_em_random_walk_keeps_a_fixed():
    rng = np.random.default_rng(24)
    w = np.cumsum(rng.standard_normal((800, 5)) * 0.1, axis=0)
    g = 10.0 * w + np.sqrt(10.0) * rng.standard_normal((800, 5))  # h = 10
    res = est.em(g, 10.0, var0=1.0, a=1.0, q=0.1, fit_a=False, fit_noise_scale=False, iterations=300)
    np.testing.assert_array_equal(res.a, 1.0)
    np.testing.assert_array_equal(res.noise_scale, 1.0)
    best = est.fit(g, 10.0, model="random_walk", noise_scale=1.0, init=(0.0, 1.0))
    np.testing.assert_allclose(res.q, best.params["eta2"], rtol=1e-5)


def test_maximise_on_known_quadratics():
    """Concave quadratics with known maxima, one per column, in one call."""
    rng = np.random.default_rng(25)
    n, k = 7, 3
    centres = rng.standard_normal((k, n))
    mats = np.array([np.eye(k) + 0.5 * np.outer(v, v) for v in rng.standard_normal((n, k))])

    def fun(theta, cols):
        reps = theta.shape[1] // cols.size
        c = np.tile(cols, reps)
        d = theta - centres[:, c]
        return -0.5 * np.einsum("in,nij,jn->n", d, mats[c], d) + c

    opt = est.maximise(fun, np.zeros((k, n)))
    assert opt.converged.all()
    np.testing.assert_allclose(opt.theta, centres, atol=1e-6)
    np.testing.assert_allclose(opt.value, np.arange(n), atol=1e-9)
    np.testing.assert_allclose(opt.hessian, -mats, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "ar2"}, "model"),
        ({"init": "stationary"}, "init"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"burn": 100}, "burn"),
        ({"start": {"eta2": 0.1}}, "missing"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    g, h = _simulate(2, 50, seed=26)
    with pytest.raises(ValueError, match=match):
        est.fit(g, h, **kwargs)


def test_observations_form_pseudo_observations():
    g = np.arange(6.0).reshape(3, 2)
    s = est.observations(g, np.array([2.0, 3.0]), mu=np.ones((3, 2)))
    np.testing.assert_array_equal(s.obs, g + np.array([2.0, 3.0]))
    assert s.h.shape == (1, 2)
    with pytest.raises(ValueError, match="T >= 2"):
        est.observations(np.ones((1, 2)), 1.0)
