"""Render every figure from a directory of saved simulation data: ``adabayes figures --data DIR --out DIR``.

Each figure is drawn only when its input files exist; a figure that fails to render is reported, not fatal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from simulations.registry import help_for

__all__ = ["FIGURES", "HELP", "add_arguments", "render_all", "run"]

HELP = help_for("figures")


def _lazy(module: str, function: str, png: str) -> Callable[[Path, Path], Path]:
    """``renderer(data_dir, out_dir)`` drawing ``out_dir/png``; imports ``figures.<module>`` only when used."""

    def renderer(data: Path, out: Path) -> Path:
        return getattr(importlib.import_module(f"figures.{module}"), function)(data, out / png)

    return renderer


# name -> (input files needed, renderer)
FIGURES: dict[str, tuple[tuple[str, ...], Callable[[Path, Path], Path]]] = {
    "fig3_generative": (
        ("generative.npz", "generative.json"),
        _lazy("fig3", "render_generative", "fig3_generative.png"),
    ),
    "calibration": (("generative.npz", "calibration.json"), _lazy("calibration", "render", "calibration.png")),
    "error_map": (("generative.npz",), _lazy("error_map", "render", "error_map.png")),
    "fig3_quadratic": (("quadratic.npz", "quadratic.json"), _lazy("fig3", "render_quadratic", "fig3_quadratic.png")),
    "slopes": (("slopes.json",), _lazy("slopes", "render", "slopes.png")),
    "losses": (("quadratic.npz", "quadratic.json"), _lazy("losses", "render", "losses.png")),
}


def render_all(data_dir: str | Path, out_dir: str | Path, only: Sequence[str] | None = None) -> dict[str, Path | str]:
    """Render every figure (or those named in ``only``) whose inputs exist.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a directory (nothing is created then).

    Returns
    -------
    dict
        figure name -> output path, or an error string (``"missing: ..."`` or the exception).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {str(data_dir)!r} does not exist (run a simulation first)")
    unknown = sorted(set(only or ()) - set(FIGURES))
    if unknown:
        raise ValueError(f"only: unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path | str] = {}
    for name, (inputs, renderer) in FIGURES.items():
        if only is not None and name not in only:
            continue
        missing = [f for f in inputs if not (data_dir / f).exists()]
        if missing:
            results[name] = "missing: " + ", ".join(missing)
            continue
        try:
            results[name] = renderer(data_dir, out_dir)
        except Exception as exc:  # a broken figure must not hide the others
            traceback.print_exc(file=sys.stderr)
            results[name] = f"error: {type(exc).__name__}: {exc}"
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes figures``."""
    parser.add_argument("--data", required=True, help="directory with the saved npz/json")
    parser.add_argument("--out", default=None, help="figure directory (default DATA/../figures)")


def run(args: argparse.Namespace) -> int:
    """Render and list the figures; exit 2 if the data directory is missing, 1 if a figure failed or none drawn."""
    if not Path(args.data).is_dir():
        print(f"adabayes figures: --data {args.data!r} is not a directory", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.data).parent / "figures"
    results = render_all(args.data, out)
    for name, res in results.items():
        print(f"{name}: {res}")
    if not any(isinstance(r, Path) for r in results.values()):
        print(f"adabayes figures: no figure drawn: no simulation output in {args.data!r}", file=sys.stderr)
        return 1
    return 1 if any(isinstance(r, str) and r.startswith("error") for r in results.values()) else 0
