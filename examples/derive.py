"""Re-derive the paper's equations in SymPy and print which hold, which are approximations and which are errata.

Uses the ``derivations`` API: ``derivations.all_records()`` returns one :class:`derivations.Record` per numbered
equation of §3 and Appendices A-D and per algorithm, in paper order. A record's status is

- ``confirmed``, ``approximation`` or ``erratum``: computed by SymPy from its comparisons (``record.checks``, each
  a printed form against a derived one with ``holds`` True/False; an approximation's ``record.exact`` is the
  comparison with the exact form that fails);
- ``definition`` or ``assumption``: the paper defines or assumes the quantity, so there is nothing to check
  (``record.note`` says why).

Writes ``derivations.json`` (the records as ``python -m derivations --json`` prints them) and ``summary.json``
(the equations per status) under ``--out``.

    python examples/derive.py                      # every record: a few seconds
    python examples/derive.py --equation 21        # also the derivation steps of one equation
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

from derivations import Record, all_records

STATUS_ORDER = ("confirmed", "approximation", "erratum", "definition", "assumption")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--equation", action="append", default=[], help="print the steps of this equation (repeat)")
    return parser.parse_args(argv)


def indent(text: str, width: int = 116) -> str:
    return textwrap.fill(text, width=width, initial_indent="      ", subsequent_indent="      ")


def print_record(rec: Record) -> None:
    """Printed and derived forms, and which comparison failed (an erratum's check, an approximation's exact form)."""
    print(f"  Eq. {rec.equation} ({rec.status})")
    print(f"    printed: {rec.printed.text}")
    print(f"    derived: {rec.derived.text}")
    failed = [c.label for c in rec.checks if not c.holds]
    if rec.exact is not None and not rec.exact.holds:
        failed.append(f"{rec.exact.label} (against the exact form)")
    if failed:
        print(f"    failing comparison: {', '.join(failed)}")
    print(indent(rec.note))


def print_steps(rec: Record) -> None:
    print(f"\nEq. {rec.equation}: {rec.status}, from {rec.basis}")
    for label, shown in rec.steps:
        print(f"  {label}: {shown.text}")
    for c in rec.checks:
        print(f"  comparison {c.label!r}: {'holds' if c.holds else 'fails'}")
    print(indent(rec.note))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    records = all_records()
    by_id = {r.equation: r for r in records}
    unknown = [eq for eq in args.equation if eq not in by_id]
    if unknown:
        print(f"derive.py: error: no record for --equation {unknown}; known: {', '.join(by_id)}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="adabayes-derive-"))
    out.mkdir(parents=True, exist_ok=True)

    counts = Counter(r.status for r in records)
    print(f"{len(records)} records: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s]))
    for status in STATUS_ORDER:
        group = [r for r in records if r.status == status]
        if not group:
            continue
        print(f"\n{status} ({len(group)}):")
        if status in ("approximation", "erratum"):
            for rec in group:
                print_record(rec)
        else:
            print(textwrap.fill(", ".join(r.equation for r in group), width=116, initial_indent="  ",
                                subsequent_indent="  "))  # fmt: skip
    for eq in args.equation:
        print_steps(by_id[eq])

    (out / "derivations.json").write_text(json.dumps([r.as_dict() for r in records], indent=1) + "\n", "utf-8")
    summary = {s: [r.equation for r in records if r.status == s] for s in STATUS_ORDER}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'derivations.json'} and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
