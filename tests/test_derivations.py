"""The derivations package: records, statuses, helpers and the command line."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sympy as sp

from derivations import all_extras, all_records
from derivations.core import expect, same, standard_normals
from derivations.records import PAPER_ORDER, STATUSES, Record

# Statuses found by the derivations (all but "confirmed" listed explicitly; everything else confirmed).
EXPECTED_ERRATA = {"15", "26", "27", "29", "Alg1", "Alg2"}
EXPECTED_APPROXIMATIONS = {"18a", "20", "21", "42", "44", "45", "47"}
# Nothing printed to compare: the paper defines the quantity, or makes a modelling choice.
EXPECTED_DEFINITIONS = {"5", "16a", "16b", "23", "25", "43"}
EXPECTED_ASSUMPTIONS = {"6", "13", "19a", "19b", "32"}


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return all_records()


def _paper_records(records: list[Record]) -> list[Record]:
    """The records of the paper's equations (modules registered later add ids outside PAPER_ORDER, listed last)."""
    return [r for r in records if r.equation in PAPER_ORDER]


def test_every_required_equation_is_present_in_paper_order(records):
    ids = [r.equation for r in records]
    required = [str(n) for n in range(5, 50) if n not in (16, 17, 18, 19)]
    required += ["16a", "16b", "17a", "17b", "18a", "18b", "19a", "19b", "Alg1", "Alg2"]
    assert sorted(r.equation for r in _paper_records(records)) == sorted(required)
    assert ids[: len(PAPER_ORDER)] == list(PAPER_ORDER)  # the paper's first, in its order
    assert len(set(ids)) == len(ids)


def test_statuses(records):
    status = {r.equation: r.status for r in _paper_records(records)}
    assert {eq for eq, s in status.items() if s == "erratum"} == EXPECTED_ERRATA
    assert {eq for eq, s in status.items() if s == "approximation"} == EXPECTED_APPROXIMATIONS
    assert {eq for eq, s in status.items() if s == "definition"} == EXPECTED_DEFINITIONS
    assert {eq for eq, s in status.items() if s == "assumption"} == EXPECTED_ASSUMPTIONS
    assert all(s in STATUSES for s in status.values())
    # the counts the README quotes
    assert Counter(status.values()) == {
        "confirmed": 27,
        "approximation": 7,
        "erratum": 6,
        "definition": 6,
        "assumption": 5,
    }


