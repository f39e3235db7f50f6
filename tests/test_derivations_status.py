"""A record's status is the outcome of comparisons that can fail, never a literal (issue 9, item 6).

``confirmed`` / ``approximation`` / ``erratum`` must come from :class:`derivations.records.Comparison` objects
(each runs its test when built); ``definition`` / ``assumption`` are the only literal statuses. Three layers:

* the constructor refuses anything else (a literal computed status, a given status with comparisons);
* every comparison of every record can fail: its test rejects a perturbed printed form (and accepts the derived
  form against itself);
* end to end: changing one printed form in a module's ``PRINTED`` table and re-running that module's derivations
  turns its record into an erratum, and the corrected forms of ERRATA.md turn the errata into confirmations. A
  record whose "derived" side were built from its own printed form (a comparison of a form with itself) would
  not change, and fails here.
"""

from __future__ import annotations

import pytest
import sympy as sp

from derivations import algorithms, fading_memory, fixed_point, kalman, model
from derivations.core import (
    H,
    Raw,
    asymptotic_to,
    eta,
    g2m,
    gm,
    lam,
    mu_post_prev,
    s2_post,
    same,
    same_at,
    same_to_order,
    same_up_to_constant,
    show,
    sigma2,
)
from derivations.records import (
    APPROXIMATION,
    COMPUTED,
    CONFIRMED,
    DEFINITION,
    ERRATUM,
    GIVEN,
    Comparison,
    Record,
    all_records,
    status_from,
)

MODULES_WITH_PRINTED = {"model": model, "kalman": kalman, "fixed_point": fixed_point, "fading_memory": fading_memory}
KAPPA = sp.Symbol("kappa_mutant", positive=True)  # a fresh symbol no derivation uses


def perturb(form: object) -> object:
    """``form (1 + κ) + κ (1 + Σ its free symbols)``: differs from ``form`` at every order, limit and point.

    The relative part keeps asymptotic comparisons honest (``derived/printed -> 1`` fails where ``form`` diverges,
    where an additive shift alone would be negligible); the additive part handles ``form = 0``.
    """
    if isinstance(form, sp.Set):
        return form | sp.FiniteSet(KAPPA)
    if isinstance(form, sp.MatrixBase):
        shift = KAPPA * (1 + sum(form.free_symbols, sp.Integer(0)))
        return form * (1 + KAPPA) + shift * sp.ones(*form.shape)
    form = sp.sympify(form)
    return form * (1 + KAPPA) + KAPPA * (1 + sum(form.free_symbols, sp.Integer(0)))


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return all_records()


def _shown(text: str):
    return show(Raw(text, text))


# ------------------------------------------------------------------------------------------------ the constructor


def test_every_status_is_computed_or_given_with_a_reason(records):
    for r in records:
        if r.status in COMPUTED:
            assert r.basis == "comparison" and r.checks, r.equation
            assert all(isinstance(c, Comparison) for c in r.checks), r.equation
            assert r.status == status_from(r.checks, r.exact), r.equation
        else:
            assert r.status in GIVEN, r.equation
            assert r.basis == "given" and not r.checks and r.exact is None, r.equation
            assert len(r.note.split()) >= 5, r.equation  # a reason, not a label


def test_literal_computed_statuses_are_refused():
    p, d = _shown("x = 1"), _shown("x = 1")
    for status in COMPUTED:
        with pytest.raises(ValueError, match="outcome of its comparisons"):
            Record("0", status, p, d, "typed in by hand")
        with pytest.raises(ValueError, match="given record"):
            Record.given("0", status, p, d, reason="typed in by hand")
    holds = Comparison("x", sp.Integer(1), sp.Integer(1))
    fails = Comparison("x", sp.Integer(1), sp.Integer(2))
    assert holds.holds and not fails.holds
    with pytest.raises(ValueError, match="outcome of its comparisons"):
        Record("0", CONFIRMED, p, d, "a failing comparison", checks=(fails,))
    with pytest.raises(ValueError, match="no comparisons"):
        Record("0", DEFINITION, p, d, "a definition with a comparison", checks=(holds,))
    with pytest.raises(ValueError, match="reason"):
        Record.given("0", DEFINITION, p, d, reason=" ")
    with pytest.raises(ValueError, match="at least one"):
        Record.from_comparison("0", p, d, "no comparison", checks=())
    with pytest.raises(TypeError):
        Comparison("x", 1, 1, same, True)  # the outcome cannot be passed in


