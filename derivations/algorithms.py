"""The update lines of Algorithms 1 (AdaBayes) and 2 (AdaBayes-FP), and one symbolic step of each rule.

One step of a rule is assembled from the derived equations (Eq. 2/4 moments, Eq. 17b prediction, the Kalman
update of :func:`derivations.kalman.kalman_update` with H ≈ g², Eq. 21, Eqs. 19a/19b, Eqs. 28/30), so the tests can
lambdify it and compare it with the NumPy rules in :mod:`filtering.rules`.

State symbols: ``m``, ``v`` (raw EMAs before the step), ``var_post`` (σ²_post before the step), ``mu`` (the
parameter), ``t`` (the step count *after* incrementing, as in the bias corrections). Hyperparameters: ``eta``,
``sigma2``, ``lam`` (decoupled weight decay λ of Eq. 19a), ``beta1``, ``beta2``, ``forget`` (Appendix A's λ).
"""

from __future__ import annotations

import sympy as sp

from . import fixed_point as fp
from .core import (
    H,
    Raw,
    beta1,
    beta2,
    eta,
    g,
    g2m,
    gm,
    lam,
    lines,
    register_tex,
    s2_post,
    s2_prior,
    same,
    show,
    sigma2,
    t,
)
from .kalman import kalman_update
from .records import CONFIRMED, ERRATUM, Record

__all__ = ["STATE", "adabayes_fp_step", "adabayes_step", "fading_memory_step", "records"]

m_s = register_tex(sp.Symbol("m", real=True), "m")
v_s = register_tex(sp.Symbol("v", nonnegative=True), "v")
var_s = register_tex(sp.Symbol("var_post", positive=True), r"\sigma^2_{\mathrm{post}}")
mu_s = register_tex(sp.Symbol("mu", real=True), r"\mu")
forget = register_tex(sp.Symbol("forget", positive=True), r"\lambda_f")

#: Symbols of one step, by name (for lambdify in the tests).
STATE = {
    "g": g,
    "m": m_s,
    "v": v_s,
    "var_post": var_s,
    "mu": mu_s,
    "t": t,
    "eta": eta,
    "sigma2": sigma2,
    "lam": lam,
    "beta1": beta1,
    "beta2": beta2,
    "forget": forget,
}


def _moments(with_v: bool) -> dict[str, sp.Expr]:
    m_new = beta1 * m_s + (1 - beta1) * g  # Eq. 2
    out = {"m": m_new, "g_mean": m_new / (1 - beta1**t)}  # Eq. 2 (debiased)
    if with_v:
        v_new = beta2 * v_s + (1 - beta2) * g**2  # Eq. 4
        out |= {"v": v_new, "g2_mean": v_new / (1 - beta2**t)}  # Eq. 4 (debiased)
    return out


def _mean_update(var_post_new: sp.Expr, g_mean: sp.Expr) -> sp.Expr:
    """Step ``mu_post - mu`` from Eqs. 19a and 19b (``mu`` is μ_post(t-1))."""
    mu_prior = (1 - lam) * mu_s  # Eq. 19a
    return mu_prior + var_post_new * g_mean - mu_s  # Eq. 19b


def _kalman_variance(var_prior: sp.Expr) -> sp.Expr:
    var, _ = kalman_update()  # Eqs. 35-38
    return var.subs({s2_prior: var_prior, H: g**2})  # Eq. 42: H ≈ g²


def adabayes_step(predict: str = "paper") -> dict[str, sp.Expr]:
    """One AdaBayes step (Alg. 1 as derived): new ``m``, new ``var_post`` and the ``step`` added to ``mu``."""
    f, q = fp.predict_coefficients(predict)
    mom = _moments(with_v=False)
    var_prior = f * var_s + q  # Eq. 17b
    var_new = _kalman_variance(var_prior)  # Eq. 18a
    return {"m": mom["m"], "var_post": var_new, "step": _mean_update(var_new, mom["g_mean"])}


def adabayes_fp_step() -> dict[str, sp.Expr]:
    """One AdaBayes-FP step (Alg. 2 as derived): new ``m``, ``v``, ``var_post`` and the ``step``."""
    mom = _moments(with_v=True)
    var_new = 1 / fp.approx_precision().subs(g2m, mom["g2_mean"])  # Eq. 21
    return {"m": mom["m"], "v": mom["v"], "var_post": var_new, "step": _mean_update(var_new, mom["g_mean"])}


def fading_memory_step() -> dict[str, sp.Expr]:
    """One step of the fading-memory filter (Appendix A) with AdaBayes's momentum and decoupled decay."""
    from .fading_memory import forgetting_prior_precision

    mom = _moments(with_v=False)
    prec_prior = forgetting_prior_precision().subs({lam: forget, s2_post: var_s})  # Eq. 28
    var_new = _kalman_variance(1 / prec_prior)  # Eq. 30
    return {"m": mom["m"], "var_post": var_new, "step": _mean_update(var_new, mom["g_mean"])}


