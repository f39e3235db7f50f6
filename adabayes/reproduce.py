"""``adabayes reproduce --out DIR [--quick] [--seed S] [--only ...] [--update-docs [DIR]] [--force]``: everything.

Runs the derivations report (one child process, started first and running beside the simulations:
:mod:`adabayes.reproduce_derivations`), every simulation experiment through its own subcommand (same code path
as ``adabayes generative`` etc.), every figure from the saved data, and writes ``DIR/report.md`` listing each
check with its measured number and pass/fail (:mod:`adabayes.reproduce_report`). Layout: ``DIR/data``
(npz/json), ``DIR/figures`` (PNG), ``DIR/report.md``, ``DIR/checks.json``, ``DIR/derivations.md``.
Progress goes to stderr; the exit status is 1 when any check fails or an experiment exits non-zero.

Only what this run produced is reported: each experiment's JSON/npz outputs are deleted before it runs, and a
figure is drawn only from data files written by this run (a step whose inputs predate the run, such as
``--only slopes``, is marked as such). What the run may overwrite, and how a killed run is recognised, is
decided by :mod:`adabayes.reproduce_outdir` before anything runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from adabayes import reproduce_derivations as deriv
from adabayes.errors import UserError
from adabayes.reproduce_outdir import OutputFolder
from adabayes.reproduce_report import ReportInputs, render
from figures.render import FIGURES, render_all
from simulations.checks import Check
from simulations.io import atomic_write, jsonable, load_json

__all__ = ["EXPERIMENTS", "HELP", "add_arguments", "run"]

HELP = "run derivations, every simulation and every figure; write DIR/report.md with checks (exit 1 on failure)"

# issue 14 (adabayes fit, default sources): priors on w* by marginal likelihood on the quadratic; the Nile anchor
FIT_JSON = ("fit_quadratic.json", "fit_nile.json")
# experiment name -> (module, JSON files whose "checks" it writes)
EXPERIMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "generative": ("simulations.generative", ("generative.json", "calibration.json")),
    "quadratic": ("simulations.quadratic", ("quadratic.json",)),
    "slopes": ("simulations.slopes", ("slopes.json",)),
    "factorised-vs-joint": ("simulations.factorised_vs_joint", ("factorised_vs_joint.json",)),
    "fit": ("simulations.fit_cli", FIT_JSON),
}
# every file an experiment writes (deleted before it runs, so that a failed step cannot leave old results)
OUTPUTS: dict[str, tuple[str, ...]] = {
    "generative": ("generative.json", "calibration.json", "generative.npz"),
    "quadratic": ("quadratic.json", "quadratic.npz"),
    "slopes": ("slopes.json",),
    "factorised-vs-joint": ("factorised_vs_joint.json", "factorised_vs_joint.npz"),
    "fit": (*FIT_JSON, "fit_quadratic.npz", "fit.png"),
}
# experiments whose saved data another one reads
INPUTS: dict[str, tuple[str, ...]] = {"slopes": ("generative", "quadratic")}
# step -> prefixes of the check names it reports (to see what a previous report covered)
CHECK_PREFIXES: dict[str, tuple[str, ...]] = {
    "derivations": ("derivations/",),
    "generative": ("generative/", "calibration/"),
    "quadratic": ("quadratic/",),
    "slopes": ("slopes/",),
    "factorised-vs-joint": ("factorised/", "factorised-vs-joint/"),
    "fit": ("fit/",),
}
DOCS_DEFAULT = "docs/figures"
DOCS_FIGURE = "fig3_generative"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes reproduce``."""
    parser.add_argument("--out", required=True, help="output folder (data/, figures/, report.md, checks.json)")
    parser.add_argument("--quick", action="store_true", help="small sizes (what CI runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every experiment (default: %(default)s)")
    parser.add_argument(
        "--update-docs",
        nargs="?",
        const=DOCS_DEFAULT,
        default=None,
        metavar="DIR",
        help=f"copy the generative Fig. 3 into DIR (default DIR when the flag is given alone: ./{DOCS_DEFAULT} of "
        "the current directory, which must exist)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="EXPERIMENT",
        help=f"run only these experiments (from {', '.join(EXPERIMENTS)}; default: all)",
    )
    parser.add_argument("--skip-derivations", action="store_true", help="do not run the derivations report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite files with our names that no earlier reproduce run wrote, and replace a fuller report",
    )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class _Plan:
    """What one run will do, decided (and validated) before anything runs."""

    out: Path
    selected: list[str]
    docs: Path | None
    command: str
    targets: list[str] = field(default_factory=list)


