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
from .records import Comparison, Record

__all__ = [
    "STATE",
    "adabayes_fp_step",
    "adabayes_step",
    "alg1_checks",
    "alg1_comparisons",
    "alg1_printed",
    "alg2_checks",
    "alg2_comparisons",
    "alg2_printed",
    "fading_memory_step",
    "records",
]

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


def alg1_printed() -> dict[str, object]:
    """Algorithm 1 exactly as printed in the paper, misprints included (typed from the paper's text, not built
    from any derived expression). ``init`` lists the symbols the printed initialisation assigns."""
    return {
        "init": (eta, sigma2, s2_prior),  # η <- η_Adam; σ² <- η_SGD/minibatch size; σ²_prior <- σ²
        "m": beta1 * m_s + (1 - beta1) * g,  # m <- β1 m + (1 - β1) g
        "g_mean": m_s / (1 - beta1**t),  # <g> <- m / (1 - β1^t)
        "prior": (1 - eta**2 / (2 * sigma2)) ** 2 * s2_post + eta**2,  # σ²_prior <- (1 - η²/(2σ²))² σ²_post + η²
        "post": 1 / (s2_prior + g**2),  # σ²_post <- 1/(σ²_prior + g²)
        "mu": (1 - lam) * mu_s + s2_post * gm,  # μ <- (1 - λ) μ + σ²_post <g>
    }


def alg2_printed() -> dict[str, object]:
    """Algorithm 2 exactly as printed in the paper (lines 1-12), misprints included, typed from the paper's text."""
    return {
        "init": (eta, sigma2),  # 1: η <- η_Adam; 2: σ² <- η_SGD/minibatch size (3: blank)
        "m": beta1 * m_s + (1 - beta1) * g,  # 6
        "v": beta2 * v_s + (1 - beta2) * g**2,  # 7
        "g_mean": m_s / (1 - beta1**t),  # 8
        "g2_mean": v_s / (1 - beta2**t),  # 9
        "line11": 1 / (2 * sigma2) + sp.sqrt(1 / (4 * sigma2**2) + g2m / eta**2),  # 11: σ²_post <- this
        "line12": (1 - lam) * mu_s + s2_post * gm,  # 12: μ <- (1 - λ) μ + σ²_post <g>
    }


def _derived_lines() -> dict[str, sp.Expr]:
    """The forms the algorithm lines should have, derived from the model (Eqs. 2, 4, 17b, 18a, 19a+19b, 21)."""
    from .kalman import predict_moments, s2_post_prev

    mom = _moments(with_v=True)
    _, var_prior = predict_moments()  # Eq. 17b: exact moments of Eq. 14 applied to the posterior
    return {
        "m": mom["m"],  # Eq. 2 (in terms of the previous m)
        "v": mom["v"],  # Eq. 4
        "g_mean": mom["g_mean"],  # Eq. 2, debiased (in terms of the previous m)
        "g2_mean": mom["g2_mean"],  # Eq. 4, debiased
        "prior": var_prior.subs(s2_post_prev, s2_post),  # Eq. 17b
        "post": _kalman_variance(s2_prior),  # Eq. 18a (Kalman update, H ≈ g²)
        "mu": _mean_update(s2_post, gm) + mu_s,  # Eqs. 19a + 19b
        "precision": fp.approx_precision(),  # Eq. 21: 1/σ²_post
    }


def _alg1_loop(p: dict[str, object]) -> list[tuple[sp.Symbol, sp.Expr]]:
    return [(g, g), (m_s, p["m"]), (gm, p["g_mean"]), (s2_prior, p["prior"]), (s2_post, p["post"]), (mu_s, p["mu"])]


def _alg2_loop(p: dict[str, object]) -> list[tuple[sp.Symbol, sp.Expr]]:
    return [
        (g, g),
        (m_s, p["m"]),
        (v_s, p["v"]),
        (gm, p["g_mean"]),
        (g2m, p["g2_mean"]),
        (s2_post, p["line11"]),
        (mu_s, p["line12"]),
    ]


#: Loop inputs taken as given, as in Adam: m = v = 0 and mu = mu_0 at the start, t counts steps, g is computed at mu.
_CONVENTIONAL = {m_s, v_s, mu_s, t, g, beta1, beta2, lam}


