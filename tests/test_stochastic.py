"""filtering.stochastic against Monte Carlo of Alg. 1 / Alg. 2, quadrature of the gradient laws and its own refinement.

The Monte Carlo here is written independently of the solver: a plain loop of ``filtering.kalman_step.precision_step``
(Eqs. 17b, 18a) vectorised over points and chains, started at the deterministic fixed point, with a burn-in and
averaging window of several relaxation times ``1/(1 - φ'(λ*))`` of each point. Its standard error comes from the
spread of the time averages of independent chains (valid whatever the autocorrelation inside a chain). It averages
both σ²_post itself and its conditional mean given the prior precision y, ``E[1/(y + g²) | y]`` (closed form below,
checked against quadrature): the second has far smaller variance when η²⟨g²⟩ is large and a rare small g² sets
σ²_post.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from filtering import stochastic as st
from filtering.fixed_point import approx_precision, exact_precision
from filtering.kalman_step import precision_step

# --------------------------------------------------------------------------------------------------------------
# an independent Monte Carlo of Alg. 1


def _predict_coefficients(eta: float, sigma2: float, predict: str) -> tuple[float, float]:
    """Eq. 17b's factor and noise, written out here (not taken from filtering.ou)."""
    r = eta * eta / sigma2
    if predict == "paper":
        return (1.0 - r / 2.0) ** 2, eta * eta
    return math.exp(-r), sigma2 * -math.expm1(-r)


