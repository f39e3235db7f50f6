"""Shared symbols, display helpers and exactness checks for the derivations.

Every derivation module builds its results from the symbols defined here, so that the same ``eta``, ``sigma2``
... appear in all records and the LaTeX names are kept in one table (:data:`TEX_NAMES`).

Checks:

* :func:`same` -- symbolic first (``cancel`` of the difference), then, only for expressions with radicals or
  transcendental functions that ``cancel`` cannot normalise, a numeric identity test at seeded random rational
  points evaluated with 50 significant digits (matrices element-wise, sets by equality).
* :func:`same_at`, :func:`same_to_order`, :func:`asymptotic_to`, :func:`same_up_to_constant` -- the weaker
  comparisons an approximate, asymptotic or unnormalised printed form is held to. Each is a ``test(printed,
  derived) -> bool`` for :class:`derivations.records.Comparison`.
* :func:`expect` -- exact moments of polynomials in independent standard normal variables, which is all the
  Gaussian algebra of the paper needs (affine maps of Gaussians, Eqs. 7, 12-14, 17, 34, 42) without the
  integration machinery of :mod:`sympy.stats`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp

__all__ = [
    "TEX_NAMES",
    "Raw",
    "Shown",
    "Test",
    "asymptotic_to",
    "expect",
    "gaussian_moments",
    "lines",
    "register_tex",
    "same",
    "same_at",
    "same_to_order",
    "same_up_to_constant",
    "show",
    "standard_normals",
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
    """Record the LaTeX name of a module-local symbol and return it.

    Parameters
    ----------
    symbol : sympy.Symbol
        The symbol.
    tex : str
        Its LaTeX spelling, used by every Markdown report.

    Returns
    -------
    sympy.Symbol
        ``symbol`` itself.
    """
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
    """The plain-text spelling of one piece of :func:`show`."""
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
    """The LaTeX spelling of one piece of :func:`show`."""
    if isinstance(part, Raw):
        return part.tex
    if isinstance(part, Shown):
        return part.tex
    if isinstance(part, str):
        return _OPS.get(part, r"\text{" + part + "}")
    return sp.latex(part, symbol_names=TEX_NAMES, order="none")


def show(*parts: object) -> Shown:
    """Join SymPy expressions, :class:`Raw` pieces and operator strings (``"="``, ``"≈"``, ...) into a formula.

    Parameters
    ----------
    *parts : sympy.Expr, sympy.MatrixBase, Raw, Shown or str
        The pieces, in order; strings in the operator table become LaTeX operators, others ``\text{...}``.

    Returns
    -------
    Shown
        The plain-text and LaTeX renderings.
    """
    return Shown(" ".join(_text(p) for p in parts), " ".join(_tex(p) for p in parts))


def lines(*items: Shown) -> Shown:
    """Several formulas shown as one (``; `` in text, a LaTeX line break in maths).

    Parameters
    ----------
    *items : Shown
        The formulas.

    Returns
    -------
    Shown
        One formula holding them all.
    """
    body = r" \\ ".join(i.tex for i in items)
    return Shown("; ".join(i.text for i in items), r"\begin{gathered}" + body + r"\end{gathered}")


# --------------------------------------------------------------------------------------------------------------
# checks


Test = Callable[[object, object], bool]
"""A comparison test: ``test(printed, derived) -> bool`` (see :class:`derivations.records.Comparison`)."""


def _has_radicals_or_functions(expr: sp.Expr) -> bool:
    """Whether ``expr`` holds something ``cancel`` cannot normalise (radicals, ``exp``, ``log``, ``Abs``, ...)."""
    if expr.has(sp.exp, sp.log, sp.Abs, sp.sign, sp.Min, sp.Max):
        return True
    return any(not p.exp.is_Integer for p in expr.atoms(sp.Pow))


def _same_scalar(a: object, b: object, points: int, seed: int) -> bool:
    """:func:`same` for two scalar expressions (``nan`` on either side is never the same)."""
    if sp.sympify(a).has(sp.nan) or sp.sympify(b).has(sp.nan):
        return False
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


def same(a: object, b: object, *, points: int = 4, seed: int = 20240607) -> bool:
    """Decide whether ``a == b`` as functions of their free symbols (under the symbols' assumptions).

    ``cancel(a - b) == 0`` settles rational expressions symbolically. Expressions with radicals or ``exp`` are
    first tried with ``cancel`` and, failing that, evaluated at ``points`` seeded random positive rational points
    with 50 digits (a probabilistic identity test; a non-identity passes it only by accident of measure zero).

    Parameters
    ----------
    a, b : sympy.Expr, sympy.MatrixBase or sympy.Set
        Scalars are compared as above; matrices element by element (shapes must agree); sets by equality.
    points : int
        Number of random points for the numeric identity test.
    seed : int
        Seed of those points (deterministic results).

    Returns
    -------
    bool
        ``True`` when the two sides are identical.
    """
    if isinstance(a, sp.MatrixBase) or isinstance(b, sp.MatrixBase):
        if not (isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase)) or a.shape != b.shape:
            return False
        return all(_same_scalar(x, y, points, seed) for x, y in zip(a, b, strict=True))
    if isinstance(a, sp.Set) or isinstance(b, sp.Set):
        return a == b
    return _same_scalar(a, b, points, seed)


def same_at(var: sp.Symbol, value: sp.Expr) -> Test:
    """Test: ``printed`` and ``derived`` agree at ``var = value`` (an approximation exact in that limit).

    Parameters
    ----------
    var : sympy.Symbol
        The small parameter (e.g. ``r = eta^2/sigma^2``).
    value : sympy.Expr
        Where the two sides must agree (e.g. 0).

    Returns
    -------
    callable
        ``test(printed, derived) -> bool``.
    """

    def test(printed: object, derived: object) -> bool:
        return same(sp.sympify(printed).subs(var, value), sp.sympify(derived).subs(var, value))

    return test


def same_to_order(var: sp.Symbol, order: int, *, substitute: dict | None = None) -> Test:
    """Test: ``printed - derived`` is ``O(var**(order + 1))`` about ``var = 0`` (a truncation of that order).

    Parameters
    ----------
    var : sympy.Symbol
        The expansion variable.
    order : int
        Highest power of ``var`` at which the two sides must agree.
    substitute : dict, optional
        Applied to both sides first (e.g. ``{eta: sqrt(eps)}`` to expand in ``eta^2``).

    Returns
    -------
    callable
        ``test(printed, derived) -> bool``.
    """

    def test(printed: object, derived: object) -> bool:
        diff = sp.sympify(printed) - sp.sympify(derived)
        if substitute:
            diff = diff.subs(substitute)
        ser = sp.series(diff, var, 0, order + 1).removeO()
        return sp.simplify(ser) == 0

    return test


def asymptotic_to(var: sp.Symbol, point: sp.Expr) -> Test:
    """Test: ``derived / printed -> 1`` as ``var -> point`` (an asymptotic statement).

    Parameters
    ----------
    var : sympy.Symbol
        The variable of the limit.
    point : sympy.Expr
        Where the limit is taken (e.g. ``sympy.oo``).

    Returns
    -------
    callable
        ``test(printed, derived) -> bool``.
    """

    def test(printed: object, derived: object) -> bool:
        return sp.limit(sp.sympify(derived) / sp.sympify(printed), var, point) == 1

    return test


def same_up_to_constant(var: sp.Symbol) -> Test:
    """Test: ``printed - derived`` does not depend on ``var`` (equal up to a ``var``-free constant).

    Parameters
    ----------
    var : sympy.Symbol
        The variable (e.g. ``w*`` for log densities known up to normalisation).

    Returns
    -------
    callable
        ``test(printed, derived) -> bool``.
    """

    def test(printed: object, derived: object) -> bool:
        return sp.cancel(sp.diff(sp.sympify(printed) - sp.sympify(derived), var)) == 0

    return test


def expect(expr: sp.Expr, normals: Sequence[sp.Symbol]) -> sp.Expr:
    """Exact expectation of a polynomial in independent standard normal variables ``normals``.

    ``E[z^k] = (k-1)!!`` for even ``k`` and 0 for odd ``k``; the other symbols are treated as constants.

    Parameters
    ----------
    expr : sympy.Expr
        A polynomial in ``normals`` (other symbols are coefficients).
    normals : sequence of sympy.Symbol
        The independent standard normal variables.

    Returns
    -------
    sympy.Expr
        The expectation, expanded.
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
    """Mean and variance of an affine (or polynomial) function of independent standard normals.

    Parameters
    ----------
    expr : sympy.Expr
        A polynomial in ``normals``.
    normals : sequence of sympy.Symbol
        The independent standard normal variables.

    Returns
    -------
    tuple of sympy.Expr
        ``(E[expr], Var[expr])``, expanded.
    """
    mean = expect(expr, normals)
    var = sp.expand(expect(expr**2, normals) - mean**2)
    return mean, var


def standard_normals(prefix: str, n: int) -> list[sp.Symbol]:
    """``n`` fresh real symbols ``prefix_1 .. prefix_n`` standing for independent N(0, 1) variables.

    Parameters
    ----------
    prefix : str
        Name prefix (distinct per use, so that independent draws do not share a symbol).
    n : int
        How many.

    Returns
    -------
    list of sympy.Symbol
    """
    return list(sp.symbols(f"{prefix}_1:{n + 1}", real=True))
