"""Mutation testing for the project's modules: change one thing in the code, check that some test notices.

Each mutant is one small AST-level change inside a function body of the module under test:

======================  ==========================================================================
operator                change
======================  ==========================================================================
``binop``               ``+ <-> -``, ``* <-> /``, ``** -> *``, ``// -> /``, ``% -> //``, ``& <-> |``
``augassign``           the same swaps in ``x += y`` and friends
``compare``             ``< <-> <=``, ``> <-> >=``, ``== <-> !=``, ``is <-> is not``, ``in <-> not in``
``boolop``              ``and <-> or``
``unary``               drop a unary ``-``, ``not`` or ``~``
``constant``            a number ``x -> x + 1``; ``True <-> False``
``transpose``           ``x.T -> x``
``return``              ``return x -> return None``
``delete``              an assignment, expression statement, ``raise``, ``assert`` or ``if`` -> ``pass``
======================  ==========================================================================

Strings, docstrings, f-strings and type annotations are left alone (changing a message or an annotation is
not a behaviour change), and so is module-level code (constants, imports, numba compilation options). A line
marked ``# pragma: no mutate`` is skipped.

Each mutant is written to a fresh temporary directory that mirrors the module's top-level package (every
other file a symbolic link to the original, the mutated file a real one), and the module's tests (the table
below) run against it with that directory first on ``sys.path``: the shared tree is never modified. A mutant
is *killed* when the tests fail (or error), *timeout* when they run past ``--timeout`` seconds, *survived*
when they pass. numba's on-disk cache of the unmutated package is copied into each mutant's tree, so only a
mutant that changes a compiled kernel (or a function inlined into it) pays for a compilation.

Usage::

    python tools/mutation.py --module filtering/rules.py --jobs 2 --out build/mutation
    python tools/mutation.py --module filtering/state_space.py --limit 120 --seed 0    # a seeded sample
    python tools/mutation.py --module filtering/rules.py --list                           # mutants only
    python tools/mutation.py --module filtering/rules.py --show 17                        # one mutant's diff
    python tools/mutation.py --module filtering/rules.py --ids 17,40                      # rerun some
    python tools/mutation.py --module filtering/rules.py --rerun-survivors   # after new tests: update the report
    python tools/mutation.py --summary --out build/mutation                   # one table of every report there
    python tools/mutation.py --module filtering/ou.py --replace "eta**2" "eta*2"  # a hand-made mutant (no report)

Writes ``<out>/<module>.json`` (every mutant with its status) and ``<out>/<module>.md`` (the summary and each
survivor's line). The score is ``(killed + timeout) / (killed + timeout + survived)``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import copy
import difflib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module (relative to the repository root) -> the test files that exercise it
TESTS: dict[str, list[str]] = {
    "filtering/validation.py": ["tests/test_validation.py"],
    "filtering/kalman_step.py": ["tests/test_kalman_step.py", "tests/test_state_space.py", "tests/test_rules.py"],
    "filtering/_scalar_kernel.py": ["tests/test_kalman_step.py", "tests/test_state_space.py"],
    "filtering/_filter_choice.py": ["tests/test_kalman_step.py", "tests/test_filter_choice.py"],
    "filtering/smoother.py": ["tests/test_smoother.py"],
    "filtering/estimation.py": ["tests/test_estimation.py", "tests/test_nile.py", "tests/test_prior_evidence.py"],
    "filtering/streaming.py": ["tests/test_streaming.py"],
    "filtering/likelihood.py": ["tests/test_likelihood.py", "tests/test_streaming.py"],
    "filtering/joint_filter.py": ["tests/test_state_space.py"],
    "filtering/state_space.py": ["tests/test_state_space.py", "tests/test_kalman_step.py"],
    "filtering/ou.py": ["tests/test_state_space.py", "tests/test_fixed_point.py", "tests/test_rules.py"],
    "filtering/fixed_point.py": ["tests/test_fixed_point.py", "tests/test_rules.py"],
    "filtering/rules.py": [
        "tests/test_rules.py",
        "tests/test_rules_properties.py",
        "tests/test_derivations_numeric.py",
    ],
    "filtering/torch_adapter.py": ["tests/test_torch_adapter.py"],
    "filtering/_torch_kernels.py": ["tests/test_torch_adapter.py", "tests/test_torch_adapter_fused.py"],
}

BINOP_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}
COMPARE_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
DELETABLE = (ast.Assign, ast.AugAssign, ast.Expr, ast.Raise, ast.Assert, ast.If)


@dataclass
class Mutant:
    """One change: the byte span ``[start, end)`` of the source replaced by ``replacement``."""

    id: int
    line: int
    operator: str
    original: str
    replacement: str
    start: int
    end: int
    status: str = "pending"
    seconds: float = 0.0
    detail: str = ""


# --------------------------------------------------------------------------------------------------------------
# finding mutants


def _excluded_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, and everything under them."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            first = body[0].value
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                roots.append(body[0])
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        if isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        if isinstance(node, ast.JoinedStr):
            roots.append(node)
    return {id(n) for root in roots for n in ast.walk(root)}


Located = ast.stmt | ast.expr


def _function_body_nodes(tree: ast.AST) -> list[Located]:
    """Every statement and expression inside a function body (nested functions included), once, in source order."""
    seen: dict[int, Located] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in node.body:
                for inner in ast.walk(stmt):
                    if isinstance(inner, (ast.stmt, ast.expr)):
                        seen.setdefault(id(inner), inner)
    return sorted(seen.values(), key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0), -(n.end_col_offset or 0)))


def _expr(node: ast.expr) -> str:
    return f"({ast.unparse(node)})"


def _swap_op(node: ast.BinOp | ast.AugAssign, new_op: type) -> ast.AST:
    clone = copy.deepcopy(node)
    clone.op = new_op()
    return clone


def _binop(node: ast.BinOp) -> list[tuple[str, str]]:
    if type(node.op) not in BINOP_SWAPS:
        return []
    return [("binop", _expr(_swap_op(node, BINOP_SWAPS[type(node.op)])))]  # type: ignore[arg-type]


def _augassign(node: ast.AugAssign) -> list[tuple[str, str]]:
    if type(node.op) not in BINOP_SWAPS:
        return []
    return [("augassign", ast.unparse(_swap_op(node, BINOP_SWAPS[type(node.op)])))]


def _compare(node: ast.Compare) -> list[tuple[str, str]]:
    out = []
    for i, op in enumerate(node.ops):
        if type(op) in COMPARE_SWAPS:
            ops = list(node.ops)
            ops[i] = COMPARE_SWAPS[type(op)]()
            out.append(("compare", _expr(ast.Compare(node.left, ops, node.comparators))))
    return out


def _boolop(node: ast.BoolOp) -> list[tuple[str, str]]:
    other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    return [("boolop", _expr(ast.BoolOp(other, node.values)))]


def _unary(node: ast.UnaryOp) -> list[tuple[str, str]]:
    return [("unary", _expr(node.operand))] if isinstance(node.op, (ast.USub, ast.Not, ast.Invert)) else []


def _constant(node: ast.Constant) -> list[tuple[str, str]]:
    if isinstance(node.value, bool):
        return [("constant", repr(not node.value))]
    if isinstance(node.value, (int, float)):
        return [("constant", f"({node.value + 1!r})")]
    return []  # strings (messages), None, bytes: not behaviour


def _attribute(node: ast.Attribute) -> list[tuple[str, str]]:
    return [("transpose", _expr(node.value))] if node.attr == "T" and isinstance(node.ctx, ast.Load) else []


def _return(node: ast.Return) -> list[tuple[str, str]]:
    if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
        return []
    return [("return", "return None")]


_BY_TYPE = {
    ast.BinOp: _binop,
    ast.AugAssign: _augassign,
    ast.Compare: _compare,
    ast.BoolOp: _boolop,
    ast.UnaryOp: _unary,
    ast.Constant: _constant,
    ast.Attribute: _attribute,
    ast.Return: _return,
}


def _candidates(node: ast.AST) -> list[tuple[str, str]]:
    """``(operator, replacement source)`` for each mutation of ``node``."""
    rule = _BY_TYPE.get(type(node))
    out = rule(node) if rule is not None else []  # type: ignore[operator]
    no_op = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # e.g. a Protocol's ``...``
    if isinstance(node, DELETABLE) and not no_op:
        out.append(("delete", "pass"))
    return out


def _line_starts(source: bytes) -> list[int]:
    starts = [0]
    for i, byte in enumerate(source):
        if byte == ord("\n"):
            starts.append(i + 1)
    return starts


def find_mutants(source: str) -> list[Mutant]:
    """All mutants of ``source`` that still compile, numbered in source order."""
    tree = ast.parse(source)
    raw = source.encode()
    starts = _line_starts(raw)
    lines = source.splitlines()
    excluded = _excluded_nodes(tree)
    mutants: list[Mutant] = []
    for node in _function_body_nodes(tree):
        if id(node) in excluded or "pragma: no mutate" in lines[node.lineno - 1]:
            continue
        start = starts[node.lineno - 1] + node.col_offset  # col offsets count UTF-8 bytes
        end = starts[(node.end_lineno or node.lineno) - 1] + (node.end_col_offset or node.col_offset)
        original = raw[start:end].decode()
        for operator, replacement in _candidates(node):
            mutated = raw[:start] + replacement.encode() + raw[end:]
            try:
                compile(mutated, "<mutant>", "exec")
            except SyntaxError:
                continue
            mutants.append(Mutant(len(mutants), node.lineno, operator, original, replacement, start, end))
    return mutants


def apply(source: str, mutant: Mutant) -> str:
    raw = source.encode()
    return (raw[: mutant.start] + mutant.replacement.encode() + raw[mutant.end :]).decode()


# --------------------------------------------------------------------------------------------------------------
# running the tests against a mutant


def _mirror(src: Path, dst: Path, mutated: Path, text: str) -> None:
    """Mirror the package directory ``src`` into ``dst`` with symlinks, writing ``text`` in place of ``mutated``."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name == "__pycache__":
            continue
        target = dst / entry.name
        if entry == mutated:
            target.write_text(text)
        elif entry.is_dir() and mutated.is_relative_to(entry):
            _mirror(entry, target, mutated, text)
        else:
            target.symlink_to(entry)


