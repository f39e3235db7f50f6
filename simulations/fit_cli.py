"""``adabayes fit``: fit priors on w* to gradient streams by marginal likelihood; JSON + figure.

Sources: ``--source quadratic`` (the coupled quadratic of Eqs. 6-11 along AdaBayes's path, h known),
``--source network`` (a small MLP on MNIST-1D, gradients recorded per step), ``--source nile`` (the classic
local-level anchor, against statsmodels and Durbin & Koopman) or ``--input FILE.npz`` with arrays ``g`` (T, N),
``h`` ((N,) or (T, N)) and optionally ``mu`` (T, N; default 0) and ``group`` (N,). Each stream is fitted under
every prior of :mod:`simulations.prior_evidence` (random walk, OU, integrated AR(1), AR(2)).

Writes ``OUT/fit_<source>.json`` (summary, Markdown table, checks), ``OUT/fit_<source>.npz`` (per-stream
arrays) and ``OUT/fit.png`` (fitted η against ⟨g²⟩, one panel per ``fit_*.npz`` in OUT); exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .checks import Check, check_at_most, check_within, info, print_checks
from .common import add_common_arguments, output_dir
from .io import save_json, save_npz
from .prior_evidence import (
    MODELS,
    StreamSet,
    arrays,
    evidence,
    latent_evidence,
    markdown_table,
    network_streams,
    quadratic_streams,
    summarise,
)

__all__ = ["HELP", "add_arguments", "reproduce_step", "run", "run_source"]

_HELP = "fit priors on w* (OU, random walk, integrated AR(1), AR(2)) to gradient streams by marginal likelihood"
try:
    from .registry import help_for

    HELP = help_for("fit")
except KeyError:  # until the registry lists "fit"
    HELP = _HELP

SOURCES = ("quadratic", "network", "nile")
DOCS_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "prior_evidence.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes fit``."""
    add_common_arguments(parser, "results/fit")
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--source",
        choices=(*SOURCES, "all"),
        default="all",
        help="built-in streams; all (default): quadratic, nile and, when torch is installed, network",
    )
    src.add_argument("--input", metavar="NPZ", help="streams from a file: g (T, N), h, optional mu, group")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="priors to fit")
    parser.add_argument("--noise-scale", type=float, default=None, help="fix r (Eq. 12: 1); default: fitted")
    parser.add_argument("--steps", type=int, default=None, help="network: training steps (default 600, quick 200)")
    parser.add_argument("--entries", type=int, default=48, help="network: sampled entries per tensor (default 48)")
    parser.add_argument("--update-docs", action="store_true", help=f"copy the figure to {DOCS_FIGURE.name} in docs")