def test_status_follows_the_comparisons():
    p, d = _shown("x"), _shown("x")
    a = sp.Symbol("a", positive=True)
    holds, fails = Comparison("x", a, a), Comparison("x", a, a + 1)
    assert Record.from_comparison("0", p, d, "n", checks=(holds,)).status == CONFIRMED
    assert Record.from_comparison("0", p, d, "n", checks=(holds, fails)).status == ERRATUM
    assert Record.from_comparison("0", p, d, "n", checks=(holds,), exact=fails).status == APPROXIMATION
    assert Record.from_comparison("0", p, d, "n", checks=(holds,), exact=holds).status == CONFIRMED
    assert Record.from_comparison("0", p, d, "n", checks=(fails,), exact=fails).status == ERRATUM


# ------------------------------------------------------------------------------------------------ comparisons can fail


def _all_checks(records):
    return [(r.equation, c) for r in records for c in r.checks]


def test_every_comparison_rejects_a_perturbed_printed_form(records):
    checked = 0
    for eq, c in _all_checks(records):
        assert c.retest(c.derived), (eq, c.label)  # the derived form passes against itself
        assert not c.retest(perturb(c.derived)), (eq, c.label)
        if c.holds:
            assert not c.retest(perturb(c.printed)), (eq, c.label)
        checked += 1
    assert checked >= 55  # 58 in the paper's 40 compared records


def test_comparison_tests_accept_and_reject():
    a, b, x = sp.symbols("a b x", positive=True)
    assert same(sp.Matrix([a, 1 / (1 / a)]), sp.Matrix([a, a])) and not same(sp.Matrix([a]), sp.Matrix([a, a]))
    assert same(sp.FiniteSet(a, b), sp.FiniteSet(b, a)) and not same(sp.FiniteSet(a), sp.FiniteSet(a, b))
    assert not same(sp.nan, sp.nan) and not same(sp.sqrt(a) + sp.nan, sp.sqrt(a))
    assert same_at(x, 0)(a + x, a + 2 * x) and not same_at(x, 0)(a + x, 2 * a)
    assert same_to_order(x, 1)(1 / (1 - x), 1 + x) and not same_to_order(x, 2)(1 / (1 - x), 1 + x)
    assert same_to_order(x, 1, substitute={a: sp.sqrt(x)})(1 + a**2, 1 / (1 - a**2))
    assert asymptotic_to(x, sp.oo)(sp.sqrt(x), sp.sqrt(x + 1)) and not asymptotic_to(x, sp.oo)(x, sp.sqrt(x))
    assert same_up_to_constant(x)((x - a) ** 2 - x**2, -2 * a * x + b)
    assert not same_up_to_constant(x)(x**2, x**2 + a * x)


# ------------------------------------------------------------------------------------------------ end to end


def _printed_keys():
    return [(name, key) for name, mod in MODULES_WITH_PRINTED.items() for key in mod.PRINTED]


def test_printed_tables_cover_every_compared_record(records):
    keyed = {key.split("/")[0] for _, key in _printed_keys()}
    by_module = {name: {r.equation for r in mod.records()} for name, mod in MODULES_WITH_PRINTED.items()}
    status = {r.equation: r.status for r in records}
    for name, eqs in by_module.items():
        for eq in eqs:
            if status[eq] in COMPUTED:
                assert eq in keyed, f"{name}: record {eq} has no printed form in PRINTED"
            else:
                assert eq not in keyed, f"{name}: {status[eq]} {eq} has a printed form that nothing compares"
    assert {"Alg1", "Alg2"} == {r.equation for r in algorithms.records()}  # typed in alg1/alg2_printed instead


