r"""The ``matched`` conversion: AdaBayes hyperparameters whose SGD regime steps and decays like torch's SGD.

The paper (§4) copies the SGD baseline's learning rate into η_SGD (σ² = η_SGD / B, Eq. 23) and its weight decay
into λ = lr · wd. Both copies ignore that torch's SGD *sums* its momentum while AdaBayes *averages* it.

**torch's SGD** (``torch.optim.SGD(lr, momentum=β, weight_decay=wd)``, dampening 0, ``d = p.grad``, the
gradient of the *mean* loss)::

    buf_t = β buf_{t-1} + (d_t + wd p_{t-1})        (buf_1 = d_1 + wd p_0)
    p_t   = p_{t-1} - lr buf_t

Unrolled, ``lr buf_t = lr Σ_{k<=t} β^{t-k} (d_k + wd p_{k-1})``: a *sum* whose steady state for a constant
``d`` is ``lr d / (1 - β)``, and the decay enters through the same sum.

**AdaBayes in its SGD regime** (σ²_post ≡ σ², Eq. 22; the summed ascent gradient is ``g = -B d``)::

    m_t   = β m_{t-1} + (1 - β) d_t,   ⟨g⟩_t = -B m_t / (1 - β^t)     (Eq. 2)
    p_t   = (1 - λ) p_{t-1} + σ² ⟨g⟩_t                                 (Eqs. 19a, 19b)
          = (1 - λ) p_{t-1} - η_SGD m_t / (1 - β^t)                     (σ² = η_SGD / B, Eq. 23)

Its gradient step is ``η_SGD (1 - β) / (1 - β^t) Σ_k β^{t-k} d_k``: a debiased *average*.

**The conversion.** Equal gradient steps and equal decay in the steady state::

    η_SGD (1 - β) = lr           =>   η_SGD = lr / (1 - β)
    λ             = lr wd / (1 - β)

(with β1 = β). For the paper's SGD (lr 0.1, β 0.9, wd 5e-4): η_SGD = 1.0 and λ = 5e-4, where the paper uses
0.1 and 5e-5, both 1/(1 - β) = 10× too small.

**What then agrees, exactly** (``tests/test_conversion.py`` measures each claim):

1. *Gradient steps, any gradient stream* (no weight decay, the same gradients fed to both): for every t,
   ``Δp^AdaBayes_t = Δp^SGD_t / (1 - β^t)``, an identity (rel 1e-9 in float64 through the real optimisers).
   The ratio of the steps tends to 1; it is within 1e-3 of 1 from t = 66 on (β = 0.9).
2. *Cumulative displacement*: the factor ``1/(1 - β^t)`` makes AdaBayes's first steps larger (its first step is
   ``1/(1 - β)`` = 10× SGD's, the debiasing), which leaves a fixed lead. For a constant gradient ``d`` the lead
   is ``lr d β / (1 - β)²`` (9 SGD steps at β = 0.9), so the relative difference of the displacements after T
   steps is ``β / ((1 - β) T)`` (:func:`cumulative_lead`; 0.45 % after 2000 steps).
3. *Decay with zero gradient*: SGD's decay passes through the momentum. Its per-step rate tends to ε, the
   root near 0 of ``ε (1 - β - ε) = lr wd (1 - ε)`` (:func:`sgd_decay_rate`), i.e.
   ``ε = λ (1 + λ β / (1 - β) + O(λ²))``: 0.45 % faster than λ at λ = 5e-4, β = 0.9.
4. *Closed loop on a noisy quadratic* (gradients depend on p): without weight decay the two are the same
   linear time-invariant system after the debiasing transient, so their trajectories converge to each other
   (relative difference 13 % after 100 steps, 0.1 % after 500, < 1e-5 after 1000, for curvatures lr h in
   [1e-3, 0.1]); with the converted decay it stays of the order of ``λ β / (1 - β)`` (median 0.25 %, below
   1 % over steps 1000-2000), and the noise-free fixed point is exactly SGD's, ``h p* / (h + wd)``, which the
   paper's λ = lr wd (with the matched η_SGD) misses by ``β wd / h`` relative (4.5 % at h = 0.01).

**Where they cannot agree.** The first ~1/(1 - β) steps (debiased vs. undebiased momentum, claim 2); the decay's
lag and its O(λ²) rate difference (decay through the momentum vs. decoupled, claim 3). Outside the SGD regime
(⟨g²⟩ ≳ (η/σ²)², Fig. 3) AdaBayes's step is Adam-like and no conversion of η_SGD matches SGD; the conversion
only moves the crossover.

**Schedules.** Multiplying torch SGD's lr by c scales its gradient step and its decay by c; the AdaBayes
adapter's ``lr = c η`` scales σ²_post and λ by c (see ``filtering.torch_adapter.AdaBayes``), so a converted pair
stays matched under the step schedule of ``simulations.training.optimizers``.
"""

from __future__ import annotations

import math

from filtering.validation import check_scalar

__all__ = [
    "cumulative_lead",
    "debias_factor",
    "matched_decoupled_decay",
    "matched_lr_sgd",
    "paper_decoupled_decay",
    "sgd_decay_rate",
]