def _conditional_rate(y: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """E[1/(y + g²)] for g ~ N(0, g2): sqrt(π/(2 g2 y)) erfcx(sqrt(y/(2 g2)))."""
    return np.sqrt(np.pi / (2.0 * g2 * y)) * special.erfcx(np.sqrt(y / (2.0 * g2)))


def _monte_carlo(points, chains: int, rng: np.random.Generator, *, burn_tau=6.0, avg_tau=12.0, min_steps=4000):
    """Alg. 1's precision recursion for every (g2, eta, sigma2, predict) in ``points``, ``chains`` chains each.

    Returns the per-point mean and standard error of the time-averaged σ²_post (raw and conditional-mean
    estimators) and the number of steps averaged.
    """
    coef = np.array([_predict_coefficients(eta, s2, pr) for _, eta, s2, pr in points])
    f, q = coef[:, 0:1], coef[:, 1:2]
    g2 = np.array([p[0] for p in points])[:, None]
    c = (1.0 - f) + q * g2
    lam_star = (c + np.hypot(c, 2.0 * np.sqrt(q * f * g2))) / (2.0 * q)  # deterministic fixed point (start)
    tau = float(np.max(1.0 / (1.0 - f / (f + q * lam_star) ** 2)))
    burn, steps = max(min_steps, int(burn_tau * tau)), max(min_steps, int(avg_tau * tau))
    lam = np.repeat(lam_star, chains, axis=1)
    raw = np.zeros_like(lam)
    conditional = np.zeros_like(lam)
    sd = np.sqrt(g2)
    for t in range(burn + steps):
        y = precision_step(lam, f, q, 0.0)  # prior precision 1/σ²_prior (Eq. 17b)
        g = sd * rng.standard_normal(lam.shape)
        lam = y + g * g  # Eq. 18a
        if t >= burn:
            raw += 1.0 / lam
            conditional += _conditional_rate(y, g2)
    out = {}
    for name, total in (("raw", raw), ("conditional", conditional)):
        per_chain = total / steps
        out[name] = per_chain.mean(axis=1)
        out[name + "_se"] = per_chain.std(axis=1, ddof=1) / math.sqrt(chains)
    out["steps"] = steps
    return out


def _random_points(rng: np.random.Generator, n: int) -> list[tuple[float, float, float, str]]:
    """⟨g²⟩ in [1e-4, 1e12], η²/σ² in [1e-4, 0.5], σ² in [1e-4, 1], both predict steps (log-uniform)."""
    points = []
    for i in range(n):
        g2 = 10 ** rng.uniform(-4.0, 12.0)
        r = 10 ** rng.uniform(-4.0, math.log10(0.5))
        sigma2 = 10 ** rng.uniform(-4.0, 0.0)
        points.append((g2, math.sqrt(r * sigma2), sigma2, "paper" if i % 2 == 0 else "exponential"))
    return points


def _conditional_rate_by_quadrature(y: float, g2: float) -> float:
    """∫ φ(z)/(y + g2 z²) dz, split at 50 κ (κ = sqrt(y/g2), the width of the Lorentzian peak)."""
    kappa = math.sqrt(y / g2)
    # z = κ tan θ on [0, 50 κ]: the peak becomes a flat integrand
    near = (
        integrate.quad(lambda th: stats.norm.pdf(kappa * math.tan(th)), 0.0, math.atan(50.0), epsabs=0, epsrel=1e-12)[0]
        * kappa
        / y
    )
    far = integrate.quad(
        lambda z: stats.norm.pdf(z) / (y + g2 * z * z), 50.0 * kappa, np.inf, epsabs=0, epsrel=1e-12, limit=200
    )[0]
    return 2.0 * (near + far)


def test_conditional_rate_matches_quadrature():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y, g2 = 10 ** rng.uniform(-3, 6), 10 ** rng.uniform(-4, 8)
        ref = _conditional_rate_by_quadrature(y, g2)
        assert _conditional_rate(np.array(y), np.array(g2)) == pytest.approx(ref, rel=1e-8), (y, g2)


@pytest.mark.slow
def test_mean_learning_rate_within_one_percent_of_monte_carlo_at_random_points():
    """The accuracy claim: |E[σ²_post] - MC| < 1 % at seeded random points, with an MC s.e. far below 1 %."""
    points = _random_points(np.random.default_rng(20260903), 16)
    mc = _monte_carlo(points, chains=96, rng=np.random.default_rng(11))
    g2, eta, sigma2, predict = (np.array([p[k] for p in points]) for k in range(4))
    solved = np.array(
        [st.mean_learning_rate(g, e, s, pr) for g, e, s, pr in zip(g2, eta, sigma2, predict, strict=True)]
    )
    ref, se = mc["conditional"], mc["conditional_se"]
    rel = solved / ref - 1.0
    report = "\n".join(
        f"<g2>={p[0]:.2e} eta^2/sigma2={p[1] ** 2 / p[2]:.1e} {p[3]}: solver/MC-1={x:+.2e} (MC s.e. {s / m:.1e})"
        for p, x, s, m in zip(points, rel, se, ref, strict=True)
    )
    assert (se / ref < 2.5e-3).all(), "Monte Carlo too short for a 1 % test\n" + report
    assert (np.abs(rel) < 0.01).all(), report
    # much tighter than the contract: within 5 MC standard errors (+1e-4 for the solver's own tolerance)
    assert (np.abs(solved - ref) < 5.0 * se + 1e-4 * ref).all(), report
    # the two Monte Carlo estimators agree (the conditional mean is unbiased)
    raw, raw_se = mc["raw"], mc["raw_se"]
    assert (np.abs(raw - ref) < 5.0 * np.hypot(raw_se, se)).all()


def test_monte_carlo_at_the_corners_of_the_range():
    """⟨g²⟩ = 1e-4 and 1e12 with η²/σ² = 1e-4 and 0.5 (σ² = 1e-3), where the regimes are extreme."""
    points = [(g2, math.sqrt(r * 1e-3), 1e-3, "paper") for g2 in (1e-4, 1e12) for r in (1e-4, 0.5)]
    mc = _monte_carlo(points, chains=64, rng=np.random.default_rng(5), min_steps=3000)
    solved = np.array([st.mean_learning_rate(*p) for p in points])
    assert np.all(np.abs(solved / mc["conditional"] - 1.0) < 5.0 * mc["conditional_se"] / mc["conditional"] + 2e-4)


def test_large_g2_is_the_gradient_density_at_zero_not_eq21():
    """For η²⟨g²⟩ >> 1, E σ²_post -> sqrt(π/2) η/sqrt(⟨g²⟩): 25 % above Eq. 21, the exact fixed point far below."""
    eta, sigma2, g2 = 1e-3, 1e-3, 1e12
    rate = st.mean_learning_rate(g2, eta, sigma2)
    assert rate * math.sqrt(g2) / eta == pytest.approx(math.sqrt(math.pi / 2.0), rel=2e-3)
    assert rate * approx_precision(g2, eta, sigma2) == pytest.approx(1.2533, rel=3e-3)
    assert rate * exact_precision(g2, eta, sigma2) > 1e2  # the deterministic fixed point is off by ~1/(η sqrt g2)


# --------------------------------------------------------------------------------------------------------------
# accuracy control


@pytest.mark.parametrize("seed", [0, 1])
def test_error_estimate_bounds_the_error_against_a_much_finer_solution(seed):
    rng = np.random.default_rng(seed)
    for g2, eta, sigma2, predict in _random_points(rng, 6):
        law = st.stationary_law(st.GaussianGradients(g2), eta, sigma2, predict, rtol=1e-3)
        fine = st.stationary_law(st.GaussianGradients(g2), eta, sigma2, predict, rtol=1e-6, size=192)
        err = abs(law.mean() - fine.mean())
        assert err <= law.error_estimate + 5e-6 * fine.mean(), (g2, eta, sigma2, predict, err, law.error_estimate)
        assert law.error_estimate <= 1e-3 * law.mean() or law.error_estimate > 0  # the estimate is a number


def test_coarse_window_error_is_within_the_diffusion_bound():
    """Cells wider than a jump (allowed when the Jensen term is small) diffuse; the bound DIFFUSION must cover it."""
    eta, sigma2 = math.sqrt(1e-4 * 1e-3), 1e-3
    g2 = 1e-6 / eta**2  # η sqrt(⟨g²⟩) = 1e-3: long memory, Jensen term ~5e-4
    loose = st.stationary_law(st.GaussianGradients(g2), eta, sigma2, rtol=2e-3)
    tight = st.stationary_law(st.GaussianGradients(g2), eta, sigma2, rtol=1e-5)
    assert abs(loose.mean() - tight.mean()) <= loose.error_estimate
    assert loose.error_estimate <= 2e-3 * loose.mean()


# --------------------------------------------------------------------------------------------------------------
# gradient laws


def _quad_parts(pdf, t: float, lo: float, hi: float) -> tuple[float, float, float, float]:
    """P(g² <= t), P(g² > t), E[(t - g²)+], E[(g² - t)+] by quadrature of the density of g over [lo, hi]."""
    r = math.sqrt(t)
    kw = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 400}
    inside = integrate.quad(pdf, -r, r, **kw)[0]
    below = integrate.quad(lambda x: (t - x * x) * pdf(x), -r, r, **kw)[0]
    above = sum(integrate.quad(lambda x: (x * x - t) * pdf(x), a, b, **kw)[0] for a, b in ((lo, -r), (r, hi)))
    return inside, 1.0 - inside, below, above


