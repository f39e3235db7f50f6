"""Plain-text and Markdown (LaTeX maths) renderings of the derivation records and the extra results."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Sequence

from .records import STATUSES, Extra, Record

__all__ = ["json_report", "markdown_report", "status_counts", "text_report"]

_WIDTH = 120


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def json_report(records: Sequence[Record]) -> str:
    """The JSON list of records (keys ``equation, status, printed, derived, note``)."""
    return json.dumps([r.as_dict() for r in records], indent=2, ensure_ascii=False)


def status_counts(records: Sequence[Record]) -> dict[str, int]:
    """How many records have each status, in the order of :data:`derivations.records.STATUSES`.

    Parameters
    ----------
    records : sequence of Record

    Returns
    -------
    dict of str to int
        ``{"confirmed": n, "approximation": n, "erratum": n, "definition": n, "assumption": n}``.
    """
    counts = Counter(r.status for r in records)
    return {s: counts[s] for s in STATUSES}


def _summary(records: Sequence[Record]) -> str:
    """``"27 confirmed, 7 approximation, ..."``: the status counts in words."""
    return ", ".join(f"{n} {s}" for s, n in status_counts(records).items())


def text_report(records: Sequence[Record], extras: Sequence[Extra] = ()) -> str:
    """A readable report: a status table, then each derivation, then the results beyond the paper."""
    out = [
        f"Aitchison, 'Bayesian filtering unifies adaptive and non-adaptive ...': {len(records)} equations and "
        f"algorithm lines ({_summary(records)})",
        "",
    ]
    out.append(f"{'eq':<6} {'status':<14} {'printed':<48} derived")
    out.append("-" * _WIDTH)
    for r in records:
        out.append(f"{r.equation:<6} {r.status:<14} {_clip(r.printed.text, 48):<48} {_clip(r.derived.text, 48)}")
    out.append("")
    wrap = textwrap.TextWrapper(width=_WIDTH, initial_indent="    ", subsequent_indent="    ")
    for r in records:
        out.append(f"Eq. {r.equation}  [{r.status}]")
        out.append(f"  printed: {r.printed.text}")
        out.append(f"  derived: {r.derived.text}")
        for label, formula in r.steps:
            out.append(f"  step ({label}): {formula.text}")
        out.append(f"  {_basis(r)}")
        out.append("  note:")
        out.extend(wrap.wrap(r.note))
        out.append("")
    if extras:
        out.append("Beyond the paper")
        out.append("=" * 16)
        for e in extras:
            out.append(e.title)
            for label, formula in e.results:
                out.append(f"  {label}:")
                out.append(f"      {formula.text}")
            out.extend(wrap.wrap(e.note))
            out.append("")
    return "\n".join(out)


def _basis(r: Record) -> str:
    """How the status was reached: the comparisons and their outcomes, or given with a reason."""
    if not r.checks:
        return "status given (nothing printed to compare; the reason is in the note)"
    parts = [f"{c.label} {'holds' if c.holds else 'FAILS'}" for c in r.checks]
    if r.exact is not None:
        parts.append(f"exact form {'holds' if r.exact.holds else 'differs'}")
    return "status from comparisons: " + ", ".join(parts)


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def markdown_report(records: Sequence[Record], extras: Sequence[Extra] = ()) -> str:
    """A Markdown document of all derivations, with LaTeX maths (``$$ ... $$``)."""
    out = [
        "# Re-derivation of Aitchison's AdaBayes equations",
        "",
        f"{len(records)} equations and algorithm lines, each re-derived in SymPy and compared with the printed form "
        f"unless the paper defines or assumes it: {_summary(records)}.",
        "",
        "| equation | status | note |",
        "|---|---|---|",
    ]
    for r in records:
        out.append(f"| {r.equation} | {r.status} | {_md_escape(_clip(r.note, 110))} |")
    out.append("")
    for r in records:
        title = r.equation if r.equation.startswith("Alg") else f"Eq. {r.equation}"
        out += [
            f"## {title} — {r.status}",
            "",
            "Printed:",
            "",
            f"$$ {r.printed.tex} $$",
            "",
            "Derived:",
            "",
            f"$$ {r.derived.tex} $$",
            "",
        ]
        for label, formula in r.steps:
            out += [f"*{label}:*", "", f"$$ {formula.tex} $$", ""]
        out += [f"*{_basis(r).capitalize()}.*", "", r.note, ""]
    if extras:
        out += ["# Beyond the paper", ""]
        for e in extras:
            out += [f"## {e.title}", ""]
            for label, formula in e.results:
                out += [f"*{label}:*", "", f"$$ {formula.tex} $$", ""]
            out += [e.note, ""]
    return "\n".join(out)
