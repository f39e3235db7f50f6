"""The one exception type for a mistake the user can fix (bad argument, missing file, occupied folder).

A subcommand raises :class:`UserError` with a one-line message; :func:`adabayes.cli.main` prints it as
``adabayes <command>: error: <message>`` and exits with status 2, without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A user error: the message is one line that says what was wrong and what to do instead."""
