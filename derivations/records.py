"""The record of one re-derived equation, and the collection of all of them in paper order.

A :class:`Record` is what ``python -m derivations --json`` prints (the five string fields of
:meth:`Record.as_dict`); the derivation steps and LaTeX forms are kept for the text and Markdown reports.
:class:`Extra` holds a result that goes beyond the paper (exact fixed points, regimes, tolerances).

A status is never typed in by hand unless nothing can be checked. ``confirmed``, ``approximation`` and ``erratum``
are computed by :meth:`Record.from_comparison` from :class:`Comparison` objects, each of which runs its test on
construction; ``definition`` and ``assumption`` are the only statuses given as literals
(:meth:`Record.given`), each with its reason. :meth:`Record.__post_init__` rejects any other combination.

To add a module of records (e.g. ``derivations.stochastic``), append its name to :data:`MODULES`; it must expose
``records()`` (and may expose ``extras()``). Its equation ids must not be in :data:`PAPER_ORDER`; they are listed
after the paper's, in module order.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .core import Shown, Test, same

__all__ = [
    "APPROXIMATION",
    "ASSUMPTION",
    "COMPUTED",
    "CONFIRMED",
    "DEFINITION",
    "ERRATUM",
    "GIVEN",
    "MODULES",
    "PAPER_ORDER",
    "STATUSES",
    "Comparison",
    "Extra",
    "Record",
    "all_extras",
    "all_records",
    "collect",
    "status_from",
]

CONFIRMED = "confirmed"
APPROXIMATION = "approximation"
ERRATUM = "erratum"
DEFINITION = "definition"
ASSUMPTION = "assumption"
#: Statuses decided by comparisons (:meth:`Record.from_comparison`).
COMPUTED = (CONFIRMED, APPROXIMATION, ERRATUM)
#: Statuses given as literals with a reason (:meth:`Record.given`): nothing printed can be checked.
GIVEN = (DEFINITION, ASSUMPTION)
STATUSES = COMPUTED + GIVEN

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

#: Modules holding the derivations, each exposing ``records()`` (and optionally ``extras()``). Register a new
#: module of records by appending its name here.
MODULES: tuple[str, ...] = (
    "derivations.model",
    "derivations.kalman",
    "derivations.fixed_point",
    "derivations.fading_memory",
    "derivations.algorithms",
    "derivations.stochastic",  # not in the paper: the stationary law of sigma2_post (records S1-S5, issue 9)
)


@dataclass(frozen=True, eq=False)
class Comparison:
    """A printed form set against a derived one; the outcome is computed on construction, never passed in.

    Attributes
    ----------
    label : str
        What is compared; for a form read from a module's ``PRINTED`` table, its key there (``"17b"``,
        ``"27/limit"``).
    printed : sympy.Expr, sympy.MatrixBase or sympy.Set
        The form as printed in the paper (possibly transformed the same way as ``derived``).
    derived : same type as ``printed``
        The form derived here.
    test : callable
        ``test(printed, derived) -> bool``: :func:`derivations.core.same` (identity, the default) or one of the
        weaker comparisons of :mod:`derivations.core` (``same_at``, ``same_to_order``, ``asymptotic_to``,
        ``same_up_to_constant``).
    holds : bool
        ``test(printed, derived)``, computed in ``__post_init__``.
    """

    label: str
    printed: object
    derived: object
    test: Test = same
    holds: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "holds", bool(self.test(self.printed, self.derived)))

    def retest(self, printed: object) -> bool:
        """The outcome of this comparison's test with another printed form (for mutation tests)."""
        return bool(self.test(printed, self.derived))


def status_from(checks: Sequence[Comparison], exact: Comparison | None = None) -> str:
    """The status decided by comparisons.

    Parameters
    ----------
    checks : sequence of Comparison
        What the printed form must satisfy (for an approximation: agreement to the stated order). Not empty.
    exact : Comparison, optional
        For an approximation: the printed form against the exact derived one.

    Returns
    -------
    str
        ``erratum`` if a check fails; otherwise ``approximation`` if ``exact`` is given and fails; otherwise
        ``confirmed``.
    """
    if not checks:
        raise ValueError("checks must hold at least one Comparison")
    if not all(c.holds for c in checks):
        return ERRATUM
    if exact is not None and not exact.holds:
        return APPROXIMATION
    return CONFIRMED


