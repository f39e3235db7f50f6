"""The output folder of ``adabayes reproduce``: what it may overwrite, and marking a run in progress.

Rules, checked before anything runs (:meth:`OutputFolder.check`):

* ``DIR/data`` and ``DIR/figures`` must not be symbolic links that lead out of ``DIR`` (``--force`` does not
  change that): nothing is written through a link to elsewhere.
* A file with one of our names (``report.md``, ``checks.json``, ``derivations.md``, an experiment's outputs, a
  figure) is overwritten only if adabayes wrote it -- recorded in ``DIR/.adabayes-reproduce.json``
  (:data:`MANIFEST`) by an earlier ``reproduce``, or in ``data/`` and ``figures/`` in the folder's
  ``.adabayes-written`` list by any experiment or ``adabayes figures`` -- and is a regular file; anything else
  (a user's file, a link) needs ``--force``. Writes
  replace files atomically and never follow a link at the target's name.
* ``--only`` must not silently replace a fuller report: when ``DIR/checks.json`` holds results of steps this run
  does not redo, the run is refused without ``--force``.

:meth:`OutputFolder.mark_in_progress` then removes ``checks.json`` and replaces ``report.md`` by a note that the
run is in progress (with its pid), so a killed run never leaves "No check failed." beside deleted data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from adabayes.errors import UserError
from simulations.io import written_here

__all__ = ["MANIFEST", "OutputFolder"]

MANIFEST = ".adabayes-reproduce.json"
SUBDIRS = ("data", "figures")


def _atomic_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (never follows a link)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class OutputFolder:
    """The ``--out`` folder of one ``reproduce`` run.

    Parameters
    ----------
    root : path
        ``--out``; created if missing (it may itself be a link: the user chose it).
    force : bool
        ``--force``: overwrite files with our names that no earlier run recorded, and replace a fuller report.
    """

    def __init__(self, root: str | Path, force: bool = False) -> None:
        self.root = Path(root)
        self.force = force
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {str(root)!r} is a file, not a folder")

    # ---- what the folder holds

    def manifest(self) -> set[str]:
        """Relative paths recorded as written by earlier runs (empty when there is no readable manifest)."""
        path = self.root / MANIFEST
        if path.is_symlink() or not path.is_file():
            return set()
        try:
            files = json.loads(path.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            return set()
        return {f for f in files if isinstance(f, str)}

    def previous_checks(self) -> list[dict] | None:
        """The checks of the report this folder holds (``None`` when there is none of ours)."""
        path = self.root / "checks.json"
        if "checks.json" not in self.manifest() or path.is_symlink() or not path.is_file():
            return None
        try:
            checks = json.loads(path.read_text(encoding="utf-8")).get("checks")
        except (OSError, ValueError, AttributeError):
            return None
        return checks if isinstance(checks, list) else None

    # ---- checks before the run

    def _check_subdirs(self) -> None:
        root = self.root.resolve()
        for name in SUBDIRS:
            sub = self.root / name
            if sub.is_symlink() and not sub.resolve().is_relative_to(root):
                raise UserError(
                    f"{str(sub)!r} is a link to {str(sub.resolve())!r}, outside --out: refusing to write through it"
                )
            if sub.exists() and not sub.is_dir():
                raise UserError(f"{str(sub)!r} is a file; reproduce needs a folder there")

    def _ours(self, rel: str, manifest: set[str]) -> bool:
        path = self.root / rel
        if path.is_symlink():
            return False
        return rel in manifest or (path.parent != self.root and path.name in written_here(path.parent))

    def _foreign(self, targets: Iterable[str]) -> list[str]:
        """Targets that exist but were not written by adabayes (or are links)."""
        manifest = self.manifest()
        return [t for t in targets if os.path.lexists(self.root / t) and not self._ours(t, manifest)]

    def check(self, targets: Iterable[str], dropped_steps: list[str]) -> None:
        """Refuse (``UserError``) what this run must not do; see the module docstring.

        Parameters
        ----------
        targets : iterable of str
            Paths relative to ``root`` this run may write or delete.
        dropped_steps : list of str
            Steps whose results the previous report holds and this run would drop (from :meth:`previous_checks`).
        """
        self._check_subdirs()
        if self.force:
            return
        foreign = self._foreign(targets)
        if foreign:
            shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
            raise UserError(
                f"{str(self.root)!r} holds {shown}, not written by 'adabayes reproduce' (no entry in {MANIFEST}); "
                "pass --force to overwrite them, or choose another --out"
            )
        if dropped_steps:
            raise UserError(
                f"{str(self.root / 'report.md')!r} holds results of {', '.join(dropped_steps)}, which this run does "
                "not redo; run them too (omit --only / --skip-derivations), choose another --out, or pass --force "
                "to replace it with a partial report"
            )

    # ---- during and after the run

    def mark_in_progress(self, command: str) -> None:
        """Remove the previous ``checks.json`` and put an in-progress note in ``report.md``."""
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (self.root / sub).mkdir(exist_ok=True)
        (self.root / "checks.json").unlink(missing_ok=True)
        self.record(["report.md"])
        self.write_text(
            "report.md",
            "# adabayes — reproduction report: RUN IN PROGRESS (or interrupted)\n\n"
            f"`{command}` started with process id {os.getpid()}. This note is replaced by the report when the run "
            "finishes; if it is still here, the run was interrupted or is still going, and the files in data/ and "
            "figures/ may be incomplete.\n",
        )

    def mark_interrupted(self, command: str, why: str) -> None:
        """Replace the in-progress note by one that says the run stopped (``why``)."""
        self.write_text(
            "report.md",
            f"# adabayes — reproduction report: INTERRUPTED\n\n`{command}` stopped ({why}). No report was "
            "written; the files in data/ and figures/ may be incomplete. Run it again.\n",
        )

    def write_text(self, rel: str, text: str) -> Path:
        """Write ``root/rel`` atomically (a link there is replaced, not followed); record it as ours."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_text(path, text)
        self.record([rel])
        return path

    def record(self, rels: Iterable[str]) -> None:
        """Add ``rels`` to the manifest (kept only for files that exist, plus these)."""
        keep = {f for f in self.manifest() if os.path.lexists(self.root / f)} | set(rels)
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_text(self.root / MANIFEST, json.dumps({"files": sorted(keep)}, indent=1) + "\n")
