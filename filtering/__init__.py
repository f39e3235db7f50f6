"""Numerical core of adabayes: the paper's state-space model, update rules, fixed points and their theory.

Model and filters: :mod:`filtering.kalman_step` (the predict/update primitives of Eqs. 17, 18 and 41 that every
filter, rule and kernel uses), :mod:`filtering.ou` (OU prior coefficients), :mod:`filtering.state_space`
(simulation and exact Kalman filters; the compiled loop in :mod:`filtering._scalar_kernel`, the full-covariance
filter in :mod:`filtering.joint_filter`), :mod:`filtering.likelihood` (marginal log-likelihood),
:mod:`filtering.smoother` (RTS smoother), :mod:`filtering.estimation` (maximum likelihood and EM for η², σ²),
:mod:`filtering.streaming` and :mod:`filtering.distributed` (bounded memory, Dask blocks).

Optimisers and their learning rate: :mod:`filtering.rules` (update rules as pure NumPy functions),
:mod:`filtering.fixed_point` (Eq. 21 and its limits), :mod:`filtering.stochastic` (the stationary law of σ²_post
under random gradients), :mod:`filtering.validation` (argument checks).

Frameworks (imported lazily, each only by its own modules): :mod:`filtering.torch_adapter` and
:mod:`filtering.torch_functional` (torch optimisers and their kernels), :mod:`filtering.recording` (Fig. 3 data
from a torch run), :mod:`filtering.optax_adapter` (JAX). Importing the package imports neither torch, JAX, sympy
nor matplotlib.
"""
