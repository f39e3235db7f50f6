"""The exception types the ``adabayes`` command turns into one line instead of a traceback.

A subcommand raises :class:`UserError` with a one-line message; :func:`adabayes.cli.main` prints it as
``adabayes <command>: error: <message>`` and exits with status 2, without a traceback (``--debug`` shows it).
:class:`Interrupted` is what a subcommand raises on Ctrl-C after it has put its finished work in a safe place;
the command prints ``adabayes <command>: interrupted: <message>`` and exits with status 130.
"""

from __future__ import annotations

__all__ = ["Interrupted", "UserError"]


class UserError(Exception):
    """A user error: the message is one line that says what was wrong and what to do instead."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, caught where the work was: the message says what was kept (one line)."""
