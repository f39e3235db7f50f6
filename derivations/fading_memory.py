"""Ollivier's fading memory in the paper's framework: Appendix A (Eqs. 28-31).

Multiplying the log posterior (a quadratic in w*) by the forgetting factor ``1 - λ`` scales its precision; the
equivalent process noise follows from Eq. 17b with no decay; the fixed point of the resulting precision recursion
gives the mean-square normaliser of Eq. 31.
"""

from __future__ import annotations

import sympy as sp

from .core import Raw, eta, g, g2m, lam, mu_post, register_tex, s2_post, s2_prior, same, show, w_star
from .records import Comparison, Extra, Record

__all__ = [
    "PRINTED",
    "extras",
    "fixed_point_variance",
    "forgetting_prior_precision",
    "process_noise_variance",
    "records",
]

s2_post_next = register_tex(sp.Symbol("sigma2_post_next", positive=True), r"\sigma^2_{\mathrm{post}}(t+1)")

#: The forms as printed in the paper, by equation. The comparisons read them from here at call time and nowhere
#: else, so a test can change one and watch its record's status.
PRINTED: dict[str, sp.Expr] = {
    "28": (1 - lam) / s2_post,  # 1/σ²_prior
    "29": lam / (1 - lam) * s2_post,  # the printed η
    "30": (1 - lam) / s2_post + g**2,  # 1/σ²_post(t+1)
    "31": lam / g2m,  # σ²_post
}


def forgetting_prior_precision() -> sp.Expr:
    """1/σ²_prior(t+1) after multiplying the log posterior ``-(w* - μ)²/(2σ²_post)`` by ``1 - λ`` (Eq. 28)."""
    scaled = (1 - lam) * (-((w_star - mu_post) ** 2) / (2 * s2_post))
    return sp.cancel(-2 * sp.Poly(sp.expand(scaled), w_star).coeff_monomial(w_star**2))


def process_noise_variance() -> sp.Expr:
    """Process-noise variance Q with ``σ²_post + Q = σ²_prior`` (Eq. 17b without decay) equal to Eq. 28's prior."""
    q = sp.Symbol("Q", positive=True)
    (sol,) = sp.solve(sp.Eq(s2_post + q, 1 / forgetting_prior_precision()), q)
    tidy = lam / (1 - lam) * s2_post  # same expression, the sign of (1 - λ) kept visible
    return tidy if same(sol, tidy) else sp.factor(sol)


def _fading_map() -> sp.Expr:
    """1/σ²_post(t+1) = Eq. 28 substituted into Eq. 18a (H ≈ g²)."""
    return forgetting_prior_precision() + g**2  # Eqs. 18a, 28


def fixed_point_variance() -> sp.Expr:
    """σ²_post at the fixed point of Eq. 30 with g² -> ⟨g²⟩ (Eq. 31)."""
    s = sp.Symbol("s", positive=True)
    (sol,) = sp.solve(sp.Eq(1 / s, _fading_map().subs({s2_post: s, g**2: g2m})), s)
    return sol


def records() -> list[Record]:
    """Records for Eqs. 28-31.

    Returns
    -------
    list of Record
        Eqs. 28-31, each compared with the form derived from forgetting (Eq. 28) and the Kalman update (Eq. 18a).
    """
    prec = forgetting_prior_precision()
    ollivier = 1 / (s2_post / (1 - lam))  # Ollivier: P -> P / (1 - λ)
    q = process_noise_variance()
    fmap = _fading_map()
    fixed = fixed_point_variance()
    return [
        Record.from_comparison(
            "28",
            show(1 / s2_prior, "=", PRINTED["28"]),
            show(
                1 / s2_prior,
                "=",
                prec,
                ";",
                Raw("Ollivier P -> P/(1 - lambda)", r"P\to P/(1-\lambda)"),
                "=>",
                1 / s2_prior,
                "=",
                sp.cancel(ollivier),
            ),
            "Forgetting (Appendix A) multiplies the Gaussian log posterior by (1 - lambda). Derived: its precision is "
            "(1 - lambda)/sigma^2_post, the same as Ollivier's covariance step P -> P/(1 - lambda).",
            checks=(Comparison("28", PRINTED["28"], prec), Comparison("Ollivier", ollivier, prec)),
        ),
        Record.from_comparison(
            "29",
            show(eta, "=", PRINTED["29"]),
            show(eta**2, "=", q),
            "Solving sigma^2_post + eta^2 = sigma^2_prior (Eq. 17b with no decay; process noise enters as the "
            "variance eta^2) with Eq. 28's sigma^2_prior = sigma^2_post/(1 - lambda) gives a variance "
            "lambda/(1 - lambda) sigma^2_post. The printed eta (a standard deviation in Eq. 14) should be eta^2.",
            checks=(Comparison("29", PRINTED["29"] ** 2, q),),  # the printed η would have to square to Q
        ),
        Record.from_comparison(
            "30",
            show(1 / s2_post_next, "=", PRINTED["30"]),
            show(1 / s2_post_next, "=", fmap),
            "Eq. 28 substituted into Eq. 18a (H ≈ g^2). Time index: by Eq. 18a at step t+1 the gradient is g(t+1); "
            "the printed g^2(t) is an index slip that does not affect the fixed point.",
            checks=(Comparison("30", PRINTED["30"], fmap),),
        ),
        Record.from_comparison(
            "31",
            show(s2_post, "=", PRINTED["31"]),
            show(s2_post, "=", fixed),
            "Fixed point of Eq. 30 with g^2 -> <g^2> (sympy.solve, unique). The recursion is linear in the precision, "
            "so the stationary mean precision is exactly <g^2>/lambda (no mean-field step needed): a mean-square "
            "normaliser, as stated.",
            checks=(Comparison("31", PRINTED["31"], fixed),),
        ),
    ]


def extras() -> list[Extra]:
    """Fading-memory fixed point and equivalent process noise."""
    return [
        Extra(
            "fading-memory",
            "Fading memory (Appendix A): fixed point and equivalent process noise",
            (
                ("fixed point (Eq. 31)", show(s2_post, "=", fixed_point_variance())),
                (
                    "process-noise variance equivalent to forgetting (Eq. 29, corrected)",
                    show(Raw("Q", "Q"), "=", process_noise_variance()),
                ),
            ),
            "The learning rate lambda/<g^2> is a mean-square normaliser, unlike AdaBayes's eta/sqrt(<g^2>); the "
            "equivalent process noise is proportional to sigma^2_post (not fixed), which is why.",
        )
    ]
