"""The ``adabayes`` command: one subcommand per job, each implemented in the package that owns it.

A subcommand module exposes ``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``adabayes --help`` stays fast and torch is not imported for
NumPy-only jobs. Packages list their own subcommands in a ``registry`` module (a plain dict, no imports).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

CORE_SUBCOMMANDS = {
    "derive": ("derivations.cli", "re-derive the paper's equations in SymPy and report errata"),
    "reproduce": ("adabayes.reproduce", "run derivations, simulations and figures; write DIR/report.md"),
}

REGISTRIES = ("simulations.registry", "simulations.training.registry")


def _subcommands() -> dict[str, tuple[str, str]]:
    table = dict(CORE_SUBCOMMANDS)
    for name in REGISTRIES:
        try:
            registry = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that package has no subcommands yet
            raise
        table.update(registry.SUBCOMMANDS)
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adabayes",
        description="Optimisation as Bayesian filtering (Aitchison): derivations, simulations, figures, training.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _subcommands().items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    table = _subcommands()
    if argv[0] not in table:
        parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(table)}")
    module = importlib.import_module(table[argv[0]][0])
    sub = argparse.ArgumentParser(prog=f"adabayes {argv[0]}", description=module.HELP)
    module.add_arguments(sub)
    return int(module.run(sub.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