def test_readme_quotes_the_counts_the_records_give(records):
    """The README's sentence "The paper's N records: a confirmed, b approximations …" is what the records say."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    match = re.search(r"The paper's (\d+) records: (.*?); plus", text, re.S)
    assert match, "README sentence with the paper's record counts not found"
    quoted = {
        m[2]: int(m[1]) for m in re.finditer(r"(\d+) (confirmed|approximation|errat|definition|assumption)", match[2])
    }
    counts = Counter(r.status for r in _paper_records(records))
    names = {
        "confirmed": "confirmed",
        "approximation": "approximation",
        "errat": "erratum",
        "definition": "definition",
        "assumption": "assumption",
    }
    assert int(match[1]) == sum(counts.values())
    assert {names[k]: v for k, v in quoted.items()} == dict(counts)


def test_record_fields_are_nonempty_strings(records):
    for r in records:
        d = r.as_dict()
        assert list(d) == ["equation", "status", "printed", "derived", "note"]
        assert all(isinstance(v, str) and v for v in d.values()), r.equation
        assert r.printed.tex and r.derived.tex


def test_errata_hold_the_corrected_forms(records):
    by_id = {r.equation: r for r in records}
    assert "(1 - lambda)" in by_id["26"].derived.text
    assert "(-1 + lambda)" in by_id["26"].printed.text
    assert "sqrt(g2_mean)/eta" in by_id["27"].derived.text
    assert by_id["29"].derived.text.startswith("eta**2 = ")
    assert "/h11**2" in by_id["15"].derived.text
    assert "1/(g**2 + 1/sigma2_prior)" in by_id["Alg1"].derived.text
    assert "init sigma2_post <- sigma2" in by_id["Alg1"].derived.text
    assert "1/sigma2_post <- " in by_id["Alg2"].derived.text


def test_approximation_notes_name_the_neglected_term(records):
    by_id = {r.equation: r for r in records}
    assert "eta**4/(4*sigma2**2)" in by_id["44"].note  # (1 - η²/(2σ²))² - (1 - η²/σ²)
    assert "first neglected term" in by_id["47"].note
    assert "-eta**2/(4*sigma2)" in by_id["21"].note  # Eq. 21's error as <g²> -> 0
    assert "H_ii^2" in by_id["42"].note


def test_expect_and_same_helpers():
    (z,) = standard_normals("z", 1)
    a = sp.Symbol("a", positive=True)
    assert expect(z**4, [z]) == 3
    assert expect((a + z) ** 2, [z]) == a**2 + 1
    assert same(sp.sqrt(a**2), a)
    assert not same(sp.sqrt(a**2 + 1), a + 1)
    assert not same(1 / (a + 1), 1 / a)


def test_extras_cover_the_beyond_paper_results():
    keys = {e.key for e in all_extras()}
    assert {"exact-fixed-point-paper", "exact-fixed-point-exponential", "ou-stationary", "fading-memory"} <= keys


def _run_cli(argv: list[str], capsys) -> str:
    from derivations import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def test_cli_json(capsys, records):
    data = json.loads(_run_cli(["--json"], capsys))
    assert [d["equation"] for d in data] == [r.equation for r in records]
    assert [d["equation"] for d in data][: len(PAPER_ORDER)] == list(PAPER_ORDER)
    assert all(set(d) == {"equation", "status", "printed", "derived", "note"} for d in data)
    assert {d["status"] for d in data} <= set(STATUSES)


def test_cli_text_and_markdown(capsys, tmp_path, records):
    text = _run_cli([], capsys)
    assert "Eq. 18a  [approximation]" in text and "Beyond the paper" in text
    assert "27 confirmed, 12 approximation, 6 erratum, 6 definition, 5 assumption" in text
    assert "status from comparisons: 27/middle holds, 27/limit FAILS" in text
    assert "Eq. 43  [definition]" in text
    md = tmp_path / "sub" / "derivations.md"
    _run_cli(["--markdown", str(md)], capsys)
    body = md.read_text(encoding="utf-8")
    assert "## Eq. 26 — erratum" in body and "$$" in body and r"\sigma^2_{\mathrm{post}}" in body


def test_adabayes_derive_subcommand(capsys, records):
    from adabayes.cli import main

    assert main(["derive", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["equation"] for d in data] == [r.equation for r in records]
    assert [d["status"] for d in data] == [r.status for r in records]


def test_module_entry_point_imports_no_heavy_packages():
    # how long it takes is a benchmark question (`time python -m derivations --json`), not a correctness one
    code = (
        "import sys; import derivations; derivations.all_records(); derivations.all_extras(); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'filtering') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------- algorithm lines


def test_algorithm_lines_checked_one_by_one():
    from derivations.algorithms import alg1_checks, alg2_checks

    assert alg1_checks() == {"m": True, "g_mean": True, "prior": True, "post": False, "mu": True, "init": False}
    assert alg2_checks() == {
        "m": True,
        "v": True,
        "g_mean": True,
        "g2_mean": True,
        "line11": False,
        "line12": True,
        "init": True,
    }


def _corrected_alg1():
    from derivations.algorithms import alg1_printed
    from derivations.core import eta, g, s2_post, s2_prior, sigma2

    return alg1_printed() | {"post": 1 / (1 / s2_prior + g**2), "init": (eta, sigma2, s2_post)}


def _corrected_alg2():
    from derivations.algorithms import alg2_printed

    p = alg2_printed()
    return p | {"line11": 1 / p["line11"]}


@pytest.mark.parametrize("key", ["m", "g_mean", "prior", "post", "mu"])
def test_alg1_comparisons_can_fail(key):
    """The corrected Alg. 1 passes every check; a slip in any one transcribed line fails exactly that check."""
    from derivations.algorithms import alg1_checks
    from derivations.core import eta

    good = _corrected_alg1()
    assert all(alg1_checks(good).values())
    bad = good | {key: good[key] * (1 + eta**3)}
    checks = alg1_checks(bad)
    assert [k for k, ok in checks.items() if not ok] == [key]


def test_alg1_init_check_can_fail():
    from derivations.algorithms import alg1_checks
    from derivations.core import eta, sigma2

    assert not alg1_checks(_corrected_alg1() | {"init": (eta, sigma2)})["init"]


@pytest.mark.parametrize("key", ["m", "v", "g_mean", "g2_mean", "line11", "line12"])
def test_alg2_comparisons_can_fail(key):
    from derivations.algorithms import alg2_checks
    from derivations.core import eta

    good = _corrected_alg2()
    assert all(alg2_checks(good).values())
    bad = good | {key: good[key] * (1 + eta**3)}
    assert [k for k, ok in alg2_checks(bad).items() if not ok] == [key]


# ---------------------------------------------------------------------------------------------- one source for Eq. 12


def test_kalman_likelihood_is_the_one_derived_in_model(monkeypatch):
    from derivations import kalman
    from derivations.core import H, g, mu_prior, w_star
    from derivations.model import gradient_likelihood

    mean, var = gradient_likelihood()
    assert same(mean, H * (w_star - mu_prior)) and same(var, H)
    assert same(kalman.log_posterior_terms()["log_lik"], -((g - mean) ** 2) / (2 * var))
    # kalman takes it from model.py (not a re-typed copy): a different likelihood changes the update
    monkeypatch.setattr(kalman, "gradient_likelihood", lambda: (2 * H * (w_star - mu_prior), H))
    var_post, _ = kalman.kalman_update()
    assert not same(var_post, 1 / (1 / kalman.s2_prior + H))


# ---------------------------------------------------------------------------------------------- ERRATA.md


def _errata_table_rows() -> list[tuple[str, str]]:
    """(label, equation id) of each row of ERRATA.md's table; "Alg. 1 (init)" and "Alg. 2, line 11" are lines of
    the Alg1 / Alg2 records."""
    text = (Path(__file__).resolve().parents[1] / "derivations" / "ERRATA.md").read_text(encoding="utf-8")
    rows, in_table = [], False
    for line in text.splitlines():
        if line.startswith("| Eq. |"):
            in_table = True
            continue
        if in_table and line.startswith("|---"):
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table:
            label = line.split("|")[1].strip()
            alg = re.match(r"Alg\. (\d+)\b", label)
            rows.append((label, f"Alg{alg.group(1)}" if alg else label))
    return rows


def test_errata_md_table_matches_the_erratum_records(records):
    from derivations.algorithms import alg1_checks, alg2_checks

    rows = _errata_table_rows()
    assert rows, "no table found in derivations/ERRATA.md"
    erratum_ids = {r.equation for r in records if r.status == "erratum"}
    table_ids = {eq for _, eq in rows}
    assert table_ids <= set(PAPER_ORDER), table_ids - set(PAPER_ORDER)
    assert table_ids - erratum_ids == set(), "rows in ERRATA.md for equations that are not errata"
    assert erratum_ids - table_ids == set(), "erratum records missing from ERRATA.md's table"
    # sub-rows of an algorithm record name a line that its check finds wrong
    sub_rows = {"Alg. 1": "post", "Alg. 1 (init)": "init", "Alg. 2, line 11": "line11"}
    checks = {"Alg1": alg1_checks(), "Alg2": alg2_checks()}
    for label, eq in rows:
        if eq.startswith("Alg"):
            assert label in sub_rows, f"unknown algorithm row {label!r} in ERRATA.md"
            assert not checks[eq][sub_rows[label]], label
    for eq, c in checks.items():
        failing = {k for k, ok in c.items() if not ok}
        assert failing == {sub_rows[label] for label, e in rows if e == eq}, (eq, failing)


def test_errata_md_lists_the_definitions_and_assumptions(records):
    text = (Path(__file__).resolve().parents[1] / "derivations" / "ERRATA.md").read_text(encoding="utf-8")
    for status, word in (("definition", "Definitions"), ("assumption", "Assumptions")):
        line = re.search(rf"^- \*\*{word}:\*\* Eqs\. (.+)\.$", text, flags=re.MULTILINE)
        assert line, f"no '{word}' line in derivations/ERRATA.md"
        listed = {eq.strip() for eq in line.group(1).split(",")}
        assert listed == {r.equation for r in records if r.status == status}, status
