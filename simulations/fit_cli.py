"""``adabayes fit``: fit priors on w* to gradient streams by marginal likelihood; JSON + figure.

Sources (``--source``, one or more; default ``quadratic nile``, what ``adabayes reproduce`` runs): ``quadratic``
(the coupled quadratic of Eqs. 6-11 along AdaBayes's path, h known), ``nile`` (the classic local-level anchor,
against statsmodels and Durbin & Koopman), ``network`` (a small MLP on MNIST-1D, gradients recorded per step;
needs torch), ``all``; or ``--input FILE.npz`` with arrays ``g`` (T, N), ``h`` ((N,) or (T, N)) and optionally
``mu`` (T, N; default 0) and ``group`` (N,). Each stream is fitted under every prior of
:mod:`simulations.prior_evidence` (random walk, OU, integrated AR(1), AR(2)). ``--quick``: the quadratic's quick
size with every 4th parameter, the network for 60 steps with 4 entries per tensor (seconds, for CI).

Writes ``OUT/fit_<source>.json`` (summary, Markdown table, checks declared as data: :data:`STREAM_SPECS`,
:data:`QUADRATIC_SPECS`, :data:`NILE_SPECS`), ``OUT/fit_<source>.npz`` (per-stream arrays) and ``OUT/fit.png``
(fitted η against ⟨g²⟩, one panel per stream set of this run); exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .checks import INFO, AtMost, Check, Spec, Within, evaluate, print_checks
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

__all__ = [
    "HELP",
    "NILE_SPECS",
    "QUADRATIC_SPECS",
    "STREAM_SPECS",
    "add_arguments",
    "nile_measurements",
    "run",
    "run_source",
    "stream_measurements",
]

from .registry import help_for

HELP = help_for("fit")

SOURCES = ("quadratic", "nile", "network")
DEFAULT_SOURCES = ("quadratic", "nile")  # what `adabayes reproduce` runs: NumPy only
QUICK_NETWORK = {"steps": 60, "entries": 4}  # --quick: a few seconds of training, 24 streams
QUICK_QUADRATIC_EVERY = 4  # --quick: every 4th of the quick quadratic's 160 parameters (40 streams x 748 steps)
DOCS_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "prior_evidence.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes fit``."""
    add_common_arguments(parser, "results/fit")
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--source",
        nargs="+",
        choices=(*SOURCES, "all"),
        default=list(DEFAULT_SOURCES),
        help="built-in streams, one or more: quadratic, nile, network (needs torch), all (the three)",
    )
    src.add_argument(
        "--input",
        metavar="NPZ",
        help="streams from a file instead of --source (default: none): g (T, N), h ((N,) or (T, N)), optional "
        "mu (T, N), group (N,)",
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="priors to fit")
    parser.add_argument(
        "--noise-scale", type=float, default=None, help="fix r > 0 (Eq. 12 has r = 1); default: fitted per stream"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"network: training steps >= 20 (default 600, quick {QUICK_NETWORK['steps']})",
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=None,
        help=f"network: sampled entries per tensor >= 1 (default 48, quick {QUICK_NETWORK['entries']})",
    )
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
    if not np.all(np.isfinite(g)):
        raise UserError(f"--input {path}: 'g' must be finite, has {int(np.sum(~np.isfinite(g)))} NaN/inf entries")
    h = np.asarray(data["h"], dtype=np.float64)
    n = g.shape[1]
    if h.shape not in (g.shape, (n,), (1, n), ()):
        raise UserError(f"--input {path}: 'h' must have shape {(n,)} or {g.shape}, got {h.shape}")
    h = h.mean(axis=0) if h.shape == g.shape else np.broadcast_to(h, (n,)).reshape(n)
    if not (np.all(np.isfinite(h)) and np.all(h > 0)):
        raise UserError(f"--input {path}: 'h' must be finite and > 0")
    mu = np.asarray(data.get("mu", 0.0), dtype=np.float64)
    if mu.shape not in (g.shape, ()) or not np.all(np.isfinite(mu)):
        raise UserError(f"--input {path}: 'mu' must be finite with the shape of g {g.shape}, got {mu.shape}")
    group = np.asarray(data.get("group", np.full(n, "all")), dtype=str)
    if group.shape != (n,):
        raise UserError(f"--input {path}: 'group' must have shape {(n,)}, got {group.shape}")
    mu = np.array(np.broadcast_to(mu, g.shape))
    return StreamSet(file.stem, g, mu, np.array(h), group, {"input": str(file)})


def run_source(name: str, streams: StreamSet | None, out: Path, models: tuple[str, ...], noise_scale: float | None):
    """Fit one set of streams, write ``fit_<name>.json``/``.npz``; returns (summary, checks)."""
    if streams is None:
        return _run_nile(out)
    ev = evidence(streams, models, noise_scale)
    summary = summarise(streams, ev, latent_evidence(streams, models))
    table = markdown_table(summary)
    checks = _stream_checks(name, summary)
    save_npz(out / f"fit_{name}.npz", **arrays(streams, ev))
    save_json(out / f"fit_{name}.json", {**summary, "table": table, "checks": [c.to_dict() for c in checks]})
    print(table)
    return summary, checks


