"""argparse ``type=`` converters that check a value's range at parse time, with the library's wording.

A bad value fails before anything is loaded or trained, as ``argument --lr: must be in (0, inf), got -1.0``;
the range text comes from :mod:`filtering.validation`, so the command line and the Python API name the same
bound (``--lr 0`` and ``--lr -1`` say the same thing).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from filtering.validation import check_int, check_scalar

from .catalog import canonical_optimizer

__all__ = ["float_in", "int_at_least", "optimizer_name"]


def _strip_name(exc: Exception) -> str:
    """``"value must be ..."`` -> ``"must be ..."`` (argparse already names the option)."""
    return str(exc).removeprefix("value ")


def int_at_least(lower: int) -> Callable[[str], int]:
    """A converter to ``int`` that refuses values below ``lower``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        try:
            return check_int("value", value, lower=lower)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_strip_name(exc)) from None

    convert.__name__ = "int"
    return convert


def float_in(
    lower: float, upper: float | None = None, *, allow_equal: bool = False, allow_inf: bool = False
) -> Callable[[str], float]:
    """A converter to ``float`` for the range of :func:`filtering.validation.check_scalar` (NaN never passes)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        try:
            return check_scalar("value", value, lower=lower, upper=upper, allow_equal=allow_equal, allow_inf=allow_inf)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(_strip_name(exc)) from None

    convert.__name__ = "float"
    return convert


def optimizer_name(text: str) -> str:
    """The canonical optimiser name (case, ``-`` and ``_`` ignored: ``AdaBayesFP`` -> ``adabayes_fp``)."""
    try:
        return canonical_optimizer(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("optimizer ")) from None


optimizer_name.__name__ = "optimizer"
