"""The record of one re-derived equation, and the collection of all of them in paper order.

A :class:`Record` is what ``python -m derivations --json`` prints (the five string fields of
:meth:`Record.as_dict`); the derivation steps and LaTeX forms are kept for the text and Markdown reports.
:class:`Extra` holds a result that goes beyond the paper (exact fixed points, regimes, tolerances).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache

from .core import Shown

__all__ = [
    "APPROXIMATION",
    "CONFIRMED",
    "ERRATUM",
    "PAPER_ORDER",
    "STATUSES",
    "Extra",
    "Record",
    "all_extras",
    "all_records",
    "collect",
]

CONFIRMED = "confirmed"
APPROXIMATION = "approximation"
ERRATUM = "erratum"
STATUSES = (CONFIRMED, APPROXIMATION, ERRATUM)

#: Every equation id the package must cover, in the order of the paper (§3, then Appendices A-D, then the
#: algorithms' update lines).
PAPER_ORDER: tuple[str, ...] = (
    "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    "16a", "16b", "17a", "17b", "18a", "18b", "19a", "19b",
    "20", "21", "22", "23", "24", "25", "26", "27",
    "28", "29", "30", "31",
    "32", "33", "34",
    "35", "36", "37", "38", "39", "40", "41", "42",
    "43", "44", "45", "46", "47", "48", "49",
    "Alg1", "Alg2",
)  # fmt: skip

#: Modules holding the derivations, each exposing ``records()`` (and optionally ``extras()``).
MODULES: tuple[str, ...] = (
    "derivations.model",
    "derivations.kalman",
    "derivations.fixed_point",
    "derivations.fading_memory",
    "derivations.algorithms",
)


@dataclass(frozen=True)
class Record:
    """One equation of the paper, re-derived.

    Attributes
    ----------
    equation : str
        The paper's label: ``"5"`` .. ``"49"``, with sub-letters (``"16a"``), or ``"Alg1"`` / ``"Alg2"``.
    status : {"confirmed", "approximation", "erratum"}
        ``confirmed``: the derivation reproduces the printed form (definitions and assumptions included, with
        a note). ``approximation``: the printed form is the derived one to leading order; the note names the
        assumption and the derivation gives the first neglected term. ``erratum``: the printed form does not
        follow; ``derived`` holds the corrected form.
    printed, derived : Shown
        The printed form (as in the paper) and the form derived here.
    note : str
        What was checked, and how.
    steps : tuple of (str, Shown)
        The derivation, step by step, for the reports.
    """

    equation: str
    status: str
    printed: Shown
    derived: Shown
    note: str
    steps: tuple[tuple[str, Shown], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def as_dict(self) -> dict[str, str]:
        """The JSON form: exactly the keys ``equation, status, printed, derived, note`` (all strings)."""
        return {
            "equation": self.equation,
            "status": self.status,
            "printed": self.printed.text,
            "derived": self.derived.text,
            "note": self.note,
        }


@dataclass(frozen=True)
class Extra:
    """A result beyond the paper: a titled list of labelled formulas and a note."""

    key: str
    title: str
    results: tuple[tuple[str, Shown], ...]
    note: str


@lru_cache(maxsize=1)
def collect() -> tuple[Record, ...]:
    """Run every derivation once and return the records in paper order (cached)."""
    found: dict[str, Record] = {}
    for name in MODULES:
        for rec in importlib.import_module(name).records():
            if rec.equation in found:
                raise RuntimeError(f"equation {rec.equation!r} derived twice")
            found[rec.equation] = rec
    missing = [eq for eq in PAPER_ORDER if eq not in found]
    if missing:
        raise RuntimeError(f"no derivation for equations {missing}")
    rank = {eq: i for i, eq in enumerate(PAPER_ORDER)}
    return tuple(sorted(found.values(), key=lambda r: rank.get(r.equation, len(rank))))


def all_records() -> list[Record]:
    """All records in paper order (a fresh list over the cached tuple of :func:`collect`)."""
    return list(collect())


@lru_cache(maxsize=1)
def _extras() -> tuple[Extra, ...]:
    out: list[Extra] = []
    for name in MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "extras"):
            out.extend(module.extras())
    return tuple(out)


def all_extras() -> list[Extra]:
    """The results beyond the paper (exact fixed points, regimes, tolerance condition, OU and fading memory)."""
    return list(_extras())