@pytest.mark.parametrize(("name", "key"), _printed_keys())
def test_changing_a_printed_form_changes_its_records_status(name, key, monkeypatch, records):
    mod = MODULES_WITH_PRINTED[name]
    eq = key.split("/")[0]
    before = {r.equation: r for r in records}[eq]
    monkeypatch.setitem(mod.PRINTED, key, perturb(mod.PRINTED[key]))
    after = {r.equation: r for r in mod.records()}[eq]
    assert after.status == ERRATUM, (key, before.status)
    held = {c.label for c in before.checks if c.holds}
    if before.status == ERRATUM and key in held:  # e.g. 27/middle: the part that was right now fails too
        assert not {c.label: c.holds for c in after.checks}[key]


def test_the_corrected_forms_of_errata_md_are_confirmed(monkeypatch):
    col, h11 = model.H_MAT[1:, 0], model.H_MAT[0, 0]
    eta_mu = next(s for s in model.PRINTED["15"].free_symbols if s.name == "eta_mu")
    corrected = {
        (model, "15"): eta_mu**2 * (col.T * col)[0, 0] / h11**2,
        (fixed_point, "26"): (1 - lam) * mu_post_prev + eta / sp.sqrt(g2m) * gm,
        (fixed_point, "27/limit"): sp.sqrt(g2m) / eta,
        (fading_memory, "29"): sp.sqrt(lam / (1 - lam) * s2_post),  # η = sqrt of the variance λ/(1-λ) σ²_post
    }
    for (mod, key), form in corrected.items():
        assert {r.equation: r.status for r in mod.records()}[key.split("/")[0]] == ERRATUM
        monkeypatch.setitem(mod.PRINTED, key, form)
        assert {r.equation: r.status for r in mod.records()}[key.split("/")[0]] == CONFIRMED, key


def test_the_corrected_algorithms_are_confirmed(monkeypatch):
    from derivations.core import g, s2_prior

    p1, p2 = algorithms.alg1_printed(), algorithms.alg2_printed()
    assert {r.equation: r.status for r in algorithms.records()} == {"Alg1": ERRATUM, "Alg2": ERRATUM}
    fixed1 = p1 | {"post": 1 / (1 / s2_prior + g**2), "init": (eta, sigma2, s2_post)}
    fixed2 = p2 | {"line11": 1 / p2["line11"]}
    monkeypatch.setattr(algorithms, "alg1_printed", lambda: fixed1)
    monkeypatch.setattr(algorithms, "alg2_printed", lambda: fixed2)
    assert {r.equation: r.status for r in algorithms.records()} == {"Alg1": CONFIRMED, "Alg2": CONFIRMED}


def test_approximations_are_not_exact_and_hold_to_their_order(records):
    for r in records:
        if r.status == APPROXIMATION:
            assert r.exact is not None and not r.exact.holds, r.equation
            assert all(c.holds for c in r.checks), r.equation
    # Eq. 44 keeps the predict factor to first order in η²: it fails at second order
    rec44 = {r.equation: r for r in records}["44"]
    eps = sp.Symbol("epsilon", positive=True)
    assert not same_to_order(eps, 2, substitute={eta: sp.sqrt(eps)})(rec44.checks[0].printed, rec44.checks[0].derived)
    assert H in kalman.PRINTED["42"].free_symbols


def test_a_registered_module_adds_its_records_after_the_papers(monkeypatch):
    """The hook for new derivation modules (e.g. ``derivations.stochastic``): one more name in ``MODULES``."""
    import sys
    import types

    from derivations import records as rec

    a = sp.Symbol("a", positive=True)
    extra = types.ModuleType("derivations_extra_for_test")
    extra.records = lambda: [
        Record.from_comparison(
            "X1", _shown("a = a"), _shown("a = a"), "a test record", checks=(Comparison("X1", a, sp.sqrt(a**2)),)
        )
    ]
    monkeypatch.setitem(sys.modules, extra.__name__, extra)
    monkeypatch.setattr(rec, "MODULES", (*rec.MODULES, extra.__name__))
    rec.collect.cache_clear()
    rec._extras.cache_clear()
    try:
        found = rec.all_records()
        assert [r.equation for r in found][: len(rec.PAPER_ORDER)] == list(rec.PAPER_ORDER)
        assert found[-1].equation == "X1" and found[-1].status == CONFIRMED
        assert len(rec.all_extras()) >= 4  # a module without extras() adds none
    finally:
        rec.collect.cache_clear()
        rec._extras.cache_clear()
