"""The ``adabayes`` command: one subcommand per job, each implemented in the package that owns it.

A subcommand module exposes ``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``adabayes --help`` stays fast and torch is not imported for
NumPy-only jobs. Packages list their own subcommands in a ``registry`` module (a plain dict, no imports).

Failing politely: a mistake the user can fix (:class:`~adabayes.errors.UserError`, a ``ValueError`` from an
argument check, an ``OSError`` such as a missing file or a full disk, or an argparse error) prints one line,
``adabayes <command>: error: <message>``, and exits with status 2. Ctrl-C prints ``adabayes <command>:
interrupted`` and exits with status 130 (the subcommand keeps what it finished). Anything else is a bug: one
line naming the exception and exit status 1. ``--debug`` (before or after the command) or ``ADABAYES_DEBUG=1``
prints the traceback as well. Every subcommand's ``--help`` shows each option's default.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from adabayes.errors import Interrupted, UserError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main", "subcommand_parser", "version"]

CORE_SUBCOMMANDS = {
    "derive": ("derivations.cli", "re-derive the paper's equations in SymPy and report errata"),
    "reproduce": ("adabayes.reproduce", "run derivations, simulations and figures; write DIR/report.md"),
}

REGISTRIES = ("simulations.registry", "figures.registry", "simulations.training.registry")

EXIT_USAGE = 2  # a user error (argparse's status for usage errors)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BUG = 1

# exceptions that describe something the user can fix; anything else is reported as an internal error
_USER_ERRORS = (UserError, ValueError, OSError)


class _UsageError(UserError):
    """An argparse error, raised instead of argparse's exit so that :func:`main` prints it as one line."""


class _UnknownCommand(_UsageError):
    """The first word is no subcommand (reported as ``adabayes: error: ...``)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`_UsageError` (one line) instead of printing the usage."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, unless the help text already states it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or "default" in text.lower()
            or "%(default)" in text
        ):
            return text
        if isinstance(default, list | tuple):
            shown = " ".join(map(str, default))
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


def version() -> str:
    """The installed distribution's version (package metadata), or the source tree's ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("adabayes")
    except metadata.PackageNotFoundError:
        from adabayes import __version__

        return __version__


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
    """The top-level parser (used for ``adabayes --help``; subcommands get :func:`subcommand_parser`)."""
    parser = _Parser(
        prog="adabayes",
        description="Optimisation as Bayesian filtering (Aitchison): derivations, simulations, figures, training.",
        epilog="Each COMMAND has its own --help. --debug (anywhere) shows the traceback of an error.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"adabayes {version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _subcommands().items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def subcommand_parser(name: str, module: object) -> argparse.ArgumentParser:
    """The parser of ``adabayes NAME``: the module's options, ``--debug``, defaults in ``--help``."""
    parser = _Parser(
        prog=f"adabayes {name}", description=getattr(module, "HELP", None), formatter_class=_DefaultsFormatter
    )
    module.add_arguments(parser)  # type: ignore[attr-defined]
    if "--debug" not in parser._option_string_actions:
        parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _report(prog: str, exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one line on stderr (plus the traceback when ``debug``); return the exit status."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        detail = _one_line(exc) if isinstance(exc, Interrupted) and str(exc) else ""
        print(f"{prog}: interrupted" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, _USER_ERRORS):
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    hint = "" if debug else " (rerun with --debug for the traceback)"
    print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
    return EXIT_BUG


def _split_global(argv: list[str]) -> tuple[list[str], bool]:
    """Remove the global options that may precede the command (``--debug``); return (rest, debug)."""
    debug = os.environ.get("ADABAYES_DEBUG", "") not in ("", "0")
    rest = list(argv)
    while rest and rest[0] == "--debug":
        rest.pop(0)
        debug = True
    return rest, debug


def _parse(argv: list[str]) -> tuple[object, argparse.Namespace]:
    """Import the subcommand's module and parse its options; argparse errors raise :class:`_UsageError`."""
    table = _subcommands()
    if argv[0] not in table:
        close = difflib.get_close_matches(argv[0], list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _UnknownCommand(f"unknown command {argv[0]!r}{hint}; choose from {', '.join(table)}")
    module = importlib.import_module(table[argv[0]][0])
    return module, subcommand_parser(argv[0], module).parse_args(argv[1:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``adabayes ARGV``; return the exit status (0 ok, 1 bug or failed check, 2 user error, 130 Ctrl-C).

    ``--help`` and ``--version`` print and return 0 (argparse's ``SystemExit`` is turned into the status).
    """
    argv, debug = _split_global(list(sys.argv[1:] if argv is None else argv))
    prog = "adabayes" if not argv or argv[0].startswith("-") else f"adabayes {argv[0]}"
    try:
        if not argv or argv[0].startswith("-"):
            build_parser().parse_args(argv or ["--help"])  # --help / --version print and exit
            raise _UsageError(f"unknown option {argv[0]!r}; the command comes first: adabayes COMMAND [options]")
        module, args = _parse(argv)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    except _UnknownCommand as exc:
        return _report("adabayes", exc, debug)
    except (Exception, KeyboardInterrupt) as exc:
        return _report(prog, exc, debug)
    debug = debug or bool(getattr(args, "debug", False))
    try:
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except (Exception, KeyboardInterrupt) as exc:
        return _report(prog, exc, debug)


if __name__ == "__main__":
    raise SystemExit(main())
