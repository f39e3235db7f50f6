"""Update rules as pure functions: ``update(g, state, params) -> (step, new_state)``.

Each factory (:func:`adabayes`, :func:`adabayes_fp`, :func:`sgd`, :func:`adam`, :func:`adamw`,
:func:`fading_memory`, :func:`von`) validates its hyperparameters and returns an :class:`UpdateRule`
whose ``init`` and ``update`` never mutate their inputs.

Convention (the paper's): ``g`` is the gradient of the *summed* minibatch log-likelihood, to be *ascended*; the
new parameters are ``params + step``. For every rule ``step = -λ μ + rate · ⟨g⟩`` (decoupled weight decay
λ, Eq. 19a), except :func:`adam`, whose ``weight_decay`` is a coupled L2 penalty. ``state.var_post`` holds
the rule's current per-parameter learning rate ``rate``: σ²_post for the Bayesian rules, and the equivalent
quantity for the others (η_SGD/B for SGD, η/(sqrt(⟨g²⟩)+ε) for Adam), so Fig. 3 can be drawn for each.
The Kalman predict and update of AdaBayes and the fading-memory filter are those of :mod:`filtering.kalman_step`.

Gradients must be real and finite: complex, boolean or string input raises
:class:`~filtering.validation.ArgumentTypeError`, NaN or ±inf a ``ValueError``; so do ``params`` when a rule
reads them (weight decay).

All state is float64 with the shape of ``params``; the step has the dtype of ``g`` when that is a floating
type (float64 otherwise). A step where ``⟨g⟩ = 0`` is exactly 0, even when the learning rate is infinite
(``lr_sgd = inf`` before any nonzero gradient), so no NaN leaks out. With ``lr_sgd = inf`` the first
AdaBayes / AdaBayes-FP step is about ``1/g`` (σ²_post = 1/g²): it is finite for |g| ≳ 1e-150 and overflows to
±inf for gradients whose square underflows float64; a finite σ² avoids that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike

from . import kalman_step as ks
from .fixed_point import approx_precision
from .ou import variance_predict_coefficients
from .validation import (
    check_array,
    check_batch_size,
    check_betas,
    check_open_unit_interval,
    check_ou_stable,
    check_positive,
    check_unit_interval,
)

__all__ = [
    "InitFn",
    "RuleState",
    "UpdateFn",
    "UpdateRule",
    "adabayes",
    "adabayes_fp",
    "adam",
    "adamw",
    "apply_updates",
    "fading_memory",
    "run_rule",
    "sgd",
    "von",
]


class RuleState(NamedTuple):
    """State of an update rule; arrays have the parameters' shape, float64.

    Attributes
    ----------
    t : int
        Number of updates taken (t in the bias corrections of Eqs. 2 and 4).
    m : ndarray
        Raw first-moment EMA ``m`` (Eq. 2).
    v : ndarray
        Raw second-moment EMA ``v`` (Eq. 4). Rules that keep none (AdaBayes, SGD, fading memory) pass their
        initial zeros through unchanged.
    var_post : ndarray
        Current per-parameter learning rate (σ²_post or the rule's equivalent).
    """

    t: int
    m: np.ndarray
    v: np.ndarray
    var_post: np.ndarray


class InitFn(Protocol):
    """``init(params) -> RuleState``: the state before the first step, for parameters shaped like ``params``."""

    def __call__(self, params: ArrayLike) -> RuleState: ...


class UpdateFn(Protocol):
    """``update(g, state, params=None) -> (step, new_state)``; ``params`` is needed only with weight decay."""

    def __call__(
        self, g: ArrayLike, state: RuleState, params: ArrayLike | None = None
    ) -> tuple[np.ndarray, RuleState]: ...


class UpdateRule(NamedTuple):
    """A named pair of pure functions: ``init`` (:class:`InitFn`) and ``update`` (:class:`UpdateFn`)."""

    name: str
    init: InitFn
    update: UpdateFn


# --------------------------------------------------------------------------------------------------------------
# shared pieces


def _step_dtype(g: np.ndarray) -> np.dtype:
    return g.dtype if np.issubdtype(g.dtype, np.floating) else np.dtype(np.float64)


def _check_inputs(g: ArrayLike, state: RuleState) -> tuple[np.ndarray, np.dtype]:
    """``g`` as float64 (real and finite, shaped like the state) and the dtype the step is returned in."""
    g_in = np.asarray(g)
    if g_in.shape != state.m.shape:
        raise ValueError(f"g has shape {g_in.shape}, but the state was initialised for shape {state.m.shape}")
    return check_array("g", g_in), _step_dtype(g_in)


def _ema(old: np.ndarray, new: np.ndarray, beta: float) -> np.ndarray:
    return beta * old + (1.0 - beta) * new  # Eqs. 2 and 4


def _debias(ema: np.ndarray, beta: float, t: int) -> np.ndarray:
    return ema / (1.0 - beta**t)  # Eqs. 2 and 4


def _scaled(rate: np.ndarray, mean_g: np.ndarray) -> np.ndarray:
    """``rate * mean_g`` with the convention that a zero gradient gives a zero step (even for rate = inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(mean_g == 0.0, 0.0, rate * mean_g)


def _params_or_raise(params: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray:
    if params is None:
        raise ValueError("params is required when weight_decay != 0")
    mu = np.asarray(params)
    if mu.shape != shape:
        raise ValueError(f"params has shape {mu.shape}, expected {shape}")
    return check_array("params", mu)


def _decay_step(params: ArrayLike | None, weight_decay: float, shape: tuple[int, ...]) -> np.ndarray | float:
    if weight_decay == 0.0:
        return 0.0
    return -weight_decay * _params_or_raise(params, shape)  # Eq. 19a: mu_prior = (1 - λ) mu_post


def _sigma2(lr_sgd: float, batch_size: float) -> float:
    return lr_sgd / batch_size  # Eq. 23


def _init(params: ArrayLike, var_post: float) -> RuleState:
    shape = np.shape(params)
    zeros = np.zeros(shape, dtype=np.float64)
    return RuleState(0, zeros, zeros.copy(), np.full(shape, var_post, dtype=np.float64))


# --------------------------------------------------------------------------------------------------------------
# the rules


def adabayes(
    lr: float = 1e-3,
    lr_sgd: float = 0.1,
    *,
    batch_size: float,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    predict: str = "paper",
) -> UpdateRule:
    """AdaBayes (Alg. 1, with the precision of Eq. 18a added as printed in the equations).

    Per step: ``m <- β1 m + (1-β1) g``; ``⟨g⟩ = m / (1-β1^t)`` (Eq. 2);
    ``σ²_prior = f σ²_post + q`` (Eq. 17b; ``f = (1-η²/(2σ²))²``, ``q = η²`` for ``predict="paper"``);
    ``σ²_post = 1 / (1/σ²_prior + g²)`` (Eq. 18a with H ≈ g², Eq. 42);
    ``μ <- (1-λ) μ + σ²_post ⟨g⟩`` (Eqs. 19a, 19b). Before the first step ``σ²_post = σ² = lr_sgd / batch_size``.
    ``betas[1]`` is accepted for signature parity with Alg. 2 and is unused.

    Parameters
    ----------
    lr : float
        η = η_Adam > 0 (Eq. 25), the OU process-noise s.d.
    lr_sgd : float
        η_SGD in (0, inf]; σ² = lr_sgd / batch_size (Eq. 23).
    batch_size : float
        Minibatch size B >= 1.
    betas : (float, float)
        (β1, β2), each in [0, 1).
    weight_decay : float
        Decoupled weight decay λ in [0, 1) per step (Eq. 19a).
    predict : {"paper", "exponential"}
        Variance-prediction discretisation (see :mod:`filtering.ou`).
    """
    eta = check_positive("lr", lr)
    sigma2 = _sigma2(check_positive("lr_sgd", lr_sgd, allow_inf=True), check_batch_size(batch_size))
    beta1, _ = check_betas(betas)
    wd = check_unit_interval("weight_decay", weight_decay)
    if predict == "paper":
        check_ou_stable(eta, sigma2)
    factor, noise = variance_predict_coefficients(eta, sigma2, predict)  # also checks predict

    def init(params: ArrayLike) -> RuleState:
        return _init(params, sigma2)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        var_prior = ks.predict_variance(state.var_post, factor, noise)  # Eq. 17b
        with np.errstate(divide="ignore"):
            var_post = ks.update_variance(var_prior, g * g)  # Eq. 18a (H ≈ g², Eq. 42)
        step = _decay_step(params, wd, g.shape) + _scaled(var_post, _debias(m, beta1, t))  # Eq. 19
        return np.asarray(step, dtype=dtype), RuleState(t, m, state.v, var_post)

    return UpdateRule(f"AdaBayes({predict})" if predict != "paper" else "AdaBayes", init, update)


def adabayes_fp(
    lr: float = 1e-3,
    lr_sgd: float = 0.1,
    *,
    batch_size: float,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> UpdateRule:
    """AdaBayes-FP (Alg. 2, line 11 read as a precision): σ²_post set to the fixed point of Eq. 21.

    ``⟨g⟩``, ``⟨g²⟩`` are the debiased EMAs of Eqs. 2 and 4;
    ``1/σ²_post = 1/(2σ²) + sqrt(1/(4σ⁴) + ⟨g²⟩/η²)`` (Eq. 21); ``μ <- (1-λ) μ + σ²_post ⟨g⟩`` (Eq. 19).
    With ``lr_sgd = inf`` this is AdamW with ε = 0 (Eq. 27). Parameters as in :func:`adabayes`.
    """
    eta = check_positive("lr", lr)
    sigma2 = _sigma2(check_positive("lr_sgd", lr_sgd, allow_inf=True), check_batch_size(batch_size))
    beta1, beta2 = check_betas(betas)
    wd = check_unit_interval("weight_decay", weight_decay)

    def init(params: ArrayLike) -> RuleState:
        return _init(params, sigma2)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        v = _ema(state.v, g * g, beta2)  # Eq. 4
        with np.errstate(divide="ignore"):
            var_post = 1.0 / approx_precision(_debias(v, beta2, t), eta, sigma2)  # Eq. 21
        step = _decay_step(params, wd, g.shape) + _scaled(var_post, _debias(m, beta1, t))  # Eq. 19
        return np.asarray(step, dtype=dtype), RuleState(t, m, v, var_post)

    return UpdateRule("AdaBayes-FP", init, update)


def sgd(
    lr_sgd: float = 0.1,
    *,
    batch_size: float,
    beta1: float = 0.9,
    weight_decay: float = 0.0,
) -> UpdateRule:
    """SGD with momentum as in Eq. 1: ``Δμ = η_SGD ⟨g⟩ / B`` with the debiased EMA ⟨g⟩ of Eq. 2.

    The learning rate recorded in ``state.var_post`` is ``η_SGD / B`` = σ² (Eq. 23).
    """
    rate = _sigma2(check_positive("lr_sgd", lr_sgd), check_batch_size(batch_size))
    beta1 = check_unit_interval("beta1", beta1)
    wd = check_unit_interval("weight_decay", weight_decay)

    def init(params: ArrayLike) -> RuleState:
        return _init(params, rate)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        step = _decay_step(params, wd, g.shape) + rate * _debias(m, beta1, t)  # Eq. 1
        return np.asarray(step, dtype=dtype), RuleState(t, m, state.v, state.var_post)

    return UpdateRule("SGD", init, update)


def _adam_family(name: str, lr: float, betas: Sequence[float], eps: float, l2: float, decoupled: float) -> UpdateRule:
    eta = check_positive("lr", lr)
    beta1, beta2 = check_betas(betas)
    eps = check_positive("eps", eps, allow_zero=True)

    def init(params: ArrayLike) -> RuleState:
        return _init(params, math.inf if eps == 0.0 else eta / eps)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        if l2:
            g = g - l2 * _params_or_raise(params, g.shape)  # coupled L2 on the ascent gradient
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        v = _ema(state.v, g * g, beta2)  # Eq. 4
        with np.errstate(divide="ignore"):
            rate = eta / (np.sqrt(_debias(v, beta2, t)) + eps)  # Eq. 3
        step = _decay_step(params, decoupled, g.shape) + _scaled(rate, _debias(m, beta1, t))  # Eq. 3
        return np.asarray(step, dtype=dtype), RuleState(t, m, v, rate)

    return UpdateRule(name, init, update)


def adam(
    lr: float = 1e-3, *, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
) -> UpdateRule:
    """Adam (Eqs. 3-4): ``Δμ = η ⟨g⟩ / (sqrt(⟨g²⟩) + ε)``; ``weight_decay`` κ adds the L2 term ``-κ μ`` to g."""
    kappa = check_positive("weight_decay", weight_decay, allow_zero=True)
    return _adam_family("Adam", lr, betas, eps, kappa, 0.0)


def adamw(
    lr: float = 1e-3, *, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
) -> UpdateRule:
    """AdamW: Adam's step plus decoupled decay ``μ <- (1-λ) μ`` (Eq. 26).

    torch's ``AdamW(lr, weight_decay=wd)`` corresponds to ``λ = lr * wd``.
    """
    wd = check_unit_interval("weight_decay", weight_decay)
    return _adam_family("AdamW", lr, betas, eps, 0.0, wd)


def fading_memory(
    forget: float = 1e-3,
    lr_sgd: float = 0.1,
    *,
    batch_size: float,
    beta1: float = 0.9,
    weight_decay: float = 0.0,
) -> UpdateRule:
    """Ollivier's fading-memory Kalman filter (App. A) with the same momentum and decay as AdaBayes.

    ``1/σ²_prior = (1-λ_f)/σ²_post`` (Eq. 28, in place of the fixed process noise of Eq. 17b);
    ``1/σ²_post = 1/σ²_prior + g²`` (Eqs. 18a, 30);
    ``μ <- (1-λ) μ + σ²_post ⟨g⟩``. The initial σ²_post is σ² = lr_sgd / batch_size. Its fixed point is the
    mean-square normaliser ``λ_f / ⟨g²⟩`` (Eq. 31).

    Parameters
    ----------
    forget : float
        Forgetting factor λ_f in (0, 1).
    """
    forget = check_open_unit_interval("forget", forget)
    sigma2 = _sigma2(check_positive("lr_sgd", lr_sgd, allow_inf=True), check_batch_size(batch_size))
    beta1 = check_unit_interval("beta1", beta1)
    wd = check_unit_interval("weight_decay", weight_decay)

    def init(params: ArrayLike) -> RuleState:
        return _init(params, sigma2)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        with np.errstate(divide="ignore", over="ignore"):
            precision_prior = (1.0 - forget) / state.var_post  # Eq. 28
            var_post = 1.0 / ks.update_precision(precision_prior, g * g)  # Eqs. 18a, 30
        step = _decay_step(params, wd, g.shape) + _scaled(var_post, _debias(m, beta1, t))
        return np.asarray(step, dtype=dtype), RuleState(t, m, state.v, var_post)

    return UpdateRule("FadingMemory", init, update)


def von(
    lr: float = 1e-3,
    lr_sgd: float = 0.1,
    *,
    batch_size: float,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> UpdateRule:
    """VON-style mean-square normaliser (Khan et al. 2018, Eq. 7 form): ``rate = 1 / (1/σ² + ⟨g²⟩/α)``.

    The prior precision 1/σ² plays the role of VON's λ̃, and ``lr`` the role of α: the rate tends to σ²
    as ⟨g²⟩ -> 0 (SGD) and to ``α / ⟨g²⟩`` for large ⟨g²⟩ (mean-square, like Eq. 31), in contrast with
    AdaBayes's root-mean-square ``η / sqrt(⟨g²⟩)``.
    """
    alpha = check_positive("lr", lr)
    sigma2 = _sigma2(check_positive("lr_sgd", lr_sgd, allow_inf=True), check_batch_size(batch_size))
    beta1, beta2 = check_betas(betas)
    wd = check_unit_interval("weight_decay", weight_decay)

    def init(params: ArrayLike) -> RuleState:
        return _init(params, sigma2)

    def update(g: ArrayLike, state: RuleState, params: ArrayLike | None = None) -> tuple[np.ndarray, RuleState]:
        g, dtype = _check_inputs(g, state)
        t = state.t + 1
        m = _ema(state.m, g, beta1)  # Eq. 2
        v = _ema(state.v, g * g, beta2)  # Eq. 4
        with np.errstate(divide="ignore"):
            # Eq. 18a's form with the fixed prior σ² (no prediction) and the curvature ⟨g²⟩/α
            rate = ks.update_variance(sigma2, _debias(v, beta2, t) / alpha)
        step = _decay_step(params, wd, g.shape) + _scaled(rate, _debias(m, beta1, t))
        return np.asarray(step, dtype=dtype), RuleState(t, m, v, rate)

    return UpdateRule("VON", init, update)


# --------------------------------------------------------------------------------------------------------------
# driving a rule


def apply_updates(params: ArrayLike, step: ArrayLike) -> np.ndarray:
    """Return ``params + step`` (the ascent convention of the module docstring) as float64."""
    return np.asarray(params, dtype=np.float64) + np.asarray(step, dtype=np.float64)


def run_rule(rule: UpdateRule, params0: ArrayLike, gradients: ArrayLike) -> tuple[np.ndarray, np.ndarray, RuleState]:
    """Run ``rule`` on a fixed gradient sequence (gradients not fed back).

    Parameters
    ----------
    rule : UpdateRule
    params0 : array_like, shape (...)
    gradients : array_like, shape (T, ...)

    Returns
    -------
    params : ndarray, shape (T, ...)
        Parameters after each step.
    rates : ndarray, shape (T, ...)
        ``state.var_post`` after each step.
    state : RuleState
        Final state.
    """
    gradients = np.asarray(gradients)
    params = np.array(params0, dtype=np.float64)
    state = rule.init(params)
    out_params = np.empty((len(gradients), *params.shape))
    out_rates = np.empty_like(out_params)
    for t, g in enumerate(gradients):
        step, state = rule.update(g, state, params)
        params = apply_updates(params, step)
        out_params[t] = params
        out_rates[t] = state.var_post
    return out_params, out_rates, state