def _copy_numba_cache(template: Path, tree: Path) -> None:
    """Copy numba's index and object files (``*.nbi``, ``*.nbc``) of the unmutated package into ``tree``."""
    for cache in template.rglob("__pycache__"):
        files = [f for f in cache.iterdir() if f.suffix in (".nbi", ".nbc")]
        if files:
            dest = tree / cache.relative_to(template)
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy2(f, dest / f.name)


_LIVE: set[subprocess.Popen[bytes]] = set()  # test runs in progress, killed if this script is interrupted


def _kill_live() -> None:
    for proc in list(_LIVE):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pytest(workdir: Path, tests: list[str], timeout: float, threads: int) -> tuple[str, float, str]:
    """Run the tests with ``workdir`` first on sys.path; return (status, seconds, tail of the output)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    cmd += [str(ROOT / t) for t in tests]
    env = dict(os.environ, PYTHONHASHSEED="0", NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    proc = subprocess.Popen(  # python -m puts the working directory (the mutant's tree) first on sys.path
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    _LIVE.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", time.perf_counter() - start, ""
    finally:
        _LIVE.discard(proc)
    seconds = time.perf_counter() - start
    tail = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if proc.returncode == 0:
        return "survived", seconds, tail[0]
    return ("killed" if proc.returncode == 1 else "error"), seconds, tail[0]


class Runner:
    """Builds mutant trees under one temporary directory and runs the module's tests against each."""

    def __init__(self, module: str, tests: list[str], threads: int) -> None:
        self.module = ROOT / module
        self.package = ROOT / Path(module).parts[0]
        self.tests = tests
        self.threads = threads
        self.base = Path(tempfile.mkdtemp(prefix="mutation-"))
        self.source = self.module.read_text()
        self.template = self.base / "template"

    def baseline(self) -> float:
        """Run the unmutated tests once (also fills the numba cache the mutants copy); return their time."""
        _mirror(self.package, self.template / self.package.name, self.module, self.source)
        status, seconds, tail = _pytest(self.template, self.tests, timeout=3600, threads=self.threads)
        if status != "survived":
            raise SystemExit(f"the unmutated tests do not pass ({status}: {tail}); fix them first")
        return seconds

    def run(self, mutant: Mutant, timeout: float) -> Mutant:
        tree = self.base / f"m{mutant.id}"
        try:
            _mirror(self.package, tree / self.package.name, self.module, apply(self.source, mutant))
            _copy_numba_cache(self.template, tree)
            mutant.status, mutant.seconds, mutant.detail = _pytest(tree, self.tests, timeout, self.threads)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        return mutant

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# reports


