"""Eq. 21, the exact fixed point and the limits against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from filtering import fixed_point as fp
from filtering import ou

ETA, SIGMA2 = 1e-3, 1e-3


def _iterate_precision(g2: np.ndarray, eta: float, sigma2: float, predict: str, steps: int) -> np.ndarray:
    """Alg. 1's variance recursion (Eqs. 17b, 18a) with g² held constant, written independently of filtering/."""
    if predict == "paper":
        factor, noise = (1 - eta**2 / (2 * sigma2)) ** 2, eta**2
    else:
        factor, noise = np.exp(-(eta**2) / sigma2), sigma2 * (1 - np.exp(-(eta**2) / sigma2))
    var_post = np.full_like(g2, sigma2)
    for _ in range(steps):
        var_post = 1 / (1 / (factor * var_post + noise) + g2)
    return 1 / var_post


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_recursion_converges_to_exact_precision(predict):
    g2 = np.logspace(-4, 10, 57)
    # η² / σ² = 1e-3 sets the slowest contraction (~1 - 1e-3 per step at g² -> 0); 40000 steps reach 1e-17
    iterated = _iterate_precision(g2, ETA, SIGMA2, predict, 40000)
    np.testing.assert_allclose(fp.exact_precision(g2, ETA, SIGMA2, predict), iterated, rtol=1e-9)


def test_exact_precision_is_a_fixed_point_for_random_parameters():
    rng = np.random.default_rng(0)
    for _ in range(50):
        eta, sigma2 = 10 ** rng.uniform(-4, -1), 10 ** rng.uniform(-3, 1)
        if eta**2 >= 2 * sigma2:
            continue
        g2 = 10 ** rng.uniform(-6, 12, 20)
        lam = fp.exact_precision(g2, eta, sigma2)
        factor, noise = ou.variance_predict_coefficients(eta, sigma2)
        np.testing.assert_allclose(1 / (factor / lam + noise) + g2, lam, rtol=1e-12)


def test_eq21_solves_quadratic_eq20():
    g2 = np.logspace(-6, 8, 30)
    lam = fp.approx_precision(g2, ETA, SIGMA2)
    residual = SIGMA2 * lam**2 - lam - g2 * SIGMA2 / ETA**2  # Eq. 20 / 49
    np.testing.assert_allclose(residual / (SIGMA2 * lam**2), 0, atol=1e-12)


def test_limits():
    np.testing.assert_allclose(1 / fp.approx_precision(1e-30, ETA, SIGMA2), fp.sgd_limit(SIGMA2), rtol=1e-12)  # Eq. 22
    big = 1e12
    np.testing.assert_allclose(1 / fp.approx_precision(big, ETA, SIGMA2), fp.adam_limit(big, ETA), rtol=1e-4)  # Eq. 24
    np.testing.assert_allclose(1 / fp.approx_precision(3.0, ETA, np.inf), fp.adam_limit(3.0, ETA), rtol=1e-15)  # Eq. 27
    # the exact low-data limit is the OU stationary variance, not sigma2 itself
    np.testing.assert_allclose(
        1 / fp.exact_precision(0.0, ETA, SIGMA2), ou.stationary_variance(ETA, SIGMA2), rtol=1e-12
    )


def test_fading_memory_fixed_point_is_exact():
    g2 = np.logspace(-3, 3, 13)
    forget = 0.01
    lam = np.ones_like(g2)
    for _ in range(5000):
        lam = (1 - forget) * lam + g2  # Eq. 30
    np.testing.assert_allclose(1 / lam, fp.fading_memory_variance(g2, forget), rtol=1e-12)  # Eq. 31
    var_post = 0.3
    np.testing.assert_allclose(var_post + fp.fading_memory_process_noise(var_post, forget), var_post / (1 - forget))