@pytest.mark.parametrize(
    ("law", "pdf", "lo", "hi"),
    [
        (st.GaussianGradients(2.5), stats.norm(0, math.sqrt(2.5)).pdf, -np.inf, np.inf),
        (st.GaussianGradients(0.7, mean=-1.3), stats.norm(-1.3, math.sqrt(0.7)).pdf, -np.inf, np.inf),
        (st.StudentTGradients(3.5, 2.0), stats.t(3.5, scale=2.0).pdf, -np.inf, np.inf),
        (st.StudentTGradients(7.0, 0.1), stats.t(7.0, scale=0.1).pdf, -np.inf, np.inf),
    ],
)
def test_gradient_law_parts_match_quadrature(law, pdf, lo, hi):
    for t in law.mean_g2 * np.array([1e-4, 0.03, 0.4, 1.0, 2.7, 9.0, 30.0]):
        cdf, sf, below, above = _quad_parts(pdf, float(t), lo, hi)
        t_arr = np.array([t])
        assert law.cdf_g2(t_arr)[0] == pytest.approx(cdf, rel=1e-8, abs=1e-14)
        assert law.sf_g2(t_arr)[0] == pytest.approx(sf, rel=1e-7, abs=1e-14)
        assert law.below_g2(t_arr)[0] == pytest.approx(below, rel=1e-7, abs=1e-14 * law.mean_g2)
        assert law.above_g2(t_arr)[0] == pytest.approx(above, rel=1e-7, abs=1e-14 * law.mean_g2)
    second = integrate.quad(lambda x: x * x * pdf(x), lo, hi, epsabs=0, limit=400)[0]
    assert law.mean_g2 == pytest.approx(second, rel=1e-8)
    for y in law.mean_g2 * np.array([1e-3, 0.1, 1.0, 10.0, 1e3]):
        ref = integrate.quad(lambda x, y=y: pdf(x) / (y + x * x), lo, hi, epsabs=0, epsrel=1e-11, limit=400)[0]
        assert law.inverse_mean(np.array([y]))[0] == pytest.approx(ref, rel=1e-8)
        # the generic (logistic-substitution) form agrees with the closed forms
        assert st.GradientLaw.inverse_mean(law, np.array([y]))[0] == pytest.approx(ref, rel=1e-8)
    assert law.density_at_zero == pytest.approx(pdf(0.0), rel=1e-12)
    for p in (1e-6, 0.1, 0.5, 0.9, 1 - 1e-12):
        assert law.cdf_g2(np.array([law.quantile_g2(p)]))[0] == pytest.approx(p, rel=1e-7, abs=1e-15)


