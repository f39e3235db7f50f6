"""filtering.optax_adapter: float64 equality with filtering.rules under jit, inject_hyperparams, sign, validation.

The rules take the paper's summed ascent gradient ``g``; the optax transformations take the mean-loss gradient
``grad`` and return updates to add, so the rules are fed ``g = -B grad`` (B = 16: exact) and their step is compared
with the update, to rel 1e-12 (float64: ``jax_enable_x64``).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gradient_streams import gradient_stream as shared_stream
from gradient_streams import initial_params as shared_initial

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from filtering import rules  # noqa: E402
from filtering.optax_adapter import adabayes, adabayes_fp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(33, 7), (5,), (4, 3, 3, 3), (1,)]
B = 16.0  # a power of two: g = -B grad is exact
STEPS = 50
NAMES = [f"t{i}" for i in range(len(SHAPES))]


def gradient_stream(seed: int, steps: int) -> list[list[np.ndarray]]:
    """Mean-loss gradients from 1e-4 to 1e2 with exact zeros (one entry never sees a gradient; 5 % are 0)."""
    return shared_stream(SHAPES, seed, steps)


def initial_params(seed: int) -> list[np.ndarray]:
    return shared_initial(SHAPES, seed)


def assert_close_rel(actual: np.ndarray, expected: np.ndarray, rel: float) -> None:
    """|actual - expected| <= rel |expected| entrywise (infinities must match), no NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    assert not np.isnan(actual).any()
    same_inf = np.isinf(actual) & (actual == expected)
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected)
    ok = same_inf | (err <= rel * np.abs(expected))
    assert ok.all(), f"max rel err {np.max(err[~same_inf] / np.abs(expected[~same_inf]))}"


