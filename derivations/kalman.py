"""The Kalman filter of §3 (Eqs. 16a-19b) and Appendix C (Eqs. 35-42).

The prediction (Eq. 17) is the affine Gaussian map of Eq. 14 applied to the posterior, computed with exact
moments. The update (Eqs. 18, 35-41) is derived by completing the square in ``w*`` of log prior + log likelihood
(Eq. 12); the plug-in ``H_ii ≈ g²`` (Eq. 42) is analysed through the exact moments of g under Eq. 12.
"""

from __future__ import annotations

import sympy as sp

from .core import (
    H,
    Normal,
    Raw,
    eta,
    expect,
    g,
    gaussian_moments,
    gm,
    lam,
    mu_post,
    mu_post_prev,
    mu_prior,
    register_tex,
    s2_post,
    s2_prior,
    same_up_to_constant,
    show,
    sigma2,
    standard_normals,
    w_star,
)
from .model import gradient_likelihood
from .records import ASSUMPTION, DEFINITION, Comparison, Record

__all__ = ["PRINTED", "kalman_update", "log_posterior_terms", "predict_moments", "records"]

A_DECAY = 1 - eta**2 / (2 * sigma2)  # Eq. 14
s2_post_prev = register_tex(sp.Symbol("sigma2_post_prev", positive=True), r"\sigma^2_{\mathrm{post}}(t-1)")