def test_empirical_law_is_exact_for_its_sample():
    rng = np.random.default_rng(4)
    g = rng.standard_normal(501) * 3.0 + 0.5
    law = st.EmpiricalGradients(g)
    g2 = g * g
    for t in (0.0, 0.3, 2.0, 9.0, 40.0, 1e3):
        assert law.cdf_g2(np.array([t]))[0] == np.mean(g2 <= t)
        assert law.below_g2(np.array([t]))[0] == pytest.approx(np.mean(np.maximum(t - g2, 0.0)), rel=1e-12, abs=1e-15)
        assert law.above_g2(np.array([t]))[0] == pytest.approx(np.mean(np.maximum(g2 - t, 0.0)), rel=1e-12, abs=1e-15)
    lo, w = np.array([0.5, 10.0]), np.array([0.1, 5.0])
    ref = [integrate.quad(lambda y: np.mean(1.0 / (y + g2)), a, a + b)[0] / b for a, b in zip(lo, w, strict=True)]
    np.testing.assert_allclose(law.inverse_mean_cell(lo, w), ref, rtol=1e-10)


def test_compiled_gaussian_kernel_matches_the_generic_one():
    rng = np.random.default_rng(8)
    for mean in (0.0, 0.9):
        law = st.GaussianGradients(1.7, mean=mean)
        t_hi = rng.uniform(-2.0, 80.0, 5000)
        width = 10 ** rng.uniform(-5.0, 1.5, 5000)
        compiled = st._cell_cdf(law, t_hi, t_hi - width, width, law.quantile_g2(1 - 1e-16))
        generic = st._cell_cdf_generic(law, t_hi, t_hi - width, width, law.quantile_g2(1 - 1e-16))
        np.testing.assert_allclose(compiled[0], generic[0], atol=1e-12)
        np.testing.assert_allclose(compiled[1], generic[1], atol=1e-12)


