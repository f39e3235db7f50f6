"""The update rules of :mod:`filtering.rules`, vectorised over a column axis of hyperparameter settings.

A hyperparameter grid runs C (rule, hyperparameter) columns on the same problem. Calling a
:class:`filtering.rules.UpdateRule` per column costs a Python call, an input check and about ten small array
operations per column and step (for the quadratic experiment's 69 columns x 3000 steps, most of its run time).
Here one call steps every column of one rule kind: states have shape (n, C_k) and hyperparameters shape (C_k,),
broadcast over the n parameters.

The arithmetic is that of :mod:`filtering.rules`, operation by operation, so each column agrees bit for bit with
the per-column rule (``tests/test_column_rules.py`` compares them for every rule). The variance steps are those of
:mod:`filtering.kalman_step` (Eqs. 17b, 18a) and :func:`filtering.fixed_point.approx_precision` (Eq. 21).
Hyperparameters are validated once, by building each column's rule with its :mod:`filtering.rules` factory;
gradients are checked by the caller (once per step for all columns), not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from filtering import kalman_step as ks
from filtering import rules
from filtering.fixed_point import approx_precision
from filtering.ou import variance_predict_coefficients

__all__ = ["RULE_KINDS", "BankState", "ColumnBank", "column_bank"]

ADAM_EPS = 1e-8  # the eps of filtering.rules.adam / adamw, which the grids do not change
BETA2 = 0.999


@dataclass(frozen=True)
class BankState:
    """State of C columns of one rule; arrays of shape (n, C), float64.

    Attributes
    ----------
    t : int
        Number of updates taken (the t of the bias corrections, Eqs. 2 and 4).
    m, v : ndarray, shape (n, C)
        Raw first- and second-moment EMAs (Eqs. 2, 4); ``v`` stays zero for rules that keep none.
    var_post : ndarray, shape (n, C)
        Current learning rate per parameter and column (σ²_post or the rule's equivalent).
    """

    t: int
    m: np.ndarray
    v: np.ndarray
    var_post: np.ndarray


# (hyperparameter arrays (C,), g (n, C), state, t) -> (new rate (n, C), new second moment v (n, C))
_RateFn = Callable[[Mapping[str, np.ndarray], np.ndarray, BankState, int], tuple[np.ndarray, np.ndarray]]


def _debias(ema: np.ndarray, beta: float, t: int) -> np.ndarray:
    return ema / (1.0 - beta**t)  # Eqs. 2 and 4, as filtering.rules


def _ema(old: np.ndarray, new: np.ndarray, beta: float) -> np.ndarray:
    return beta * old + (1.0 - beta) * new  # Eqs. 2 and 4, as filtering.rules


def _scaled(rate: np.ndarray, mean_g: np.ndarray) -> np.ndarray:
    """``rate * mean_g`` with a zero step where ``mean_g == 0`` (as :mod:`filtering.rules`, also for rate = inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(mean_g == 0.0, 0.0, rate * mean_g)


def _rate_sgd(hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int) -> tuple[np.ndarray, np.ndarray]:
    del hp, g, t  # SGD's rate η_SGD / B is the initial var_post, never updated
    return state.var_post, state.v


def _rate_adam(hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int) -> tuple[np.ndarray, np.ndarray]:
    v = _ema(state.v, g * g, BETA2)  # Eq. 4
    with np.errstate(divide="ignore"):
        return hp["lr"] / (np.sqrt(_debias(v, BETA2, t)) + ADAM_EPS), v  # Eq. 3


def _rate_adabayes(
    hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int
) -> tuple[np.ndarray, np.ndarray]:
    del t
    var_prior = ks.predict_variance(state.var_post, hp["factor"], hp["noise"])  # Eq. 17b
    with np.errstate(divide="ignore"):
        return ks.update_variance(var_prior, g * g), state.v  # Eq. 18a (H ≈ g², Eq. 42)


def _rate_adabayes_fp(
    hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int
) -> tuple[np.ndarray, np.ndarray]:
    v = _ema(state.v, g * g, BETA2)  # Eq. 4
    with np.errstate(divide="ignore"):
        return 1.0 / approx_precision(_debias(v, BETA2, t), hp["lr"], hp["sigma2"]), v  # Eq. 21


def _rate_fading(
    hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int
) -> tuple[np.ndarray, np.ndarray]:
    del t
    with np.errstate(divide="ignore", over="ignore"):
        precision_prior = hp["keep"] / state.var_post  # Eq. 28: (1 - λ_f) / σ²_post
        return 1.0 / (precision_prior + g * g), state.v  # Eqs. 18a, 30 in precision form, as filtering.rules


def _rate_von(hp: Mapping[str, np.ndarray], g: np.ndarray, state: BankState, t: int) -> tuple[np.ndarray, np.ndarray]:
    v = _ema(state.v, g * g, BETA2)  # Eq. 4
    with np.errstate(divide="ignore"):
        return ks.update_variance(hp["sigma2"], _debias(v, BETA2, t) / hp["lr"]), v  # Eq. 18a form, fixed prior


@dataclass(frozen=True)
class _Kind:
    """How one rule kind is built and stepped."""

    keys: frozenset[str]  # the hyperparameters a column must give
    factory: Callable[[Mapping[str, float], float, float], rules.UpdateRule]  # (hyper, batch_size, beta1)
    initial_rate: Callable[[Mapping[str, float], float], float]  # (hyper, batch_size) -> var_post before step 1
    rate: _RateFn
    scaled: bool  # step = _scaled(rate, ⟨g⟩) (else rate * ⟨g⟩, SGD)
    decay_key: str | None = None  # hyperparameter holding a decoupled weight decay λ (Eq. 19a / 26)


def _sigma2(hp: Mapping[str, float], b: float) -> float:
    return hp["lr_sgd"] / b  # Eq. 23


RULE_KINDS: dict[str, _Kind] = {
    "sgd": _Kind(
        frozenset({"lr_sgd"}),
        lambda hp, b, beta1: rules.sgd(hp["lr_sgd"], batch_size=b, beta1=beta1),
        _sigma2,
        _rate_sgd,
        scaled=False,
    ),
    "adam": _Kind(
        frozenset({"lr"}),
        lambda hp, _b, beta1: rules.adam(hp["lr"], betas=(beta1, BETA2), eps=ADAM_EPS),
        lambda hp, _b: hp["lr"] / ADAM_EPS,
        _rate_adam,
        scaled=True,
    ),
    "adamw": _Kind(
        frozenset({"lr", "weight_decay"}),
        lambda hp, _b, beta1: rules.adamw(
            hp["lr"], betas=(beta1, BETA2), eps=ADAM_EPS, weight_decay=hp["weight_decay"]
        ),
        lambda hp, _b: hp["lr"] / ADAM_EPS,
        _rate_adam,
        scaled=True,
        decay_key="weight_decay",
    ),
    "adabayes": _Kind(
        frozenset({"lr", "lr_sgd"}),
        lambda hp, b, beta1: rules.adabayes(hp["lr"], hp["lr_sgd"], batch_size=b, betas=(beta1, BETA2)),
        _sigma2,
        _rate_adabayes,
        scaled=True,
    ),
    "adabayes_fp": _Kind(
        frozenset({"lr", "lr_sgd"}),
        lambda hp, b, beta1: rules.adabayes_fp(hp["lr"], hp["lr_sgd"], batch_size=b, betas=(beta1, BETA2)),
        _sigma2,
        _rate_adabayes_fp,
        scaled=True,
    ),
    "fading": _Kind(
        frozenset({"forget", "lr_sgd"}),
        lambda hp, b, beta1: rules.fading_memory(hp["forget"], hp["lr_sgd"], batch_size=b, beta1=beta1),
        _sigma2,
        _rate_fading,
        scaled=True,
    ),
    "von": _Kind(
        frozenset({"lr", "lr_sgd"}),
        lambda hp, b, beta1: rules.von(hp["lr"], hp["lr_sgd"], batch_size=b, betas=(beta1, BETA2)),
        _sigma2,
        _rate_von,
        scaled=True,
    ),
}


def _hyper_arrays(hypers: Sequence[Mapping[str, float]], b: float) -> dict[str, np.ndarray]:
    """Per-column constants, each shape (C,), computed per column with Python floats as filtering.rules does."""
    keys = sorted(hypers[0])
    out = {k: np.array([float(hp[k]) for hp in hypers]) for k in keys}
    if "lr_sgd" in out:
        out["sigma2"] = np.array([_sigma2(hp, b) for hp in hypers])
    if "forget" in out:
        out["keep"] = np.array([1.0 - hp["forget"] for hp in hypers])
    if "lr" in out and "sigma2" in out:
        coeffs = [variance_predict_coefficients(hp["lr"], _sigma2(hp, b)) for hp in hypers]  # Eq. 17b
        out["factor"] = np.array([c[0] for c in coeffs])
        out["noise"] = np.array([c[1] for c in coeffs])
    return out


@dataclass(frozen=True)
class ColumnBank:
    """C columns of one rule kind: ``init(params)`` and ``update(g, state, params)``, all shaped (n, C)."""

    rule: str
    hyper: dict[str, np.ndarray]
    initial_rate: np.ndarray  # (C,)
    beta1: float
    kind: _Kind

    def init(self, params: np.ndarray) -> BankState:
        """State before the first step for parameters ``params`` of shape (n, C)."""
        zeros = np.zeros(params.shape)
        return BankState(0, zeros, zeros.copy(), np.broadcast_to(self.initial_rate, params.shape).copy())

    def update(self, g: np.ndarray, state: BankState, params: np.ndarray) -> tuple[np.ndarray, BankState]:
        """One step of every column; ``g`` and ``params`` of shape (n, C), float64 and finite (not checked here).

        Returns the step (``params + step`` are the new parameters, Eq. 19) and the new state.
        """
        t = state.t + 1
        m = _ema(state.m, g, self.beta1)  # Eq. 2
        rate, v = self.kind.rate(self.hyper, g, state, t)
        mean_g = _debias(m, self.beta1, t)
        step = _scaled(rate, mean_g) if self.kind.scaled else rate * mean_g  # Eqs. 1, 3, 19b
        if self.kind.decay_key is not None and np.any(self.hyper[self.kind.decay_key] != 0.0):
            step = -self.hyper[self.kind.decay_key] * params + step  # Eq. 19a / 26: decoupled decay
        else:
            step = 0.0 + step  # filtering.rules adds a zero decay term; keeps the sign of zero steps identical
        return step, BankState(t, m, v, rate)


def column_bank(rule: str, hypers: Sequence[Mapping[str, float]], *, batch_size: float, beta1: float) -> ColumnBank:
    """Build the bank of ``len(hypers)`` columns of ``rule``, validating each column's hyperparameters.

    Parameters
    ----------
    rule : {"sgd", "adam", "adamw", "adabayes", "adabayes_fp", "fading", "von"}
    hypers : sequence of dict, length C
        Per column, the keyword hyperparameters of the rule (``lr``, ``lr_sgd``, ``forget``, ``weight_decay``).
    batch_size : float
        B (Eq. 23).
    beta1 : float
        Momentum β1 of every column (β2 = 0.999, Adam's ε = 1e-8, as the grids use).

    Raises
    ------
    ValueError
        Unknown rule, no columns, or a hyperparameter :mod:`filtering.rules` rejects (its message).
    """
    if rule not in RULE_KINDS:
        raise ValueError(f"rule must be one of {sorted(RULE_KINDS)}, got {rule!r}")
    if not hypers:
        raise ValueError("hypers must hold at least one column")
    kind = RULE_KINDS[rule]
    b = float(batch_size)
    for j, hp in enumerate(hypers):
        if set(hp) != kind.keys:
            raise ValueError(f"hypers[{j}] of {rule} must have the keys {sorted(kind.keys)}, got {sorted(hp)}")
        kind.factory(hp, b, beta1)  # validation by the reference rule's own factory
    initial = np.array([kind.initial_rate(hp, b) for hp in hypers])
    return ColumnBank(rule, _hyper_arrays(hypers, b), initial, float(beta1), kind)
