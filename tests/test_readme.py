"""The README's code runs as printed.

Conventions for whoever edits README.md (checked here):

- Every fenced ```` ```python ```` block runs, in the order of the README, in ONE fresh Python process whose
  working directory is an empty temporary folder; the blocks share one namespace (a later block may use names an
  earlier one defined), and nothing else is defined for them: a block must import and build what it uses (no
  ``model`` or ``loader`` from off the page). Keep each to a few seconds. A failing block is reported with its
  README line (tracebacks point into README.md) and the blocks after it still run.
- A block that is not meant to run (an API sketch) is marked with the HTML comment ``<!-- no-run -->`` on the
  line before its opening fence (blank lines in between are allowed). It must still compile.
- ```` ```bash ```` blocks are not executed (they install packages and run the whole suite). The first one must
  hold the install, ``adabayes reproduce`` and ``python3 -m pytest -q`` commands; every extra named in a
  ``pip install`` of this project must exist in pyproject.toml, and every ``adabayes COMMAND --flag`` in any bash
  block must be a command that lists those flags in its ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NO_RUN = "<!-- no-run -->"
BASH = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^ {0,3}(?P<ticks>`{3,})\s*(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, the README line of its first code line, its code and its marker."""

    lang: str
    line: int
    code: str
    no_run: bool

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order (``line`` is 1-based, of the first line inside the fence)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        ticks, start = match["ticks"], i + 1
        end = next((j for j in range(start, len(lines)) if lines[j].strip().startswith(ticks)), len(lines))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        code = textwrap.dedent("\n".join(lines[start:end]))
        blocks.append(Block(match["lang"].lower(), start + 1, code, before.lower() == NO_RUN))
        i = end + 1
    return blocks


BLOCKS = fenced_blocks(README.read_text(encoding="utf-8")) if README.is_file() else []
PYTHON = [b for b in BLOCKS if b.lang in ("python", "py", "python3")]
RUNNABLE = [b for b in PYTHON if not b.no_run]

# Runs in the child: each block compiled with its README line numbers (tracebacks show README.md and the line),
# exec'd in one shared namespace; the outcome of each block is written as JSON.
RUNNER = """
import json, sys, traceback
readme, blocks_file, results_file = sys.argv[1:4]
namespace = {"__name__": "__main__"}
results = []
for block in json.load(open(blocks_file, encoding="utf-8")):
    try:
        exec(compile("\\n" * (block["line"] - 1) + block["code"], readme, "exec"), namespace)
        results.append({"line": block["line"], "error": None})
    except BaseException:
        results.append({"line": block["line"], "error": traceback.format_exc()})
    sys.stdout.flush()
json.dump(results, open(results_file, "w", encoding="utf-8"))
"""


