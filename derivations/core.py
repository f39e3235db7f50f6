"""Shared symbols, display helpers and exactness checks for the derivations.

Every derivation module builds its results from the symbols defined here, so that the same ``eta``, ``sigma2``
... appear in all records and the LaTeX names are kept in one table (:data:`TEX_NAMES`).

Two kinds of checks are used:

* :func:`same` -- symbolic first (``cancel`` of the difference), then, only for expressions with radicals or
  transcendental functions that ``cancel`` cannot normalise, a numeric identity test at seeded random rational
  points evaluated with 50 significant digits.
* :func:`expect` -- exact moments of polynomials in independent standard normal variables, which is all the
  Gaussian algebra of the paper needs (affine maps of Gaussians, Eqs. 7, 12-14, 17, 34, 42) without the
  integration machinery of :mod:`sympy.stats`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp

__all__ = [
    "TEX_NAMES",
    "Raw",
    "Shown",
    "expect",
    "same",
    "show",
]

# --------------------------------------------------------------------------------------------------------------
# symbols (the paper's notation; positive where the paper's quantity is a variance, precision or rate)

eta = sp.Symbol("eta", positive=True)  # OU process-noise s.d. η = η_Adam (Eqs. 14, 25)
sigma2 = sp.Symbol("sigma2", positive=True)  # prior variance σ² (Eq. 23)
s2_prior = sp.Symbol("sigma2_prior", positive=True)  # σ²_prior (Eq. 16a)
s2_post = sp.Symbol("sigma2_post", positive=True)  # σ²_post (Eq. 16b)
mu_prior = sp.Symbol("mu_prior", real=True)
mu_post = sp.Symbol("mu_post", real=True)
mu_post_prev = sp.Symbol("mu_post_prev", real=True)  # μ_post(t-1)
g = sp.Symbol("g", real=True)  # one gradient observation g(t)
g2m = sp.Symbol("g2_mean", positive=True)  # ⟨g²⟩
gm = sp.Symbol("g_mean", real=True)  # ⟨g⟩
lam = sp.Symbol("lambda", positive=True)  # weight decay (Eq. 19a) or forgetting factor (Eq. 28)
lp = sp.Symbol("lambda_post", positive=True)  # precision 1/σ²_post (Eq. 43)
H = sp.Symbol("H_ii", positive=True)  # diagonal Hessian element
w_star = sp.Symbol("w_star", real=True)  # optimal weight w*
eta_mu = sp.Symbol("eta_mu", positive=True)  # noise s.d. of the other parameters (Eq. 13)
beta1 = sp.Symbol("beta1", positive=True)
beta2 = sp.Symbol("beta2", positive=True)
t = sp.Symbol("t", positive=True, integer=True)
eta_sgd = sp.Symbol("eta_SGD", positive=True)
eta_adam = sp.Symbol("eta_Adam", positive=True)
batch = sp.Symbol("B", positive=True)  # minibatch size

TEX_NAMES: dict[sp.Symbol, str] = {
    eta: r"\eta",
    sigma2: r"\sigma^2",
    s2_prior: r"\sigma^2_{\mathrm{prior}}",
    s2_post: r"\sigma^2_{\mathrm{post}}",
    mu_prior: r"\mu_{\mathrm{prior}}",
    mu_post: r"\mu_{\mathrm{post}}",
    mu_post_prev: r"\mu_{\mathrm{post}}(t-1)",
    g: "g",
    g2m: r"\langle g^2 \rangle",
    gm: r"\langle g \rangle",
    lam: r"\lambda",
    lp: r"\lambda_{\mathrm{post}}",
    H: "H_{ii}",
    w_star: "w^*",
    eta_mu: r"\eta_\mu",
    beta1: r"\beta_1",
    beta2: r"\beta_2",
    t: "t",
    eta_sgd: r"\eta_{\mathrm{SGD}}",
    eta_adam: r"\eta_{\mathrm{Adam}}",
    batch: "B",
}

Normal = sp.Function("N")  # display only: N(mean, variance)


def register_tex(symbol: sp.Symbol, tex: str) -> sp.Symbol:
    """Record the LaTeX name of a module-local symbol and return it."""
    TEX_NAMES[symbol] = tex
    return symbol


# --------------------------------------------------------------------------------------------------------------
# display


@dataclass(frozen=True)
class Raw:
    """A piece of display text with separate plain and LaTeX spellings."""

    text: str
    tex: str


_OPS = {
    "=": "=",
    "≈": r"\approx",
    "->": r"\to",
    "<-": r"\leftarrow",
    "~": r"\sim",
    ";": r";\quad",
    ",": ",",
    "=>": r"\Rightarrow",
    "!=": r"\neq",
}


@dataclass(frozen=True)
class Shown:
    """A displayable formula: its plain-text (SymPy ``sstr``) and LaTeX renderings."""

    text: str
    tex: str

    def __str__(self) -> str:
        return self.text


def _text(part: object) -> str:
    if isinstance(part, Raw):
        return part.text
    if isinstance(part, Shown):
        return part.text
    if isinstance(part, str):
        return part
    if isinstance(part, sp.MatrixBase):
        return "Matrix(" + sp.sstr(part.tolist(), order="none") + ")"
    return sp.sstr(part, order="none")


def _tex(part: object) -> str:
    if isinstance(part, Raw):
        return part.tex
    if isinstance(part, Shown):
        return part.tex
    if isinstance(part, str):
        return _OPS.get(part, r"\text{" + part + "}")
    return sp.latex(part, symbol_names=TEX_NAMES, order="none")


def show(*parts: object) -> Shown:
    """Join SymPy expressions, :class:`Raw` pieces and operator strings (``"="``, ``"≈"``, ...) into a formula."""
    return Shown(" ".join(_text(p) for p in parts), " ".join(_tex(p) for p in parts))


def lines(*items: Shown) -> Shown:
    """Several formulas shown as one (``; `` in text, a LaTeX line break in maths)."""
    body = r" \\ ".join(i.tex for i in items)
    return Shown("; ".join(i.text for i in items), r"\begin{gathered}" + body + r"\end{gathered}")


# --------------------------------------------------------------------------------------------------------------
# checks


def _has_radicals_or_functions(expr: sp.Expr) -> bool:
    if expr.has(sp.exp, sp.log, sp.Abs, sp.sign, sp.Min, sp.Max):
        return True
    return any(not p.exp.is_Integer for p in expr.atoms(sp.Pow))


def same(a: sp.Expr, b: sp.Expr, *, points: int = 4, seed: int = 20240607) -> bool:
    """Decide whether ``a == b`` as functions of their free symbols (under the symbols' assumptions).

    ``cancel(a - b) == 0`` settles rational expressions symbolically. Expressions with radicals or ``exp`` are
    first tried with ``cancel`` and, failing that, evaluated at ``points`` seeded random positive rational points
    with 50 digits (a probabilistic identity test; a non-identity passes it only by accident of measure zero).
    """
    diff = sp.cancel(sp.together(sp.sympify(a) - sp.sympify(b)))
    if diff == 0:
        return True
    if not _has_radicals_or_functions(diff):
        return False
    rng = random.Random(seed)
    free = sorted(diff.free_symbols, key=str)
    for _ in range(points):
        vals = {s: sp.Rational(rng.randint(7, 97), rng.randint(10, 60)) for s in free}
        left = sp.sympify(a).subs(vals).evalf(50)
        right = sp.sympify(b).subs(vals).evalf(50)
        scale = abs(left) + abs(right) + sp.Float("1e-45", 50)
        if abs(left - right) > sp.Float("1e-35", 50) * scale:
            return False
    return True


def expect(expr: sp.Expr, normals: Sequence[sp.Symbol]) -> sp.Expr:
    """Exact expectation of a polynomial in independent standard normal variables ``normals``.

    ``E[z^k] = (k-1)!!`` for even ``k`` and 0 for odd ``k``; the other symbols are treated as constants.
    """
    poly = sp.Poly(sp.expand(expr), *normals)
    total = sp.Integer(0)
    for monom, coeff in poly.terms():
        factor = sp.Integer(1)
        for k in monom:
            factor *= 0 if k % 2 else sp.factorial2(k - 1)
        total += coeff * factor
    return sp.expand(total)


def gaussian_moments(expr: sp.Expr, normals: Sequence[sp.Symbol]) -> tuple[sp.Expr, sp.Expr]:
    """Mean and variance of an affine (or polynomial) function of independent standard normals."""
    mean = expect(expr, normals)
    var = sp.expand(expect(expr**2, normals) - mean**2)
    return mean, var


def standard_normals(prefix: str, n: int) -> list[sp.Symbol]:
    """``n`` fresh real symbols ``prefix_1 .. prefix_n`` standing for independent N(0, 1) variables."""
    return list(sp.symbols(f"{prefix}_1:{n + 1}", real=True))


def leading_term(expr: sp.Expr, var: sp.Symbol, n: int = 4) -> sp.Expr:
    """First non-zero term of the series of ``expr`` in ``var`` about 0 (factored)."""
    ser = sp.series(expr, var, 0, n).removeO()
    if ser == 0:
        return sp.Integer(0)
    return sp.factor(sp.expand(ser).as_leading_term(var))


def free_symbols_sorted(exprs: Iterable[sp.Expr]) -> list[sp.Symbol]:
    """The free symbols of ``exprs``, sorted by name (deterministic lambdify signatures)."""
    out: set[sp.Symbol] = set()
    for e in exprs:
        out |= e.free_symbols
    return sorted(out, key=str)
