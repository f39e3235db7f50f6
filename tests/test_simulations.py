"""Unit tests of the simulation building blocks (small, seeded, each able to fail)."""

from __future__ import annotations

import numpy as np
import pytest

from filtering.fixed_point import exact_precision
from simulations.checks import Check, check_at_most, check_within
from simulations.common import decade_table, log_log_slope
from simulations.generative import GenerativeConfig, simulate_generative, summarise
from simulations.hessian import make_hessian
from simulations.io import load_json, load_npz, save_json, save_npz
from simulations.jensen import iid_chi2_rate, jensen_rate
from simulations.quadratic import eq11_check


def test_log_log_slope_recovers_power_law_and_stderr():
    rng = np.random.default_rng(0)
    x = np.logspace(0, 3, 200)
    y = 3.0 * x**-0.5 * np.exp(0.01 * rng.standard_normal(200))
    s, se, n = log_log_slope(x, y)
    assert n == 200
    assert abs(s + 0.5) < 5 * se
    assert 0 < se < 0.01


def test_log_log_slope_rejects_bad_input():
    with pytest.raises(ValueError, match="x"):
        log_log_slope(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="constant"):
        log_log_slope(np.ones(5), np.arange(1, 6.0))


def test_decade_table_bins_by_floor_log10():
    t = decade_table(np.array([0.5, 2.0, 3.0, 20.0]), np.array([0.1, -0.2, 0.4, 0.05]))
    assert list(t["decade"]) == [-1, 0, 1]
    assert list(t["count"]) == [1, 2, 1]
    assert t["median"][1] == pytest.approx(0.3)
    assert t["max"][1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="g2"):
        decade_table(np.array([0.0, 1.0]), np.zeros(2))


def test_checks_pass_fail_and_nan():
    assert check_at_most("a", 0.01, 0.02).passed is True
    assert check_at_most("a", 0.03, 0.02).passed is False
    assert check_at_most("a", float("nan"), 0.02).passed is False
    assert check_within("b", -0.52, -0.5, 0.05).passed is True
    assert check_within("b", -0.56, -0.5, 0.05).passed is False
    c = Check.from_dict(check_at_most("a", 0.01, 0.02).to_dict())
    assert c.passed is True and c.value == 0.01


def test_io_roundtrip(tmp_path):
    save_npz(tmp_path / "a.npz", x=np.arange(3.0))
    save_json(tmp_path / "a.json", {"v": np.float64(np.inf), "a": np.arange(2), "t": (1, 2)})
    assert np.array_equal(load_npz(tmp_path / "a.npz")["x"], np.arange(3.0))
    assert load_json(tmp_path / "a.json") == {"v": "inf", "a": [0, 1], "t": [1, 2]}


def test_jensen_estimate_matches_iid_chi2_monte_carlo():
    eta, s2 = 1e-3, 1e-3
    g2 = np.array([1.0, 100.0, 1000.0])
    mc = iid_chi2_rate(g2, eta, s2, steps=12000, burn_in=4000, rng=np.random.default_rng(1), replicas=16)
    est = jensen_rate(g2, eta, s2)
    fixed = 1.0 / exact_precision(g2, eta, s2)
    np.testing.assert_allclose(mc, est, rtol=0.01)
    # the gap is positive and grows with η sqrt(⟨g²⟩) (≈ 0.75 η sqrt(⟨g²⟩) in the Adam regime)
    gap = est / fixed - 1
    assert 0 < gap[0] < gap[1] < gap[2]
    assert gap[2] == pytest.approx(0.75 * eta * np.sqrt(1000.0), rel=0.3)


def test_iid_chi2_rate_validates():
    with pytest.raises(ValueError, match="burn_in"):
        iid_chi2_rate([1.0], 1e-3, 1e-3, 10, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        iid_chi2_rate([1.0], 1e-3, 1e-3, 10, 1, 0)


def test_make_hessian_scaled_spans_decades_and_factorises():
    h, e, sqrt_h = make_hessian(200, (-4.0, 2.0), np.random.default_rng(0))
    np.testing.assert_allclose(sqrt_h @ sqrt_h.T, h, atol=1e-10 * np.abs(h).max())
    assert np.log10(e[-1] / e[0]) >= 6
    d = np.log10(np.diag(h))
    assert d.min() >= -4 - 1e-9 and d.max() <= 2 + 1e-9 and d.max() - d.min() > 5
    assert np.abs(h - np.diag(np.diag(h))).max() > 0  # coupled
    with pytest.raises(ValueError, match="kind"):
        make_hessian(10, (-1.0, 1.0), np.random.default_rng(0), kind="nope")


def test_eq11_monte_carlo_z_scores_are_standard():
    rng = np.random.default_rng(3)
    h, _, sqrt_h = make_hessian(80, (-2.0, 1.0), rng)
    mc = eq11_check(h, sqrt_h, 0.1 * rng.standard_normal(80), batch_size=10, n_batches=30, rng=rng)
    assert abs(mc["z_mean"]) < 4 / np.sqrt(80)
    assert abs(mc["z_var"] - 1) < 4 * np.sqrt(2 / 79)
    assert abs(mc["var_ratio_mean"] - 1) < 0.1


def test_generative_small_run_matches_fixed_points():
    cfg = GenerativeConfig(n_params=60, steps=6000, burn_in=3000, log10_h=(-3.0, 3.0))
    data = simulate_generative(cfg, np.random.default_rng(0), show_progress=False)
    res = summarise(data, cfg, np.random.default_rng(1))
    by_name = {c.name: c for c in res["checks"]}
    assert by_name["generative/adabayes_vs_eq21_median_valid"].value < 0.02
    assert by_name["generative/adabayes_fp_vs_eq21_median"].value < 0.02
    assert by_name["generative/kalman_vs_exact_max"].passed
    # exact filter's rate depends on h only, so it is monotone decreasing in h
    assert np.all(np.diff(data["kalman_final_rate"]) < 0)


def test_generative_config_validates():
    with pytest.raises(ValueError, match="burn_in"):
        GenerativeConfig(steps=10, burn_in=10).validate()
    with pytest.raises(ValueError, match="eta"):
        GenerativeConfig(eta=1.0, sigma2=0.1).validate()
    with pytest.raises(ValueError, match="rng"):
        simulate_generative(GenerativeConfig(n_params=10, steps=10, burn_in=1), 0)