def _uninitialised_reads(init: set[sp.Symbol], loop: list[tuple[sp.Symbol, sp.Expr]], inputs: set[sp.Symbol]):
    """Symbols a loop body reads before any assignment on the first iteration, and dead initialisations."""
    assigned = set(init)
    read_before: list[sp.Symbol] = []
    for target, expr in loop:
        read_before += [s for s in sorted(expr.free_symbols - assigned - inputs, key=str) if s not in read_before]
        assigned.add(target)
    dead = []
    for sym in init:
        for target, expr in loop:
            if sym in expr.free_symbols:
                break
            if target == sym:
                dead.append(sym)
                break
    return read_before, dead


def records() -> list[Record]:
    """Records for the update lines of Algorithms 1 and 2."""
    # ---------------------------------------------------------------- Alg. 1
    f, q = fp.predict_coefficients("paper")
    printed_prior = f * s2_post + q
    printed_post = 1 / (s2_prior + g**2)  # as printed: adds a variance and a squared gradient
    printed_mu = (1 - lam) * mu_s + s2_post * gm
    derived_post = _kalman_variance(s2_prior)
    derived_mu = _mean_update(s2_post, gm) + mu_s
    ok_prior = same(printed_prior, f * s2_post + q)  # Eq. 17b
    ok_post = same(printed_post, derived_post)
    ok_mu = same(printed_mu, derived_mu)
    m_sym = m_s
    loop = [
        (g, g),
        (m_sym, beta1 * m_sym + (1 - beta1) * g),
        (gm, m_sym / (1 - beta1**t)),
        (s2_prior, printed_prior),
        (s2_post, printed_post),
        (mu_s, printed_mu),
    ]
    conventional = {m_sym, mu_s, t, g}  # m = 0, mu = mu_0, t counts steps, g is computed at mu (as in Adam)
    reads, dead = _uninitialised_reads({eta, sigma2, s2_prior}, loop, conventional | {beta1, lam})
    ok_init = not reads and not dead
    alg1_ok = ok_prior and ok_post and ok_mu and ok_init
    alg1 = Record(
        "Alg1",
        CONFIRMED if alg1_ok else ERRATUM,
        lines(
            show(Raw("init", r"\text{init}"), s2_prior, "<-", sigma2),
            show(s2_prior, "<-", printed_prior),
            show(s2_post, "<-", printed_post),
            show(mu_s, "<-", printed_mu),
        ),
        lines(
            show(Raw("init", r"\text{init}"), s2_post, "<-", sigma2),
            show(s2_prior, "<-", printed_prior),
            show(s2_post, "<-", derived_post, "=", 1 / (1 / s2_prior + g**2)),
            show(mu_s, "<-", derived_mu),
        ),
        "Update lines checked against the derived equations: the sigma^2_prior line is Eq. 17b and the mu line is "
        "Eqs. 19a+19b (both confirmed). The sigma^2_post line adds a variance to g^2; the Kalman update (Eqs. 18a, "
        "35-38, H ≈ g^2) adds precisions: 1/(1/sigma^2_prior + g^2). Initialisation (read-before-write check of the "
        f"loop): the first iteration reads {', '.join(map(str, reads)) or 'nothing'} before it is assigned, and the "
        f"printed init of {', '.join(map(str, dead)) or 'nothing'} is overwritten before use, so the init should be "
        "sigma^2_post <- sigma^2 (m = 0, mu = mu_0, t = step count taken as in Adam).",
    )
    # ---------------------------------------------------------------- Alg. 2
    printed11 = 1 / (2 * sigma2) + sp.sqrt(1 / (4 * sigma2**2) + g2m / eta**2)  # line 11 as printed
    derived11 = 1 / fp.approx_precision()  # σ²_post from Eq. 21
    is_precision = same(printed11, fp.approx_precision())
    ok11 = same(printed11, derived11)
    mom = _moments(with_v=True)
    ok_moments = same(mom["m"], beta1 * m_s + (1 - beta1) * g) and same(mom["v"], beta2 * v_s + (1 - beta2) * g**2)
    alg2 = Record(
        "Alg2",
        CONFIRMED if ok11 and ok_moments and ok_mu else ERRATUM,
        lines(
            show(Raw("line 11:", r"\text{11:}"), s2_post, "<-", printed11),
            show(Raw("line 12:", r"\text{12:}"), mu_s, "<-", printed_mu),
        ),
        lines(
            show(Raw("line 11:", r"\text{11:}"), 1 / s2_post, "<-", printed11, ";", s2_post, "=", derived11),
            show(Raw("line 12:", r"\text{12:}"), mu_s, "<-", derived_mu),
        ),
        "Lines 6-9 are Eqs. 2 and 4 (confirmed) and line 12 is Eqs. 19a+19b (confirmed). Line 11's right-hand side "
        f"{'equals' if is_precision else 'does not equal'} Eq. 21's precision 1/sigma^2_post (checked), so it assigns "
        "a precision to sigma^2_post: the learning rate is its inverse.",
    )
    return [alg1, alg2]
