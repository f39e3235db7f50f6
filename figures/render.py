"""Render every figure from a directory of saved simulation data: ``adabayes figures --data DIR --out DIR``.

Each figure is drawn only when its input files exist; a figure that fails to render is reported, not fatal.
``--data`` defaults to ``results/data``, where every experiment writes by default; a ``reproduce --out`` folder
(which holds ``data/`` and ``figures/``) is accepted as well.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .data import find_data_dir
from .registry import SUBCOMMANDS

__all__ = ["FIGURES", "HELP", "add_arguments", "render_all", "run"]

HELP = SUBCOMMANDS["figures"][1]
DEFAULT_DATA = "results/data"


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
    "prior_evidence": (("fit_quadratic.npz",), _lazy("prior_evidence", "render", "prior_evidence.png")),
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
    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="folder with the saved npz/json (default: %(default)s, where every experiment writes by default); "
        "a 'reproduce --out' folder works too (its data/ is used)",
    )
    parser.add_argument("--out", default=None, help="figure folder (default: the data folder's sibling figures/)")


def _all_inputs() -> tuple[str, ...]:
    return tuple(dict.fromkeys(f for inputs, _ in FIGURES.values() for f in inputs))


def run(args: argparse.Namespace) -> int:
    """Render and list the figures; exit 1 if a figure failed.

    Raises
    ------
    FileNotFoundError
        The data folder is missing or holds no simulation output (the message names the folder to pass).
    """
    if not Path(args.data).is_dir():
        raise FileNotFoundError(
            f"--data {args.data!r} is not a folder; pass the data folder of a run (an experiment's --out, or "
            "the --out of 'adabayes reproduce')"
        )
    data = find_data_dir(args.data, _all_inputs())
    if not any((data / f).exists() for f in _all_inputs()):
        raise FileNotFoundError(
            f"no simulation output ({', '.join(_all_inputs())}) in {str(data)!r}; run 'adabayes generative' "
            "(or 'adabayes reproduce --out results') first, or pass the folder it wrote to as --data"
        )
    out = Path(args.out) if args.out else data.parent / "figures"
    results = render_all(data, out)
    for name, res in results.items():
        print(f"{name}: {res}")
    return 1 if any(isinstance(r, str) and r.startswith("error") for r in results.values()) else 0
