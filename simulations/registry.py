"""Subcommands of the ``adabayes`` command owned by :mod:`simulations` and :mod:`figures` (a plain dict)."""

SUBCOMMANDS = {
    "generative": (
        "simulations.generative",
        "generative model (Eqs. 12-14): sigma2_post vs <g2> against Eq. 21, exact fixed point, Jensen gap",
    ),
    "figures": ("figures.render", "redraw all figures from saved simulation data (npz/json)"),
}