@pytest.fixture(autouse=True)
def x64():
    """float64 in JAX for this module's tests only."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def _tree(arrays: list[np.ndarray]) -> dict:
    return {n: jax.numpy.asarray(a, dtype=jax.numpy.float64) for n, a in zip(NAMES, arrays, strict=True)}


def _rules_run(rule, gs, p0):
    """Per step: the steps of ``rule`` fed g = -B grad, and the parameters after them."""
    mus, states, steps, traj = [p.copy() for p in p0], [rule.init(p) for p in p0], [], []
    for g in gs:
        out = []
        for i in range(len(SHAPES)):
            step, states[i] = rule.update(-B * g[i], states[i], mus[i])
            mus[i] = mus[i] + step
            out.append(step)
        steps.append(out)
        traj.append([m.copy() for m in mus])
    return steps, traj, states


def _optax_run(tx, gs, p0, change=None):
    """Per step under jit: the updates of ``tx`` and the parameters after them; ``change(k, state)`` may edit the
    state before step k (0-based)."""
    params = _tree(p0)
    state = tx.init(params)
    update = jax.jit(tx.update)
    out, traj = [], []
    for k, g in enumerate(gs):
        if change is not None:
            state = change(k, state)
        updates, state = update(_tree(g), state, params)
        params = optax.apply_updates(params, updates)
        out.append([np.asarray(updates[n]) for n in NAMES])
        traj.append([np.asarray(params[n]) for n in NAMES])
    return out, traj, state


def _assert_runs_equal(got, expected, weight_decay: float) -> None:
    """Parameters after every step to rel 1e-12; the updates too when there is no decay (with decay an update
    -λμ + σ²_post⟨g⟩ may cancel to far below its terms, where rel 1e-12 of the result means nothing)."""
    (got_steps, got_traj), (exp_steps, exp_traj) = got, expected
    for k in range(len(got_steps)):
        for i in range(len(SHAPES)):
            assert_close_rel(got_traj[k][i], exp_traj[k][i], 1e-12)
            if weight_decay == 0.0:
                assert_close_rel(got_steps[k][i], exp_steps[k][i], 1e-12)


@pytest.mark.parametrize(
    ("predict", "lr_sgd", "weight_decay"),
    [("paper", 0.3, 1e-3), ("exponential", 0.3, 0.0), ("paper", math.inf, 1e-3), ("exponential", math.inf, 0.0)],
)
def test_adabayes_equals_rules(predict: str, lr_sgd: float, weight_decay: float) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=weight_decay)
    gs, p0 = gradient_stream(21, STEPS), initial_params(21)
    *expected, states = _rules_run(rules.adabayes(batch_size=B, predict=predict, **hyper), gs, p0)
    *got, state = _optax_run(adabayes(batch_size=B, predict=predict, **hyper), gs, p0)
    _assert_runs_equal(got, expected, weight_decay)
    for i, n in enumerate(NAMES):
        assert_close_rel(np.asarray(state.var_post[n]), states[i].var_post, 1e-12)  # σ²_post (Eqs. 17b, 18a)
        m_ref = states[i].m  # the EMA of g (Eq. 2); absolute tolerance where its terms cancelled
        np.testing.assert_allclose(state.m[n], m_ref, rtol=1e-12, atol=1e-12 * np.abs(m_ref).max())
    assert int(state.count) == STEPS


@pytest.mark.parametrize(("lr_sgd", "weight_decay"), [(0.3, 1e-3), (math.inf, 0.0)])
def test_adabayes_fp_equals_rules(lr_sgd: float, weight_decay: float) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=weight_decay)
    gs, p0 = gradient_stream(22, STEPS), initial_params(22)
    *expected, states = _rules_run(rules.adabayes_fp(batch_size=B, **hyper), gs, p0)
    *got, state = _optax_run(adabayes_fp(batch_size=B, **hyper), gs, p0)
    _assert_runs_equal(got, expected, weight_decay)
    for i, n in enumerate(NAMES):
        assert_close_rel(np.asarray(state.v[n]), states[i].v, 1e-12)  # the EMA of g² (Eq. 4)


def test_sign_convention_matches_optax_adamw() -> None:
    """lr_sgd = inf makes AdaBayes-FP AdamW with ε = 0 (Eq. 27): optax.adamw on the same mean-loss gradients,
    with optax's weight_decay = λ / lr. An independent check that updates descend the loss."""
    rng = np.random.default_rng(23)
    gs = [[rng.standard_normal(s) for s in SHAPES] for _ in range(20)]
    p0 = initial_params(23)
    lr, lam = 2e-3, 1e-3
    ours, *_ = _optax_run(adabayes_fp(lr, math.inf, batch_size=B, betas=(0.9, 0.99), weight_decay=lam), gs, p0)
    ref, *_ = _optax_run(optax.adamw(lr, b1=0.9, b2=0.99, eps=0.0, weight_decay=lam / lr), gs, p0)
    for k in range(20):
        for i in range(len(SHAPES)):
            np.testing.assert_allclose(ours[k][i], ref[k][i], rtol=1e-12, atol=1e-15)
    first, *_ = _optax_run(adabayes_fp(lr, math.inf, batch_size=B), gs[:1], p0)  # no decay
    for i in range(len(SHAPES)):  # Adam's first step is -lr sign(grad): it descends the loss
        np.testing.assert_allclose(first[0][i], -lr * np.sign(gs[0][i]), rtol=1e-12)


def _set_lr_at(step: int, lr: float):
    def change(k, state):
        if k == step:
            state.hyperparams["lr"] = jax.numpy.asarray(lr)
        return state

    return change


@pytest.mark.parametrize("factory", [adabayes, adabayes_fp])
def test_inject_hyperparams_with_eta_scales_the_step(factory) -> None:
    """With ``eta`` given, a new lr only scales the update by lr / eta (here exactly 1/2); the state is untouched."""
    gs, p0 = gradient_stream(24, 12), initial_params(24)
    tx = optax.inject_hyperparams(factory)(lr=1e-3, lr_sgd=0.3, batch_size=B, eta=1e-3)
    ref, _, ref_state = _optax_run(tx, gs, p0)
    got, _, state = _optax_run(tx, gs, p0, change=_set_lr_at(6, 5e-4))
    for k in range(12):
        for i in range(len(SHAPES)):
            expected = ref[k][i] if k < 6 else 0.5 * ref[k][i]
            np.testing.assert_array_equal(got[k][i], expected)
    jax.tree.map(np.testing.assert_array_equal, state.inner_state, ref_state.inner_state)


