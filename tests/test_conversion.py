"""The ``matched`` conversion (simulations.training.conversion): AdaBayes in its SGD regime vs torch's SGD.

AdaBayes is forced into the SGD regime (σ²_post ≡ σ², Eq. 22) by scale: every trajectory here is linear in
(gradients, parameters) once σ²_post is constant, so gradients and parameters of order 1e-9 give the same
dynamics, scaled, while ⟨g²⟩ σ⁴/η² ~ 1e-12 keeps σ²_post at σ² to that relative precision. The claims tested are
the numbered ones of the module docstring.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from filtering import rules  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402
from simulations.training.conversion import (  # noqa: E402
    cumulative_lead,
    debias_factor,
    matched_decoupled_decay,
    matched_lr_sgd,
    paper_decoupled_decay,
    sgd_decay_rate,
)

LR, BETA, WD, B = 0.1, 0.9, 5e-4, 128
ETA = 1e-3  # AdaBayes's η; irrelevant in the SGD regime
SCALE = 1e-9
T, N = 2000, 32


def _sgd(wd):
    return lambda ps: torch.optim.SGD(ps, lr=LR, momentum=BETA, weight_decay=wd)


def _adabayes(lam, predict="exponential", lr_sgd=None):
    lr_sgd = matched_lr_sgd(LR, BETA) if lr_sgd is None else lr_sgd
    return lambda ps: AdaBayes(
        ps, lr=ETA, lr_sgd=lr_sgd, batch_size=B, betas=(BETA, 0.999), weight_decay=lam, predict=predict
    )


def _adabayes_fp(lam):
    return lambda ps: AdaBayesFP(
        ps, lr=ETA, lr_sgd=matched_lr_sgd(LR, BETA), batch_size=B, betas=(BETA, 0.999), weight_decay=lam
    )


def _trajectory(make, grads, p0=None, curvature=None, target=None):
    """Parameters after each step; the gradient is ``grads[t]`` plus ``curvature * (p - target)`` if given."""
    p = torch.nn.Parameter(torch.zeros(N, dtype=torch.float64) if p0 is None else p0.clone())
    opt = make([p])
    out = torch.empty(len(grads), N, dtype=torch.float64)
    for t, g in enumerate(grads):
        grad = g.clone()
        if curvature is not None:
            grad += curvature * (p.detach() - target)
        p.grad = grad
        opt.step()
        out[t] = p.detach()
    return out


def _steps(traj, p0=None):
    start = torch.zeros(1, N, dtype=torch.float64) if p0 is None else p0[None]
    return torch.diff(torch.cat([start, traj]), dim=0)


def _noisy_stream(seed, mean=0.3):
    gen = torch.Generator().manual_seed(seed)
    return SCALE * (mean + torch.randn(T, N, generator=gen, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------ the formulas


def test_conversion_of_the_papers_sgd():
    assert matched_lr_sgd(0.1, 0.9) == pytest.approx(1.0, rel=1e-15)
    assert matched_decoupled_decay(0.1, 0.9, 5e-4) == pytest.approx(5e-4, rel=1e-12)
    assert paper_decoupled_decay(0.1, 5e-4) == pytest.approx(5e-5, rel=1e-15)  # the paper's λ, 10x smaller
    assert matched_lr_sgd(0.05, 0.0) == 0.05  # without momentum nothing changes
    assert debias_factor(1, 0.9) == pytest.approx(10.0)
    assert debias_factor(2, 0.5) == pytest.approx(4.0 / 3.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: matched_lr_sgd(0.0, 0.9), "lr must be in"),
        (lambda: matched_lr_sgd(0.1, 1.0), "momentum must be in"),
        (lambda: matched_lr_sgd(0.1, -0.1), "momentum must be in"),
        (lambda: matched_decoupled_decay(0.1, 0.9, -1e-4), "weight_decay must be in"),
        (lambda: matched_decoupled_decay(1.0, 0.9, 0.2), "must be < 1"),
        (lambda: debias_factor(0, 0.9), "t must be an integer >= 1"),
        (lambda: cumulative_lead(0, 0.9), "steps must be an integer >= 1"),
        (lambda: sgd_decay_rate(1.0, 0.9, 0.5), "complex roots"),
    ],
)
def test_bad_arguments_name_themselves(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sgd_decay_rate_is_the_root_of_the_characteristic_polynomial():
    eps = sgd_decay_rate(LR, BETA, WD)
    z = 1.0 - eps
    assert z * z - (1 + BETA - LR * WD) * z + BETA == pytest.approx(0.0, abs=1e-15)
    lam = matched_decoupled_decay(LR, BETA, WD)
    # second order: ε = λ (1 + λ β / (1 - β)); the next term is O(λ³)
    assert eps == pytest.approx(lam * (1 + lam * BETA / (1 - BETA)), rel=5 * (lam * BETA / (1 - BETA)) ** 2)


def test_cumulative_lead_by_direct_summation():
    for steps in (1, 7, 2000):
        t = np.arange(1, steps + 1)
        sgd = ((1 - BETA**t) / (1 - BETA)).sum()
        ada = (np.ones(steps) / (1 - BETA)).sum()
        assert cumulative_lead(steps, BETA) == pytest.approx((ada - sgd) / sgd, rel=1e-12)
    assert cumulative_lead(2000, BETA) == pytest.approx(BETA / ((1 - BETA) * 2000), rel=0.01)


# ------------------------------------------------------------------------ claim 1: step identity, open loop


@pytest.mark.parametrize(
    ("make", "rel"),
    [
        (_adabayes(0.0), 1e-9),
        (_adabayes_fp(0.0), 1e-9),
        # Eq. 17b's zero-data fixed point is σ²/(1 - η²/(4σ²)), not σ²: 3.2e-5 relative here
        (_adabayes(0.0, predict="paper"), 4e-5),
    ],
    ids=["AdaBayes-exponential", "AdaBayes-FP", "AdaBayes-paper-predict"],
)
def test_step_ratio_is_the_debias_factor_at_every_step(make, rel):
    grads = _noisy_stream(0)
    steps_sgd = _steps(_trajectory(_sgd(0.0), grads))
    steps_ab = _steps(_trajectory(make, grads))
    factor = torch.tensor([debias_factor(t, BETA) for t in range(1, T + 1)], dtype=torch.float64)[:, None]
    torch.testing.assert_close(steps_ab, steps_sgd * factor, rtol=rel, atol=0.0)
    # hence the step ratio tends to 1: within 1e-3 from t = 66 on
    ratio = steps_ab / steps_sgd
    assert (ratio[65:] - 1).abs().max() < 1e-3
    assert (ratio[0] - 10.0).abs().max() < 1e-6  # the first step: debiased average vs undebiased sum


def test_numpy_rule_with_sigma2_post_held_fixed_matches_torch_adabayes():
    """filtering.rules.sgd is Eq. 19 with σ²_post ≡ σ² (Eq. 1): the torch AdaBayes at this scale is that rule."""
    grads = _noisy_stream(1).numpy()
    lam = matched_decoupled_decay(LR, BETA, WD)
    rule = rules.sgd(matched_lr_sgd(LR, BETA), batch_size=B, beta1=BETA, weight_decay=lam)
    p0 = np.full(N, 2 * SCALE)
    params, _, _ = rules.run_rule(rule, p0, -B * grads)  # paper convention: summed ascent gradient g = -B d
    traj = _trajectory(_adabayes(lam), torch.from_numpy(grads), p0=torch.from_numpy(p0))
    np.testing.assert_allclose(traj.numpy(), params, rtol=1e-9, atol=1e-9 * SCALE)


# -------------------------------------------------------------------- claim 2: cumulative displacement


def test_cumulative_displacement_after_the_transient():
    const = torch.full((T, N), SCALE, dtype=torch.float64)
    d_sgd = _trajectory(_sgd(0.0), const)[-1]
    d_ab = _trajectory(_adabayes(0.0), const)[-1]
    lead = (d_ab - d_sgd) / d_sgd
    torch.testing.assert_close(lead, torch.full_like(lead, cumulative_lead(T, BETA)), rtol=1e-8, atol=0.0)
    assert lead.max() < 0.005  # 0.45 % after 2000 steps
    # the paper's η_SGD = lr leaves AdaBayes 10x slower: a baseline the conversion has to beat
    d_paper = _trajectory(_adabayes(0.0, lr_sgd=LR), const)[-1]
    assert ((d_paper - d_sgd) / d_sgd).abs().min() > 0.89


# --------------------------------------------------------------------------------- claim 3: the decay


def test_decay_rate_through_momentum_vs_decoupled():
    p0 = torch.full((N,), SCALE, dtype=torch.float64)
    zeros = torch.zeros(T, N, dtype=torch.float64)
    lam = matched_decoupled_decay(LR, BETA, WD)
    sgd = _trajectory(_sgd(WD), zeros, p0=p0)[:, 0]
    ada = _trajectory(_adabayes(lam), zeros, p0=p0)[:, 0]
    ada_rate = 1 - ada[-1] / ada[-2]
    sgd_rate = 1 - sgd[-1] / sgd[-2]
    assert float(ada_rate) == pytest.approx(lam, rel=1e-9)  # decoupled: exactly λ per step
    assert float(sgd_rate) == pytest.approx(sgd_decay_rate(LR, BETA, WD), rel=1e-6)
    # 0.45 % faster, to second order; the rest is O((λβ/(1-β))²) = 2e-5
    second_order = lam * BETA / (1 - BETA)
    assert float(sgd_rate / ada_rate) == pytest.approx(1 + second_order, rel=3 * second_order**2)
    # the lag: SGD's first step decays by lr·wd = (1 - β) λ only (its momentum starts empty)
    assert float(1 - sgd[0] / SCALE) == pytest.approx((1 - BETA) * lam, rel=1e-9)
    # over 2000 steps lag and faster rate nearly cancel (within 0.01 %) ...
    assert float(sgd[-1] / ada[-1]) == pytest.approx(1.0, abs=1e-4)
    # ... whereas the paper's λ = lr·wd leaves 90 % of the decay out: p shrinks by e^-0.1 instead of e^-1
    paper = _trajectory(_adabayes(paper_decoupled_decay(LR, WD)), zeros, p0=p0)[:, 0]
    assert float(paper[-1] / sgd[-1]) == pytest.approx(math.exp(0.9), rel=0.01)


# ------------------------------------------------------------------ claim 4: closed loop on a quadratic


def _closed_loop(make):
    gen = torch.Generator().manual_seed(2)
    noise = SCALE * torch.randn(T, N, generator=gen, dtype=torch.float64)
    target = SCALE * torch.randn(N, generator=gen, dtype=torch.float64)
    curvature = torch.linspace(0.01, 1.0, N, dtype=torch.float64)  # lr h in [1e-3, 0.1]
    return _trajectory(make, noise, curvature=curvature, target=target)


def _relative_difference(a, b):
    return ((a - b).norm(dim=1) / b.norm(dim=1)).numpy()


def test_closed_loop_trajectories_converge_without_weight_decay():
    sgd = _closed_loop(_sgd(0.0))
    rel = _relative_difference(_closed_loop(_adabayes(0.0)), sgd)
    assert rel[0] > 4.0  # the first step: 10x SGD's
    assert rel[99] < 0.2  # 13 %: the slowest mode (lr h = 1e-3) relaxes over ~100 steps
    assert rel[499] < 0.005
    assert rel[999] < 1e-4
    assert rel[-1] < 1e-8
    paper = _relative_difference(_closed_loop(_adabayes(0.0, lr_sgd=LR)), sgd)
    assert paper[999:].min() > 0.1  # the paper's η_SGD never catches up


def test_closed_loop_with_converted_decay_stays_within_one_percent():
    sgd = _closed_loop(_sgd(WD))
    rel = _relative_difference(_closed_loop(_adabayes(matched_decoupled_decay(LR, BETA, WD))), sgd)
    # noise-driven, of the order of λβ/(1-β) = 0.45 %: median 0.25 %, max 0.58 % over steps 1000..2000
    assert np.median(rel[999:]) < 0.004
    assert rel[999:].max() < 0.01


def test_closed_loop_fixed_point_is_sgds_only_with_the_converted_decay():
    """Noise-free quadratic: SGD with L2 settles at h p* / (h + wd); AdaBayes at h p* / (h + λ / η_SGD)."""
    gen = torch.Generator().manual_seed(3)
    target = SCALE * (1 + torch.rand(N, generator=gen, dtype=torch.float64))
    curvature = torch.linspace(0.01, 1.0, N, dtype=torch.float64)
    zeros = torch.zeros(T, N, dtype=torch.float64)
    sgd = _trajectory(_sgd(WD), zeros, curvature=curvature, target=target)[-1]
    torch.testing.assert_close(sgd, curvature * target / (curvature + WD), rtol=1e-7, atol=0.0)
    lam = matched_decoupled_decay(LR, BETA, WD)
    matched = _trajectory(_adabayes(lam), zeros, curvature=curvature, target=target)[-1]
    torch.testing.assert_close(matched, sgd, rtol=1e-7, atol=0.0)
    paper = _trajectory(_adabayes(paper_decoupled_decay(LR, WD)), zeros, curvature=curvature, target=target)[-1]
    assert float(((paper - sgd) / sgd).max()) > 0.04  # (wd - λ_paper) / h = 4.5 % at h = 0.01