def test_validity_range_brackets_the_tolerance():
    rtol = 0.02
    low, high = fp.eq21_validity_range(ETA, SIGMA2, rtol)
    assert low == 1e-300  # Eq. 21 holds in the whole SGD regime (error ≈ η²/(4σ²) = 2.5e-4)
    assert abs(abs(fp.eq21_relative_error(high, ETA, SIGMA2)) - rtol) < 1e-9
    assert abs(fp.eq21_relative_error(high * 1.1, ETA, SIGMA2)) > rtol
    # the break-down sits where η sqrt(g²) ~ 2 rtol
    assert 0.5 < ETA * np.sqrt(high) / (2 * rtol) < 2
    assert fp.eq21_validity_range(0.5, 0.2, 1e-6) is None


@pytest.mark.parametrize("bad", [{"eta": 0.0}, {"sigma2": -1.0}, {"rtol": float("nan")}])
def test_validity_range_rejects_bad_input(bad):
    kwargs = {"eta": ETA, "sigma2": SIGMA2, "rtol": 0.01} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fp.eq21_validity_range(**kwargs)


@pytest.mark.parametrize(
    ("fn", "kwargs", "name"),
    [
        (fp.approx_precision, {"g2": -1.0, "eta": ETA, "sigma2": SIGMA2}, "g2"),
        (fp.approx_precision, {"g2": 1.0, "eta": 0.0, "sigma2": SIGMA2}, "eta"),
        (fp.approx_precision, {"g2": 1.0, "eta": ETA, "sigma2": 0.0}, "sigma2"),
        (fp.approx_precision, {"g2": [1.0, np.nan], "eta": ETA, "sigma2": SIGMA2}, "g2"),
        (fp.exact_precision, {"g2": -1.0, "eta": ETA, "sigma2": SIGMA2}, "g2"),
        (fp.exact_precision, {"g2": 0.0, "eta": 1.0, "sigma2": 0.2}, "eta"),  # unstable OU step
        (fp.adam_limit, {"g2": -1.0, "eta": ETA}, "g2"),
        (fp.fading_memory_variance, {"g2": 1.0, "forget": 1.5}, "forget"),
    ],
)
def test_fixed_point_functions_reject_bad_input(fn, kwargs, name):
    with pytest.raises(ValueError, match=name):
        fn(**kwargs)


@pytest.mark.parametrize("forget", [1.0, 1.5, 0.0, -0.1, np.nan, [0.5, 1.0]])
def test_fading_memory_process_noise_rejects_forget_outside_unit_interval(forget):
    """λ >= 1 gave inf or a negative "variance", λ <= 0 a zero or negative one."""
    with pytest.raises(ValueError, match=r"forget must be in \(0, 1\)"):
        fp.fading_memory_process_noise(0.3, forget)


def test_fading_memory_process_noise_checks_the_variance():
    with pytest.raises(ValueError, match="var_post"):
        fp.fading_memory_process_noise(-0.3, 0.1)
    np.testing.assert_allclose(fp.fading_memory_process_noise([0.3, np.inf], 0.5), [0.3, np.inf])  # λ/(1-λ) = 1


@pytest.mark.parametrize("fn", [fp.approx_precision, fp.exact_precision])
def test_fixed_points_refuse_complex_g2(fn):
    with pytest.raises(TypeError, match="g2"):
        fn(np.array([1.0 + 1.0j]), ETA, SIGMA2)


def test_exact_precision_at_infinite_sigma2_is_the_random_walk_fixed_point():
    """σ² = inf: factor 1, noise η² (a random walk); λ = 1/(1/λ + η²) + g² solved by iteration, written inline."""
    g2 = np.array([1e-2, 1.0, 1e4])
    eta = 0.05
    lam = np.ones_like(g2)
    for _ in range(20000):
        lam = 1 / (1 / lam + eta**2) + g2
    np.testing.assert_allclose(fp.exact_precision(g2, eta, np.inf), lam, rtol=1e-12)
    assert fp.exact_precision(0.0, eta, np.inf) == 0.0  # no data and no prior: precision 0