def test_inject_hyperparams_without_eta_changes_the_filter() -> None:
    """Without ``eta``, lr is η: from the changed step on, the update is that of the rule with the new η applied
    to the old run's state (Eq. 17b's process noise changes), not a rescaled one."""
    gs, p0 = gradient_stream(25, 8), initial_params(25)
    tx = optax.inject_hyperparams(adabayes)(lr=1e-3, lr_sgd=0.3, batch_size=B)
    got, *_ = _optax_run(tx, gs, p0, change=_set_lr_at(5, 4e-3))
    old, new = rules.adabayes(1e-3, 0.3, batch_size=B), rules.adabayes(4e-3, 0.3, batch_size=B)
    mus, states = [p.copy() for p in p0], [old.init(p) for p in p0]
    for k, g in enumerate(gs):
        rule = old if k < 5 else new
        for i in range(len(SHAPES)):
            step, states[i] = rule.update(-B * g[i], states[i], mus[i])
            mus[i] = mus[i] + step
            assert_close_rel(got[k][i], step, 1e-12)
    unchanged, *_ = _optax_run(adabayes(1e-3, 0.3, batch_size=B), gs, p0)
    assert not np.allclose(unchanged[5][0], got[5][0])


def test_schedule_with_eta() -> None:
    gs, p0 = gradient_stream(26, 6), initial_params(26)
    sched = optax.piecewise_constant_schedule(1e-3, {3: 0.25})  # 1e-3 for counts 0-2, then 2.5e-4
    got, *_ = _optax_run(adabayes_fp(sched, 0.3, batch_size=B, eta=1e-3), gs, p0)
    ref, *_ = _optax_run(adabayes_fp(1e-3, 0.3, batch_size=B), gs, p0)
    for k in range(6):
        np.testing.assert_allclose(got[k][0], ref[k][0] * (1.0 if k < 3 else 0.25), rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lr=-1.0), "lr must be"),
        (dict(lr=0.0), "lr must be"),
        (dict(lr_sgd=0.0), "lr_sgd must be"),
        (dict(batch_size=0.5), "batch_size"),
        (dict(betas=(1.0, 0.9)), r"betas\[0\]"),
        (dict(weight_decay=1.0), "weight_decay"),
        (dict(eta=-1.0), "eta must be"),
        (dict(lr=optax.constant_schedule(1e-3)), "schedule only together with eta"),
        (dict(lr=1.0, lr_sgd=0.1, batch_size=128.0), "lr\\*\\*2 < 2 \\* sigma2"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict, match: str) -> None:
    args = dict(lr=1e-3, lr_sgd=0.1, batch_size=B) | kwargs
    with pytest.raises(ValueError, match=match):
        adabayes(**args)
    with pytest.raises(ValueError, match="predict must be"):
        adabayes(1e-3, 0.1, batch_size=B, predict="euler")


def test_weight_decay_needs_params() -> None:
    tx = adabayes_fp(1e-3, 0.1, batch_size=B, weight_decay=1e-3)
    params = _tree(initial_params(27))
    update = jax.jit(tx.update)
    with pytest.raises(ValueError, match="params are required"):
        update(params, tx.init(params))
    updates, _ = update(params, tx.init(params), params)  # fine with params
    assert np.isfinite(np.asarray(updates["t0"])).all()


def test_import_filtering_does_not_import_jax() -> None:
    code = "import sys, filtering, filtering.optax_adapter; print('jax' in sys.modules, 'optax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("missing", ["jax", "optax"])
def test_missing_jax_or_optax_says_how_to_install(monkeypatch, missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: import raises ImportError
    for factory in (adabayes, adabayes_fp):
        with pytest.raises(ImportError, match=r"pip install 'adabayes\[jax\]'"):
            factory(1e-3, 0.1, batch_size=B)


def test_init_and_update_jit_with_injected_hyperparameters_traced() -> None:
    """The whole init + update under one jit, hyperparameters injected as traced state: equal to the rules."""
    gs, p0 = gradient_stream(28, 5), initial_params(28)
    tx = optax.inject_hyperparams(adabayes_fp)(lr=2e-3, lr_sgd=0.3, batch_size=B, weight_decay=1e-3)

    @jax.jit
    def run(params, grads):
        state = tx.init(params)
        for g in grads:
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
        return params

    got = run(_tree(p0), [_tree(g) for g in gs])
    expected = _rules_run(rules.adabayes_fp(2e-3, 0.3, batch_size=B, weight_decay=1e-3), gs, p0)[1][-1]
    for i, n in enumerate(NAMES):
        assert_close_rel(np.asarray(got[n]), expected[i], 1e-12)