def _moment_comparisons(p: dict[str, object], d: dict[str, sp.Expr], with_v: bool) -> dict[str, Comparison]:
    """Each printed moment line against Eqs. 2/4; the debias lines read the m, v just updated (derived values)."""
    out = {
        "m": Comparison("m", p["m"], d["m"]),  # Eq. 2
        "g_mean": Comparison("g_mean", p["g_mean"].subs(m_s, d["m"]), d["g_mean"]),  # Eq. 2, debiased
    }
    if with_v:
        out["v"] = Comparison("v", p["v"], d["v"])  # Eq. 4
        out["g2_mean"] = Comparison("g2_mean", p["g2_mean"].subs(v_s, d["v"]), d["g2_mean"])  # Eq. 4, debiased
    return out


def _init_comparison(init: tuple[sp.Symbol, ...], loop: list[tuple[sp.Symbol, sp.Expr]]) -> Comparison:
    """The printed initialisation against what the loop reads before writing it (beyond :data:`_CONVENTIONAL`)."""
    needed, _ = _uninitialised_reads(set(), loop, _CONVENTIONAL)
    return Comparison("init", sp.FiniteSet(*init), sp.FiniteSet(*needed))


def alg1_comparisons(printed: dict[str, object] | None = None) -> dict[str, Comparison]:
    """Each line of Alg. 1 (``printed``, default :func:`alg1_printed`) compared with the form derived from the model.

    Parameters
    ----------
    printed : dict, optional
        Alg. 1's lines as :func:`alg1_printed` returns them (tests pass corrected or mutated copies).

    Returns
    -------
    dict of str to Comparison
        Keys ``m, g_mean, prior, post, mu, init``.
    """
    p = alg1_printed() if printed is None else printed
    d = _derived_lines()
    return _moment_comparisons(p, d, with_v=False) | {
        "prior": Comparison("prior", p["prior"], d["prior"]),  # Eq. 17b
        "post": Comparison("post", p["post"], d["post"]),  # Eq. 18a
        "mu": Comparison("mu", p["mu"], d["mu"]),  # Eqs. 19a + 19b
        "init": _init_comparison(p["init"], _alg1_loop(p)),
    }


def alg2_comparisons(printed: dict[str, object] | None = None) -> dict[str, Comparison]:
    """Each line of Alg. 2 (``printed``, default :func:`alg2_printed`) compared with the form derived from the model.

    Parameters
    ----------
    printed : dict, optional
        Alg. 2's lines as :func:`alg2_printed` returns them (tests pass corrected or mutated copies).

    Returns
    -------
    dict of str to Comparison
        Keys ``m, v, g_mean, g2_mean, line11, line12, init``.
    """
    p = alg2_printed() if printed is None else printed
    d = _derived_lines()
    return _moment_comparisons(p, d, with_v=True) | {
        "line11": Comparison("line11", p["line11"], 1 / d["precision"]),  # σ²_post from Eq. 21
        "line12": Comparison("line12", p["line12"], d["mu"]),  # Eqs. 19a + 19b
        "init": _init_comparison(p["init"], _alg2_loop(p)),
    }


def alg1_checks(printed: dict[str, object] | None = None) -> dict[str, bool]:
    """Outcome of each comparison of :func:`alg1_comparisons` (``True``: the printed line is the derived one)."""
    return {k: c.holds for k, c in alg1_comparisons(printed).items()}


def alg2_checks(printed: dict[str, object] | None = None) -> dict[str, bool]:
    """Outcome of each comparison of :func:`alg2_comparisons` (``True``: the printed line is the derived one)."""
    return {k: c.holds for k, c in alg2_comparisons(printed).items()}


def _names(syms: list[sp.Symbol]) -> str:
    return ", ".join(map(str, syms)) or "nothing"


