"""adabayes: the paper's theory of optimisation as Bayesian filtering, derived, simulated and run.

The distribution installs five packages: :mod:`filtering` (NumPy core and torch optimisers),
:mod:`derivations` (SymPy), :mod:`simulations` (experiments that write data), :mod:`figures`
(matplotlib from saved data) and this one, which holds the ``adabayes`` command line.
"""

__version__ = "0.1.0"
