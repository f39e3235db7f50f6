"""Unit tests of the simulation building blocks (small, seeded, each able to fail)."""

from __future__ import annotations

import numpy as np
import pytest

from filtering.fixed_point import exact_precision
from simulations.checks import Check, check_at_most, check_within
from simulations.common import decade_table, log_log_slope
from simulations.generative import (
    GenerativeConfig,
    calibration_checks,
    regime_masks,
    simulate_generative,
    summarise,
)
from simulations.generative_measure import first_exceed
from simulations.hessian import make_hessian
from simulations.io import load_json, load_npz, save_json, save_npz
from simulations.jensen import iid_chi2_rate, jensen_rate
from simulations.quadratic import Column, QuadraticConfig, grid, grid_edges, simulate_quadratic
from simulations.quadratic_measure import eq11_check, ou_analysis, tuned_columns
from simulations.slopes import fit_slopes, window


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
    with pytest.raises(TypeError, match="rng"):
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


def test_eq11_monte_carlo_passes_and_detects_a_wrong_noise_scale():
    rng = np.random.default_rng(3)
    h, _, sqrt_h = make_hessian(80, (-2.0, 1.0), rng)
    mu = 0.1 * rng.standard_normal(80)
    mc = eq11_check(h, sqrt_h, mu, batch_size=10, n_batches=30, rng=rng)
    assert mc["fd_mean_rel_err"] < 1e-8
    assert abs(mc["z_mean"]) < 4 * mc["z_mean_sd"]
    assert abs(mc["white_var"] - 1) < 4 * mc["white_var_sd"]
    assert abs(mc["var_ratio_mean"] - 1) < 4 * mc["var_ratio_sd"]
    # noise drawn with 1.5 x the covariance (sqrt_h scaled) must fail the variance checks
    bad = eq11_check(h, sqrt_h * np.sqrt(1.5), mu, batch_size=10, n_batches=30, rng=rng)
    assert abs(bad["var_ratio_mean"] - 1) > 4 * bad["var_ratio_sd"]


@pytest.fixture(scope="module")
def small_generative():
    cfg = GenerativeConfig(n_params=400, steps=5000, burn_in=2500, log10_h=(-3.0, 4.0))
    data = simulate_generative(cfg, np.random.default_rng(0), show_progress=False)
    return cfg, data


def test_generative_small_run_matches_fixed_points(small_generative):
    cfg, data = small_generative
    res = summarise(data, cfg, np.random.default_rng(1))
    by_name = {c.name: c for c in res["checks"]}
    for regime in ("sgd", "crossover", "adam", "decade_max"):
        assert by_name[f"generative/adabayes_vs_eq21_{regime}"].passed, regime
        assert by_name[f"generative/adabayes_fp_vs_eq21_{regime}"].passed, regime
    assert by_name["generative/kalman_vs_exact_max"].passed
    assert by_name["generative/fading_vs_eq31_median"].passed
    assert by_name["generative/g2_decades"].kind == "identity"
    assert by_name["generative/kalman_vs_eq21_median_valid"].kind == "info"
    assert "adam_z2" not in data and "fading_z2" not in data and "adamw_rate" in data
    # exact filter's rate depends on h only, so it is monotone decreasing in h
    assert np.all(np.diff(data["kalman_final_rate"]) < 0)


@pytest.mark.parametrize(("factor", "where"), [(1.2, "adam"), (2.0, "above1")])
def test_generative_checks_catch_a_wrong_rate_in_the_adam_regime(small_generative, factor, where):
    cfg, data = small_generative
    g2 = data["adabayes_g2"]
    mask = regime_masks(g2, cfg.eta, cfg.sigma2)["adam"] if where == "adam" else g2 > 1.0
    bad = dict(data, adabayes_rate=np.where(mask, factor * data["adabayes_rate"], data["adabayes_rate"]))
    by_name = {c.name: c for c in summarise(bad, cfg, np.random.default_rng(1))["checks"]}
    assert by_name["generative/adabayes_vs_eq21_adam"].passed is False
    assert by_name["generative/adabayes_vs_eq21_decade_max"].passed is False
    # the pooled median alone does not see it (that is why the regional checks exist)
    assert by_name["generative/adabayes_vs_eq21_median_valid"].passed is True


def test_fading_check_fails_when_eq31_is_off_in_its_region(small_generative):
    cfg, data = small_generative
    bad = dict(data, fading_rate=1.1 * data["fading_rate"])
    by_name = {c.name: c for c in summarise(bad, cfg, np.random.default_rng(1))["checks"]}
    assert by_name["generative/fading_vs_eq31_median"].passed is False


def test_calibration_checks_pass_for_kalman_and_fail_for_an_overconfident_filter(small_generative):
    cfg, data = small_generative
    stats, checks = calibration_checks(data, cfg)
    assert all(c.passed for c in checks if c.name.startswith("calibration/kalman"))
    assert "mean_z2_by_decade" in stats["adabayes"] and set(stats) == {"kalman", "adabayes", "adabayes_fp"}
    bad = dict(data, kalman_z2=2.0 * data["kalman_z2"], kalman_in68=0.9 * data["kalman_in68"])
    _, checks = calibration_checks(bad, cfg)
    by_name = {c.name: c for c in checks}
    assert by_name["calibration/kalman_z_var"].passed is False
    assert by_name["calibration/kalman_cover68"].passed is False


