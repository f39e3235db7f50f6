"""``adabayes reproduce --out DIR [--quick] [--seed S] [--update-docs]``: everything, one command.

Runs the derivations report (``python -m derivations`` in a subprocess, when that package provides it),
every simulation experiment through its own subcommand (same code path as ``adabayes generative`` etc.),
every figure from the saved data, and writes ``DIR/report.md`` listing each check with its measured number
and pass/fail. Layout: ``DIR/data`` (npz/json), ``DIR/figures`` (PNG), ``DIR/report.md``, ``DIR/checks.json``.
Progress goes to stderr; the exit status is 1 when any check fails or an experiment exits non-zero.

Only what this run produced is reported: each experiment's JSON/npz outputs are deleted before it runs, and a
figure is drawn only from data files written by this run (``--only`` into a directory with older results does
not mix them in; a step whose inputs predate the run, such as ``--only slopes``, is marked as such).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from simulations.checks import Check
from simulations.io import load_json, save_json

__all__ = ["EXPERIMENTS", "HELP", "add_arguments", "run"]

HELP = "run derivations, every simulation and every figure; write DIR/report.md with checks (exit 1 on failure)"

# experiment name -> (module, JSON files whose "checks" it writes)
EXPERIMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "generative": ("simulations.generative", ("generative.json", "calibration.json")),
    "quadratic": ("simulations.quadratic", ("quadratic.json",)),
    "slopes": ("simulations.slopes", ("slopes.json",)),
    "factorised-vs-joint": ("simulations.factorised_vs_joint", ("factorised_vs_joint.json",)),
}
# every file an experiment writes (deleted before it runs, so that a failed step cannot leave old results)
OUTPUTS: dict[str, tuple[str, ...]] = {
    "generative": ("generative.json", "calibration.json", "generative.npz"),
    "quadratic": ("quadratic.json", "quadratic.npz"),
    "slopes": ("slopes.json",),
    "factorised-vs-joint": ("factorised_vs_joint.json", "factorised_vs_joint.npz"),
}
# experiments whose saved data another one reads
INPUTS: dict[str, tuple[str, ...]] = {"slopes": ("generative", "quadratic")}

DOCS_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "fig3_generative.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes reproduce``."""
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--quick", action="store_true", help="small sizes (about 30 s; what CI runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every experiment (default 0)")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"copy the generative Fig. 3 to {DOCS_FIGURE.relative_to(DOCS_FIGURE.parents[2])}",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="EXPERIMENT",
        help=f"run only these experiments (from {', '.join(EXPERIMENTS)})",
    )
    parser.add_argument("--skip-derivations", action="store_true", help="do not run the derivations report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run_derivations(out: Path, timeout: float) -> tuple[list[Check], dict]:
    """Run ``python -m derivations --json`` and ``--markdown``; a missing package is a skipped check."""
    try:
        spec = importlib.util.find_spec("derivations.__main__")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return [
            Check(
                "derivations/available",
                float("nan"),
                "python -m derivations",
                None,
                "derivations: not available (no derivations/__main__.py yet); skipped",
            )
        ], {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "derivations"]
    md_path = out / "derivations.md"
    try:
        res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=timeout, env=env)
        md = subprocess.run(
            [*cmd, "--markdown", str(md_path)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return [Check("derivations/run", float("nan"), f"finishes in {timeout:g} s", False, "timed out")], {}
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return [Check("derivations/run", float(res.returncode), "exit 0", False, " | ".join(tail))], {}
    try:
        records = json.loads(res.stdout)
    except json.JSONDecodeError as exc:
        return [Check("derivations/run", float("nan"), "JSON list of records", False, str(exc))], {}
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    info = {"records": records, "counts": counts, "markdown": md_path.name if md.returncode == 0 else None}
    checks = [
        Check(
            "derivations/records",
            float(len(records)),
            ">= 1",
            len(records) >= 1,
            ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
        ),
        Check(
            "derivations/markdown",
            float(md.returncode),
            "exit 0",
            md.returncode == 0,
            f"python -m derivations --markdown {md_path.name}",
        ),
    ]
    return checks, info


def _run_experiment(name: str, module_name: str, data: Path, args: argparse.Namespace) -> tuple[int, float]:
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


def _fmt(x: float) -> str:
    if x != x:  # NaN
        return "—"
    return f"{x:.4g}"


def _command_line(args: argparse.Namespace) -> str:
    parts = ["adabayes reproduce", "--out", str(args.out)]
    parts += ["--quick"] if args.quick else []
    parts += ["--seed", str(args.seed)]
    parts += ["--only", *args.only] if args.only else []
    parts += ["--skip-derivations"] if args.skip_derivations else []
    parts += ["--update-docs"] if args.update_docs else []
    parts += ["--no-progress"] if args.no_progress else []
    return " ".join(parts)


def _check_rows(checks: list[Check]) -> list[str]:
    rows = ["| check | measured | criterion | result | what |", "|---|---|---|---|---|"]
    for c in checks:
        result = c.result if c.passed is None or (c.passed and c.kind == "identity") else f"**{c.result}**"
        detail = c.detail.replace("|", "\\|")
        rows.append(f"| `{c.name}` | {_fmt(c.value)} | {c.bound} | {result} | {detail} |")
    return rows


def _decade_table(title: str, table: dict) -> list[str]:
    rows = [
        f"*{title}* — relative error |measured/predicted − 1| per decade of ⟨g²⟩",
        "",
        "| decade of ⟨g²⟩ | n | median | max |",
        "|---|---|---|---|",
    ]
    for d, n, med, mx in zip(table["decade"], table["count"], table["median"], table["max"], strict=True):
        rows.append(f"| 1e{d} – 1e{d + 1} | {n} | {float(med):.2%} | {float(mx):.2%} |")
    return [*rows, ""]


def _write_report(
    out: Path,
    args: argparse.Namespace,
    checks: list[Check],
    figures: dict,
    timings: dict,
    deriv: dict,
    total: float,
    produced: set[str] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write ``out/report.md``: only sections of experiments in ``produced`` (default: all that have data)."""
    lines = [
        "# adabayes — reproduction report",
        "",
        f"Command: `{_command_line(args)}` · total {total:.1f} s · Python {platform.python_version()} · "
        f"{platform.machine()}",
        "",
    ]
    failed = [c for c in checks if c.passed is False]
    verified = [c for c in checks if c.kind == "verified"]
    identities = [c for c in checks if c.kind == "identity"]
    n_info = sum(c.kind == "info" for c in checks)
    lines += [
        f"**{len(failed)} of {len(checks)} checks FAILED.**" if failed else "**No check failed.**",
        f"{sum(bool(c.passed) for c in verified)} of {len(verified)} verified results pass; "
        f"{sum(bool(c.passed) for c in identities)} of {len(identities)} identities / design properties (true by "
        f"construction; they guard the code and are not results) hold; {n_info} numbers are informational.",
        "",
        "Timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
        "",
    ]
    if notes:
        lines += [*(f"> {n}" for n in notes), ""]
    lines += ["## Checks", "", *_check_rows(checks), ""]
    if deriv:
        lines += ["## Derivations", "", "Status counts: " + ", ".join(f"{k} {v}" for k, v in deriv["counts"].items())]
        errata = [r for r in deriv["records"] if r.get("status") == "erratum"]
        if errata:
            lines += ["", "| equation | printed | derived | note |", "|---|---|---|---|"]
            lines += [
                f"| {r.get('equation')} | `{r.get('printed', '')}` | `{r.get('derived', '')}` | {r.get('note', '')} |"
                for r in errata
            ]
        if deriv.get("markdown"):
            lines += ["", f"Full report: [{deriv['markdown']}]({deriv['markdown']})"]
        lines.append("")
    data = out / "data"

    def fresh(name: str, file: str) -> bool:
        return (produced is None or name in produced) and (data / file).exists()

    g = load_json(data / "generative.json") if fresh("generative", "generative.json") else {}
    if "summary" in g and "tables" in g:
        lines += ["## 1. Generative model (Eqs. 12–14)", "", _figure_md(figures, "fig3_generative"), ""]
        s = g["summary"]
        lines += [
            f"Crossover η/√⟨g²⟩ = σ² at ⟨g²⟩ = {s['crossover_g2']:.3g}; Eq. 21 within 2 % of the exact fixed "
            f"point for ⟨g²⟩ ≤ {s['eq21_validity_2pct'][1]:.3g}; Alg. 1's time-averaged σ²_post leaves Eq. 21 "
            f"by > 2 % from ⟨g²⟩ ≈ {s['eq21_breaks_2pct_g2']:.3g} and by > 10 % from "
            f"⟨g²⟩ ≈ {s['eq21_breaks_10pct_g2']:.3g}. Fading memory leaves Eq. 31 by > 10 % from "
            f"⟨g²⟩ ≈ {s.get('fading_eq31_breaks_10pct_g2', float('nan')):.3g}, where the tracking error "
            "h²(w* − μ) dominates g² (Eq. 31 assumes observation-noise-dominated g²; see the checks).",
            "",
        ]
        per_dec = s.get("valid_decade_medians", {})
        if per_dec:
            lines += [
                "Median |σ²_post(Alg. 1)/Eq. 21 − 1| per decade of ⟨g²⟩ where Eq. 21's assumptions hold: "
                + ", ".join(f"1e{k}: {v:.2%}" for k, v in per_dec.items()),
                "",
            ]
        for key, title in (
            ("adabayes_vs_eq21", "AdaBayes (Alg. 1) vs Eq. 21"),
            ("adabayes_vs_exact", "AdaBayes vs exact fixed point (g² → ⟨g²⟩)"),
            ("adabayes_vs_jensen", "AdaBayes vs exact fixed point + 2nd-order Jensen term"),
            ("adabayes_fp_vs_eq21", "AdaBayes-FP (Alg. 2) vs Eq. 21"),
            ("kalman_vs_eq21_at_h", "exact Kalman (known h) vs Eq. 21 at ⟨g²⟩ = h"),
            ("fading_vs_eq31", "fading memory vs Eq. 31"),
        ):
            lines += _decade_table(title, g["tables"][key])
    stats = load_json(data / "calibration.json").get("stats") if fresh("generative", "calibration.json") else None
    if stats:
        lines += ["## 4. Calibration", "", _figure_md(figures, "calibration"), ""]
        lines += ["| filter | mean z | var z | 68 % coverage | 95 % coverage |", "|---|---|---|---|---|"]
        for name, s in stats.items():
            lines.append(f"| {name} | {s['z_mean']:.3f} | {s['z_var']:.3g} | {s['cover68']:.3f} | {s['cover95']:.3f} |")
        lines += [
            "",
            "mean z² (time and parameter average, not a variance) by decade of ⟨g²⟩ (AdaBayes): "
            + ", ".join(f"1e{k}: {v:.3g}" for k, v in stats["adabayes"]["mean_z2_by_decade"].items()),
            "",
        ]
    other = [k for k in figures if k not in ("fig3_generative", "calibration") and isinstance(figures[k], Path)]
    if other:
        lines += ["## Other figures", ""] + [_figure_md(figures, k) + "\n" for k in other]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _figure_md(figures: dict, name: str) -> str:
    res = figures.get(name)
    if isinstance(res, Path):
        return f"![{name}](figures/{res.name})"
    return f"*(figure {name} not drawn: {res})*"


def run(args: argparse.Namespace) -> int:
    """Run everything; return 0 when every check passes and every step exits 0, 1 otherwise."""
    t_start = time.perf_counter()
    wall_start = time.time()
    selected = args.only if args.only else list(EXPERIMENTS)
    unknown = [s for s in selected if s not in EXPERIMENTS]
    if unknown:  # before anything runs
        raise ValueError(f"--only: unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    out = Path(args.out)
    data, fig_dir = out / "data", out / "figures"
    data.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    timings: dict[str, float] = {}
    deriv: dict = {}
    notes: list[str] = []
    if not args.skip_derivations:
        _log("[reproduce] derivations ...")
        t0 = time.perf_counter()
        dchecks, deriv = _run_derivations(out, timeout=60.0 if args.quick else 300.0)
        checks += dchecks
        timings["derivations"] = time.perf_counter() - t0
    produced: set[str] = set()
    for name in selected:
        module_name, json_files = EXPERIMENTS[name]
        for f in OUTPUTS[name]:  # a step that fails without writing must not leave an old result behind
            (data / f).unlink(missing_ok=True)
        stale = [dep for dep in INPUTS.get(name, ()) if dep not in selected and (data / f"{dep}.json").exists()]
        if stale:
            notes.append(f"{name} used data of {', '.join(stale)} from an earlier run (not rerun by this command).")
        _log(f"[reproduce] {name} ...")
        try:
            rc, seconds = _run_experiment(name, module_name, data, args)
            timings[name] = seconds
        except Exception as exc:  # report, keep going
            import traceback

            traceback.print_exc(file=sys.stderr)
            checks.append(Check(f"{name}/run", float("nan"), "runs", False, f"{type(exc).__name__}: {exc}"))
            continue
        produced.add(name)
        for jf in json_files:
            path = data / jf
            if not path.exists():
                checks.append(Check(f"{name}/output", float("nan"), "exists", False, f"{jf} was not written"))
                continue
            checks += [Check.from_dict(c) for c in load_json(path).get("checks", [])]
        if rc != 0:
            checks.append(
                Check(
                    f"{name}/exit",
                    float(rc),
                    "exit 0",
                    False,
                    f"adabayes {name} exited with status {rc} (1: one of its checks failed)",
                )
            )
        _log(f"[reproduce] {name}: {seconds:.1f} s, exit {rc}")
    _log("[reproduce] figures ...")
    from figures.render import FIGURES, render_all

    # draw only figures whose every input was written by this run
    drawable = [
        k
        for k, (inputs, _) in FIGURES.items()
        if all((data / f).exists() and (data / f).stat().st_mtime >= wall_start - 1e-3 for f in inputs)
    ]
    t0 = time.perf_counter()
    figures = render_all(data, fig_dir, only=drawable)
    timings["figures"] = time.perf_counter() - t0
    for name, res in figures.items():
        ok = isinstance(res, Path) and res.exists()
        checks.append(Check(f"figures/{name}", 1.0 if ok else 0.0, "rendered", ok, str(res) if not ok else ""))
    if args.update_docs:
        if isinstance(figures.get("fig3_generative"), Path):
            DOCS_FIGURE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(figures["fig3_generative"], DOCS_FIGURE)
            _log(f"[reproduce] updated {DOCS_FIGURE}")
        else:
            notes.append("--update-docs: fig3_generative was not drawn by this run, so the docs figure is unchanged.")
    total = time.perf_counter() - t_start
    report = _write_report(out, args, checks, figures, timings, deriv, total, produced, notes)
    save_json(out / "checks.json", {"checks": [c.to_dict() for c in checks], "timings": timings, "total_s": total})
    failed = [c for c in checks if c.passed is False]
    print(f"report: {report}")
    for c in failed:
        print(f"FAILED {c.name}: measured {_fmt(c.value)}, needed {c.bound} — {c.detail}")
    print(f"{len(checks)} checks, {len(failed)} failed, {total:.1f} s")
    return 1 if failed else 0