# checks as data (simulations.checks.Spec), evaluated on the numbers of :func:`stream_measurements` and
# :func:`nile_measurements`; "{source}" in a name is the name of the streams (quadratic, network, an npz's stem)
STREAM_SPECS: tuple[Spec, ...] = (
    Spec(
        "fit/{source}_ou_eta_median", "Eq. 14", "eta_median", INFO,
        detail="median fitted η of the OU prior (the paper's η: 1e-3)",
    ),
    Spec(
        "fit/{source}_ou_excludes_paper_eta", "Eq. 14", "excludes_paper_eta", INFO,
        detail="fraction of parameters whose 95 % interval for η excludes the paper's 1e-3",
    ),
    Spec(
        "fit/{source}_dloglik_random_walk_vs_ou_median", "Eq. 14", "dloglik_random_walk", INFO,
        detail="median over parameters of logL(random walk) - logL(OU)",
    ),
    Spec(
        "fit/{source}_dloglik_iar_vs_ou_median", "Eq. 14", "dloglik_iar", INFO,
        detail="median over parameters of logL(integrated AR(1)) - logL(OU)",
    ),
    Spec(
        "fit/{source}_dloglik_ar2_vs_ou_median", "Eq. 14", "dloglik_ar2", INFO,
        detail="median over parameters of logL(AR(2)) - logL(OU)",
    ),
    Spec(
        "fit/{source}_ou_best_by_bic", "Eq. 14", "ou_best_by_bic", INFO,
        detail="fraction of parameters whose lowest BIC is OU's",
    ),
    Spec(
        "fit/{source}_paper_prior_dloglik_median", "Eqs. 12, 14", "paper_prior_dloglik", INFO,
        detail="median over parameters of logL(paper's η and σ², r = 1, nothing fitted) - logL(fitted OU)",
    ),
)  # fmt: skip
QUADRATIC_SPECS: tuple[Spec, ...] = (
    Spec(
        "fit/quadratic_noise_scale_median", "Eq. 12", "noise_scale_median", Within(1.0, 0.1),
        detail="median fitted r of the OU fit ({noise_scale_median:.3f}); the quadratic's gradient noise variance is "
        "exactly B H_ii, i.e. r = 1",
    ),
)  # fmt: skip
NILE_SPECS: tuple[Spec, ...] = (
    Spec(
        "fit/nile_loglik_vs_statsmodels_same_params", "", "rel_same_params", AtMost(1e-10),
        detail="relative log-likelihood difference from statsmodels at our estimate (exact diffuse and fixed "
        "initialisation, the larger)",
    ),
    Spec(
        "fit/nile_max_loglik_vs_statsmodels", "", "rel_maxima", AtMost(1e-6),
        detail="relative difference of the maximised log-likelihoods, ours {ours_loglik:.6f} vs statsmodels' "
        "{statsmodels_loglik:.6f} (exact diffuse)",
    ),
    Spec(
        "fit/nile_sigma2_eps_vs_published", "", "sigma2_eps", Within("published_sigma2_eps", 1.0),
        detail="ML σ²_ε against Durbin & Koopman's 15099 (statsmodels' own fit: {statsmodels_sigma2_eps:.1f})",
    ),
    Spec(
        "fit/nile_sigma2_eta_vs_published", "", "sigma2_eta", Within("published_sigma2_eta", 0.15),
        detail="ML σ²_η against Durbin & Koopman's 1469.1 (statsmodels' own fit: {statsmodels_sigma2_eta:.1f})",
    ),
)  # fmt: skip