def test_cell_kernel_against_high_precision_quadrature():
    """G = mean of P(g² <= τ) over a cell, at random cells from far below to far above ⟨g²⟩ (relative error)."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(17)
    for mean in (0.0, 2e4):
        law = st.GaussianGradients(1e9, mean=mean)
        sd = math.sqrt(1e9)

        def cdf(t, mean=mean, sd=sd):
            return mpmath.ncdf((mpmath.sqrt(t) - mean) / sd) - mpmath.ncdf((-mpmath.sqrt(t) - mean) / sd)

        top = law.quantile_g2(1 - 1e-16)
        for _ in range(60):
            t_hi = 10 ** rng.uniform(-3, 10.5)
            w = t_hi * 10 ** rng.uniform(-6, 0.3)
            with mpmath.workdps(40):
                exact = float(mpmath.quad(cdf, [max(t_hi - w, 0.0), t_hi]) / w)
            got = st._cell_cdf(law, np.array([t_hi]), np.array([t_hi - w]), np.array([w]), top)[0][0]
            assert got == pytest.approx(exact, rel=1e-9), (t_hi, w)


def test_transition_band_columns_sum_to_one_and_entries_are_probabilities():
    for g2 in (1e-3, 1.0, 1e3, 1e8):
        law = st.GaussianGradients(g2)
        chain = st._PrecisionChain.make(1e-3, 1e-3, "paper")
        design = st._precision_grid(chain, law, 64, 1e-3, True)
        band = st._precision_band(chain, law, design.grid, law.quantile_g2(1 - 1e-16))
        dense = band.dense()
        np.testing.assert_allclose(dense.sum(axis=0), 1.0, atol=1e-12)
        assert dense.min() >= -1e-13


# --------------------------------------------------------------------------------------------------------------
# other gradient laws against Monte Carlo


def _monte_carlo_law(law: st.GradientLaw, eta: float, sigma2: float, steps: int, chains: int, seed: int):
    f, q = _predict_coefficients(eta, sigma2, "paper")
    rng = np.random.default_rng(seed)
    lam = np.full(chains, 1.0 / sigma2)
    total = np.zeros(chains)
    for t in range(2 * steps):
        g = law.sample(rng, chains)
        lam = precision_step(lam, f, q, g * g)
        if t >= steps:
            total += 1.0 / lam
    per_chain = total / steps
    return per_chain.mean(), per_chain.std(ddof=1) / math.sqrt(chains), 1.0 / lam


@pytest.mark.parametrize(
    "law",
    [
        st.GaussianGradients(1e4, mean=80.0),
        st.StudentTGradients(3.0, 30.0),
        st.EmpiricalGradients(np.random.default_rng(9).standard_normal(400) * 100.0),
    ],
)
def test_other_gradient_laws_against_monte_carlo(law):
    eta, sigma2 = 1e-3, 1e-3
    solved = st.stationary_law(law, eta, sigma2)
    mean, se, last = _monte_carlo_law(law, eta, sigma2, steps=6000, chains=400, seed=12)
    assert se / mean < 3e-3
    assert abs(solved.mean() / mean - 1.0) < max(5.0 * se / mean, 1e-3)
    # quantiles: the fraction of final states below each predicted quantile
    q = solved.quantile(np.array([0.1, 0.5, 0.9]))
    frac = np.array([(last <= x).mean() for x in q])
    np.testing.assert_allclose(frac, [0.1, 0.5, 0.9], atol=4.0 * math.sqrt(0.25 / last.size))


def test_empirical_sample_of_gaussian_gradients_approaches_the_gaussian_law():
    g = np.random.default_rng(10).standard_normal(20000) * 10.0
    emp = st.stationary_law(st.EmpiricalGradients(g), 1e-3, 1e-3).mean()
    gauss = st.stationary_law(st.GaussianGradients(100.0), 1e-3, 1e-3).mean()
    assert emp == pytest.approx(gauss, rel=0.02)


# --------------------------------------------------------------------------------------------------------------
# law object: cdf, pdf, quantiles


def test_cdf_pdf_quantile_are_consistent():
    law = st.stationary_law(st.GaussianGradients(1e6), 1e-3, 1e-3)
    a = np.geomspace(1e-9, 1e-3, 6001)
    pdf, cdf = law.pdf(a), law.cdf(a)
    assert np.all(np.diff(cdf) >= -1e-12)
    np.testing.assert_allclose(integrate.cumulative_trapezoid(pdf, a), cdf[1:] - cdf[0], atol=1e-3)
    p = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(law.cdf(law.quantile(p)), p, atol=1e-9)
    # the mean from the CDF, E[s] = ∫ (1 - F) ds over [0, 1/λ0], on a log grid (∫ (1 - F(s)) s dlog s)
    s = np.geomspace(1e-14, 1.0 / law.lam0, 6001)
    from_cdf = integrate.trapezoid((1.0 - law.cdf(s)) * s, np.log(s)) + 1e-14
    assert from_cdf == pytest.approx(law.mean_on_grid(), rel=1e-4)


def test_quantiles_against_monte_carlo_in_the_adam_regime():
    points = [(1e6, 1e-3, 1e-3, "paper")]
    f, q = _predict_coefficients(1e-3, 1e-3, "paper")
    rng = np.random.default_rng(13)
    lam = np.full(4000, 1e6)
    for _ in range(300):  # relaxation time ~1/(2 η sqrt g2) = 0.5 step: long burn-in
        lam = precision_step(lam, f, q, 1e6 * rng.standard_normal(lam.size) ** 2)
    probs = np.array([0.1, 0.5, 0.9])
    predicted = st.learning_rate_quantiles(*points[0][:3], p=probs)
    frac = np.array([(1.0 / lam <= x).mean() for x in predicted])
    np.testing.assert_allclose(frac, probs, atol=4.0 * math.sqrt(0.25 / lam.size))


# --------------------------------------------------------------------------------------------------------------
# regimes that have exact answers


def test_zero_g2_is_the_ou_stationary_variance():
    for predict in ("paper", "exponential"):
        assert st.mean_learning_rate(0.0, 1e-2, 1e-3, predict) == pytest.approx(
            1.0 / exact_precision(0.0, 1e-2, 1e-3, predict), rel=1e-14
        )


def test_zero_g2_with_infinite_sigma2_is_infinite_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.mean_learning_rate(0.0, 1e-3, np.inf) == np.inf


def test_tiny_g2_tends_to_the_deterministic_fixed_point():
    """For ⟨g²⟩ -> 0 the noise enters at second order: E σ²_post = 1/λ* (1 + O(⟨g²⟩²)), within the error estimate."""
    for g2 in (1e-6, 1e-4):
        law = st.stationary_law(st.GaussianGradients(g2), 1e-3, 1e-3)
        assert abs(law.mean() * exact_precision(g2, 1e-3, 1e-3) - 1.0) <= law.error_estimate / law.mean() + 1e-10


def test_broadcasting_and_dtype():
    out = st.mean_learning_rate(np.array([1.0, 1e4]), 1e-3, np.array([[1e-3], [1e-2]]), rtol=1e-3)
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert out[0, 1] == pytest.approx(st.mean_learning_rate(1e4, 1e-3, 1e-3, rtol=1e-3), rel=1e-12)
    q = st.learning_rate_quantiles([1.0, 1e4], 1e-3, 1e-3, p=[0.1, 0.9], rtol=1e-3)
    assert q.shape == (2, 2) and (q[:, 0] < q[:, 1]).all()
    assert np.ndim(st.mean_learning_rate(1.0, 1e-3, 1e-3)) == 0


def test_sigma2_infinite_is_the_random_walk_limit():
    """σ² = inf (lr_sgd = inf): f = 1, q = η²; close to a very large finite σ²."""
    a = st.mean_learning_rate(1e4, 1e-3, np.inf)
    b = st.mean_learning_rate(1e4, 1e-3, 1e6)
    assert a == pytest.approx(b, rel=1e-5)


# --------------------------------------------------------------------------------------------------------------
# AdaBayes-FP


def test_fixed_point_law_reproduces_the_exact_ema_moments():
    for beta2 in (0.9, 0.99, 0.999):
        law = st.fixed_point_law(st.GaussianGradients(3.0), 1e-3, 1e-3, beta2)
        assert law.ema_mean() == pytest.approx(3.0, rel=2e-4)
        assert law.ema_var() == pytest.approx(2 * 9.0 * (1 - beta2) / (1 + beta2), rel=0.05)


@pytest.mark.parametrize("beta2", [0.9, 0.999])
def test_fixed_point_law_against_monte_carlo_of_alg2(beta2):
    eta, sigma2 = 1e-3, 1e-3
    rng = np.random.default_rng(14)
    for g2 in (1.0, 1e4, 1e8):
        law = st.fixed_point_law(st.GaussianGradients(g2), eta, sigma2, beta2)
        v = np.full(512, g2)
        total = np.zeros_like(v)
        burn = int(20 / (1 - beta2))
        steps = 2 * burn
        for t in range(burn + steps):
            v = beta2 * v + (1 - beta2) * g2 * rng.standard_normal(v.size) ** 2  # Eq. 4 (debiased at t -> inf)
            if t >= burn:
                total += 1.0 / approx_precision(v, eta, sigma2)  # Alg. 2, line 11 (Eq. 21)
        per_chain = total / steps
        mean, se = per_chain.mean(), per_chain.std(ddof=1) / math.sqrt(v.size)
        assert abs(law.mean() / mean - 1) < 5 * se / mean + 1e-4, (g2, law.mean(), mean, se)
        q = law.quantile(np.array([0.1, 0.9]))
        frac = np.array([(1.0 / approx_precision(v, eta, sigma2) <= x).mean() for x in q])
        np.testing.assert_allclose(frac, [0.1, 0.9], atol=4.0 * math.sqrt(0.25 / v.size))


def test_fixed_point_mean_learning_rate_broadcasts():
    out = st.fixed_point_mean_learning_rate([1.0, 1e4], 1e-3, 1e-3)
    assert out.shape == (2,)
    assert out[1] == pytest.approx(1.0 / approx_precision(1e4, 1e-3, 1e-3), rel=2e-3)


# --------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"g2": -1.0}, "g2"),
        ({"g2": np.nan}, "g2"),
        ({"eta": 0.0}, "eta"),
        ({"sigma2": -1.0}, "sigma2"),
        ({"eta": 0.1, "sigma2": 1e-3}, "eta"),  # η² >= 2σ²: unstable OU step
        ({"predict": "euler"}, "predict"),
        ({"rtol": 0.0}, "rtol"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    args = {"g2": 1.0, "eta": 1e-3, "sigma2": 1e-3} | kwargs
    with pytest.raises(ValueError, match=name):
        st.mean_learning_rate(**args)


def test_bad_laws_and_law_arguments():
    with pytest.raises(TypeError, match="gradients"):
        st.stationary_law(1.0, 1e-3, 1e-3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="df"):
        st.StudentTGradients(2.0, 1.0)
    with pytest.raises(ValueError, match="variance"):
        st.GaussianGradients(0.0)
    with pytest.raises(ValueError, match="samples"):
        st.EmpiricalGradients([1.0])
    with pytest.raises(ValueError, match="samples"):
        st.EmpiricalGradients([0.0, 0.0])
    with pytest.raises(ValueError, match="samples"):
        st.EmpiricalGradients([1.0, np.nan])
    with pytest.raises(ValueError, match="beta2"):
        st.fixed_point_law(st.GaussianGradients(1.0), 1e-3, 1e-3, beta2=1.0)
    law = st.stationary_law(st.GaussianGradients(1.0), 1e-3, 1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="p"):
        law.quantile([0.0])
    with pytest.raises(ValueError, match="a"):
        law.cdf([-1.0])
