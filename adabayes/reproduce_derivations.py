"""The derivations step of ``adabayes reproduce``: one child process, beside the simulations, that dies with us.

The child runs *our* :mod:`derivations` (the copy installed beside this package), never a ``derivations/`` folder
in the current directory: the interpreter gets ``-P`` (Python >= 3.11: no unsafe path prepended) and the
command drops the current directory from ``sys.path`` and puts our package root first (this also covers
Python 3.10). ``-I`` is not used because it hides user site-packages, where ``pip install --user`` puts
SymPy. One run prints the JSON records and writes the Markdown report (``--json --markdown FILE``).

The child lives in its own process group, is killed (group-wide) when :meth:`DerivationsJob.stop` runs (on
every exit path of the parent, including SIGTERM, see :mod:`adabayes.reproduce`), and on Linux also gets
``PR_SET_PDEATHSIG`` = SIGKILL, so it dies even when the parent is SIGKILLed. There is no time limit: a slow
machine makes the step slow, never failed; its wall time is reported.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from simulations.checks import Check

__all__ = ["PACKAGE_ROOT", "DerivationsJob", "child_command"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # holds adabayes/ and, installed beside it, derivations/
_CHILD = (
    "import os, sys\n"
    "root = sys.argv.pop(1)\n"
    "cwd = os.getcwd()\n"
    "sys.path[:] = [root] + [p for p in sys.path if p not in ('', '.', cwd)]\n"
    "from derivations.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)
_PR_SET_PDEATHSIG = 1


def child_command(args: list[str]) -> list[str]:
    """The command line that runs ``python -m derivations ARGS`` from our package root, isolated from the cwd."""
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *flags, "-c", _CHILD, str(PACKAGE_ROOT), *args]


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    libc_name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class DerivationsJob:
    """``python -m derivations --json --markdown FILE`` in the background.

    Use :meth:`start`, then :meth:`result` (waits) and always :meth:`stop` (kills the child's process group if it
    is still running; safe to call twice). ``command`` replaces the child's command line (tests use a sleeper).
    """

    def __init__(self, command: list[str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="adabayes-derivations-")
        self.markdown = Path(self._tmp.name) / "derivations.md"
        self.command = command or child_command(["--json", "--markdown", str(self.markdown)])
        self._out: IO[Any] = tempfile.TemporaryFile(mode="w+", dir=self._tmp.name)
        self._err: IO[Any] = tempfile.TemporaryFile(mode="w+", dir=self._tmp.name)
        self.proc: subprocess.Popen | None = None
        self.started = self.finished = 0.0

    def start(self) -> DerivationsJob:
        parent = os.getpid()
        self.started = time.perf_counter()
        posix: dict[str, Any] = {}
        if os.name == "posix":  # own process group (stop() kills it and anything it started), parent-death signal
            posix = {"start_new_session": True, "preexec_fn": lambda: _die_with_parent(parent)}
        self.proc = subprocess.Popen(
            self.command, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, **posix
        )
        threading.Thread(target=self._wait, daemon=True).start()
        return self

    def _wait(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        self.finished = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Wall time of the child (start to exit)."""
        return (self.finished or time.perf_counter()) - self.started

    def stop(self) -> None:
        """Kill the child's process group if it still runs; remove the temporary files."""
        if self.proc is not None and self.proc.poll() is None:
            if os.name != "posix":
                self.proc.kill()
            for sig, grace in ((signal.SIGTERM, 2.0), (getattr(signal, "SIGKILL", signal.SIGTERM), 5.0)):
                try:
                    if os.name == "posix":
                        os.killpg(self.proc.pid, sig)
                    self.proc.wait(grace)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        for f in (self._out, self._err):
            f.close()
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def result(self) -> tuple[list[Check], dict, str | None]:
        """Wait for the child; return its checks, the info for the report and the Markdown text (or None)."""
        assert self.proc is not None, "start() first"
        rc = self.proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        stdout, stderr = self._out.read(), self._err.read()
        if rc != 0:
            tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
            return [Check("derivations/run", float(rc), "exit 0", False, tail)], {}, None
        try:
            records = json.loads(stdout)
        except json.JSONDecodeError as exc:
            return [Check("derivations/run", float("nan"), "JSON list of records", False, str(exc))], {}, None
        markdown = self.markdown.read_text(encoding="utf-8") if self.markdown.is_file() else None
        return _checks(records, markdown is not None), _info(records, markdown is not None), markdown


def _counts(records: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    return counts


def _info(records: list[dict], has_markdown: bool) -> dict:
    return {"records": records, "counts": _counts(records), "markdown": "derivations.md" if has_markdown else None}


def _checks(records: list[dict], has_markdown: bool) -> list[Check]:
    counts = _counts(records)
    return [
        Check(
            "derivations/records",
            float(len(records)),
            ">= 1",
            len(records) >= 1,
            ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
        ),
        Check(
            "derivations/markdown",
            0.0 if has_markdown else 1.0,
            "exit 0",
            has_markdown,
            "python -m derivations --markdown derivations.md",
        ),
    ]


def unavailable_check() -> Check:
    """The check reported when our derivations package is missing (a partial install)."""
    return Check(
        "derivations/available",
        float("nan"),
        "python -m derivations",
        None,
        "derivations: not available (no derivations/__main__.py beside adabayes); skipped",
    )


def available() -> bool:
    """Whether our derivations package is installed beside :mod:`adabayes`."""
    return (PACKAGE_ROOT / "derivations" / "cli.py").is_file()