def run_blocks(readme: Path, blocks: list[Block], work: Path) -> dict[int, str | None]:
    """Run ``blocks`` of ``readme`` in one child process from the empty folder ``work/cwd``.

    Returns README line -> traceback of that block (None if it ran).
    """
    cwd = work / "cwd"
    cwd.mkdir()
    blocks_file, results_file = work / "blocks.json", work / "results.json"
    blocks_file.write_text(json.dumps([{"line": b.line, "code": b.code} for b in blocks]), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(readme), str(blocks_file), str(results_file)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if not results_file.is_file():
        pytest.fail(f"the README runner died (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    return {r["line"]: r["error"] for r in json.loads(results_file.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def python_results(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str | None]:
    """Every runnable python block of README.md, run once: README line -> traceback (None if it ran)."""
    return run_blocks(README, RUNNABLE, tmp_path_factory.mktemp("readme"))


SAMPLE = """# title

```bash
echo not run
```

<!-- no-run -->

```python
undefined_name  # a sketch: skipped
```

```python
x = 41
```

Text.
```python
x += 1
assert x == 42
open("made.txt", "w").close()
```

```python
raise ValueError("block four")
```
"""


def test_fenced_blocks_and_runner_on_a_sample(tmp_path: Path) -> None:
    blocks = fenced_blocks(SAMPLE)
    assert [(b.lang, b.line, b.no_run) for b in blocks] == [
        ("bash", 4, False),
        ("python", 10, True),
        ("python", 14, False),
        ("python", 19, False),
        ("python", 25, False),
    ]
    readme = tmp_path / "SAMPLE.md"
    readme.write_text(SAMPLE, encoding="utf-8")
    results = run_blocks(readme, [b for b in blocks if b.lang == "python" and not b.no_run], tmp_path)
    assert results[14] is None and results[19] is None  # the shared namespace carries x from block 2 to block 3
    assert 'SAMPLE.md", line 25' in results[25] and "ValueError: block four" in results[25]
    assert [p.name for p in (tmp_path / "cwd").iterdir()] == ["made.txt"]  # blocks run in the temporary cwd


def test_readme_has_a_runnable_python_block() -> None:
    assert RUNNABLE, f"README.md has no python block without {NO_RUN}: the quick start must be runnable"


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_python_block_runs(block: Block, python_results: dict[int, str | None]) -> None:
    error = python_results[block.line]
    assert error is None, f"the python block at {block.name} fails:\n{error}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_readme_python_block_compiles(block: Block) -> None:
    compile("\n" * (block.line - 1) + block.code, str(README), "exec")  # also the no-run ones


# ------------------------------------------------------------------------------------------------------------------
# bash


def commands(code: str) -> list[list[str]]:
    """The simple commands of a bash block: lines joined at backslashes, split at ``&&``, ``||``, ``;``, ``|``."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in lexer:
            if set(token) <= set(";&|"):
                out.append(words)
                words = []
            else:
                words.append(token)
        out.append(words)
    return [w for w in out if w]


def adabayes_calls(code: str) -> list[tuple[str, list[str]]]:
    """``(command, [--flags])`` for each ``adabayes COMMAND ...`` call of a bash block."""
    calls = []
    for words in commands(code):
        if "adabayes" in words:
            rest = words[words.index("adabayes") + 1 :]
            if rest and not rest[0].startswith("-"):
                calls.append((rest[0], [w.split("=")[0] for w in rest[1:] if w.startswith("--")]))
    return calls


def test_commands_parser_sees_what_a_user_types() -> None:
    code = 'pip install -e ".[all]" && adabayes reproduce --out results   # ≈ 30 s\npython3 -m pytest -q\n'
    assert commands(code) == [
        ["pip", "install", "-e", ".[all]"],
        ["adabayes", "reproduce", "--out", "results"],
        ["python3", "-m", "pytest", "-q"],
    ]
    assert adabayes_calls(code) == [("reproduce", ["--out"])]


def opening_bash_block() -> Block:
    bash = [b for b in BLOCKS if b.lang in BASH]
    assert bash, "README.md has no bash block: the install and test commands go first"
    return bash[0]


def test_opening_bash_block_installs_reproduces_and_tests() -> None:
    cmds = commands(opening_bash_block().code)
    install = [i for i, c in enumerate(cmds) if c[:2] == ["pip", "install"] or c[1:4] == ["-m", "pip", "install"]]
    reproduce = [i for i, c in enumerate(cmds) if c[:2] == ["adabayes", "reproduce"]]
    pytest_run = [i for i, c in enumerate(cmds) if c[:4] == ["python3", "-m", "pytest", "-q"]]
    assert install, f"no pip install in the opening bash block: {cmds}"
    assert reproduce, f"no adabayes reproduce in the opening bash block: {cmds}"
    assert pytest_run, f"no `python3 -m pytest -q` in the opening bash block: {cmds}"
    assert min(install) < min(reproduce), "install before running"


def test_pip_extras_exist() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    )
    named = set()
    for block in (b for b in BLOCKS if b.lang in BASH):
        for words in commands(block.code):
            if "install" in words:
                for target in words[words.index("install") + 1 :]:
                    match = re.fullmatch(r"(?:\.|adabayes)\[([\w,\s-]+)\]", target)
                    if match:
                        named |= {e.strip() for e in match[1].split(",")}
    assert named <= extras, f"README installs extras {sorted(named - extras)} that pyproject.toml does not define"


def test_adabayes_commands_in_bash_blocks_exist() -> None:
    calls = [call for b in BLOCKS if b.lang in BASH for call in adabayes_calls(b.code)]
    assert calls, "no adabayes command in the README's bash blocks"
    flags_by_command: dict[str, set[str]] = {}
    for command, flags in calls:
        flags_by_command.setdefault(command, set()).update(flags)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for command, flags in sorted(flags_by_command.items()):
        proc = subprocess.run(
            [sys.executable, "-m", "adabayes", command, "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"`adabayes {command} --help` exits {proc.returncode}: {proc.stderr}"
        missing = [f for f in sorted(flags) if not re.search(rf"{re.escape(f)}\b", proc.stdout)]
        assert not missing, f"README uses `adabayes {command}` flags its --help does not list: {missing}"
