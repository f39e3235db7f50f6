"""Subcommands of the ``adabayes`` command owned by :mod:`simulations` and :mod:`figures` (a plain dict).

This table is the one source of each subcommand's help line: the modules set ``HELP = help_for(name)``.
"""

SUBCOMMANDS = {
    "generative": (
        "simulations.generative",
        "generative model (Eqs. 12-14): sigma2_post vs <g2> against Eq. 21, exact fixed point, Jensen gap",
    ),
    "quadratic": (
        "simulations.quadratic",
        "coupled quadratic (Eqs. 6-11): every rule, Fig. 3 from a real objective, Eq. 11, OU test, tuned losses",
    ),
    "slopes": (
        "simulations.slopes",
        "log-log slope of the learning rate vs <g2> per rule (fading memory -1, AdaBayes/Adam -1/2) from saved runs",
    ),
    "factorised-vs-joint": (
        "simulations.factorised_vs_joint",
        "joint full-covariance Kalman filter vs factorised filters on small quadratics: errors, effective eta2",
    ),
    "figures": ("figures.render", "redraw all figures from saved simulation data (npz/json)"),
}


def help_for(name: str) -> str:
    """The help line of subcommand ``name``."""
    return SUBCOMMANDS[name][1]