def _command_line(args: argparse.Namespace) -> str:
    parts = ["adabayes reproduce", "--out", str(args.out)]
    parts += ["--quick"] if args.quick else []
    parts += ["--seed", str(args.seed)]
    parts += ["--only", *args.only] if args.only else []
    parts += ["--skip-derivations"] if args.skip_derivations else []
    parts += ["--update-docs", str(args.update_docs)] if args.update_docs else []
    parts += ["--no-progress"] if args.no_progress else []
    parts += ["--force"] if getattr(args, "force", False) else []
    return " ".join(parts)


def _plan(args: argparse.Namespace) -> _Plan:
    """Validate the options (``UserError``) and list the files the run may write."""
    selected = list(args.only) if args.only else list(EXPERIMENTS)
    unknown = [s for s in selected if s not in EXPERIMENTS]
    if unknown:
        raise UserError(f"--only: unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    docs = None
    if args.update_docs:
        docs = Path(args.update_docs)
        if not docs.is_dir():
            raise UserError(
                f"--update-docs: folder {str(docs)!r} does not exist (relative to {str(Path.cwd())!r}); run from "
                f"the repository root for ./{DOCS_DEFAULT}, or pass an existing folder: --update-docs DIR"
            )
    targets = ["report.md", "checks.json", *([] if args.skip_derivations else ["derivations.md"])]
    targets += [f"data/{f}" for name in selected for f in OUTPUTS[name]]
    targets += [f"figures/{name}.png" for name in FIGURES]
    return _Plan(Path(args.out), selected, docs, _command_line(args), targets)


def _dropped_steps(folder: OutputFolder, plan: _Plan, skip_derivations: bool) -> list[str]:
    """Steps the previous report in ``folder`` covered that this run does not redo."""
    previous = folder.previous_checks() or []
    redone = set(plan.selected) | (set() if skip_derivations else {"derivations"})
    covered = {
        step
        for step, prefixes in CHECK_PREFIXES.items()
        for c in previous
        if isinstance(c, dict) and str(c.get("name", "")).startswith(prefixes)
    }
    return sorted(covered - redone)


# --------------------------------------------------------------------------------------------------------------
# steps


def _start_derivations(args: argparse.Namespace) -> deriv.DerivationsJob | None:
    """Start the derivations child (None when skipped or when the package is not installed)."""
    if args.skip_derivations or not deriv.available():
        return None
    _log("[reproduce] derivations (in the background) ...")
    return deriv.DerivationsJob().start()


def _run_experiment(name: str, module_name: str, data: Path, args: argparse.Namespace) -> tuple[int, float]:
    """Run ``adabayes NAME --out DATA`` in this process; return (exit status, seconds)."""
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"adabayes {name}")
    module.add_arguments(parser)
    argv = ["--out", str(data), "--seed", str(args.seed)]
    argv += ["--quick"] if args.quick else []
    argv += ["--no-progress"] if args.no_progress else []
    sub_args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the summary
        rc = int(module.run(sub_args) or 0)
    return rc, time.perf_counter() - t0


@dataclass
class _Results:
    """What the steps produced, in report order."""

    checks: list[Check] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    produced: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    derivations: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)


def _experiment_checks(name: str, data: Path, rc: int) -> list[Check]:
    checks: list[Check] = []
    for jf in EXPERIMENTS[name][1]:
        path = data / jf
        if not path.exists():
            checks.append(Check(f"{name}/output", float("nan"), "exists", False, f"{jf} was not written"))
            continue
        checks += [Check.from_dict(c) for c in load_json(path).get("checks", [])]
    if rc != 0:
        why = f"adabayes {name} exited with status {rc} (1: one of its checks failed)"
        checks.append(Check(f"{name}/exit", float(rc), "exit 0", False, why))
    return checks


def _run_experiments(plan: _Plan, args: argparse.Namespace, res: _Results) -> list[Check]:
    """Every selected experiment, in order; returns their checks (failures of a step are checks, not raised)."""
    data = plan.out / "data"
    checks: list[Check] = []
    for name in plan.selected:
        for f in OUTPUTS[name]:  # a step that fails without writing must not leave an old result behind
            (data / f).unlink(missing_ok=True)
        stale = [d for d in INPUTS.get(name, ()) if d not in plan.selected and (data / f"{d}.json").exists()]
        if stale:
            res.notes.append(f"{name} used data of {', '.join(stale)} from an earlier run (not rerun by this command).")
        _log(f"[reproduce] {name} ...")
        try:
            rc, seconds = _run_experiment(name, EXPERIMENTS[name][0], data, args)
        except Exception as exc:  # report, keep going
            traceback.print_exc(file=sys.stderr)
            checks.append(Check(f"{name}/run", float("nan"), "runs", False, f"{type(exc).__name__}: {exc}"))
            continue
        res.timings[name] = seconds
        res.produced.add(name)
        checks += _experiment_checks(name, data, rc)
        _log(f"[reproduce] {name}: {seconds:.1f} s, exit {rc}")
    return checks


