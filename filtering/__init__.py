"""NumPy numerical core of adabayes: the paper's state-space model, update rules and fixed points.

Submodules: :mod:`filtering.ou` (OU prior coefficients), :mod:`filtering.state_space` (simulation and exact
Kalman filters), :mod:`filtering.rules` (update rules), :mod:`filtering.fixed_point` (Eq. 21 and friends),
:mod:`filtering.torch_adapter` (torch optimisers; the only module that imports torch).
Imports neither sympy nor matplotlib.
"""