def _alg1_note(c1: dict[str, bool], p1: dict[str, object]) -> str:
    """What the line-by-line comparison of Alg. 1 found, in words."""
    reads, dead = _uninitialised_reads(set(p1["init"]), _alg1_loop(p1), _CONVENTIONAL)
    post = (
        "is the Kalman update (Eqs. 18a, 35-38, H ≈ g^2). "
        if c1["post"]
        else "adds a variance to g^2; the Kalman update (Eqs. 18a, 35-38, H ≈ g^2) adds precisions: "
        "1/(1/sigma^2_prior + g^2). "
    )
    init_tail = (
        ", so the init should be sigma^2_post <- sigma^2 (m = 0, mu = mu_0, t = step count taken as in Adam)."
        if reads or dead
        else " (m = 0, mu = mu_0, t = step count taken as in Adam)."
    )
    return (
        "Update lines checked one by one against the forms derived from the model: the m and <g> lines are Eq. 2 "
        f"({_verdict(c1['m'] and c1['g_mean'])}), the sigma^2_prior line is Eq. 17b ({_verdict(c1['prior'])}) and "
        f"the mu line is Eqs. 19a+19b ({_verdict(c1['mu'])}). The sigma^2_post line "
        + post
        + f"Initialisation (read-before-write check of the loop): the first iteration reads {_names(reads)} before "
        f"it is assigned, and the printed init of {_names(dead)} is overwritten before use" + init_tail
    )


def _alg1_record(d: dict[str, sp.Expr]) -> Record:
    p1 = alg1_printed()
    comparisons = alg1_comparisons(p1)
    c1 = {k: c.holds for k, c in comparisons.items()}
    init = Raw("init", r"\text{init}")
    return Record.from_comparison(
        "Alg1",
        lines(
            show(init, s2_prior, "<-", sigma2),
            show(s2_prior, "<-", p1["prior"]),
            show(s2_post, "<-", p1["post"]),
            show(mu_s, "<-", p1["mu"]),
        ),
        lines(
            show(init, s2_post, "<-", sigma2),
            show(s2_prior, "<-", p1["prior"] if c1["prior"] else d["prior"]),
            show(s2_post, "<-", d["post"], "=", 1 / (1 / s2_prior + g**2)),
            show(mu_s, "<-", d["mu"]),
        ),
        _alg1_note(c1, p1),
        checks=tuple(comparisons.values()),
    )


def _alg2_note(c2: dict[str, bool], is_precision: bool) -> str:
    """What the line-by-line comparison of Alg. 2 found, in words."""
    if is_precision and not c2["line11"]:
        assigns = "a precision to sigma^2_post: the learning rate is its inverse."
    elif c2["line11"]:
        assigns = "Eq. 21's learning rate to sigma^2_post."
    else:
        assigns = "neither Eq. 21's learning rate nor its precision."
    return (
        f"Lines 6-9 are Eqs. 2 and 4 ({_verdict(all(c2[k] for k in ('m', 'v', 'g_mean', 'g2_mean')))}) and line 12 "
        f"is Eqs. 19a+19b ({_verdict(c2['line12'])}). Line 11's right-hand side "
        f"{'equals' if is_precision else 'does not equal'} Eq. 21's precision 1/sigma^2_post (checked), so it assigns "
        + assigns
    )


def _alg2_record(d: dict[str, sp.Expr]) -> Record:
    p2 = alg2_printed()
    comparisons = alg2_comparisons(p2)
    c2 = {k: c.holds for k, c in comparisons.items()}
    is_precision = same(p2["line11"], d["precision"])
    l11, l12 = Raw("line 11:", r"\text{11:}"), Raw("line 12:", r"\text{12:}")
    return Record.from_comparison(
        "Alg2",
        lines(show(l11, s2_post, "<-", p2["line11"]), show(l12, mu_s, "<-", p2["line12"])),
        lines(
            show(l11, 1 / s2_post, "<-", p2["line11"], ";", s2_post, "=", 1 / d["precision"])
            if is_precision
            else show(l11, s2_post, "<-", 1 / d["precision"]),
            show(l12, mu_s, "<-", d["mu"]),
        ),
        _alg2_note(c2, is_precision),
        checks=tuple(comparisons.values()),
    )


def records() -> list[Record]:
    """Records for the update lines of Algorithms 1 and 2.

    Returns
    -------
    list of Record
        ``Alg1`` and ``Alg2``, each decided by the comparisons of its lines (:func:`alg1_comparisons`,
        :func:`alg2_comparisons`).
    """
    d = _derived_lines()
    return [_alg1_record(d), _alg2_record(d)]


def _verdict(ok: bool) -> str:
    """``confirmed`` or ``MISMATCH`` for a note."""
    return "confirmed" if ok else "MISMATCH"