def summary(mutants: list[Mutant]) -> dict[str, float]:
    counts = {s: sum(m.status == s for m in mutants) for s in ("killed", "error", "timeout", "survived")}
    detected = counts["killed"] + counts["error"] + counts["timeout"]
    total = detected + counts["survived"]
    return {**counts, "total": total, "score": detected / total if total else float("nan")}


def markdown(module: str, info: dict, mutants: list[Mutant]) -> str:
    s = summary(mutants)
    lines = [
        f"## {module}",
        "",
        f"Command: `{info['command']}`",
        "",
        f"Tests: {', '.join(f'`{t}`' for t in info['tests'])}",
        "",
        *[f"Survivors rerun after new tests: `{c}`\n" for c in info.get("reruns", [])],
        f"{info['n_found']} mutants found, {s['total']} run ({info['sampling']}); baseline tests "
        f"{info['baseline_s']:.1f} s, timeout {info['timeout_s']:.0f} s per mutant, {info['elapsed_s']:.0f} s in all.",
        "",
        "| killed | error | timeout | survived | score |",
        "|---:|---:|---:|---:|---:|",
        f"| {s['killed']} | {s['error']} | {s['timeout']} | {s['survived']} | {100 * s['score']:.1f} % |",
        "",
    ]
    survivors = [m for m in mutants if m.status == "survived"]
    if survivors:
        lines += ["| id | line | operator | original | mutant |", "|---:|---:|---|---|---|"]
        for m in survivors:
            original = m.original.splitlines()[0] + (" …" if "\n" in m.original else "")
            lines.append(f"| {m.id} | {m.line} | {m.operator} | `{original}` | `{m.replacement}` |")
        lines.append("")
    return "\n".join(lines)


