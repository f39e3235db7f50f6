"""Hypothesis properties shared by every update rule: shapes, dtypes, finiteness, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from filtering import rules

EXTREMES = [0.0, 1e-30, -1e-30, 1e30, -1e30]


def _all_rules(lr_sgd: float = 0.1, batch_size: float = 16.0) -> list[rules.UpdateRule]:
    return [
        rules.adabayes(1e-3, lr_sgd, batch_size=batch_size, weight_decay=1e-4),
        rules.adabayes(1e-3, lr_sgd, batch_size=batch_size, predict="exponential"),
        rules.adabayes_fp(1e-3, lr_sgd, batch_size=batch_size, weight_decay=1e-4),
        rules.sgd(0.1, batch_size=batch_size, weight_decay=1e-4),
        rules.adam(1e-3, weight_decay=1e-4),
        rules.adamw(1e-3, weight_decay=1e-4),
        rules.fading_memory(1e-2, lr_sgd, batch_size=batch_size),
        rules.von(1e-2, lr_sgd, batch_size=batch_size),
    ]


RULE_NAMES = [r.name for r in _all_rules()]


@pytest.mark.parametrize("index", range(len(RULE_NAMES)), ids=RULE_NAMES)
@settings(max_examples=40, deadline=None)
@given(
    g=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        elements=st.sampled_from(EXTREMES),
    ),
    steps=st.integers(1, 4),
)
def test_extreme_gradients_stay_finite_and_keep_shape_and_dtype(index, g, steps):
    rule = _all_rules()[index]
    params = np.ones(g.shape)
    state = rule.init(params)
    for _ in range(steps):
        step, state = rule.update(g, state, params)
        assert step.shape == g.shape
        assert step.dtype == g.dtype
        assert np.isfinite(step).all()
        params = rules.apply_updates(params, step)
    assert state.var_post.shape == g.shape and state.var_post.dtype == np.float64


@pytest.mark.parametrize("factory", [rules.adabayes, rules.adabayes_fp])
@given(g=hnp.arrays(np.float64, st.integers(1, 5), elements=st.sampled_from(EXTREMES)))
@settings(max_examples=30, deadline=None)
def test_infinite_sigma2_gives_finite_steps(factory, g):
    rule = factory(1e-3, math.inf, batch_size=8)
    step, _ = rule.update(g, rule.init(np.zeros(g.shape)))
    assert np.isfinite(step).all()


BAD_VALUES = [-1.0, 0.0, float("nan"), float("-inf")]


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (rules.adabayes, "lr"),
        (rules.adabayes, "lr_sgd"),
        (rules.adabayes_fp, "lr"),
        (rules.adabayes_fp, "lr_sgd"),
        (rules.adam, "lr"),
        (rules.adamw, "lr"),
        (rules.von, "lr"),
        (rules.fading_memory, "forget"),
    ],
)
@given(bad=st.sampled_from(BAD_VALUES))
@settings(max_examples=8, deadline=None)
def test_bad_learning_rates_raise_naming_them(factory, name, bad):
    kwargs = {} if factory in (rules.adam, rules.adamw) else {"batch_size": 8}
    with pytest.raises(ValueError, match=name):
        factory(**kwargs, **{name: bad})


@pytest.mark.parametrize("factory", [rules.adabayes, rules.adabayes_fp, rules.adam, rules.adamw, rules.von])
@given(
    beta=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.just(float("nan"))), which=st.integers(0, 1)
)
@settings(max_examples=20, deadline=None)
def test_betas_outside_unit_interval_raise(factory, beta, which):
    betas = [0.9, 0.999]
    betas[which] = beta
    kwargs = {} if factory in (rules.adam, rules.adamw) else {"batch_size": 8}
    with pytest.raises(ValueError, match=rf"betas\[{which}\]"):
        factory(betas=tuple(betas), **kwargs)


@pytest.mark.parametrize("factory", [rules.adabayes, rules.adabayes_fp, rules.sgd, rules.fading_memory, rules.von])
@given(batch_size=st.one_of(st.floats(max_value=0.999), st.just(float("nan")), st.just(float("inf"))))
@settings(max_examples=20, deadline=None)
def test_batch_size_below_one_raises(factory, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        factory(batch_size=batch_size)


@pytest.mark.parametrize("betas", [0.9, "ab", (0.9,), (0.9, 0.999, 0.5)])
def test_malformed_betas_raise_naming_them(betas):
    with pytest.raises(ValueError, match="betas"):
        rules.adabayes(batch_size=8, betas=betas)


@pytest.mark.parametrize("factory", [rules.sgd, rules.fading_memory])
@pytest.mark.parametrize("beta1", [1.0, 1.5, -0.1, float("nan"), float("inf")])
def test_beta1_outside_unit_interval_raises(factory, beta1):
    """The rules with momentum but no ⟨g²⟩ take a single beta1 in [0, 1) (Eq. 2), checked when the rule is made."""
    with pytest.raises(ValueError, match=r"^beta1 must be in \[0, 1\)"):
        factory(batch_size=8, beta1=beta1)


@pytest.mark.parametrize("factory", [rules.sgd, rules.fading_memory])
def test_beta1_zero_is_plain_gradient_averaging_of_one_step(factory):
    """beta1 = 0 (the closed end) is accepted: ⟨g⟩ is the latest gradient, so two steps scale g2, not (g1 + g2)/2."""
    rule = factory(batch_size=8, beta1=0)
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    state = rule.init(np.zeros(2))
    _, state = rule.update(g1, state)
    step, state = rule.update(g2, state)
    np.testing.assert_allclose(step, state.var_post * g2, rtol=1e-14)
