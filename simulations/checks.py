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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KINDS", "Check", "check_at_most", "check_within", "identity", "info", "print_checks"]

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
    """

    name: str
    value: float
    bound: str
    passed: bool | None
    detail: str = ""
    kind: str = ""

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
        return Check(d["name"], float(d["value"]), d["bound"], d["passed"], d.get("detail", ""), d.get("kind", ""))


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
