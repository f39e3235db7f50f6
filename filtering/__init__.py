"""NumPy numerical core of adabayes: the paper's state-space model, update rules and fixed points.

Submodules: :mod:`filtering.kalman_step` (the predict/update primitives of Eqs. 17, 18 and 41 that every filter
and rule uses), :mod:`filtering.ou` (OU prior coefficients), :mod:`filtering.state_space` (simulation and exact
Kalman filters; the compiled loop in :mod:`filtering._scalar_kernel`, the full-covariance filter in
:mod:`filtering.joint_filter`), :mod:`filtering.rules` (update rules), :mod:`filtering.fixed_point` (Eq. 21 and
friends), :mod:`filtering.validation` (argument checks), :mod:`filtering.torch_adapter` (torch optimisers).
Importing the package imports neither torch, sympy nor matplotlib; the torch modules import torch themselves.
"""