def test_first_exceed_is_last_ok_index_plus_one():
    g2 = np.arange(1.0, 101.0)
    err = np.where(g2 > 60, 0.5, 0.0)
    assert first_exceed(g2, err, 0.1, 0.0, window=1) == 61.0
    assert first_exceed(g2, np.zeros(100), 0.1, 0.0, window=1) == np.inf  # ends in tolerance
    assert first_exceed(g2, np.ones(100), 0.1, 0.0, window=1) == 1.0  # never in tolerance
    # an excursion that comes back does not count
    err2 = np.where((g2 > 20) & (g2 < 30), 0.5, 0.0)
    assert first_exceed(g2, err2, 0.1, 0.0, window=1) == np.inf


def test_window_and_fit_slopes_recover_known_slopes_and_local_slope():
    eta, s2 = 1e-3, 1e-3
    lo, hi = window(eta, s2)
    assert lo == pytest.approx(100.0) and 1000 < hi < 3000
    g2 = np.logspace(1, 4, 300)
    rng = np.random.default_rng(0)
    noisy = np.exp(1e-3 * rng.standard_normal(300))
    eq21 = 1.0 / (1.0 / (2 * s2) + np.sqrt(1 / (4 * s2**2) + g2 / eta**2))
    fits = fit_slopes({"fading": (g2, 3e-3 / g2 * noisy), "adabayes": (g2, eq21 * noisy)}, eta, s2)
    assert fits["fading"]["slope"] == pytest.approx(-1.0, abs=0.005)
    assert fits["fading"]["local"] == pytest.approx(-1.0)
    assert fits["adabayes"]["local"] == pytest.approx(fits["adabayes"]["slope"], abs=0.003)
    assert -0.495 < fits["adabayes"]["local"] < -0.475  # Eq. 21 is not yet at -1/2 in the window
    assert fits["adabayes"]["n"] == int(((g2 >= lo) & (g2 <= hi)).sum())
    with pytest.raises(ValueError, match="Adam regime"):
        window(1e-3, 1e-6)


def test_quadratic_grid_reference_and_edges():
    cfg = QuadraticConfig()
    cols = grid(cfg)
    refs = {c.rule: c.hyper for c in cols if c.reference}
    assert set(refs) == {"sgd", "adam", "adamw", "adabayes", "adabayes_fp", "fading", "von"}
    assert refs["adabayes"] == {"lr": 1e-3, "lr_sgd": 0.1}
    quick = grid(cfg, quick=True)
    for rule in refs:  # quick keeps each rule's ends, so edges stay visible
        assert sum(c.rule == rule for c in quick) >= 2, rule
    top = next(c for c in cols if c.rule == "von" and c.hyper["lr"] == 1.0)
    assert grid_edges(cols, top) == ["lr=1 (grid max)"]
    mid = next(c for c in cols if c.rule == "von" and c.hyper["lr"] == 1e-2)
    assert grid_edges(cols, mid) == []


def test_simulate_quadratic_small_and_tuned_picks_lowest_final_loss():
    cfg = QuadraticConfig(n=20, steps=200, log10_diag=(-2.0, 1.0))
    rng = np.random.default_rng(0)
    hess = make_hessian(cfg.n, cfg.log10_diag, rng)
    cols = [Column("sgd", {"lr_sgd": 1e-3}, True), Column("sgd", {"lr_sgd": 10.0}, False)]
    cols += [Column("adabayes", {"lr": 1e-3, "lr_sgd": 0.1}, True)]
    res = simulate_quadratic(cfg, cols, hess, rng, track=2, show_progress=False)
    assert list(res["diverged"]) == [False, True, False]
    assert res["rate"].shape == (cfg.n, 3) and res["mu_track"].shape == (100, cfg.n)
    np.testing.assert_allclose(res["rate"][:, 0], 1e-3 / cfg.batch_size)  # SGD's rate is σ² = lr_sgd / B
    assert res["loss"][-1, 0] < res["loss"][0, 0]  # it learns
    best = tuned_columns([c.rule for c in cols], res)
    assert best["sgd"] == 0 and best["adabayes"] == 2
    ou = ou_analysis(res, hess[0], 1e-3, 1e-3)
    assert ou["implied_eta2"].shape == (cfg.n,) and np.all(ou["implied_eta2"] > 0)
    assert np.all(np.abs(ou["ac1"]) <= 1)


def test_compare_once_joint_is_not_beaten_and_steps_zero_is_rejected():
    from simulations.factorised_vs_joint import FvJConfig, compare_once

    cfg = FvJConfig(sizes=(8,), steps=150, seeds=1, eta_grid=(0.0, 1e-4, 1e-3)).validate()
    out = compare_once(8, cfg, np.random.default_rng(0))
    assert out["fact_loss"].shape == (150, 3) and out["joint_loss"].shape == (150,)
    assert out["fact_loss"].mean(axis=0).min() >= 0.95 * out["joint_loss"].mean()
    for bad in ({"steps": 0}, {"sigma2": -1.0}, {"batch_size": 0}, {"log10_diag": (1.0, 0.0)}):
        with pytest.raises(ValueError):
            FvJConfig(**bad).validate()


def test_generative_config_validates():
    with pytest.raises(ValueError, match="burn_in"):
        GenerativeConfig(steps=10, burn_in=10).validate()
    with pytest.raises(ValueError, match="eta"):
        GenerativeConfig(eta=1.0, sigma2=0.1).validate()
    with pytest.raises(TypeError, match="steps must be an integer"):
        GenerativeConfig(steps=100.0).validate()
    with pytest.raises(ValueError, match="forget"):
        GenerativeConfig(forget=1.0).validate()
    with pytest.raises(ValueError, match="n must be an integer in"):
        QuadraticConfig(n=1).validate()
    with pytest.raises(ValueError, match="hessian"):
        QuadraticConfig(hessian="nope").validate()
    with pytest.raises(TypeError, match="rng"):
        simulate_generative(GenerativeConfig(n_params=10, steps=10, burn_in=1), 0)