def _collect_derivations(job: deriv.DerivationsJob | None, folder: OutputFolder, res: _Results) -> list[Check]:
    """Wait for the derivations child; write ``derivations.md``; return its checks."""
    if job is None:
        return [] if deriv.available() else [deriv.unavailable_check()]
    _log("[reproduce] waiting for the derivations ...")
    checks, res.derivations, markdown = job.result()
    res.timings = {"derivations": job.seconds, **res.timings}
    if markdown is not None:
        folder.write_text("derivations.md", markdown)
    return checks


def _draw_figures(data: Path, fig_dir: Path, wall_start: float, res: _Results) -> list[Check]:
    """Draw the figures whose every input this run wrote; one check per figure."""
    _log("[reproduce] figures ...")
    drawable = [
        k
        for k, (inputs, _) in FIGURES.items()
        if all((data / f).exists() and (data / f).stat().st_mtime >= wall_start - 1e-3 for f in inputs)
    ]
    t0 = time.perf_counter()
    res.figures = render_all(data, fig_dir, only=drawable)
    res.timings["figures"] = time.perf_counter() - t0
    checks = []
    for name, out in res.figures.items():
        ok = isinstance(out, Path) and out.exists()
        checks.append(Check(f"figures/{name}", 1.0 if ok else 0.0, "rendered", ok, str(out) if not ok else ""))
    return checks


def _update_docs(plan: _Plan, res: _Results) -> None:
    if plan.docs is None:
        return
    png = res.figures.get(DOCS_FIGURE)
    if not isinstance(png, Path):
        res.notes.append(f"--update-docs: {DOCS_FIGURE} was not drawn by this run, so the docs figure is unchanged.")
        return
    target = plan.docs / png.name
    with atomic_write(target, "wb") as f:
        f.write(png.read_bytes())
    _log(f"[reproduce] updated {target}")


@contextlib.contextmanager
def _exit_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``SystemExit(128 + signal)`` so cleanup (killing the child) runs."""

    def handler(signum: int, frame: object) -> None:
        del frame
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _steps(plan: _Plan, args: argparse.Namespace, folder: OutputFolder, wall_start: float) -> _Results:
    """Derivations (background), experiments, figures, docs; the child is stopped on every exit path."""
    res = _Results()
    if not args.skip_derivations:  # a failed step must not leave the previous run's report beside this one
        (plan.out / "derivations.md").unlink(missing_ok=True)
    job = _start_derivations(args)
    try:
        experiment_checks = _run_experiments(plan, args, res)
        res.checks = _collect_derivations(job, folder, res) + experiment_checks
    finally:
        if job is not None:
            job.stop()
    res.checks += _draw_figures(plan.out / "data", plan.out / "figures", wall_start, res)
    _update_docs(plan, res)
    return res


def _finish(plan: _Plan, folder: OutputFolder, res: _Results, total: float, wall_start: float) -> Path:
    """Write report.md and checks.json; record every file this run wrote in the manifest."""
    inputs = ReportInputs(
        plan.out / "data", plan.command, res.checks, res.figures, res.timings, res.derivations, total, res.produced
    )
    inputs.notes = res.notes
    recent = wall_start - 1.0  # file-system timestamps may be coarser than time.time()
    written = [t for t in plan.targets if (plan.out / t).is_file() and (plan.out / t).stat().st_mtime >= recent]
    folder.record(written)
    payload = {"checks": [c.to_dict() for c in res.checks], "timings": res.timings, "total_s": total}
    folder.write_text("checks.json", json.dumps(jsonable(payload), indent=2) + "\n")
    return folder.write_text("report.md", render(inputs))


def run(args: argparse.Namespace) -> int:
    """Run everything; return 0 when every check passes and every step exits 0, 1 otherwise.

    Raises
    ------
    UserError
        Bad options, or an output folder this run must not write into (see :mod:`adabayes.reproduce_outdir`);
        raised before anything runs or is deleted.
    """
    t_start, wall_start = time.perf_counter(), time.time()
    plan = _plan(args)
    folder = OutputFolder(plan.out, force=getattr(args, "force", False))
    folder.check(plan.targets, _dropped_steps(folder, plan, args.skip_derivations))
    folder.mark_in_progress(plan.command)
    with _exit_on_signals():
        try:
            res = _steps(plan, args, folder, wall_start)
        except BaseException as exc:
            folder.mark_interrupted(plan.command, f"{type(exc).__name__} {exc}".strip())
            raise
    total = time.perf_counter() - t_start
    report = _finish(plan, folder, res, total, wall_start)
    failed = [c for c in res.checks if c.passed is False]
    print(f"report: {report}")
    for c in failed:
        print(f"FAILED {c.name}: measured {c.value:.4g}, needed {c.bound} — {c.detail}")
    print(f"{len(res.checks)} checks, {len(failed)} failed, {total:.1f} s")
    return 1 if failed else 0
