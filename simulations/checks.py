"""Checks: a measured number, the bound it must meet, and whether it did.

Experiments return a list of :class:`Check`; ``adabayes reproduce`` collects them into the report and exits
non-zero when one fails. A check with ``passed=None`` is informational (it reports where something breaks
down rather than asserting it).

``kind`` separates what a check can tell us:

* ``"verified"`` -- a measured number compared with an independent prediction; it could fail if the theory did
  not hold.
* ``"identity"`` -- true by construction (an algebraic identity or a design property of the experiment); it only
  guards the code against bugs and is not counted as a verified result.
* ``"info"`` -- a number reported without a criterion (``passed`` is ``None``).

Experiments declare their checks as data: a list of :class:`Spec` (name, equation, measured, bound, kind,
detail), written once beside the experiment, and evaluated by the one function :func:`evaluate` on the dict of
numbers its *measure* step returned. A bound (:class:`AtMost`, :class:`AtLeast`, :class:`Within`,
:class:`Equals`, :data:`INFO`) may name a measurement instead of giving a number (e.g. a tolerance of
4 standard errors measured in the same run); ``detail`` is a :meth:`str.format` template over the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "INFO",
    "KINDS",
    "AtLeast",
    "AtMost",
    "Check",
    "Equals",
    "Spec",
    "Within",
    "check_at_most",
    "check_within",
    "evaluate",
    "identity",
    "info",
    "print_checks",
]

KINDS = ("verified", "identity", "info")


@dataclass(frozen=True)
class Check:
    """One verified claim.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"generative/fp_vs_eq21_median"``.
    value : float
        The measured number.
    bound : str
        Human-readable criterion, e.g. ``"<= 0.02"``.
    passed : bool or None
        ``None`` for informational entries.
    detail : str
        What was measured, with the equation it tests.
    kind : {"verified", "identity", "info"}
        See the module docstring; ``info`` exactly when ``passed`` is None.
    equation : str
        The paper's equation(s) the check tests, e.g. ``"Eq. 21"`` ("" for a design property).
    """

    name: str
    value: float
    bound: str
    passed: bool | None
    detail: str = ""
    kind: str = ""
    equation: str = ""

    def __post_init__(self) -> None:
        kind = self.kind or ("info" if self.passed is None else "verified")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (kind == "info") != (self.passed is None):
            raise ValueError(f"kind 'info' goes with passed=None and only with it, got {kind!r}, {self.passed!r}")
        object.__setattr__(self, "kind", kind)

    @property
    def result(self) -> str:
        """``info``, ``pass``/``FAIL`` or ``identity holds``/``identity FAIL`` (for reports)."""
        if self.passed is None:
            return "info"
        word = "pass" if self.passed else "FAIL"
        return word if self.kind == "verified" else f"{self.kind} {'holds' if self.passed else 'FAIL'}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Check:
        """Inverse of :meth:`to_dict` (``value`` may come back as the string ``'nan'``)."""
        return Check(
            d["name"],
            float(d["value"]),
            d["bound"],
            d["passed"],
            d.get("detail", ""),
            d.get("kind", ""),
            d.get("equation", ""),
        )


def check_at_most(name: str, value: float, bound: float, detail: str = "", kind: str = "verified") -> Check:
    """Pass when ``value <= bound`` (NaN fails)."""
    value = float(value)
    return Check(name, value, f"<= {bound:g}", bool(math.isfinite(value) and value <= bound), detail, kind)


def check_within(name: str, value: float, target: float, tol: float, detail: str = "", kind: str = "verified") -> Check:
    """Pass when ``|value - target| <= tol`` (NaN fails)."""
    value = float(value)
    ok = math.isfinite(value) and abs(value - target) <= tol
    return Check(name, value, f"{target:g} ± {tol:g}", bool(ok), detail, kind)


def identity(name: str, value: float, bound: str, holds: bool, detail: str = "") -> Check:
    """A property true by construction (algebraic identity or experimental design), guarded but not 'verified'."""
    return Check(name, float(value), bound, bool(holds), detail, "identity")


def info(name: str, value: float, detail: str = "") -> Check:
    """An informational number (no pass/fail)."""
    return Check(name, float(value), "info", None, detail)


def print_checks(checks: list[Check], file=None) -> int:
    """Print one line per check (``name: value (bound) result``); return 1 if any failed, else 0."""
    for c in checks:
        print(f"{c.name}: {c.value:.4g} ({c.bound}) {'' if c.passed is None else c.result}", file=file)
    return 1 if any(c.passed is False for c in checks) else 0


# --------------------------------------------------------------------------------------------------------------
# checks as data


def _number(x: float | str, measured: Mapping[str, Any]) -> float:
    """``x`` itself, or the measurement it names."""
    return float(measured[x]) if isinstance(x, str) else float(x)


@dataclass(frozen=True)
class AtMost:
    """Pass when the value is finite and ``<= limit`` (a number or the name of a measurement)."""

    limit: float | str
    text: str = "<= {limit:g}"

    def judge(self, value: float, measured: Mapping[str, Any]) -> tuple[str, bool | None]:
        limit = _number(self.limit, measured)
        return self.text.format(limit=limit), bool(math.isfinite(value) and value <= limit)


@dataclass(frozen=True)
class AtLeast:
    """Pass when ``value >= limit`` (NaN fails)."""

    limit: float | str
    text: str = ">= {limit:g}"

    def judge(self, value: float, measured: Mapping[str, Any]) -> tuple[str, bool | None]:
        limit = _number(self.limit, measured)
        return self.text.format(limit=limit), bool(value >= limit)


@dataclass(frozen=True)
class Within:
    """Pass when the value is finite and ``|value - target| <= tol`` (each a number or a measurement's name)."""

    target: float | str
    tol: float | str
    text: str = "{target:g} ± {tol:g}"

    def judge(self, value: float, measured: Mapping[str, Any]) -> tuple[str, bool | None]:
        target, tol = _number(self.target, measured), _number(self.tol, measured)
        return self.text.format(target=target, tol=tol), bool(math.isfinite(value) and abs(value - target) <= tol)


@dataclass(frozen=True)
class Equals:
    """Pass when ``value == target`` (counts)."""

    target: float
    text: str = "== {target:g}"

    def judge(self, value: float, measured: Mapping[str, Any]) -> tuple[str, bool | None]:
        del measured
        return self.text.format(target=self.target), bool(value == self.target)


@dataclass(frozen=True)
class _Info:
    """No criterion: the number is reported (``passed`` None, kind ``info``)."""

    def judge(self, value: float, measured: Mapping[str, Any]) -> tuple[str, bool | None]:
        del value, measured
        return "info", None


INFO = _Info()
Bound = AtMost | AtLeast | Within | Equals | _Info


@dataclass(frozen=True)
class Spec:
    """One check, declared before anything is measured.

    Attributes
    ----------
    name : str
        Check name, e.g. ``"generative/adabayes_vs_eq21_adam"``.
    equation : str
        Equation(s) of the paper it tests (``"Eq. 21"``), ``""`` for a design property.
    measured : str
        Key of the measured number in the dict that :func:`evaluate` receives.
    bound : AtMost, AtLeast, Within, Equals or INFO
    kind : {"verified", "identity"}
        Ignored for :data:`INFO` (always ``"info"``).
    detail : str
        :meth:`str.format` template over the measurements: what was measured.
    """

    name: str
    equation: str
    measured: str
    bound: Bound = INFO
    kind: str = "verified"
    detail: str = ""


def evaluate(specs: Iterable[Spec], measured: Mapping[str, Any]) -> list[Check]:
    """The checks of ``specs`` on ``measured`` (the one place where a declared check becomes a result).

    Raises
    ------
    KeyError
        A spec names a measurement that ``measured`` lacks (a bug of the experiment, not of the data).
    """
    out = []
    for spec in specs:
        value = float(measured[spec.measured])
        bound, passed = spec.bound.judge(value, measured)
        kind = "info" if passed is None else spec.kind
        out.append(Check(spec.name, value, bound, passed, spec.detail.format_map(measured), kind, spec.equation))
    return out