@dataclass(frozen=True)
class Record:
    """One equation of the paper, re-derived.

    Build it with :meth:`from_comparison` (status computed) or :meth:`given` (a definition or assumption).

    Attributes
    ----------
    equation : str
        The paper's label: ``"5"`` .. ``"49"``, with sub-letters (``"16a"``), or ``"Alg1"`` / ``"Alg2"``.
    status : {"confirmed", "approximation", "erratum", "definition", "assumption"}
        ``confirmed``: the derivation reproduces the printed form. ``approximation``: the printed form agrees
        with the derived one to the stated order but not exactly; the note names the first neglected term.
        ``erratum``: the printed form does not follow; ``derived`` holds the corrected form. These three are
        computed from ``checks`` and ``exact`` (:func:`status_from`). ``definition``: the paper defines the
        quantity; ``assumption``: a modelling choice. Nothing printed can be checked for these two; the note
        gives the reason.
    printed, derived : Shown
        The printed form (as in the paper) and the form derived here.
    note : str
        What was checked, and how (or, for a definition or assumption, the reason).
    steps : tuple of (str, Shown)
        The derivation, step by step, for the reports.
    checks : tuple of Comparison
        The comparisons that decide a computed status (empty for a definition or assumption).
    exact : Comparison or None
        For an approximation, the comparison with the exact derived form.
    """

    equation: str
    status: str
    printed: Shown
    derived: Shown
    note: str
    steps: tuple[tuple[str, Shown], ...] = field(default=())
    checks: tuple[Comparison, ...] = field(default=(), compare=False)
    exact: Comparison | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status in GIVEN:
            if self.checks or self.exact is not None:
                raise ValueError(f"a {self.status} has no comparisons; use Record.from_comparison ({self.equation})")
            if not self.note.strip():
                raise ValueError(f"a {self.status} needs its reason in note ({self.equation})")
        elif not self.checks or self.status != status_from(self.checks, self.exact):
            raise ValueError(
                f"status {self.status!r} of {self.equation} must be the outcome of its comparisons; "
                "use Record.from_comparison"
            )

    @classmethod
    def from_comparison(
        cls,
        equation: str,
        printed: Shown,
        derived: Shown,
        note: str,
        *,
        checks: Sequence[Comparison],
        exact: Comparison | None = None,
        steps: tuple[tuple[str, Shown], ...] = (),
    ) -> Record:
        """A record whose status is :func:`status_from` ``(checks, exact)``.

        Parameters
        ----------
        equation : str
            The paper's label.
        printed, derived : Shown
            The displayed printed and derived forms.
        note : str
            What was checked, and how.
        checks : sequence of Comparison
            Comparisons that must all hold for ``confirmed`` or ``approximation``; ``erratum`` otherwise.
        exact : Comparison, optional
            For an approximation: the printed form against the exact derived one (``approximation`` iff it fails).
        steps : tuple of (str, Shown)
            Derivation steps for the reports.

        Returns
        -------
        Record
        """
        checks = tuple(checks)
        return cls(equation, status_from(checks, exact), printed, derived, note, steps, checks, exact)

    @classmethod
    def given(
        cls,
        equation: str,
        status: str,
        printed: Shown,
        derived: Shown,
        *,
        reason: str,
        steps: tuple[tuple[str, Shown], ...] = (),
    ) -> Record:
        """A definition or assumption: nothing printed to check, so the status is given with its reason.

        Parameters
        ----------
        equation : str
            The paper's label.
        status : {"definition", "assumption"}
            The only literal statuses allowed.
        printed, derived : Shown
            The displayed printed form and what follows from it.
        reason : str
            Why nothing is checked (and where the consequences are); becomes the record's note.
        steps : tuple of (str, Shown)
            Derivation steps for the reports.

        Returns
        -------
        Record
        """
        if status not in GIVEN:
            raise ValueError(f"status must be one of {GIVEN} for a given record, got {status!r}")
        return cls(equation, status, printed, derived, reason, steps)

    @property
    def basis(self) -> str:
        """``"comparison"`` when the status is computed from comparisons, ``"given"`` otherwise."""
        return "comparison" if self.checks else "given"

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
    return tuple(sorted(found.values(), key=lambda r: rank.get(r.equation, len(rank))))  # stable: extra ids last


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