def _select(mutants: list[Mutant], args: argparse.Namespace) -> tuple[list[Mutant], str]:
    if args.ids:
        wanted = {int(i) for i in args.ids.split(",")}
        return [m for m in mutants if m.id in wanted], f"ids {args.ids}"
    if args.limit and args.limit < len(mutants):
        chosen = random.Random(args.seed).sample(mutants, args.limit)
        return sorted(chosen, key=lambda m: m.id), f"seeded sample: --limit {args.limit} --seed {args.seed}"
    return mutants, "all"


def _run(runner: Runner, chosen: list[Mutant], jobs: int, timeout: float) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        for m in pool.map(lambda m: runner.run(m, timeout), chosen):
            print(f"  #{m.id:<4d} line {m.line:<4d} {m.operator:9s} {m.status:8s} {m.seconds:5.1f} s", flush=True)
    finally:  # on an interrupt: drop the queued mutants and kill the running tests
        pool.shutdown(wait=False, cancel_futures=True)
        _kill_live()
        pool.shutdown(wait=True)


def _previous(path: Path, source: str) -> dict:
    """The saved report of this module, if it was made from the same source."""
    if not path.exists():
        raise SystemExit(f"--rerun-survivors: no report at {path}")
    report = json.loads(path.read_text())
    if report.get("source_sha256") != hashlib.sha256(source.encode()).hexdigest():
        raise SystemExit(f"--rerun-survivors: {path} was made from another version of the module; run it afresh")
    return report


def _inspect(module: str, source: str, mutants: list[Mutant], args: argparse.Namespace) -> bool:
    """Handle --list and --show; return whether one of them was given."""
    if args.list:
        for m in mutants:
            first = m.original.splitlines()[0]
            print(f"{m.id:4d}  line {m.line:4d}  {m.operator:9s}  {first:50.50s} -> {m.replacement}")
    elif args.show is not None:
        mutated = apply(source, mutants[args.show])
        sys.stdout.writelines(difflib.unified_diff(source.splitlines(True), mutated.splitlines(True), module, "mutant"))
    return bool(args.list or args.show is not None)


def hand_mutant(source: str, old: str, new: str) -> Mutant:
    """A mutant written by hand: the one occurrence of ``old`` in ``source`` replaced by ``new``."""
    if source.count(old) != 1:
        raise SystemExit(f"--replace: {old!r} occurs {source.count(old)} times in the module; it must occur once")
    start = source.encode().index(old.encode())
    line = source[: source.index(old)].count("\n") + 1
    return Mutant(-1, line, "hand", old, new, start, start + len(old.encode()))