def _load_input(path: str) -> StreamSet:
    from adabayes.errors import UserError

    file = Path(path)
    if not file.is_file():
        raise UserError(f"--input {path}: no such file")
    with np.load(file, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    if "g" not in data or "h" not in data:
        raise UserError(f"--input {path}: needs arrays 'g' (T, N) and 'h' ((N,) or (T, N)), has {sorted(data)}")
    g = np.asarray(data["g"], dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 10:
        raise UserError(f"--input {path}: 'g' must have shape (T, N) with T >= 10, got {g.shape}")
    h = np.asarray(data["h"], dtype=np.float64)
    h = h.mean(axis=0) if h.shape == g.shape else np.broadcast_to(h, g.shape[1:])
    if not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise UserError(f"--input {path}: 'h' must be finite and > 0")
    mu = np.broadcast_to(np.asarray(data.get("mu", 0.0), dtype=np.float64), g.shape)
    group = np.asarray(data.get("group", np.full(g.shape[1], "all")), dtype=str)
    return StreamSet(file.stem, g, np.array(mu), np.array(h), group, {"input": str(file)})


def run_source(name: str, streams: StreamSet | None, out: Path, models: tuple[str, ...], noise_scale: float | None):
    """Fit one set of streams, write ``fit_<name>.json``/``.npz``; returns (summary, checks)."""
    if streams is None:
        return _run_nile(out)
    ev = evidence(streams, models, noise_scale)
    summary = summarise(streams, ev, latent_evidence(streams, models))
    table = markdown_table(summary)
    checks = _checks(name, summary)
    save_npz(out / f"fit_{name}.npz", **arrays(streams, ev))
    save_json(out / f"fit_{name}.json", {**summary, "table": table, "checks": [c.to_dict() for c in checks]})
    print(table)
    return summary, checks


def _checks(name: str, summary: dict[str, Any]) -> list[Check]:
    ou = summary["ou"]
    checks = [
        info(f"fit/{name}_ou_eta_median", ou["eta_median"], "median fitted η of the OU prior (paper: 1e-3)"),
        info(
            f"fit/{name}_ou_excludes_paper_eta",
            ou["excludes_paper_eta_fraction"],
            "fraction of parameters whose 95 % interval for η excludes 1e-3",
        ),
    ]
    for m, s in summary["models"].items():
        if m != "ou":
            checks.append(
                info(
                    f"fit/{name}_dloglik_{m}_vs_ou_median",
                    s["dloglik_vs_ou_median"],
                    f"median over parameters of logL({m}) - logL(OU)",
                )
            )
    if name == "quadratic":  # h = B H_ii is exact here, so Eq. 12's r = 1 must come out of the fit
        checks.append(
            check_within(
                "fit/quadratic_noise_scale_median",
                ou["noise_scale_median"],
                1.0,
                0.1,
                "median fitted r of the OU fit; the quadratic's gradient noise is exactly B H_ii",
            )
        )
    return checks


def _run_nile(out: Path):
    from . import nile

    result = nile.compare()
    rel = result["loglik_rel_diff"]
    o, p = result["ours"], result["published"]
    checks = [
        check_at_most(
            "fit/nile_loglik_vs_statsmodels_same_params",
            max(rel["diffuse_at_our_estimate"], rel["fixed_at_our_estimate"]),
            1e-10,
            "relative log-likelihood difference at our estimate",
        ),
        check_at_most(
            "fit/nile_max_loglik_vs_statsmodels",
            rel["maxima"],
            1e-6,
            "relative difference of the maximised log-likelihoods (exact diffuse)",
        ),
        check_within(
            "fit/nile_sigma2_eps_vs_published",
            o["sigma2_eps"],
            p["sigma2_eps"],
            1.0,
            "ML σ²_ε against Durbin & Koopman's 15099",
        ),
        check_within(
            "fit/nile_sigma2_eta_vs_published",
            o["sigma2_eta"],
            p["sigma2_eta"],
            0.15,
            "ML σ²_η against Durbin & Koopman's 1469.1",
        ),
    ]
    table = nile.table(result)
    save_json(out / "fit_nile.json", {**result, "table": table, "checks": [c.to_dict() for c in checks]})
    print(table)
    return result, checks


def _sources(args: argparse.Namespace) -> list[str]:
    if args.input or args.source != "all":
        return [args.source]
    try:
        import torch  # noqa: F401
    except ImportError:
        return ["quadratic", "nile"]
    return ["quadratic", "nile", "network"]


def _streams(source: str, args: argparse.Namespace) -> tuple[str, StreamSet | None]:
    if args.input:
        streams = _load_input(args.input)
        return streams.name, streams
    if source == "quadratic":
        return "quadratic", quadratic_streams(args.quick, args.seed, not args.no_progress)
    if source == "network":
        steps = args.steps if args.steps is not None else (200 if args.quick else 600)
        return "network", network_streams(steps=steps, seed=args.seed, entries_per_tensor=args.entries)
    return "nile", None


def run(args: argparse.Namespace) -> int:
    """Fit, write JSON/npz and the figure; exit 1 if a check fails."""
    from adabayes.errors import UserError

    if args.steps is not None and args.steps < 20:
        raise UserError(f"--steps must be >= 20, got {args.steps}")
    if args.entries < 1:
        raise UserError(f"--entries must be >= 1, got {args.entries}")
    out = output_dir(args.out)
    checks: list[Check] = []
    for source in _sources(args):
        name, streams = _streams(source, args)
        checks += run_source(name, streams, out, tuple(args.models), args.noise_scale)[1]
    if any(out.glob("fit_*.npz")):
        from figures.prior_evidence import render

        figure = render(out, out / "fit.png")
        if args.update_docs:
            DOCS_FIGURE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(figure, DOCS_FIGURE)
    return print_checks(checks)


def reproduce_step(out: str | Path, quick: bool = True, seed: int = 0) -> list[Check]:
    """What ``adabayes reproduce`` runs (``adabayes fit --source all --out OUT [--quick]``); returns the checks.

    Writes ``fit_quadratic.json/.npz``, ``fit_nile.json``, ``fit_network.json/.npz`` (with torch) and ``fit.png``.
    """
    parser = argparse.ArgumentParser(prog="adabayes fit")
    add_arguments(parser)
    args = parser.parse_args(["--out", str(out), "--seed", str(seed), "--no-progress", *(["--quick"] if quick else [])])
    out_path = output_dir(out)
    checks: list[Check] = []
    for source in _sources(args):
        name, streams = _streams(source, args)
        checks += run_source(name, streams, out_path, MODELS, None)[1]
    from figures.prior_evidence import render

    render(out_path, out_path / "fit.png")
    return checks


if __name__ == "__main__":  # pragma: no cover
    import sys

    _parser = argparse.ArgumentParser(prog="python -m simulations.fit_cli", description=HELP)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
