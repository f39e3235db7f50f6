"""simulations.column_rules: every column of a bank equals filtering.rules run on that column alone, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from filtering import rules
from simulations.column_rules import RULE_KINDS, column_bank

B, BETA1 = 100.0, 0.9

GRIDS = {
    "sgd": [{"lr_sgd": v} for v in (1e-4, 1e-3, 0.1)],
    "adam": [{"lr": v} for v in (1e-4, 1e-3, 1e-2)],
    "adamw": [{"lr": 1e-3, "weight_decay": 1e-4}, {"lr": 1e-2, "weight_decay": 0.0}, {"lr": 1e-4, "weight_decay": 0.1}],
    "adabayes": [{"lr": 1e-3, "lr_sgd": 0.1}, {"lr": 3e-4, "lr_sgd": 1e-3}, {"lr": 3e-3, "lr_sgd": 0.03}],
    "adabayes_fp": [{"lr": 1e-3, "lr_sgd": 0.1}, {"lr": 3e-4, "lr_sgd": 1e-3}, {"lr": 3e-3, "lr_sgd": 0.03}],
    "fading": [{"forget": v, "lr_sgd": 0.1} for v in (1e-3, 3e-2, 0.3)],
    "von": [{"lr": v, "lr_sgd": 0.1} for v in (1e-4, 1e-2, 1.0)],
}


def _reference(rule: str, hp: dict) -> rules.UpdateRule:
    """The rule as the experiments built it before the bank (one filtering.rules object per column)."""
    betas = (BETA1, 0.999)
    return {
        "sgd": lambda: rules.sgd(hp.get("lr_sgd", 0.0), batch_size=B, beta1=BETA1),
        "adam": lambda: rules.adam(hp.get("lr", 0.0), betas=betas),
        "adamw": lambda: rules.adamw(hp.get("lr", 0.0), betas=betas, weight_decay=hp.get("weight_decay", 0.0)),
        "adabayes": lambda: rules.adabayes(hp.get("lr", 0.0), hp.get("lr_sgd", 0.0), batch_size=B, betas=betas),
        "adabayes_fp": lambda: rules.adabayes_fp(hp.get("lr", 0.0), hp.get("lr_sgd", 0.0), batch_size=B, betas=betas),
        "fading": lambda: rules.fading_memory(hp.get("forget", 0.0), hp.get("lr_sgd", 0.0), batch_size=B, beta1=BETA1),
        "von": lambda: rules.von(hp.get("lr", 0.0), hp.get("lr_sgd", 0.0), batch_size=B, betas=betas),
    }[rule]()


def test_grids_cover_every_rule_kind():
    assert set(GRIDS) == set(RULE_KINDS)


@pytest.mark.parametrize("rule", sorted(GRIDS))
def test_bank_columns_equal_the_reference_rule_bit_for_bit(rule):
    rng = np.random.default_rng(7)
    n, hypers = 40, GRIDS[rule]
    bank = column_bank(rule, hypers, batch_size=B, beta1=BETA1)
    params = np.repeat(0.1 * rng.standard_normal(n)[:, None], len(hypers), axis=1)
    state = bank.init(params)
    refs = [_reference(rule, hp) for hp in hypers]
    ref_params = [params[:, j].copy() for j in range(len(hypers))]
    ref_states = [r.init(p) for r, p in zip(refs, ref_params, strict=True)]
    np.testing.assert_array_equal(state.var_post, np.stack([s.var_post for s in ref_states], axis=1))
    scale = np.logspace(-3, 3, n)[:, None]  # gradients over six decades, with exact zeros in one row
    for t in range(60):
        g = scale * rng.standard_normal((n, len(hypers)))
        g[0] = 0.0 if t % 7 == 0 else g[0]
        step, state = bank.update(g, state, params)
        params = params + step
        for j, ref in enumerate(refs):
            ref_step, ref_states[j] = ref.update(g[:, j], ref_states[j], ref_params[j])
            ref_params[j] = ref_params[j] + ref_step
    np.testing.assert_array_equal(params, np.stack(ref_params, axis=1))
    np.testing.assert_array_equal(state.var_post, np.stack([s.var_post for s in ref_states], axis=1))
    assert state.t == 60


def test_the_comparison_sees_a_tiny_change():
    """The bit-for-bit comparison can fail: a process noise off by a relative 1e-12 is caught."""
    hypers = GRIDS["adabayes"]
    bank = column_bank("adabayes", hypers, batch_size=B, beta1=BETA1)
    bank.hyper["noise"][0] *= 1.0 + 1e-12
    g = np.random.default_rng(0).standard_normal((5, 3))
    _, state = bank.update(g, bank.init(np.zeros((5, 3))), np.zeros((5, 3)))
    ref = _reference("adabayes", hypers[0])
    _, ref_state = ref.update(g[:, 0], ref.init(np.zeros(5)), np.zeros(5))
    assert not np.array_equal(state.var_post[:, 0], ref_state.var_post)
    ref1 = _reference("adabayes", hypers[1])
    _, ref_state1 = ref1.update(g[:, 1], ref1.init(np.zeros(5)), np.zeros(5))
    np.testing.assert_array_equal(state.var_post[:, 1], ref_state1.var_post)  # the other columns are untouched


def test_column_bank_validates_through_the_reference_factories():
    with pytest.raises(ValueError, match="lr"):
        column_bank("adam", [{"lr": -1.0}], batch_size=B, beta1=BETA1)
    with pytest.raises(ValueError, match="forget"):
        column_bank("fading", [{"forget": 1.5, "lr_sgd": 0.1}], batch_size=B, beta1=BETA1)
    with pytest.raises(ValueError, match="keys"):
        column_bank("adam", [{"lr": 1e-3, "weight_decay": 0.1}], batch_size=B, beta1=BETA1)
    with pytest.raises(ValueError, match="rule"):
        column_bank("nope", [{"lr": 1e-3}], batch_size=B, beta1=BETA1)
    with pytest.raises(ValueError, match="at least one"):
        column_bank("sgd", [], batch_size=B, beta1=BETA1)