def predict_moments() -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of ``w*(t) = a w*(t-1) + eta z2`` with ``w*(t-1) ~ N(mu_post(t-1), s2_post(t-1))``."""
    z = standard_normals("p", 2)
    w_prev = mu_post_prev + sp.sqrt(s2_post_prev) * z[0]  # Eq. 16b at t-1
    w_now = A_DECAY * w_prev + eta * z[1]  # Eq. 14
    return gaussian_moments(w_now, z)


def _gradient_model(z: sp.Symbol) -> sp.Expr:
    """g under Eq. 12 (as derived in :func:`derivations.model.gradient_likelihood`) with a standard normal ``z``."""
    lik_mean, lik_var = gradient_likelihood()
    return lik_mean + sp.sqrt(lik_var) * z


def log_posterior_terms() -> dict[str, sp.Expr]:
    """Log prior (Eq. 16a), log likelihood (Eq. 12 at mu = mu_prior) and their sum, up to w*-free constants."""
    log_prior = -((w_star - mu_prior) ** 2) / (2 * s2_prior)
    lik_mean, lik_var = gradient_likelihood()  # Eq. 12 as derived in model.py
    log_lik = -((g - lik_mean) ** 2) / (2 * lik_var)
    total = sp.expand(log_prior + log_lik)
    poly = sp.Poly(total, w_star)
    return {
        "log_prior": log_prior,
        "log_lik": log_lik,
        "total": total,
        "quad": poly.coeff_monomial(w_star**2),
        "lin": poly.coeff_monomial(w_star),
    }


def kalman_update() -> tuple[sp.Expr, sp.Expr]:
    """(σ²_post, μ_post) identified from the quadratic and linear coefficients of the log posterior in w*."""
    terms = log_posterior_terms()
    var = sp.cancel(-1 / (2 * terms["quad"]))  # Eqs. 36-38
    mean = sp.cancel(terms["lin"] * var)  # Eqs. 39-40
    return var, mean


#: The forms as printed in the paper, by equation (``"eq/part"`` for one of several printed parts). The comparisons
#: read them from here at call time and nowhere else, so a test can change one and watch its record's status.
PRINTED: dict[str, sp.Expr] = {
    "17a": (1 - eta**2 / (2 * sigma2)) * mu_post_prev,
    "17b": (1 - eta**2 / (2 * sigma2)) ** 2 * s2_post_prev + eta**2,
    "18a/exact": 1 / (1 / s2_prior + H),
    "18a/plug-in": 1 / (1 / s2_prior + g**2),
    "18b": mu_prior + s2_post * g,
    "35/lhs": -((w_star - mu_post) ** 2) / (2 * s2_post),
    "35/prior": -((w_star - mu_prior) ** 2) / (2 * s2_prior),  # right-hand side, first term
    "35/lik": -((g - H * (w_star - mu_prior)) ** 2) / (2 * H),  # right-hand side, second term
    "36": -1 / (2 * s2_prior) - H / 2,  # coefficient of w*^2
    "37": 1 / s2_prior + H,
    "38": 1 / (1 / s2_prior + H),
    "39": mu_prior / s2_prior + g + H * mu_prior,  # coefficient of w*
    "40": s2_post * ((1 / s2_prior + H) * mu_prior + g),
    "41": mu_prior + s2_post * g,
    "42": H,  # H_ii ≈ g^2: unbiased at the optimum
}


def _eq16() -> list[Record]:
    mean, var = predict_moments()
    terms = log_posterior_terms()
    p16a = Raw("P(w*(t) | g(t-1), ..., g(1))", r"P(w^*(t)\mid g(t-1),\dots,g(1))")
    p16b = Raw("P(w*(t) | g(t), ..., g(1))", r"P(w^*(t)\mid g(t),\dots,g(1))")
    return [
        Record.given(
            "16a",
            DEFINITION,
            show(p16a, "=", Normal(mu_prior, s2_prior)),
            show(p16a, "=", Normal(sp.collect(mean, mu_post_prev), sp.collect(var, s2_post_prev))),
            reason="Definition of the filter prior (names its moments mu_prior, sigma^2_prior). It is Gaussian "
            "because Eq. 14 maps the Gaussian posterior affinely and adds independent Gaussian noise; its moments "
            "are derived and compared in Eqs. 17a and 17b.",
        ),
        Record.given(
            "16b",
            DEFINITION,
            show(p16b, "=", Normal(mu_post, s2_post)),
            show(
                Raw("log P(w* | g(t), ...)", r"\log P(w^*\mid g(t),\dots)"),
                "=",
                terms["quad"] * w_star**2,
                "+",
                terms["lin"] * w_star,
                "+",
                Raw("const", r"\text{const}"),
            ),
            reason="Definition of the filter posterior (names its moments mu_post, sigma^2_post). Log prior (16a) + "
            "log likelihood (Eq. 12) is a quadratic in w*, so it is Gaussian; its coefficients are derived and "
            "compared in Eqs. 35-41.",
        ),
    ]


def _eq17() -> list[Record]:
    mean, var = predict_moments()
    return [
        Record.from_comparison(
            "17a",
            show(mu_prior, "=", PRINTED["17a"]),
            show(Raw("E[w*(t)]", r"\mathbb{E}[w^*(t)]"), "=", mean),
            "Exact Gaussian moments of w*(t) = (1 - eta^2/(2 sigma^2)) w*(t-1) + eta z, w*(t-1) ~ N(mu_post, "
            "sigma^2_post) (Eqs. 14, 16b).",
            checks=(Comparison("17a", PRINTED["17a"], mean),),
        ),
        Record.from_comparison(
            "17b",
            show(s2_prior, "=", PRINTED["17b"]),
            show(Raw("Var[w*(t)]", r"\mathrm{Var}[w^*(t)]"), "=", sp.collect(var, s2_post_prev)),
            "Same computation as Eq. 17a (variance).",
            checks=(Comparison("17b", PRINTED["17b"], var),),
        ),
    ]


def _eq18() -> list[Record]:
    var, mean = kalman_update()
    # Eq. 42's plug-in: E[g²] under Eq. 12 -- the first neglected term is the bias H² (w* - mu_prior)²
    z = standard_normals("q", 1)
    g2_mean = expect(_gradient_model(z[0]) ** 2, z)  # Eq. 12
    bias = sp.factor(g2_mean - H)
    exact18a, plug = PRINTED["18a/exact"], PRINTED["18a/plug-in"]
    return [
        Record.from_comparison(
            "18a",
            show(s2_post, "=", exact18a, "≈", plug),
            show(s2_post, "=", var, ";", Raw("E[g^2] - H_ii", r"\mathbb{E}[g^2]-H_{ii}"), "=", bias),
            "First equality derived (completing the square, Eqs. 35-38). The second is the plug-in H_ii ≈ g^2 "
            "(Eq. 42): under Eq. 12, E[g^2] = H_ii + H_ii^2 (w* - mu_prior)^2, so the first neglected term is the "
            "bias H_ii^2 (w* - mu_prior)^2 (H_ii^2 sigma^2_prior on average over the prior), besides the "
            "fluctuation Var[g^2] = 2 H_ii^2 at the optimum.",
            checks=(
                Comparison("18a/exact", exact18a, var),
                Comparison("18a/plug-in", plug.subs(g, sp.sqrt(H)), var),  # exact where g^2 = H_ii
            ),
            exact=Comparison("18a/plug-in", plug, var),
        ),
        Record.from_comparison(
            "18b",
            show(mu_post, "=", PRINTED["18b"]),
            show(mu_post, "=", sp.collect(sp.expand(mean), g), "=", mu_prior + var * g),
            "Linear coefficient of the log posterior times sigma^2_post (Eqs. 39-41).",
            checks=(Comparison("18b", PRINTED["18b"].subs(s2_post, var), mean),),
        ),
    ]


def _eq19() -> list[Record]:
    p19a = (1 - lam) * mu_post_prev
    return [
        Record.given(
            "19a",
            ASSUMPTION,
            show(mu_prior, "=", p19a),
            show(
                mu_prior,
                "=",
                p19a,
                ";",
                Raw("lambda = eta^2/(2 sigma^2) gives Eq. 17a", r"\lambda=\eta^2/(2\sigma^2)\Rightarrow\text{Eq. 17a}"),
            ),
            reason="Modelling choice (decoupled weight decay lambda replaces eta^2/(2 sigma^2) in Eq. 17a), nothing "
            "to derive; lambda = eta^2/(2 sigma^2) gives Eq. 17a back.",
        ),
        Record.given(
            "19b",
            ASSUMPTION,
            show(mu_post, "=", mu_prior + s2_post * gm),
            show(mu_post, "=", mu_prior + s2_post * gm, ";", Raw("<g> = g at t = 1", r"\langle g\rangle = g\ (t=1)")),
            reason="Modelling choice (momentum: the debiased EMA <g> of Eq. 2 replaces g in Eq. 18b), nothing to "
            "derive. At t = 1 the debiased EMA is g itself, so Eq. 18b is recovered; for t > 1 this is a heuristic, "
            "not a Kalman update.",
        ),
    ]


def _eq35(terms: dict[str, sp.Expr], var: sp.Expr, mean: sp.Expr) -> Record:
    lhs35, prior35, lik35 = PRINTED["35/lhs"], PRINTED["35/prior"], PRINTED["35/lik"]
    lhs_at_update = lhs35.subs({s2_post: var, mu_post: mean})  # sigma^2_post, mu_post from Eqs. 38, 41
    resid = sp.cancel(sp.diff(lhs_at_update - terms["total"], w_star))
    return Record.from_comparison(
        "35",
        show(lhs35, "=", prior35, "+", lik35),
        show(Raw("d/dw* (LHS - RHS)", r"\partial_{w^*}(\mathrm{LHS}-\mathrm{RHS})"), "=", resid),
        "Bayes' rule in log form, up to w*-independent constants: the printed right-hand side equals the log prior "
        "(Eq. 16a) plus the log of Eq. 12's likelihood as derived (zero derivative in w* of the difference), and "
        "with sigma^2_post, mu_post from Eqs. 38/41 the difference of the two sides has zero derivative in w*.",
        checks=(
            Comparison("35/rhs", prior35 + lik35, terms["total"], same_up_to_constant(w_star)),
            Comparison("35/lhs", lhs_at_update, terms["total"], same_up_to_constant(w_star)),
        ),
    )


def _eq36_to_41(terms: dict[str, sp.Expr], var: sp.Expr, mean: sp.Expr) -> list[Record]:
    quad, lin = PRINTED["36"], PRINTED["39"]
    return [
        Record.from_comparison(
            "36",
            show(-(w_star**2) / (2 * s2_post), "=", quad * w_star**2),
            show(Raw("[w*^2] RHS of Eq. 35", r"[w^{*2}]\,\mathrm{RHS}"), "=", terms["quad"]),
            "Coefficient of w*^2 extracted from the expanded right-hand side of Eq. 35.",
            checks=(Comparison("36", quad, terms["quad"]),),
        ),
        Record.from_comparison(
            "37",
            show(1 / s2_post, "=", PRINTED["37"]),
            show(1 / s2_post, "=", sp.cancel(1 / var)),
            "From Eq. 36.",
            checks=(Comparison("37", PRINTED["37"], 1 / var),),
        ),
        Record.from_comparison(
            "38",
            show(s2_post, "=", PRINTED["38"]),
            show(s2_post, "=", var),
            "Inverse of Eq. 37.",
            checks=(Comparison("38", PRINTED["38"], var),),
        ),
        Record.from_comparison(
            "39",
            show(mu_post * w_star / s2_post, "=", lin * w_star),
            show(Raw("[w*] RHS of Eq. 35", r"[w^{*}]\,\mathrm{RHS}"), "=", terms["lin"]),
            "Coefficient of w* extracted from the expanded right-hand side of Eq. 35 (the likelihood contributes "
            "g + H_ii mu_prior).",
            checks=(Comparison("39", lin, terms["lin"]),),
        ),
        Record.from_comparison(
            "40",
            show(mu_post, "=", PRINTED["40"]),
            show(mu_post, "=", mean),
            "Eq. 39 times sigma^2_post.",
            checks=(Comparison("40", PRINTED["40"].subs(s2_post, var), mean),),
        ),
        Record.from_comparison(
            "41",
            show(mu_post, "=", PRINTED["41"]),
            show(mu_post, "=", mu_prior + var * g),
            "Eq. 40 with (1/sigma^2_prior + H_ii) sigma^2_post = 1 (Eq. 37).",
            checks=(Comparison("41", PRINTED["41"].subs(s2_post, var), mean),),
        ),
    ]


def _eq42() -> Record:
    z = standard_normals("r", 1)
    g_model = _gradient_model(z[0])  # Eq. 12
    g2_mean, g2_var = gaussian_moments(g_model**2, z)
    z_prior = standard_normals("s", 1)
    over_prior = sp.factor(expect(g2_mean.subs(w_star, mu_prior + sp.sqrt(s2_prior) * z_prior[0]), z_prior))
    return Record.from_comparison(
        "42",
        show(H, "≈", g**2),
        show(
            Raw("E[g^2]", r"\mathbb{E}[g^2]"),
            "=",
            H + sp.factor(g2_mean - H),
            ";",
            Raw("Var[g^2]", r"\mathrm{Var}[g^2]"),
            "=",
            sp.factor(g2_var),
        ),
        "Plug-in estimate. Under Eq. 12, g ~ N(H_ii (w* - mu_prior), H_ii), so E[g^2] = H_ii + H_ii^2 (w* - "
        f"mu_prior)^2: unbiased exactly when mu_prior = w* (as stated); the first neglected term is the bias "
        f"H_ii^2 (w* - mu_prior)^2, whose average over the prior N(mu_prior, sigma^2_prior) gives E[g^2] = "
        f"{sp.sstr(over_prior)}. A single g^2 is also noisy (Var = 2 H_ii^2 at the optimum).",
        checks=(Comparison("42", PRINTED["42"], g2_mean.subs(w_star, mu_prior)),),  # unbiased at the optimum
        exact=Comparison("42", PRINTED["42"], g2_mean),
    )


def records() -> list[Record]:
    """Records for Eqs. 16a-19b and 35-42.

    Returns
    -------
    list of Record
        In paper order; 16a and 16b are definitions, 19a and 19b assumptions, the rest are compared.
    """
    terms = log_posterior_terms()
    var, mean = kalman_update()
    return [
        *_eq16(),
        *_eq17(),
        *_eq18(),
        *_eq19(),
        _eq35(terms, var, mean),
        *_eq36_to_41(terms, var, mean),
        _eq42(),
    ]
