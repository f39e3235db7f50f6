"""One source of truth: the SymPy results, lambdified, against the NumPy core in ``filtering``.

Every comparison is at seeded random points with relative tolerance 1e-10; the symbolic side is evaluated with
mpmath at 40 digits so that only the NumPy side carries rounding error.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from derivations import algorithms as alg
from derivations import fading_memory as fm
from derivations import fixed_point as fp
from derivations.core import eta, g2m, lam, s2_post, sigma2
from filtering import fixed_point as nfp
from filtering import rules
from filtering.ou import stationary_variance

RTOL = 1e-10
mpmath.mp.dps = 40


def _mp(expr: sp.Expr, symbols: list[sp.Symbol]):
    fn = sp.lambdify(symbols, expr, modules="mpmath")
    return lambda *args: float(fn(*(mpmath.mpf(float(a)) for a in args)))


def _points(seed: int, n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sig2 = 10 ** rng.uniform(-2, 0, n)
    return {
        "g2": 10 ** rng.uniform(-4, 6, n),
        "sigma2": sig2,
        "eta": np.sqrt(sig2 * rng.uniform(1e-3, 1.2, n)),  # r = η²/σ² in (1e-3, 1.2): inside OU stability (< 2)
    }


def test_eq21_matches_approx_precision():
    f = _mp(fp.approx_precision(), [g2m, eta, sigma2])
    p = _points(1)
    num = nfp.approx_precision(p["g2"], p["eta"], p["sigma2"])
    sym = np.array([f(a, b, c) for a, b, c in zip(p["g2"], p["eta"], p["sigma2"], strict=True)])
    np.testing.assert_allclose(num, sym, rtol=RTOL)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_exact_fixed_point_matches(predict):
    f = _mp(fp.exact_precision(predict), [g2m, eta, sigma2])
    p = _points(2)
    for a, b, c in zip(p["g2"], p["eta"], p["sigma2"], strict=True):
        assert nfp.exact_precision(a, b, c, predict) == pytest.approx(f(a, b, c), rel=RTOL)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_eq21_relative_error_matches(predict):
    f = _mp(fp.eq21_relative_error(predict), [g2m, eta, sigma2])
    p = _points(3)
    checked = 0
    for a, b, c in zip(p["g2"], p["eta"], p["sigma2"], strict=True):
        sym = f(a, b, c)
        if abs(sym) < 1e-4:  # the NumPy side computes exact/approx - 1: absolute rounding ~1e-16
            continue
        assert float(nfp.eq21_relative_error(a, b, c, predict)) == pytest.approx(sym, rel=RTOL)
        checked += 1
    assert checked >= 20


def test_limits_match():
    p = _points(4)
    sgd = _mp(fp.sgd_limit(), [sigma2])
    adam = _mp(fp.adam_limit(), [g2m, eta])
    np.testing.assert_allclose(nfp.sgd_limit(p["sigma2"]), [sgd(s) for s in p["sigma2"]], rtol=RTOL)
    np.testing.assert_allclose(
        nfp.adam_limit(p["g2"], p["eta"]), [adam(a, b) for a, b in zip(p["g2"], p["eta"], strict=True)], rtol=RTOL
    )


def test_fading_memory_matches():
    rng = np.random.default_rng(5)
    g2, forget, var = 10 ** rng.uniform(-4, 4, 30), rng.uniform(1e-4, 0.9, 30), 10 ** rng.uniform(-5, 1, 30)
    fixed = _mp(fm.fixed_point_variance(), [g2m, lam])
    noise = _mp(fm.process_noise_variance(), [s2_post, lam])
    np.testing.assert_allclose(
        nfp.fading_memory_variance(g2, forget), [fixed(a, b) for a, b in zip(g2, forget, strict=True)], rtol=RTOL
    )
    np.testing.assert_allclose(
        nfp.fading_memory_process_noise(var, forget), [noise(a, b) for a, b in zip(var, forget, strict=True)], rtol=RTOL
    )


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_ou_stationary_variance_matches(predict):
    from derivations.model import ou_stationary_variance

    f = _mp(ou_stationary_variance(predict), [eta, sigma2])
    p = _points(6)
    for b, c in zip(p["eta"], p["sigma2"], strict=True):
        assert float(stationary_variance(b, c, predict)) == pytest.approx(f(b, c), rel=RTOL)


def test_eq21_error_limits_against_numerics():
    # <g²> -> 0: the symbolic limit -η²/(4σ²) against the NumPy relative error at a tiny <g²>
    e0 = _mp(fp.eq21_error_at_zero("paper"), [eta, sigma2])
    assert float(nfp.eq21_relative_error(1e-30, 0.03, 0.1)) == pytest.approx(e0(0.03, 0.1), rel=1e-8)
    assert fp.eq21_error_at_zero("exponential") == 0
    # σ² -> ∞ (Adam-like middle): e ≈ η sqrt(<g²>)/2 while η² <g²> is small
    ratio = fp.regimes("paper")["adam_ratio"] - 1
    for g2 in (1e-2, 1e-4):
        num = float(nfp.eq21_relative_error(g2, 1e-2, math.inf))
        assert num == pytest.approx(float(ratio.subs({eta: 1e-2, g2m: g2})), rel=5e-2)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_leading_order_error_is_first_order_in_r(predict):
    exact = _mp(fp.eq21_relative_error(predict), [g2m, eta, sigma2])
    lead = _mp(fp.eq21_relative_error_leading(predict), [g2m, eta, sigma2])
    # fixed x = σ² sqrt(G)/η = 0.4; halving r must shrink the residual ~4x (second order)
    resid = []
    for r in (1e-2, 5e-3):
        s2 = 1.0
        e = math.sqrt(r * s2)
        g2 = (0.4 * e / s2) ** 2
        resid.append(abs(exact(g2, e, s2) - lead(g2, e, s2)))
    assert 3.0 < resid[0] / resid[1] < 5.0


def test_tolerance_bounds_against_validity_range():
    bounds = fp.eq21_tolerance_bounds("paper")
    tol = sp.Symbol("tol", positive=True)
    e_val, s2_val, rtol = 0.02, 0.1, 5e-4  # r = 4e-3: η²/(4σ²) = 1e-3 > rtol, so both bounds exist
    low, high = nfp.eq21_validity_range(e_val, s2_val, rtol)
    subs = {eta: e_val, sigma2: s2_val, tol: rtol}
    assert high == pytest.approx(float(bounds["upper"].subs(subs)), rel=2e-2)
    assert low == pytest.approx(float(bounds["lower"].subs(subs)), rel=2e-2)
    exp_high = nfp.eq21_validity_range(e_val, s2_val, rtol, predict="exponential")[1]
    assert exp_high == pytest.approx(float(fp.eq21_tolerance_bounds("exponential")["upper"].subs(subs)), rel=2e-2)


# ------------------------------------------------------------------------------------------------ one step of a rule


def _state_points(seed: int, n: int = 12):
    rng = np.random.default_rng(seed)
    return {
        "g": rng.normal(0, 3, n),
        "m": rng.normal(0, 1, n),
        "v": rng.uniform(0, 5, n),
        "var_post": 10 ** rng.uniform(-4, -1, n),
        "mu": rng.normal(0, 1, n),
    }


def _check_step(rule, state, sym: dict[str, sp.Expr], values: dict[str, object], pts, fields):
    names = list(alg.STATE)
    fns = {k: _mp(sym[k], [alg.STATE[n] for n in names]) for k in fields}
    step, new = rule.update(pts["g"], state, pts["mu"])
    got = {"step": step, "var_post": new.var_post, "m": new.m, "v": new.v}
    for i in range(len(pts["g"])):
        args = [pts[n][i] if n in pts else values[n] for n in names]
        for k in fields:
            want = fns[k](*args)
            scale = abs(want) + (abs(values["lam"] * pts["mu"][i]) if k == "step" else 0.0)
            assert abs(float(got[k][i]) - want) <= RTOL * scale + 1e-300, (k, i)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_adabayes_step_matches_rule(predict):
    pts = _state_points(7)
    values = {"eta": 0.03, "sigma2": 0.05, "lam": 1e-3, "beta1": 0.9, "beta2": 0.999, "t": 5, "forget": 0.0}
    rule = rules.adabayes(0.03, 0.05 * 8, batch_size=8, betas=(0.9, 0.999), weight_decay=1e-3, predict=predict)
    state = rules.RuleState(4, pts["m"], None, pts["var_post"])
    _check_step(rule, state, alg.adabayes_step(predict), values, pts, ["step", "var_post", "m"])


def test_adabayes_fp_step_matches_rule():
    pts = _state_points(8)
    values = {"eta": 0.02, "sigma2": 0.01, "lam": 5e-4, "beta1": 0.8, "beta2": 0.99, "t": 3, "forget": 0.0}
    rule = rules.adabayes_fp(0.02, 0.01 * 4, batch_size=4, betas=(0.8, 0.99), weight_decay=5e-4)
    state = rules.RuleState(2, pts["m"], pts["v"], pts["var_post"])
    _check_step(rule, state, alg.adabayes_fp_step(), values, pts, ["step", "var_post", "m", "v"])


def test_fading_memory_step_matches_rule():
    pts = _state_points(9)
    values = {"eta": 0.0, "sigma2": 0.0, "lam": 2e-3, "beta1": 0.9, "beta2": 0.0, "t": 7, "forget": 0.05}
    rule = rules.fading_memory(0.05, 0.1, batch_size=10, beta1=0.9, weight_decay=2e-3)
    state = rules.RuleState(6, pts["m"], None, pts["var_post"])
    _check_step(rule, state, alg.fading_memory_step(), values, pts, ["step", "var_post", "m"])
