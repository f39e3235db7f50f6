"""``adabayes derive`` / ``python -m derivations``: print or write the re-derivation report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["HELP", "add_arguments", "main", "run"]

HELP = (
    "Re-derive every numbered equation of §3 and Appendices A-D of Aitchison's AdaBayes paper (and the update "
    "lines of Algorithms 1 and 2) in SymPy; report which are confirmed, approximations or errata (decided by "
    "comparing the printed form with the derived one), and which are definitions or assumptions (nothing to check)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` and ``--markdown FILE`` to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the JSON list of records instead of the report")
    parser.add_argument("--markdown", metavar="FILE", type=Path, help="also write a Markdown document (LaTeX maths)")


def run(args: argparse.Namespace) -> int:
    """Run the derivations and print / write the requested outputs; return the exit status."""
    from .records import all_extras, all_records
    from .report import json_report, markdown_report, text_report

    records = all_records()
    want_extras = not args.json or args.markdown is not None
    extras = all_extras() if want_extras else []
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_report(records, extras) + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(json_report(records) + "\n")
    elif args.markdown is None:
        sys.stdout.write(text_report(records, extras) + "\n")
    else:
        sys.stdout.write(f"wrote {args.markdown}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m derivations``."""
    parser = argparse.ArgumentParser(prog="python -m derivations", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