def _run_hand(module: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one hand-made mutant (--replace OLD NEW) against the tests; print its status, write no report."""
    source = (ROOT / module).read_text()
    mutant = hand_mutant(source, *args.replace)
    runner = Runner(module, args.tests.split(",") if args.tests else TESTS[module], threads=2)
    try:
        baseline = runner.baseline()
        runner.run(mutant, args.timeout or max(60.0, 5.0 * baseline))
    finally:
        runner.close()
    print(
        f"{module} line {mutant.line}: {mutant.original!r} -> {mutant.replacement!r}: {mutant.status} "
        f"({mutant.seconds:.1f} s; {mutant.detail})"
    )
    return summary([mutant])


def _run_module(module: str, args: argparse.Namespace) -> dict[str, float]:
    if args.replace:
        return _run_hand(module, args)
    source = (ROOT / module).read_text()
    mutants = find_mutants(source)
    if _inspect(module, source, mutants, args):
        return summary([])
    out = Path(args.out)
    stem = module.replace("/", "_").removesuffix(".py")
    previous = _previous(out / f"{stem}.json", source) if args.rerun_survivors else None
    if previous is not None:
        ids = {m["id"] for m in previous["mutants"] if m["status"] == "survived"}
        chosen, sampling = [m for m in mutants if m.id in ids], previous["sampling"]
    else:
        chosen, sampling = _select(mutants, args)
    tests = args.tests.split(",") if args.tests else TESTS[module]
    runner = Runner(module, tests, threads=1 if args.jobs > 1 else 2)
    start = time.perf_counter()
    try:
        baseline = runner.baseline()
        timeout = args.timeout or max(60.0, 5.0 * baseline)
        print(f"{module}: {len(chosen)} of {len(mutants)} mutants; baseline {baseline:.1f} s; timeout {timeout:.0f} s")
        _run(runner, chosen, args.jobs, timeout)
    finally:
        runner.close()
    command = "python tools/mutation.py " + " ".join(sys.argv[1:])
    if previous is not None:  # the survivors' new statuses replace the old ones; the rest of the report stays
        rerun = {m.id: m for m in chosen}
        chosen = [rerun.get(m["id"]) or Mutant(**m) for m in previous["mutants"]]
        info = {
            k: previous[k] for k in ("module", "tests", "command", "n_found", "sampling", "baseline_s", "timeout_s")
        }
        info["elapsed_s"] = previous["elapsed_s"] + time.perf_counter() - start
        info["reruns"] = [*previous.get("reruns", []), command]
        info["tests"] = sorted(set(info["tests"]) | set(tests))  # a rerun may use test files added since
    else:
        info = {
            "module": module,
            "tests": tests,
            "command": command,
            "n_found": len(mutants),
            "sampling": sampling,
            "baseline_s": baseline,
            "timeout_s": timeout,
            "elapsed_s": time.perf_counter() - start,
        }
    info["source_sha256"] = hashlib.sha256(source.encode()).hexdigest()
    info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    report = {**info, "summary": summary(chosen), "mutants": [asdict(m) for m in chosen]}
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(markdown(module, info, chosen))
    print(markdown(module, info, chosen))
    return summary(chosen)


def summary_table(outs: list[Path]) -> str:
    """Markdown table of every report in the folders ``outs``, with a total; reports of changed sources are marked.

    Reports of one module in two folders (e.g. a seeded sample and a run of further ``--ids``) are two rows; the
    total adds them, so the runs must not share mutants.
    """
    rows = [
        "| module | mutants | run | killed | survived | score | current | date |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    total = {"killed": 0, "error": 0, "timeout": 0, "survived": 0}
    for path in sorted(p for out in outs for p in out.glob("*.json")):
        report = json.loads(path.read_text())
        source = (ROOT / report["module"]).read_text()
        current = report.get("source_sha256") == hashlib.sha256(source.encode()).hexdigest()
        s = report["summary"]
        date = report.get("date") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
        detected = s["killed"] + s["error"] + s["timeout"]
        how = report["sampling"].split(":")[0].split(" ")[0]  # all, seeded (sample), ids
        rows.append(
            f"| `{report['module']}` | {report['n_found']} | {s['total']} ({how}) | "
            f"{detected} | {s['survived']} | {100 * s['score']:.1f} % | {'yes' if current else 'NO (stale)'} | {date} |"
        )
        if current:
            for k in total:
                total[k] += s[k]
    detected = total["killed"] + total["error"] + total["timeout"]
    run = detected + total["survived"]
    score = f"{100 * detected / run:.1f} %" if run else "n/a"
    rows.append(f"| **total (current reports)** | | {run} | {detected} | {total['survived']} | {score} | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="module path, e.g. filtering/rules.py")
    parser.add_argument("--tests", help="comma-separated test files (default: the table in this script)")
    parser.add_argument("--limit", type=int, default=0, help="run a seeded random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ids", help="comma-separated mutant ids to run")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested in parallel")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds per mutant (default 5x the baseline)")
    parser.add_argument("--out", default="build/mutation", help="folder for the JSON and markdown reports")
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="rerun only the survivors of the report in --out (same module source) and update it",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--show", type=int, help="print the diff of one mutant and exit")
    parser.add_argument(
        "--replace",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="run one hand-made mutant: the single occurrence of OLD in the module replaced by NEW (no report)",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print the table of every report in --out (comma-separated folders) and exit",
    )
    args = parser.parse_args(argv)
    if args.summary:
        print(summary_table([Path(o) for o in args.out.split(",")]))
        return 0
    if not args.module:
        parser.error("--module is required (or --summary)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed run still removes its temporary trees
    for module in args.module:
        if module not in TESTS and not args.tests:
            parser.error(f"no tests mapped for {module}: add it to TESTS or pass --tests")
        _run_module(module, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