def _check_sgd(lr: float, momentum: float) -> tuple[float, float]:
    lr = check_scalar("lr", lr, lower=0.0)
    momentum = check_scalar("momentum", momentum, lower=0.0, upper=1.0, allow_equal=True)
    return lr, momentum


def matched_lr_sgd(lr: float, momentum: float) -> float:
    """η_SGD whose SGD-regime AdaBayes step equals torch SGD's steady-state step: ``lr / (1 - momentum)``.

    Parameters
    ----------
    lr : float
        torch SGD's learning rate, > 0.
    momentum : float
        torch SGD's momentum β in [0, 1); AdaBayes must use β1 = β.

    Returns
    -------
    float
        η_SGD (σ² = η_SGD / B, Eq. 23). ``matched_lr_sgd(0.1, 0.9) == 1.0``.
    """
    lr, momentum = _check_sgd(lr, momentum)
    return lr / (1.0 - momentum)


def matched_decoupled_decay(lr: float, momentum: float, weight_decay: float) -> float:
    """λ per step (Eq. 19a) equal to the steady-state decay torch SGD applies through its momentum.

    Parameters
    ----------
    lr, momentum : float
        As for :func:`matched_lr_sgd`.
    weight_decay : float
        torch SGD's (coupled, L2) ``weight_decay`` >= 0.

    Returns
    -------
    float
        ``lr * weight_decay / (1 - momentum)`` (5e-4 for the paper's 0.1, 0.9, 5e-4).

    Raises
    ------
    ValueError
        If the result is not in [0, 1) (a decay of the whole parameter or more per step).
    """
    lr, momentum = _check_sgd(lr, momentum)
    wd = check_scalar("weight_decay", weight_decay, lower=0.0, allow_equal=True)
    lam = lr * wd / (1.0 - momentum)
    if not lam < 1.0:
        raise ValueError(f"lr * weight_decay / (1 - momentum) must be < 1 (a decay per step), got {lam!r}")
    return lam


def paper_decoupled_decay(lr: float, weight_decay: float) -> float:
    """The paper's conversion (§4): ``λ = lr * weight_decay`` (5e-5 for lr 0.1, wd 5e-4), momentum ignored."""
    lr = check_scalar("lr", lr, lower=0.0)
    wd = check_scalar("weight_decay", weight_decay, lower=0.0, allow_equal=True)
    return lr * wd


def debias_factor(t: int, momentum: float) -> float:
    """``1 / (1 - β^t)``: AdaBayes's SGD-regime step at step t (1-based) over torch SGD's (claim 1)."""
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise ValueError(f"t must be an integer >= 1, got {t!r}")
    momentum = check_scalar("momentum", momentum, lower=0.0, upper=1.0, allow_equal=True)
    return 1.0 / (1.0 - momentum**t)


def cumulative_lead(steps: int, momentum: float) -> float:
    """Relative lead of AdaBayes's displacement over SGD's after ``steps`` steps of a constant gradient.

    With step ratio ``1/(1 - β^t)`` (claim 1) and SGD's steps ``lr d (1 - β^t)/(1 - β)``, the difference of the
    summed steps is ``lr d Σ_{t<=T} β^t/(1 - β) = lr d β (1 - β^T)/(1 - β)²`` and SGD's sum is
    ``lr d (T - β (1 - β^T)/(1 - β))/(1 - β)``.

    Returns
    -------
    float
        ``(D_AdaBayes - D_SGD) / D_SGD``, tending to ``β / ((1 - β) T)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    b = check_scalar("momentum", momentum, lower=0.0, upper=1.0, allow_equal=True)
    lead = b * (1.0 - b**steps) / (1.0 - b)
    return lead / (steps - lead)


def sgd_decay_rate(lr: float, momentum: float, weight_decay: float) -> float:
    """Asymptotic per-step decay rate ε of torch SGD with momentum and weight decay at zero gradient (claim 3).

    With d = 0, ``p`` and ``buf`` follow a linear recursion whose slowest mode is ``p_t ∝ z^t`` with
    ``z² - (1 + β - lr wd) z + β = 0``; ε = 1 - z for the root nearer 1.

    Returns
    -------
    float
        ε, equal to ``λ (1 + λ β / (1 - β) + O(λ²))`` with λ = ``matched_decoupled_decay(lr, momentum, wd)``.

    Raises
    ------
    ValueError
        When the roots are complex (lr wd too large for an overdamped decay).
    """
    lr, b = _check_sgd(lr, momentum)
    wd = check_scalar("weight_decay", weight_decay, lower=0.0, allow_equal=True)
    a = lr * wd
    s = 1.0 + b - a
    disc = s * s - 4.0 * b
    if disc < 0.0:
        raise ValueError(f"lr * weight_decay = {a!r} gives an oscillating decay (complex roots); no single rate")
    # z = (s + sqrt(disc)) / 2; ε = 1 - z written without cancellation: ε = (2 - s - sqrt(disc)) / 2 and
    # (2 - s)² - disc = 4 a, so ε = 2a / (2 - s + sqrt(disc))
    return 2.0 * a / (2.0 - s + math.sqrt(disc))
