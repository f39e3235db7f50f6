"""Subcommands of the ``adabayes`` command owned by :mod:`simulations` (a plain dict, no imports).

This table is the one source of each experiment's help line: the modules set ``HELP = help_for(name)``.
``figures`` has its own table (:mod:`figures.registry`), read by :mod:`adabayes.cli` beside this one.
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
    "fit": (
        "simulations.fit_cli",
        "fit OU, random-walk, integrated-AR(1) and AR(2) priors on w* to gradient streams (npz, quadratic, network, "
        "Nile) by marginal likelihood: evidence, fitted eta vs <g2>",
    ),
}


def help_for(name: str) -> str:
    """The help line of subcommand ``name``."""
    return SUBCOMMANDS[name][1]
