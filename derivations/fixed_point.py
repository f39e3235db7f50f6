"""The fixed point of the learning rate: §3.1 (Eqs. 20-27), Appendix D (Eqs. 43-49), and the exact fixed point.

Alg. 1's precision recursion (Eqs. 17b + 18a, precision form) is ``λ' = 1/(f/λ + q) + g²`` with predict factor
``f`` and noise ``q`` (paper: ``f = (1 - η²/(2σ²))²``, ``q = η²``; exponential: ``f = exp(-η²/σ²)``,
``q = σ²(1 - exp(-η²/σ²))``). Its fixed point with g² -> ⟨g²⟩ solves, exactly, the quadratic
``q λ² - (1 - f + q⟨g²⟩) λ - f⟨g²⟩ = 0`` (:func:`fixed_point_quadratic`). Appendix D approximates it (``f ≈ 1 - η²/σ²``,
then a first-order Taylor step) to get Eq. 20, whose positive root is Eq. 21.

Notation: ``lp`` is λ_post = 1/σ²_post (Eq. 43); ``G`` stands for ⟨g²⟩; ``r = η²/σ²``; ``x = σ² sqrt(G)/η`` (the ratio
inside Eq. 21).
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .core import (
    Raw,
    Shown,
    asymptotic_to,
    batch,
    eta,
    eta_adam,
    eta_sgd,
    g,
    g2m,
    gm,
    lam,
    lp,
    mu_post,
    mu_post_prev,
    register_tex,
    s2_post,
    same,
    same_at,
    same_to_order,
    show,
    sigma2,
)
from .records import DEFINITION, Comparison, Extra, Record

__all__ = [
    "PRINTED",
    "adam_limit",
    "approx_precision",
    "eq21_error_at_zero",
    "eq21_relative_error",
    "eq21_relative_error_leading",
    "eq21_tolerance_bounds",
    "exact_precision",
    "extras",
    "fixed_point_quadratic",
    "precision_map",
    "predict_coefficients",
    "records",
    "regimes",
    "sgd_limit",
]

G = g2m
lp_next = register_tex(sp.Symbol("lambda_post_next", positive=True), r"\lambda_{\mathrm{post}}(t+1)")
lp_now = register_tex(sp.Symbol("lambda_post_now", positive=True), r"\lambda_{\mathrm{post}}(t)")
x_ratio = register_tex(sp.Symbol("x", positive=True), "x")
r_ratio = register_tex(sp.Symbol("r", positive=True), "r")
tol = register_tex(sp.Symbol("tol", positive=True), r"\epsilon")
s_root = register_tex(sp.Symbol("s", positive=True), "s")  # s = sqrt(1 + 4 x²)
eps = sp.Symbol("epsilon", positive=True)  # bookkeeping parameter for Taylor steps
R = eta**2 / sigma2
F_APPENDIX_D = 1 - eta**2 / sigma2  # Appendix D's predict factor, f ≈ 1 - η²/σ² (Eqs. 44-46)

#: The forms as printed in the paper, by equation (``"eq/part"`` for one of several printed parts), in λ = 1/σ²_post.
#: The comparisons read them from here at call time and nowhere else, so a test can change one and watch its
#: record's status; derivations that the paper builds on a printed equation (Eq. 22 on Eq. 21, Eq. 45 on Eq. 44, ...)
#: read it from here too.
PRINTED: dict[str, sp.Expr] = {
    "20": sigma2 * lp**2 - lp - G * sigma2 / eta**2,
    "21": (1 + sp.sqrt(1 + 4 * (sigma2 / (eta / sp.sqrt(G))) ** 2)) / (2 * sigma2),
    "22": sigma2,  # lim_{⟨g²⟩->0} σ²_post
    "24": eta / sp.sqrt(G),  # σ²_post as ⟨g²⟩ -> ∞
    "26": (lam - 1) * mu_post_prev + eta / sp.sqrt(G) * gm,
    "27/middle": 1 / (2 * sigma2) + sp.sqrt(1 / (4 * sigma2**2) + G / eta**2),
    "27/limit": eta / sp.sqrt(G),  # lim_{σ²->∞} 1/σ²_post as printed
    "44": 1 / (F_APPENDIX_D / lp_now + eta**2) + g**2,
    "45": 1 / (F_APPENDIX_D / lp + eta**2) + G,
    "46": lp / (1 - eta**2 / sigma2 + eta**2 * lp) + G,
    "47": lp * (1 + eta**2 / sigma2 - eta**2 * lp) + G,
    "48": eta**2 * lp**2 - eta**2 / sigma2 * lp - G,
    "49": sigma2 * lp**2 - lp - G * sigma2 / eta**2,
}


def predict_coefficients(predict: str = "paper") -> tuple[sp.Expr, sp.Expr]:
    """``(f, q)`` with ``σ²_prior = f σ²_post + q`` (Eq. 17b for ``"paper"``, exponential discretisation otherwise).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    tuple of sympy.Expr
        The predict factor ``f`` and the process-noise variance ``q``, in η and σ².
    """
    if predict == "paper":
        return (1 - eta**2 / (2 * sigma2)) ** 2, eta**2  # Eq. 17b
    if predict == "exponential":
        return sp.exp(-(eta**2) / sigma2), sigma2 * (1 - sp.exp(-(eta**2) / sigma2))
    raise ValueError(f"predict must be 'paper' or 'exponential', got {predict!r}")


def precision_map(predict: str = "paper") -> sp.Expr:
    """λ_post(t+1) as a function of λ_post(t) and g²: Eq. 17b substituted into Eq. 18a (precision form).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    sympy.Expr
        ``1/(f/λ_post(t) + q) + g²`` in the symbols ``lambda_post_now``, ``g``, η, σ².
    """
    f, q = predict_coefficients(predict)
    var_prior = f * (1 / lp_now) + q  # Eq. 17b with σ²_post(t) = 1/λ_post(t)
    return 1 / var_prior + g**2  # Eq. 18a (H ≈ g², Eq. 42), precision form


def fixed_point_quadratic(predict: str = "paper") -> sp.Expr:
    """Monic polynomial ``λ² - (b0 + ⟨g²⟩) λ - c1 ⟨g²⟩`` in ``lp`` whose positive root is the exact fixed point.

    Derived by clearing denominators in ``λ = 1/(f/λ + q) + ⟨g²⟩`` (g² -> ⟨g²⟩, no Taylor step) and dividing by
    the leading coefficient; ``b0 = (1 - f)/q`` and ``c1 = f/q`` (see :func:`fixed_point_coefficients`).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    sympy.Expr
        The quadratic in ``lambda_post`` and ⟨g²⟩, η, σ².
    """
    b0, c1 = fixed_point_coefficients(predict)
    return lp**2 - (b0 + G) * lp - c1 * G


@lru_cache(maxsize=4)
def fixed_point_coefficients(predict: str = "paper") -> tuple[sp.Expr, sp.Expr]:
    """``(b0, c1)`` of the monic fixed-point quadratic, derived from Alg. 1's precision recursion.

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    tuple of sympy.Expr
        ``b0 = (1 - f)/q`` and ``c1 = f/q``, free of ⟨g²⟩.
    """
    fp_eq = precision_map(predict).subs({lp_now: lp, g**2: G}) - lp
    numer, _ = sp.fraction(sp.together(fp_eq))
    a2, a1, a0 = sp.Poly(sp.expand(numer), lp).all_coeffs()
    b_full = sp.simplify(-a1 / a2)
    c_full = sp.simplify(-a0 / a2)
    b0 = sp.simplify(b_full - G)
    c1 = sp.simplify(c_full / G)
    if G in b0.free_symbols or G in c1.free_symbols:  # pragma: no cover - guards the algebra above
        raise RuntimeError("fixed-point quadratic is not of the expected form")
    return b0, c1


@lru_cache(maxsize=4)
def exact_precision(predict: str = "paper") -> sp.Expr:
    """Exact fixed-point precision λ_post(⟨g²⟩, η, σ²): the positive root of :func:`fixed_point_quadratic`.

    With ``λ² - B λ - C = 0``, ``B = b0 + ⟨g²⟩ > 0`` and ``C = c1 ⟨g²⟩ >= 0`` the positive root is
    ``(B + sqrt(B² + 4C))/2``.

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    sympy.Expr
        λ_post = 1/σ²_post in ⟨g²⟩, η, σ².
    """
    b0, c1 = fixed_point_coefficients(predict)
    big_b, big_c = b0 + G, c1 * G
    root = (big_b + sp.sqrt(big_b**2 + 4 * big_c)) / 2
    if not same(fixed_point_quadratic(predict).subs(lp, root), 0):  # pragma: no cover
        raise RuntimeError("exact fixed point does not solve its quadratic")
    return root


def approx_precision() -> sp.Expr:
    """Eq. 21 as printed: ``1/σ²_post ≈ (1/(2σ²)) (1 + sqrt(1 + 4 (σ²/(η/sqrt⟨g²⟩))²))`` (``PRINTED["21"]``).

    Returns
    -------
    sympy.Expr
        The approximate fixed-point precision in ⟨g²⟩, η, σ².
    """
    return PRINTED["21"]  # Eq. 21


def sgd_limit() -> sp.Expr:
    """Eq. 22: lim_{⟨g²⟩->0} σ²_post of Eq. 21.

    Returns
    -------
    sympy.Expr
        The limit (σ²).
    """
    return sp.limit(1 / approx_precision(), G, 0)


def adam_limit() -> sp.Expr:
    """Eq. 24: leading asymptote of σ²_post of Eq. 21 as ⟨g²⟩ -> ∞.

    Returns
    -------
    sympy.Expr
        The asymptote (η/sqrt(⟨g²⟩)).
    """
    lead = sp.limit(approx_precision() / sp.sqrt(G), G, sp.oo)  # precision ~ lead * sqrt(G)
    return 1 / (lead * sp.sqrt(G))


def eq21_relative_error(predict: str = "paper") -> sp.Expr:
    """Relative error of Eq. 21's learning rate: ``σ²_21/σ²_exact - 1 = λ_exact/λ_21 - 1``.

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    sympy.Expr
        The relative error in ⟨g²⟩, η, σ².
    """
    return exact_precision(predict) / approx_precision() - 1


@lru_cache(maxsize=4)
def eq21_relative_error_leading(predict: str = "paper", *, dimensionless: bool = False) -> sp.Expr:
    """First-order term in ``r = η²/σ²`` (at fixed ``x = σ² sqrt(⟨g²⟩)/η``) of :func:`eq21_relative_error`.

    Perturbation of the dimensionless quadratic ``Λ² - B̃ Λ - C̃ = 0`` (``Λ = σ² λ``) about ``r = 0``, where it is
    Eq. 20's ``Λ² - Λ - x² = 0`` with root ``Λ21``: ``e ≈ r (B̃1 Λ21 + C̃1) / ((2 Λ21 - 1) Λ21)``, with ``B̃1, C̃1``
    the first-order series coefficients.

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.
    dimensionless : bool
        Return it in ``x, r`` (and ``s = sqrt(1 + 4x²)``) rather than in ⟨g²⟩, η, σ².

    Returns
    -------
    sympy.Expr
        The first-order relative error.
    """
    b0, c1 = fixed_point_coefficients(predict)
    big_b = sp.expand(_in_x_r(sigma2 * (b0 + G)))
    big_c = sp.expand(_in_x_r(sigma2**2 * c1 * G))
    ser_b = sp.series(big_b, r_ratio, 0, 2).removeO()
    ser_c = sp.series(big_c, r_ratio, 0, 2).removeO()
    b_0, b_1 = ser_b.coeff(r_ratio, 0), ser_b.coeff(r_ratio, 1)
    c_0, c_1 = ser_c.coeff(r_ratio, 0), ser_c.coeff(r_ratio, 1)
    lam21 = (1 + sp.sqrt(1 + 4 * x_ratio**2)) / 2  # Eq. 21 in units of 1/σ²
    if not (same(b_0, 1) and same(c_0, x_ratio**2)):  # pragma: no cover - at r = 0 the exact quadratic is Eq. 20
        raise RuntimeError("the r -> 0 limit of the exact quadratic is not Eq. 20")
    e1 = (b_1 * lam21 + c_1) / ((2 * lam21 - 1) * lam21)
    # rational in s = sqrt(1 + 4x²): x² = (s² - 1)/4
    e1_s = sp.factor(sp.cancel(sp.expand(e1.subs(x_ratio, sp.sqrt(s_root**2 - 1) / 2))))
    if dimensionless:
        return r_ratio * e1_s
    lead = r_ratio * e1_s.subs(s_root, sp.sqrt(1 + 4 * x_ratio**2))
    return sp.factor(lead.subs(x_ratio, sigma2 * sp.sqrt(G) / eta).subs(r_ratio, R))


def eq21_error_at_zero(predict: str = "paper") -> sp.Expr:
    """Relative error of Eq. 21's learning rate as ⟨g²⟩ -> 0: ``λ_exact(0) / λ_21(0) - 1``.

    ``λ_exact(0) = b0 = (1 - f)/q``, the non-zero root of the quadratic at ⟨g²⟩ = 0 (positive under the OU
    stability condition η² < 2σ²); ``λ_21(0) = 1/σ²`` (limit of Eq. 21).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    sympy.Expr
        The relative error at ⟨g²⟩ = 0 (``-η²/(4σ²)`` for the paper's step, 0 for the exponential one).
    """
    b0, _ = fixed_point_coefficients(predict)
    return sp.factor(sp.simplify(b0 / sp.limit(approx_precision(), G, 0) - 1))


def _in_x_r(expr: sp.Expr) -> sp.Expr:
    """Rewrite in the dimensionless ``r = η²/σ²`` and ``x = σ² sqrt(⟨g²⟩)/η`` (σ² kept as the unit)."""
    return expr.subs({G: x_ratio**2 * r_ratio / sigma2}).subs({eta: sp.sqrt(r_ratio * sigma2)})


def eq21_tolerance_bounds(predict: str = "paper") -> dict[str, sp.Expr]:
    """⟨g²⟩ at which the leading-order relative error of Eq. 21 equals ``+tol`` (upper) and ``-tol`` (lower).

    To leading order in η²/σ², Eq. 21 is within ``tol`` of the exact fixed point for ``lower <= ⟨g²⟩ <= upper``.
    The error is monotone in ``s = sqrt(1 + 4x²) >= 1``; a bound exists only where the solved ``s`` exceeds 1, so
    ``lower`` is a ``Piecewise`` (paper predict: it applies when ``η²/(4σ²) > tol``; exponential: never).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    dict of str to sympy.Expr
        ``{"upper": ..., "lower": ...}`` in η, σ² and the tolerance symbol ``tol``.
    """
    lead = eq21_relative_error_leading(predict, dimensionless=True)
    out: dict[str, sp.Expr] = {}
    for name, target in (("upper", tol), ("lower", -tol)):
        (s_val,) = sp.solve(sp.Eq(lead, target), s_root)  # linear in s
        g2_val = sp.factor(((s_val**2 - 1) / 4 * r_ratio / sigma2).subs(r_ratio, R))  # G = x² r / σ²
        cond = sp.simplify((s_val - 1).subs(r_ratio, R) > 0)
        out[name] = (
            g2_val
            if cond is sp.true
            else (sp.Integer(0) if cond is sp.false else sp.Piecewise((g2_val, cond), (0, True)))
        )
    return out


@lru_cache(maxsize=4)
def regimes(predict: str = "paper") -> dict[str, sp.Expr]:
    """Behaviour of the exact fixed point in each regime of ⟨g²⟩.

    Keys: ``small`` (λ to first order about ⟨g²⟩ = 0, by implicit differentiation of the quadratic),
    ``var_small_limit`` (σ²_post at ⟨g²⟩ -> 0), ``large`` (``λ = ⟨g²⟩ + a + O(1/⟨g²⟩)`` by matching powers),
    ``sigma2_inf`` (σ² -> ∞ limit of λ), ``middle`` (its series about ⟨g²⟩ = 0: the Adam-like branch) and
    ``adam_ratio`` (``λ η / sqrt(⟨g²⟩)`` to first order there).

    Parameters
    ----------
    predict : {"paper", "exponential"}
        Eq. 17b's predict factor, or the exponential discretisation of the author's code.

    Returns
    -------
    dict of str to sympy.Expr
        The six results above.
    """
    b0, c1 = fixed_point_coefficients(predict)
    quad = fixed_point_quadratic(predict)
    lam0 = b0  # non-zero root at ⟨g²⟩ = 0
    slope = sp.simplify((-sp.diff(quad, G) / sp.diff(quad, lp)).subs({lp: lam0, G: 0}))
    a_coef, b_coef = sp.symbols("a_coef b_coef")
    ansatz = sp.expand(quad.subs(lp, G + a_coef + b_coef / G) * G**2)
    poly = sp.Poly(ansatz, G)
    top = [c for c in poly.all_coeffs() if c != 0]
    a_val = sp.solve(top[0], a_coef) if a_coef in top[0].free_symbols else sp.solve(top[1], a_coef)
    b0_inf, c1_inf = sp.limit(b0, sigma2, sp.oo), sp.limit(c1, sigma2, sp.oo)
    lam_inf = ((b0_inf + G) + sp.sqrt((b0_inf + G) ** 2 + 4 * c1_inf * G)) / 2
    middle = sp.series(lam_inf, G, 0, 2).removeO()
    ratio = sp.series(lam_inf * eta / sp.sqrt(G), G, 0, 1).removeO()
    return {
        "small": lam0 + slope * G,
        "var_small_limit": sp.factor(1 / lam0),
        "large": G + sp.simplify(a_val[0]),
        "sigma2_inf": lam_inf,
        "middle": sp.expand(middle),
        "adam_ratio": sp.expand(ratio),
    }


# --------------------------------------------------------------------------------------------------------------
# records


def _dimensionless(expr: sp.Expr) -> sp.Expr:
    """``σ² expr`` with λ = Λ/σ², in ``x, r`` (:func:`_in_x_r`): Eq. 20-type quadratics in units of 1/σ²."""
    return sp.expand(sigma2 * _in_x_r(expr.subs(lp, _BIG_LAM / sigma2)))


_BIG_LAM = sp.Symbol("Lambda", positive=True)  # Λ = σ² λ_post
_LAM_LHS = 1 / s2_post  # λ_post written as 1/σ²_post in the displays


def _record_20() -> Record:
    printed20 = PRINTED["20"]  # Eq. 20 in λ
    scaled_exact = sp.expand(fixed_point_quadratic("paper") * sigma2)  # exact, monic in λ, times σ²
    neglected = sp.collect(sp.expand(scaled_exact - printed20), lp)
    nd, lead_d = _dimensionless(neglected), _dimensionless(printed20)
    return Record.from_comparison(
        "20",
        show(0, "≈", printed20.subs(lp, _LAM_LHS)),
        show(
            0,
            "=",
            scaled_exact.subs(lp, _LAM_LHS),
            ";",
            Raw("exact - Eq. 20", r"\text{exact} - \text{Eq. 20}"),
            "=",
            neglected.subs(lp, _LAM_LHS),
        ),
        "Approximation: the exact fixed point of Alg. 1 (Eqs. 17b+18a, g^2 -> <g^2>, no Taylor step) solves the "
        "quadratic shown (monic, times sigma^2). Eq. 20 drops the terms listed; in units Lambda = sigma^2 lambda, "
        f"x = sigma^2 sqrt(<g^2>)/eta, r = eta^2/sigma^2 they are {sp.sstr(sp.collect(nd, r_ratio))} against the "
        f"leading {sp.sstr(lead_d)}, i.e. first order in r (Appendix D's f ≈ 1 - eta^2/sigma^2 and first-order "
        "Taylor step, Eqs. 44, 47); in the Adam regime r x = eta sqrt(<g^2>) must be small too.",
        checks=(Comparison("20", lead_d, _dimensionless(scaled_exact), same_at(r_ratio, 0)),),  # exact at r = 0
        exact=Comparison("20", printed20, scaled_exact),
    )


def _record_21() -> Record:
    roots = sp.solve(PRINTED["20"], lp)
    positive = [rt for rt in roots if (rt.subs({sigma2: 1, eta: 1, G: 1}) > 0) is sp.true]
    root = positive[0] if len(positive) == 1 else sp.nan  # Eq. 20's positive root
    printed21 = PRINTED["21"]
    return Record.from_comparison(
        "21",
        show(_LAM_LHS, "≈", printed21),
        show(
            _LAM_LHS,
            "=",
            root,
            ";",
            Raw("sigma^2_21/sigma^2_exact - 1", r"\sigma^2_{21}/\sigma^2_{\mathrm{exact}}-1"),
            "≈",
            eq21_relative_error_leading("paper"),
        ),
        "Exact positive root of Eq. 20 (sympy.solve; the other root is negative), hence an approximation of "
        f"Alg. 1's fixed point. Its relative error in sigma^2_post is {sp.sstr(eq21_error_at_zero('paper'))} as "
        "<g^2> -> 0 and, to first order in eta^2/sigma^2, (sqrt(eta^4/sigma^4 + 4 eta^2 <g^2>) - 2 eta^2/sigma^2)/4: "
        "it grows like eta sqrt(<g^2>)/2 once eta^2 <g^2> is not small (there the exact learning rate bends "
        "towards 1/<g^2>).",
        checks=(Comparison("21", printed21, root),),
        exact=Comparison("21", printed21, exact_precision("paper")),
    )


def _record_22() -> Record:
    lim22 = sgd_limit()  # limit of Eq. 21
    return Record.from_comparison(
        "22",
        show(
            Raw("lim_{<g^2> -> 0} sigma2_post", r"\lim_{\langle g^2\rangle\to0}\sigma^2_{\mathrm{post}}"),
            "≈",
            PRINTED["22"],
        ),
        show(
            Raw("lim_{<g^2> -> 0} 1/Eq.21", r"\lim_{\langle g^2\rangle\to0} 1/\text{Eq. 21}"),
            "=",
            lim22,
            ";",
            Raw("exact fixed point", r"\text{exact}"),
            "->",
            regimes("paper")["var_small_limit"],
        ),
        "Limit of Eq. 21 (sympy.limit). The exact fixed point of Alg. 1 tends to sigma^2/(1 - eta^2/(4 sigma^2)) "
        "with the paper's predict step (the OU stationary variance) and to exactly sigma^2 with the exponential "
        "one, so the printed ≈ is right.",
        checks=(Comparison("22", PRINTED["22"], lim22),),
    )


def _record_23() -> Record:
    sgd_step = eta_sgd * gm / batch  # Eq. 1
    return Record.given(
        "23",
        DEFINITION,
        show(sigma2, "=", eta_sgd / batch),
        show(Raw("sigma2_post <g>|_{sigma2_post = sigma^2}", r"\sigma^2\langle g\rangle"), "=", sgd_step),
        reason="Definition (hyperparameter choice), nothing to derive. With sigma^2_post = sigma^2 = eta_SGD/B the "
        "step of Eq. 19b is the SGD step of Eq. 1 by substitution.",
    )


def _record_24() -> Record:
    printed24 = PRINTED["24"]
    var21 = 1 / approx_precision()  # σ²_post by Eq. 21
    return Record.from_comparison(
        "24",
        show(
            Raw("lim_{<g^2> -> oo} sigma2_post", r"\lim_{\langle g^2\rangle\to\infty}\sigma^2_{\mathrm{post}}"),
            "≈",
            printed24,
        ),
        show(
            Raw("lim sigma2_post(Eq.21) sqrt(<g^2>)/eta", r"\lim \sigma^2_{21}\sqrt{\langle g^2\rangle}/\eta"),
            "=",
            sp.limit(var21 / printed24, G, sp.oo),
            ";",
            Raw("exact: lim <g^2> sigma2_post", r"\text{exact: }\lim\langle g^2\rangle\sigma^2_{\mathrm{post}}"),
            "=",
            sp.limit(G / exact_precision("paper"), G, sp.oo),
        ),
        "Asymptotic statement about Eq. 21 (ratio -> 1, sympy.limit). For the exact fixed point of Alg. 1 the "
        "learning rate tends to 1/<g^2> (mean-square) once eta^2 <g^2> >> 1, so the Adam regime is the window "
        "eta/sigma^2 << sqrt(<g^2>) << 1/eta.",
        checks=(Comparison("24", printed24, var21, asymptotic_to(G, sp.oo)),),
    )


def _record_25() -> Record:
    adam_step = eta_adam * gm / sp.sqrt(G)  # Eq. 3
    return Record.given(
        "25",
        DEFINITION,
        show(eta, "=", eta_adam),
        show(adam_limit() * gm, "=", adam_step, "for", eta, "=", eta_adam),
        reason="Definition (hyperparameter choice), nothing to derive. With Eq. 24's sigma^2_post = "
        "eta/sqrt(<g^2>) (compared there) and eta = eta_Adam, Eq. 19b's step is Adam's Eq. 3 step (epsilon = 0) "
        "by substitution.",
    )


def _record_26() -> Record:
    derived26 = (1 - lam) * mu_post_prev + adam_limit() * gm  # Eq. 19a into Eq. 19b, σ²_post from Eq. 24
    return Record.from_comparison(
        "26",
        show(mu_post, "≈", PRINTED["26"]),
        show(mu_post, "≈", derived26),
        "Substituting Eq. 19a into Eq. 19b with Eq. 24 gives the decay factor (1 - lambda); the printed "
        "(lambda - 1) flips the sign of the parameter every step. AdamW's decoupled decay is (1 - lambda) mu.",
        checks=(Comparison("26", PRINTED["26"], derived26),),
    )


def _record_27() -> Record:
    mid27, printed27 = PRINTED["27/middle"], PRINTED["27/limit"]
    lim27 = sp.limit(mid27, sigma2, sp.oo)
    lim_label = Raw("lim_{sigma^2 -> oo} 1/sigma2_post", r"\lim_{\sigma^2\to\infty}1/\sigma^2_{\mathrm{post}}")
    return Record.from_comparison(
        "27",
        show(lim_label, "=", mid27, "=", printed27),
        show(lim_label, "=", lim27, ";", Raw("sigma2_post", r"\sigma^2_{\mathrm{post}}"), "->", 1 / lim27),
        "The middle expression equals Eq. 21 (checked) and its limit is sqrt(<g^2>)/eta: the printed right-hand "
        "side eta/sqrt(<g^2>) is the limit of sigma^2_post, not of its inverse. With it AdaBayes-FP is AdamW "
        "(epsilon = 0).",
        checks=(Comparison("27/middle", mid27, approx_precision()), Comparison("27/limit", printed27, lim27)),
    )


def _record_43() -> Record:
    return Record.given(
        "43",
        DEFINITION,
        show(lp, "=", 1 / s2_post),
        show(lp, "=", 1 / s2_post),
        reason="Definition (precision), nothing to derive. Notation clash: lambda also names the weight decay "
        "(Eq. 19a) and the forgetting factor (Eq. 28).",
    )


def _record_44() -> Record:
    f, _ = predict_coefficients("paper")
    derived44 = precision_map("paper")  # Eq. 17b into Eq. 18a, exact
    printed44 = PRINTED["44"]
    f_resid = sp.expand(f - F_APPENDIX_D)  # first neglected term of the predict factor
    df = sp.Symbol("delta_f")
    effect44 = sp.factor(sp.diff(1 / ((F_APPENDIX_D + df) / lp_now + eta**2), df).subs(df, 0) * f_resid)
    return Record.from_comparison(
        "44",
        show(lp_next, "=", printed44),
        show(lp_next, "=", derived44, ";", Raw("f - (1 - eta^2/sigma^2)", r"f-(1-\eta^2/\sigma^2)"), "=", f_resid),
        "Substituting Eq. 17b into Eq. 18a in precision form gives exactly 1/(f/lambda + eta^2) + g^2 with "
        "f = (1 - eta^2/(2 sigma^2))^2 (the algebra of the first term is right). Eq. 44 keeps f to first order "
        f"in eta^2/sigma^2; the first neglected term is f - (1 - eta^2/sigma^2) = {sp.sstr(f_resid)}, changing "
        f"lambda_post(t+1) by {sp.sstr(effect44)}. Time index: by Eq. 18a the gradient is g(t+1) (taken at "
        "mu_prior(t+1)); the printed g^2(t) is an index slip that does not affect the fixed point.",
        # agrees with the exact map to first order in η² (η = sqrt(ε)), not exactly
        checks=(Comparison("44", printed44, derived44, same_to_order(eps, 1, substitute={eta: sp.sqrt(eps)})),),
        exact=Comparison("44", printed44, derived44),
    )


def _record_45() -> Record:
    printed45 = PRINTED["45"]
    from45 = PRINTED["44"].subs({lp_now: lp, g**2: G})  # Eq. 44 at λ(t) = λ(t+1), g² -> ⟨g²⟩
    jensen = sp.factor(sp.diff(printed45 - G, lp, 2) / 2)  # φ''(λ)/2 with φ(λ) = 1/(f/λ + η²)
    var_lam = register_tex(sp.Symbol("Var_lambda", positive=True), r"\mathrm{Var}[\lambda_{\mathrm{post}}]")
    return Record.from_comparison(
        "45",
        show(lp, "=", printed45),
        show(
            lp,
            "=",
            from45,
            ";",
            Raw("E[phi(lambda)] - phi(E lambda)", r"\mathbb{E}[\phi(\lambda)]-\phi(\mathbb{E}\lambda)"),
            "≈",
            jensen * var_lam,
        ),
        "Eq. 44 at lambda(t) = lambda(t+1) with g^2 replaced by its mean: a mean-field approximation, since g^2(t) "
        "is random and lambda_post fluctuates. The first neglected term is the Jensen correction "
        f"phi''(lambda)/2 Var[lambda] = {sp.sstr(jensen * var_lam)} (< 0: phi(lambda) = 1/(f/lambda + eta^2) is "
        "concave), so the stationary mean precision lies slightly below the deterministic fixed point.",
        checks=(Comparison("45", printed45, from45),),
        exact=Comparison("45", printed45, from45 + jensen * var_lam),  # the mean to second order in the spread
    )


def _record_46() -> Record:
    derived46 = sp.cancel(PRINTED["45"] - G)  # first term of Eq. 45, times λ/λ
    return Record.from_comparison(
        "46",
        show(lp, "=", PRINTED["46"]),
        show(lp, "=", derived46, "+", G),
        "Exact rearrangement of Eq. 45 (multiply the first term by lambda/lambda; cancel).",
        checks=(Comparison("46", PRINTED["46"], derived46 + G),),
    )


def _record_47() -> Record:
    xs = eta**2 * lp - eta**2 / sigma2  # the small update x
    first_term = lp / (1 + eps * xs)  # Eq. 46's first term, x marked by ε
    ser = sp.series(first_term, eps, 0, 3).removeO()
    taylor1 = sp.expand(ser.coeff(eps, 0) + ser.coeff(eps, 1))
    neglected47 = sp.factor(ser.coeff(eps, 2))
    printed47 = PRINTED["47"]
    return Record.from_comparison(
        "47",
        show(lp, "≈", printed47),
        show(lp, "=", taylor1, "+", G, "+", neglected47, "+ ..."),
        "First-order Taylor step lambda/(1 + x) ≈ lambda (1 - x) with x = eta^2 lambda - eta^2/sigma^2 (series "
        "in a bookkeeping epsilon). Correct to first order; the first neglected term is lambda x^2 = "
        f"{sp.sstr(neglected47)}, small only if both eta^2/sigma^2 and eta^2 lambda_post are small.",
        checks=(
            Comparison("47", printed47, taylor1 + G),
            Comparison("46 expanded", PRINTED["46"] - G, first_term.subs(eps, 1)),  # the series is of Eq. 46
        ),
        exact=Comparison("47", printed47, first_term.subs(eps, 1) + G),
    )


def _record_48() -> Record:
    derived48 = sp.expand(PRINTED["47"] - lp)  # 0 ≈ Eq. 47 minus λ
    printed48 = PRINTED["48"]
    return Record.from_comparison(
        "48",
        show(0, "≈", printed48),
        show(0, "≈", derived48, "=", -printed48),
        "Subtracting lambda from both sides of Eq. 47 gives the derived right-hand side; the printed one is its "
        "negative, i.e. the same equation (0 ≈ -0), so the signs follow.",
        checks=(Comparison("48", printed48, -derived48),),
    )


def _record_49() -> Record:
    derived49 = sp.expand(PRINTED["48"] * sigma2 / eta**2)  # Eq. 48 times σ²/η²
    return Record.from_comparison(
        "49",
        show(0, "≈", PRINTED["49"]),
        show(0, "≈", derived49),
        "Eq. 48 multiplied by sigma^2/eta^2; with lambda_post = 1/sigma^2_post it is Eq. 20.",
        checks=(Comparison("49", PRINTED["49"], derived49),),
    )


_RECORDS = (
    _record_20,
    _record_21,
    _record_22,
    _record_23,
    _record_24,
    _record_25,
    _record_26,
    _record_27,
    _record_43,
    _record_44,
    _record_45,
    _record_46,
    _record_47,
    _record_48,
    _record_49,
)


def records() -> list[Record]:
    """Records for Eqs. 20-27 and 43-49.

    Returns
    -------
    list of Record
        In paper order; 23, 25 and 43 are definitions, the rest are compared with the derived forms.
    """
    return [build() for build in _RECORDS]


# --------------------------------------------------------------------------------------------------------------
# beyond the paper


def _regime_results(predict: str) -> tuple[tuple[str, Shown], ...]:
    """The exact fixed point of Alg. 1's recursion and its limits in each regime of ⟨g²⟩ (labelled formulas)."""
    lam_label = Raw("lambda_post", r"\lambda_{\mathrm{post}}")
    reg = regimes(predict)
    return (
        ("recursion (Eqs. 17b + 18a)", show(lp_next, "=", precision_map(predict).subs(lp_now, lp))),
        ("fixed-point quadratic, g^2 -> <g^2>", show(0, "=", fixed_point_quadratic(predict))),
        ("exact fixed point", show(lam_label, "=", exact_precision(predict))),
        ("<g^2> -> 0 (SGD-like)", show(lam_label, "=", reg["small"], "+ O(<g^2>^2)")),
        ("learning rate at <g^2> = 0", show(s2_post, "->", reg["var_small_limit"])),
        ("<g^2> -> oo (single observation, mean-square)", show(lam_label, "=", reg["large"], "+ O(1/<g^2>)")),
        ("sigma^2 -> oo", show(lam_label, "=", reg["sigma2_inf"])),
        ("Adam-like middle (sigma^2 -> oo, then small <g^2>)", show(lam_label, "=", reg["middle"], "+ ...")),
        (
            "ratio to the Adam precision sqrt(<g^2>)/eta",
            show(
                Raw("lambda eta/sqrt(<g^2>)", r"\lambda\eta/\sqrt{\langle g^2\rangle}"), "=", reg["adam_ratio"], "+ ..."
            ),
        ),
    )


def _error_results(predict: str) -> tuple[tuple[str, Shown], ...]:
    """Eq. 21's relative error against the exact fixed point, and the ⟨g²⟩ range where it is within ``tol``."""
    bounds = eq21_tolerance_bounds(predict)
    e = Raw("e", "e")
    return (
        ("Eq. 21 relative error at <g^2> -> 0", show(Raw("e(0)", "e(0)"), "=", eq21_error_at_zero(predict))),
        (
            "Eq. 21 relative error, first order in eta^2/sigma^2",
            show(
                e,
                "≈",
                eq21_relative_error_leading(predict, dimensionless=True),
                ",",
                s_root,
                "=",
                sp.sqrt(1 + 4 * x_ratio**2),
                "; in the original variables",
                e,
                "≈",
                eq21_relative_error_leading(predict),
            ),
        ),
        (
            "|e| <= tol for <g^2> <= (leading order)",
            show(Raw("<g^2>_max", r"\langle g^2\rangle_{\max}"), "=", bounds["upper"]),
        ),
        (
            "... and <g^2> >= (only if |e(0)| > tol)",
            show(Raw("<g^2>_min", r"\langle g^2\rangle_{\min}"), "=", bounds["lower"]),
        ),
    )


def _exact_fixed_point_extra(predict: str) -> Extra:
    """The exact fixed point for one predict step: regimes, then Eq. 21's error and tolerance range."""
    f, q = predict_coefficients(predict)
    return Extra(
        f"exact-fixed-point-{predict}",
        f"Exact fixed point of Alg. 1's precision recursion ({predict} predict step)",
        _regime_results(predict) + _error_results(predict),
        f"Predict factor f = {sp.sstr(f)}, noise q = {sp.sstr(q)}. The quadratic is exact (no Taylor step). "
        "The relative error e = sigma^2_21/sigma^2_exact - 1 is expanded to first order in "
        "r = eta^2/sigma^2 at fixed x = sigma^2 sqrt(<g^2>)/eta, valid while eta^2 <g^2> is small; beyond "
        "that the exact precision tends to <g^2> + 1/q (mean-square) and e grows without bound.",
    )


def extras() -> list[Extra]:
    """Exact fixed points (both predict steps), their regimes, and the tolerance condition for Eq. 21.

    Returns
    -------
    list of Extra
        One per predict step (``"paper"``, ``"exponential"``).
    """
    return [_exact_fixed_point_extra(predict) for predict in ("paper", "exponential")]
