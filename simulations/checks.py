"""Checks: a measured number, the bound it must meet, and whether it did.

Experiments return a list of :class:`Check`; ``adabayes reproduce`` collects them into the report and exits
non-zero when one fails. A check with ``passed=None`` is informational (it reports where something breaks
down rather than asserting it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Check", "check_at_most", "check_within", "info"]


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
    """

    name: str
    value: float
    bound: str
    passed: bool | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Check:
        """Inverse of :meth:`to_dict` (``value`` may come back as the string ``'nan'``)."""
        return Check(d["name"], float(d["value"]), d["bound"], d["passed"], d.get("detail", ""))


def check_at_most(name: str, value: float, bound: float, detail: str = "") -> Check:
    """Pass when ``value <= bound`` (NaN fails)."""
    value = float(value)
    return Check(name, value, f"<= {bound:g}", bool(math.isfinite(value) and value <= bound), detail)


def check_within(name: str, value: float, target: float, tol: float, detail: str = "") -> Check:
    """Pass when ``|value - target| <= tol`` (NaN fails)."""
    value = float(value)
    ok = math.isfinite(value) and abs(value - target) <= tol
    return Check(name, value, f"{target:g} ± {tol:g}", bool(ok), detail)


def info(name: str, value: float, detail: str = "") -> Check:
    """An informational number (no pass/fail)."""
    return Check(name, float(value), "info", None, detail)