def stream_measurements(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers :data:`STREAM_SPECS` (and :data:`QUADRATIC_SPECS`) read, from :func:`summarise`'s dict."""
    ou = summary["ou"]
    out = {
        "eta_median": ou["eta_median"],
        "excludes_paper_eta": ou["excludes_paper_eta_fraction"],
        "noise_scale_median": ou["noise_scale_median"],
        "ou_best_by_bic": summary["models"]["ou"]["bic_best_fraction"],
    }
    for m, s in summary["models"].items():
        if m != "ou":
            out[f"dloglik_{m}"] = s["dloglik_vs_ou_median"]
    if "paper_prior" in summary:
        out["paper_prior_dloglik"] = summary["paper_prior"]["dloglik_vs_ou_fit_median"]
    return out


def _stream_checks(name: str, summary: dict[str, Any]) -> list[Check]:
    measured = stream_measurements(summary)
    specs = [dataclasses.replace(s, name=s.name.format(source=name)) for s in STREAM_SPECS]
    specs += list(QUADRATIC_SPECS) if name == "quadratic" else []
    return evaluate([s for s in specs if s.measured in measured], measured)  # models not fitted: no check


def nile_measurements(result: dict[str, Any]) -> dict[str, float]:
    """The numbers :data:`NILE_SPECS` read, from :func:`simulations.nile.compare`'s dict."""
    rel, o, s = result["loglik_rel_diff"], result["ours"], result["statsmodels"]
    return {
        "rel_same_params": max(rel["diffuse_at_our_estimate"], rel["fixed_at_our_estimate"]),
        "rel_maxima": rel["maxima"],
        "sigma2_eps": o["sigma2_eps"],
        "sigma2_eta": o["sigma2_eta"],
        "ours_loglik": o["loglik"],
        "statsmodels_loglik": s["loglik"],
        "statsmodels_sigma2_eps": s["sigma2_eps"],
        "statsmodels_sigma2_eta": s["sigma2_eta"],
        "published_sigma2_eps": result["published"]["sigma2_eps"],
        "published_sigma2_eta": result["published"]["sigma2_eta"],
    }


def _run_nile(out: Path):
    from . import nile

    result = nile.compare()
    checks = evaluate(NILE_SPECS, nile_measurements(result))
    table = nile.table(result)
    save_json(out / "fit_nile.json", {**result, "table": table, "checks": [c.to_dict() for c in checks]})
    print(table)
    return result, checks


def _sources(args: argparse.Namespace) -> list[str]:
    if args.input:
        return ["input"]
    named = [src for choice in args.source for src in (SOURCES if choice == "all" else (choice,))]
    return list(dict.fromkeys(named))


def _network(args: argparse.Namespace) -> StreamSet:
    from adabayes.errors import UserError

    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError("--source network needs torch (pip install torch)") from exc
    steps = args.steps if args.steps is not None else (QUICK_NETWORK["steps"] if args.quick else 600)
    entries = args.entries if args.entries is not None else (QUICK_NETWORK["entries"] if args.quick else 48)
    return network_streams(steps=steps, seed=args.seed, entries_per_tensor=entries)


def _streams(source: str, args: argparse.Namespace) -> tuple[str, StreamSet | None]:
    if args.input:
        streams = _load_input(args.input)
        return streams.name, streams
    if source == "quadratic":
        streams = quadratic_streams(args.quick, args.seed, not args.no_progress)
        return "quadratic", _every(streams, QUICK_QUADRATIC_EVERY) if args.quick else streams
    if source == "network":
        return "network", _network(args)
    return "nile", None


def _every(streams: StreamSet, step: int) -> StreamSet:
    """Every ``step``-th stream (all decades of H_ii keep some)."""
    pick = slice(None, None, step)
    latent = None if streams.latent is None else streams.latent[:, pick]
    meta = {**streams.meta, "streams": f"every {step}th parameter"}
    return dataclasses.replace(
        streams, g=streams.g[:, pick], mu=streams.mu[:, pick], h=streams.h[pick], group=streams.group[pick],
        meta=meta, latent=latent,
    )  # fmt: skip


def _check_options(args: argparse.Namespace) -> None:
    """Every option checked before anything runs (``UserError``: one line, exit 2)."""
    from adabayes.errors import UserError

    if args.steps is not None and args.steps < 20:
        raise UserError(f"--steps must be >= 20, got {args.steps}")
    if args.entries is not None and args.entries < 1:
        raise UserError(f"--entries must be >= 1, got {args.entries}")
    if args.noise_scale is not None and not (math.isfinite(args.noise_scale) and args.noise_scale > 0):
        raise UserError(f"--noise-scale must be finite and > 0, got {args.noise_scale}")
    if "ou" not in args.models:
        raise UserError("--models must include ou (every other prior is compared against it)")


def run(args: argparse.Namespace) -> int:
    """Fit, write JSON/npz and the figure (of the streams fitted by this run); exit 1 if a check fails."""
    _check_options(args)
    if args.input:
        _load_input(args.input)  # a bad file fails before anything is written
    out = output_dir(args.out)
    checks: list[Check] = []
    drawn: list[Path] = []
    for source in _sources(args):
        name, streams = _streams(source, args)
        for stale in (out / f"fit_{name}.json", out / f"fit_{name}.npz"):
            stale.unlink(missing_ok=True)  # a failed fit must not leave an earlier result behind
        checks += run_source(name, streams, out, tuple(args.models), args.noise_scale)[1]
        drawn += [p for p in (out / f"fit_{name}.npz",) if p.exists()]
    if drawn:
        from figures.prior_evidence import render

        figure = render(out, out / "fit.png", files=drawn)
        if args.update_docs:
            DOCS_FIGURE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(figure, DOCS_FIGURE)
    return print_checks(checks)


if __name__ == "__main__":  # pragma: no cover
    import sys

    _parser = argparse.ArgumentParser(prog="python -m simulations.fit_cli", description=HELP)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
