"""Update rules against inline references written from the paper's equations, and their limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from filtering import fixed_point as fp
from filtering import rules

B = 32
ETA, LR_SGD = 1e-3, 0.1
SIGMA2 = LR_SGD / B


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _gradients(seed: int, steps: int = 50, shape=(7,)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3, 3, size=shape)
    return rng.standard_normal((steps, *shape)) * scale


def _reference_adabayes(grads, mu0, eta, sigma2, beta1, wd, predict):
    """Alg. 1 as Eqs. 2, 17b, 18a, 19 read, one line each."""
    if predict == "paper":
        factor, noise = (1 - eta**2 / (2 * sigma2)) ** 2, eta**2
    else:
        factor, noise = math.exp(-(eta**2) / sigma2), sigma2 * (1 - math.exp(-(eta**2) / sigma2))
    mu, m, var_post = mu0.copy(), np.zeros_like(mu0), np.full_like(mu0, sigma2)
    out = []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        var_prior = factor * var_post + noise
        var_post = 1 / (1 / var_prior + g**2)
        mu = (1 - wd) * mu + var_post * m / (1 - beta1**t)
        out.append(mu)
    return np.array(out), var_post


def _reference_adamw(grads, mu0, lr, betas, eps, wd):
    mu, m, v = mu0.copy(), np.zeros_like(mu0), np.zeros_like(mu0)
    out = []
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mu = (1 - wd) * mu + lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
        out.append(mu)
    return np.array(out)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("wd", [0.0, 5e-5])
def test_adabayes_matches_algorithm_1(predict, wd):
    grads = _gradients(0)
    mu0 = np.linspace(-1, 1, 7)
    rule = rules.adabayes(ETA, LR_SGD, batch_size=B, weight_decay=wd, predict=predict)
    params, _, state = rules.run_rule(rule, mu0, grads)
    ref_params, ref_var = _reference_adabayes(grads, mu0, ETA, SIGMA2, 0.9, wd, predict)
    assert _rel(params, ref_params) <= 1e-12
    assert _rel(state.var_post, ref_var) <= 1e-12
    assert state.t == len(grads)


def test_adabayes_fp_is_adamw_at_infinite_sigma2():
    grads = _gradients(1)
    mu0 = np.linspace(-1, 1, 7)
    wd = 5e-5
    fp_params, _, _ = rules.run_rule(
        rules.adabayes_fp(ETA, math.inf, batch_size=B, weight_decay=wd), mu0, grads
    )  # Eq. 27
    adamw_params, _, _ = rules.run_rule(rules.adamw(ETA, eps=0.0, weight_decay=wd), mu0, grads)
    ref = _reference_adamw(grads, mu0, ETA, (0.9, 0.999), 0.0, wd)
    assert _rel(fp_params, ref) <= 1e-12
    assert _rel(adamw_params, ref) <= 1e-12


def test_adabayes_fp_is_sgd_as_g2_vanishes():
    grads = _gradients(2) * 1e-12  # <g²>/η² ~ 1e-18: deep in the SGD regime (Eq. 22)
    mu0 = np.zeros(7)
    fp_params, fp_rates, _ = rules.run_rule(rules.adabayes_fp(ETA, LR_SGD, batch_size=B), mu0, grads)
    sgd_params, sgd_rates, _ = rules.run_rule(rules.sgd(LR_SGD, batch_size=B, beta1=0.9), mu0, grads)
    assert _rel(fp_params, sgd_params) <= 1e-12
    np.testing.assert_allclose(fp_rates, SIGMA2, rtol=1e-12)
    np.testing.assert_allclose(sgd_rates, SIGMA2, rtol=0)


def test_adabayes_fp_rate_is_eq21_at_debiased_g2():
    grads = _gradients(3, steps=5)
    *_, state = rules.run_rule(rules.adabayes_fp(ETA, LR_SGD, batch_size=B), np.zeros(7), grads)
    v = np.zeros(7)
    for g in grads:
        v = 0.999 * v + 0.001 * g * g
    g2 = v / (1 - 0.999 ** len(grads))
    np.testing.assert_allclose(state.var_post, 1 / fp.approx_precision(g2, ETA, SIGMA2), rtol=1e-14)


@pytest.mark.parametrize("g2", [1e-4, 1.0, 1e4, 1e10])
def test_adabayes_rate_converges_to_exact_fixed_point_with_constant_gradient(g2):
    eta, sigma2 = 0.05, 0.1  # fast OU so that a few thousand steps converge
    rule = rules.adabayes(eta, sigma2, batch_size=1, betas=(0.0, 0.999))
    grads = np.full((4000, 1), math.sqrt(g2))
    _, _, state = rules.run_rule(rule, np.zeros(1), grads)
    np.testing.assert_allclose(1 / state.var_post, fp.exact_precision(g2, eta, sigma2), rtol=1e-9)


def test_fading_memory_and_von_rates():
    g = np.full((3000, 2), [0.5, 20.0])
    _, _, state = rules.run_rule(rules.fading_memory(0.01, LR_SGD, batch_size=B, beta1=0.0), np.zeros(2), g)
    np.testing.assert_allclose(state.var_post, fp.fading_memory_variance(g[0] ** 2, 0.01), rtol=1e-10)  # Eq. 31
    _, _, state = rules.run_rule(rules.von(1e-2, LR_SGD, batch_size=B), np.zeros(2), g)
    np.testing.assert_allclose(state.var_post, 1 / (1 / SIGMA2 + g[0] ** 2 / 1e-2), rtol=1e-10)


def test_adam_l2_enters_the_normalised_gradient():
    grads = _gradients(4, steps=20)
    mu0 = np.ones(7)
    kappa, eps = 0.5, 1e-8
    adam_params, _, _ = rules.run_rule(rules.adam(ETA, weight_decay=kappa), mu0, grads)
    mu, m, v = mu0.copy(), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, start=1):  # ascent on log-likelihood - (κ/2) μ²: gradient g - κ μ
        g = g - kappa * mu
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mu = mu + ETA * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + eps)
    assert _rel(adam_params[-1], mu) <= 1e-12


def test_update_is_pure():
    rule = rules.adabayes(ETA, LR_SGD, batch_size=B)
    params = np.ones(3)
    state = rule.init(params)
    g = np.array([1.0, -2.0, 3.0])
    before = (state.m.copy(), state.var_post.copy(), g.copy())
    step1, _ = rule.update(g, state, params)
    step2, _ = rule.update(g, state, params)
    np.testing.assert_array_equal(step1, step2)
    np.testing.assert_array_equal(state.m, before[0])
    np.testing.assert_array_equal(state.var_post, before[1])
    np.testing.assert_array_equal(g, before[2])


def test_bad_gradient_and_shape_raise():
    rule = rules.adabayes(ETA, LR_SGD, batch_size=B)
    state = rule.init(np.zeros(3))
    with pytest.raises(ValueError, match=r"^g must be in \(-inf, inf\)"):
        rule.update(np.array([0.0, np.nan, 0.0]), state)
    with pytest.raises(ValueError, match=r"g has shape \(4,\), but the state was initialised for shape \(3,\)"):
        rule.update(np.zeros(4), state)
    decayed = rules.adabayes(ETA, LR_SGD, batch_size=B, weight_decay=0.1)
    with pytest.raises(ValueError, match="params is required when weight_decay != 0"):
        decayed.update(np.zeros(3), state)
    with pytest.raises(ValueError, match=r"params has shape \(1,\), expected \(3,\)"):
        decayed.update(np.zeros(3), state, np.zeros(1))


def test_ou_stability_is_checked():
    with pytest.raises(ValueError, match="lr"):
        rules.adabayes(lr=0.1, lr_sgd=0.1, batch_size=100)  # η² = 1e-2 > 2σ² = 2e-3


# --------------------------------------------------------------------------------------------------------------
# inline references for the rules the tests above reach only through their fixed points (issue 12 mutants)


def _all_rules(wd: float = 0.0) -> list[rules.UpdateRule]:
    return [
        rules.adabayes(ETA, LR_SGD, batch_size=B, weight_decay=wd),
        rules.adabayes_fp(ETA, LR_SGD, batch_size=B, weight_decay=wd),
        rules.sgd(LR_SGD, batch_size=B, weight_decay=wd),
        rules.adam(ETA, weight_decay=wd),
        rules.adamw(ETA, weight_decay=wd),
        rules.fading_memory(0.01, LR_SGD, batch_size=B, weight_decay=wd),
        rules.von(1e-2, LR_SGD, batch_size=B, weight_decay=wd),
    ]


def test_von_matches_khan_2018_eq7_without_the_prior_gradient():
    """Khan et al. (2018) Eq. 7: ``μ <- μ - α (ĝ + λ̃ μ) / (s + λ̃)`` with ``s`` an EMA of the squared gradient.

    Here the ascent form with momentum and Adam-style debiasing, no prior-gradient term (weight_decay = 0), and
    VON's λ̃ = α / σ² (the prior precision scaled by the step size), so the rate is ``α / (ŝ + α/σ²)``.
    """
    alpha, beta1, beta2 = 1e-2, 0.8, 0.95
    grads = _gradients(5, steps=40)
    params, rates, state = rules.run_rule(
        rules.von(alpha, LR_SGD, batch_size=B, betas=(beta1, beta2)), np.linspace(-1, 1, 7), grads
    )
    lam_tilde = alpha / SIGMA2
    mu, m, s = np.linspace(-1, 1, 7), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g * g
        rate = alpha / (s / (1 - beta2**t) + lam_tilde)
        mu = mu + rate * m / (1 - beta1**t)
        np.testing.assert_allclose(rates[t - 1], rate, rtol=1e-13)
        np.testing.assert_allclose(params[t - 1], mu, rtol=1e-12)
    np.testing.assert_allclose(state.v, s, rtol=1e-14)


def test_fading_memory_matches_appendix_a_step_by_step():
    """Eqs. 28, 30 and the debiased momentum of Eq. 2, with decoupled decay, one line each."""
    forget, beta1, wd = 0.05, 0.9, 1e-3
    grads = _gradients(6, steps=30)
    mu0 = np.linspace(-1, 1, 7)
    params, rates, state = rules.run_rule(
        rules.fading_memory(forget, LR_SGD, batch_size=B, beta1=beta1, weight_decay=wd), mu0, grads
    )
    mu, m, precision = mu0.copy(), np.zeros(7), np.full(7, 1 / SIGMA2)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        precision = (1 - forget) * precision + g * g  # Eq. 28 then Eq. 30
        mu = (1 - wd) * mu + (m / (1 - beta1**t)) / precision
        np.testing.assert_allclose(rates[t - 1], 1 / precision, rtol=1e-13)
        np.testing.assert_allclose(params[t - 1], mu, rtol=1e-12)
    assert state.t == len(grads)
    np.testing.assert_array_equal(state.v, 0.0)  # no second moment kept: the initial zeros pass through


def test_first_step_is_debiased():
    """After one step the debiased momentum is g itself, whatever β1: the first step is rate(1) · g."""
    g = np.array([0.3, -2.0, 5.0])
    for rule in (
        rules.adabayes(ETA, LR_SGD, batch_size=B, betas=(0.99, 0.999)),
        rules.fading_memory(0.01, LR_SGD, batch_size=B, beta1=0.99),
        rules.sgd(LR_SGD, batch_size=B, beta1=0.99),
        rules.von(1e-2, LR_SGD, batch_size=B, betas=(0.99, 0.9)),
    ):
        step, state = rule.update(g, rule.init(np.zeros(3)))
        np.testing.assert_allclose(step, state.var_post * g, rtol=1e-14, err_msg=rule.name)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_every_rule_refuses_non_finite_gradients(bad):
    for rule in _all_rules():
        state = rule.init(np.zeros(3))
        with pytest.raises(ValueError, match=r"^g must be in \(-inf, inf\)"):
            rule.update(np.array([0.0, bad, 1.0]), state, np.zeros(3))


@pytest.mark.parametrize("bad", [np.array([1.0 + 0.0j, 2.0, 3.0]), np.array([1.0, 2.0, 3.0 + 1e-3j]), [1j, 0, 0]])
def test_every_rule_refuses_complex_gradients(bad):
    for rule in _all_rules():
        with pytest.raises(TypeError, match="g must hold real numbers"):
            rule.update(bad, rule.init(np.zeros(3)), np.zeros(3))


@pytest.mark.parametrize("params", [np.array([0.0, np.inf, 0.0]), np.array([0.0, 1j, 0.0])])
def test_rules_with_weight_decay_refuse_bad_params(params):
    for rule in _all_rules(wd=1e-3):
        with pytest.raises(ValueError, match="params"):
            rule.update(np.ones(3), rule.init(np.zeros(3)), params)


def test_zero_gradient_gives_exactly_zero_step_even_at_infinite_rate():
    """⟨g⟩ = 0 gives a zero step by convention, also where the rate is inf (σ² = inf before any data)."""
    for rule in [*_all_rules(), rules.adabayes(ETA, math.inf, batch_size=B), rules.adamw(ETA, eps=0.0)]:
        step, _ = rule.update(np.zeros(3), rule.init(np.zeros(3)))
        np.testing.assert_array_equal(step, 0.0, err_msg=rule.name)
    rule = rules.fading_memory(0.01, math.inf, batch_size=B)  # σ² = inf is allowed here too
    step, state = rule.update(np.array([0.0, 2.0]), rule.init(np.zeros(2)))
    np.testing.assert_array_equal(step, [0.0, 1 / 2.0])  # the first observation alone: σ²_post = 1/g²
    np.testing.assert_array_equal(state.var_post, [np.inf, 0.25])


def test_rule_names_and_eps_check():
    assert rules.adabayes(batch_size=B).name == "AdaBayes"
    assert rules.adabayes(batch_size=B, predict="exponential").name == "AdaBayes(exponential)"
    with pytest.raises(ValueError, match=r"eps must be in \[0, inf\)"):
        rules.adam(eps=-1e-8)
    with pytest.raises(ValueError, match="predict"):
        rules.adabayes(batch_size=B, predict="euler")
