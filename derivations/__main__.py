"""``python -m derivations``: see :mod:`derivations.cli`."""

from .cli import main

raise SystemExit(main())