@pytest.mark.parametrize("bad", [{"eta": 0.0}, {"eta": -1e-3}, {"eta": np.nan}, {"sigma2": 0.0}, {"sigma2": np.nan}])
def test_exact_precision_rejects_bad_parameters(bad):
    kwargs = {"g2": 1.0, "eta": ETA, "sigma2": SIGMA2} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fp.exact_precision(**kwargs)


def test_fading_memory_process_noise_accepts_zero_variance():
    assert fp.fading_memory_process_noise(0.0, 0.1) == 0.0


def test_validity_range_with_a_lower_crossing():
    """η²/(4σ²) = 0.025 > rtol: Eq. 21 is off by more than rtol as ⟨g²⟩ -> 0 and holds only on a middle band."""
    eta, sigma2, rtol = 0.1, 0.1, 0.02
    low, high = fp.eq21_validity_range(eta, sigma2, rtol)
    assert 1e-300 < low < high < 1e300
    for edge in (low, high):
        assert abs(abs(fp.eq21_relative_error(edge, eta, sigma2)) - rtol) < 1e-9
    assert abs(fp.eq21_relative_error(low / 1.1, eta, sigma2)) > rtol
    assert abs(fp.eq21_relative_error(high * 1.1, eta, sigma2)) > rtol
    assert abs(fp.eq21_relative_error(np.sqrt(low * high), eta, sigma2)) < rtol


def test_validity_range_reaching_both_bounds_and_infinite_sigma2():
    assert fp.eq21_validity_range(ETA, SIGMA2, 0.02, g2_bounds=(1e-300, 1e-2)) == (1e-300, 1e-2)
    low, high = fp.eq21_validity_range(ETA, np.inf, 0.02)  # Eq. 27: no SGD regime, the Adam line from the start
    assert low == 1e-300 and abs(abs(fp.eq21_relative_error(high, ETA, np.inf)) - 0.02) < 1e-9


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 1.0), (1.0, 1.0), (2.0, 1.0)])
def test_validity_range_rejects_bad_bounds(bounds):
    with pytest.raises(ValueError, match="g2_bounds"):
        fp.eq21_validity_range(ETA, SIGMA2, 0.01, g2_bounds=bounds)


@pytest.mark.parametrize("bad", [{"eta": -1.0}, {"sigma2": np.nan}, {"predict": "euler"}])
def test_validity_range_reports_bad_model_parameters(bad):
    kwargs = {"eta": ETA, "sigma2": SIGMA2, "rtol": 0.01} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        fp.eq21_validity_range(**kwargs)


def test_validity_range_finds_crossings_in_the_first_and_last_grid_cells():
    """A crossing between the first (or last) two points of the 2001-point log grid is refined in that cell.

    Bounds put the lower crossing half a cell (0.005 decades) above the lower bound, then the upper crossing half a
    cell below the upper bound, so a bracket reaching outside the end cell (past the grid, or wrapping to its other
    end) would fail or find the wrong root.
    """
    eta, sigma2, rtol = 0.1, 0.1, 0.02
    low, high = fp.eq21_validity_range(eta, sigma2, rtol)
    cell, span = 0.005, 10 ** (2000 * 0.005)  # decades per grid step; the bounds span 2000 cells
    lo = 10 ** (np.log10(low) - cell / 2)
    hi = 10 ** (np.log10(high) + cell / 2)
    for bounds in ((lo, lo * span), (hi / span, hi)):
        low_b, high_b = fp.eq21_validity_range(eta, sigma2, rtol, g2_bounds=bounds)
        np.testing.assert_allclose([low_b, high_b], [low, high], rtol=1e-9)
        for edge in (low_b, high_b):
            assert abs(abs(fp.eq21_relative_error(edge, eta, sigma2)) - rtol) < 1e-9
    assert (
        abs(fp.eq21_relative_error(low / 1.001, eta, sigma2))
        > rtol
        > abs(fp.eq21_relative_error(low * 1.001, eta, sigma2))
    )
    assert (
        abs(fp.eq21_relative_error(high * 1.001, eta, sigma2))
        > rtol
        > abs(fp.eq21_relative_error(high / 1.001, eta, sigma2))
    )
