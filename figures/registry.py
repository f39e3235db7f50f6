"""Subcommands of the ``adabayes`` command owned by :mod:`figures` (a plain dict, no imports)."""

SUBCOMMANDS = {
    "figures": ("figures.render", "redraw every figure from saved simulation data (npz/json)"),
}
