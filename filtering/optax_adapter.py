"""AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2) as optax ``GradientTransformation``\\ s, for JAX users.

JAX and optax are imported when a transformation is built, never by ``import filtering`` (extra ``jax``).

Sign convention. optax passes the gradient of a loss to *minimise* and *adds* the returned updates to the
parameters. As in the torch adapter, that gradient is of the *mean* loss over ``batch_size`` examples, so the
paper's summed ascent gradient (the ``g`` of :mod:`filtering.rules`) is ``g = -batch_size * grad``; the returned
update is the paper's step ``Δμ = -cλ μ + c σ²_post ⟨g⟩`` (Eq. 19), with ``c = lr / eta`` (1 unless ``eta`` is
given). With ``c = 1`` the updates equal those of :func:`filtering.rules.adabayes` and
:func:`~filtering.rules.adabayes_fp` fed with ``g = -batch_size * grad`` (tested in float64 to rel 1e-12).

State, per leaf and in the parameter's dtype: the EMA ``m`` of ``g`` (Eq. 2, paper units) and σ²_post (AdaBayes)
or the EMA ``v`` of ``g²`` (AdaBayes-FP, Eq. 4), plus an int32 step count. ``init`` and ``update`` are pure and
jit-able.

Changing the learning rate. ``lr`` is η of the filter unless ``eta`` is given:

- ``eta=None``: η = ``lr``. A new ``lr`` (through :func:`optax.inject_hyperparams`) is a new η: the process noise of
  Eq. 17b (AdaBayes) or the fixed point of Eq. 21 (AdaBayes-FP) change from that step on.
- ``eta`` given: the filter keeps η = ``eta`` and ``lr`` only scales the step: ``c = lr / eta`` multiplies
  σ²_post ⟨g⟩ and the decay λ (the torch adapter's scheduler semantics), so halving ``lr`` halves the update and
  leaves the state untouched. ``lr`` may then also be an optax schedule (a function of the step count).

Under :func:`optax.inject_hyperparams` the numeric arguments (``lr``, ``lr_sgd``, ``batch_size``, ``weight_decay``,
``eta``) can be changed between steps; ``betas`` (a tuple) and ``predict`` (a string) are static. Concrete values
are validated when the transformation is built (a ``ValueError`` naming the argument); traced values inside
``jit`` cannot be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import kalman_step
from .validation import (
    check_batch_size,
    check_betas,
    check_ou_stable,
    check_positive,
    check_predict,
    check_unit_interval,
)

if TYPE_CHECKING:  # pragma: no cover
    import optax

__all__ = ["AdaBayesFPState", "AdaBayesState", "adabayes", "adabayes_fp"]

Number = Any  # a Python number, a NumPy scalar or a 0-d jax.Array (traced under jit)


class AdaBayesState(NamedTuple):
    """State of :func:`adabayes`: ``count`` (int32, steps taken), ``m`` (EMA of g, Eq. 2) and ``var_post``
    (σ²_post, Eqs. 17b, 18a), the last two pytrees like the parameters."""

    count: Any
    m: Any
    var_post: Any


class AdaBayesFPState(NamedTuple):
    """State of :func:`adabayes_fp`: ``count`` (int32), ``m`` (EMA of g, Eq. 2) and ``v`` (EMA of g², Eq. 4)."""

    count: Any
    m: Any
    v: Any


def _require_jax() -> None:
    """Import jax and optax, or raise an ImportError that says how to install them."""
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"filtering.optax_adapter needs jax and optax ({exc}); install them with pip install 'adabayes[jax]'"
        ) from exc


# --------------------------------------------------------------------------------------------------------------
# hyperparameters


def _concrete(x: object) -> float | None:
    """``x`` as a float when its value is known here (not a jax tracer), else None."""
    import jax

    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return float(x)  # type: ignore[arg-type]
    except TypeError:
        return None


class _Hyper(NamedTuple):
    eta: Number  # η of the filter
    sigma2: Number  # σ² = lr_sgd / B (Eq. 23)
    batch_size: Number
    weight_decay: Number


def _hyper(lr: Number, eta: Number | None, lr_sgd: Number, batch_size: Number, weight_decay: Number) -> _Hyper:
    """Validate the arguments whose values are known here and derive η and σ²."""
    if eta is None and callable(lr):
        raise ValueError("lr may be a schedule only together with eta (the filter's fixed η)")
    if not callable(lr) and (x := _concrete(lr)) is not None:
        check_positive("lr", x, allow_zero=eta is not None)  # lr = 0 stops the step only when η is eta
    if eta is not None and (x := _concrete(eta)) is not None:
        check_positive("eta", x)
    if (x := _concrete(lr_sgd)) is not None:
        check_positive("lr_sgd", x, allow_inf=True)
    if (x := _concrete(batch_size)) is not None:
        check_batch_size(x)
    if (x := _concrete(weight_decay)) is not None:
        check_unit_interval("weight_decay", x)
    return _Hyper(lr if eta is None else eta, lr_sgd / batch_size, batch_size, weight_decay)  # Eq. 23


def _step_scale(lr: Number | Callable, eta: Number | None, count: Any) -> Number | None:
    """``c = lr / eta`` at this step, or None without ``eta`` (then c = 1 exactly and is not multiplied in)."""
    if eta is None:
        return None
    return (lr(count) if callable(lr) else lr) / eta


def _ou_check(eta: Number, sigma2: Number) -> None:
    e, s = _concrete(eta), _concrete(sigma2)
    if e is not None and s is not None:
        check_ou_stable(e, s)


def _predict_coefficients(eta: Number, sigma2: Number, predict: str) -> tuple[Any, Any]:
    """``(factor, noise)`` of Eq. 17b (or its exponential variant) in jax arithmetic (η, σ² may be traced);
    the same formulas as :func:`filtering.ou.variance_predict_coefficients`."""
    import jax.numpy as jnp

    ratio = eta * eta / sigma2  # 0 for σ² = inf
    if predict == "paper":
        a, noise = 1.0 - 0.5 * ratio, eta * eta  # Eq. 14
    else:
        a = jnp.exp(-0.5 * ratio)
        noise = jnp.where(jnp.isinf(sigma2), eta * eta, -sigma2 * jnp.expm1(-ratio))
    return a * a, noise  # Eq. 17b


# --------------------------------------------------------------------------------------------------------------
# the transformations


def _scaled(rate: Any, mean_g: Any) -> Any:
    """``rate · ⟨g⟩`` with a zero ⟨g⟩ giving 0 even where the rate is inf (as :func:`filtering.rules`)."""
    import jax.numpy as jnp

    return jnp.where(mean_g == 0, jnp.zeros_like(mean_g), rate * mean_g)


def _decayed(step: Any, param: Any, c: Number | None, weight_decay: Number) -> Any:
    """Eq. 19: ``-cλ μ + c · step``; ``c = None`` (no ``eta``): exactly the rules' ``-λ μ + step``."""
    if param is None:  # weight_decay is 0 (checked by _need_params)
        return step if c is None else c * step
    if c is None:
        return -weight_decay * param + step  # Eqs. 19a, 19b
    return -(c * weight_decay) * param + c * step  # Eqs. 19a, 19b


def _need_params(params: Any, weight_decay: Number) -> None:
    wd = _concrete(weight_decay)
    if params is None and (wd is None or wd != 0.0):
        raise ValueError("params are required by update() when weight_decay != 0 (Eq. 19a decays them)")


def adabayes(
    lr: Number | Callable[[Any], Number] = 1e-3,
    lr_sgd: Number = 0.1,
    *,
    batch_size: Number,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: Number = 0.0,
    predict: str = "paper",
    eta: Number | None = None,
) -> optax.GradientTransformation:
    """AdaBayes (Alg. 1) as an optax transformation: a scalar Kalman filter per parameter sets σ²_post.

    Per step, with ``g = -batch_size * grad`` (the paper's summed ascent gradient):
    ``m <- β1 m + (1-β1) g``, ``⟨g⟩ = m / (1-β1^t)`` (Eq. 2); ``σ²_prior = factor σ²_post + noise`` (Eq. 17b);
    ``σ²_post = 1 / (1/σ²_prior + g²)`` (Eq. 18a, H ≈ g² by Eq. 42); update ``-cλ μ + c σ²_post ⟨g⟩`` (Eq. 19).
    Before the first step σ²_post = σ² = ``lr_sgd / batch_size`` (Eq. 23).

    Parameters
    ----------
    lr : float or schedule
        η > 0 of the filter (Eqs. 14, 25), or, with ``eta`` given, the step's scale ``c · eta`` (>= 0; may then
        be a schedule ``count -> lr``).
    lr_sgd : float
        η_SGD in (0, inf]; σ² = lr_sgd / batch_size (Eq. 23).
    batch_size : float
        B >= 1, the number of examples averaged in the loss.
    betas : (float, float)
        (β1, β2) in [0, 1); β2 is unused by Alg. 1 (kept for signature parity with :func:`adabayes_fp`).
    weight_decay : float
        λ in [0, 1) per step (Eq. 19a); ``update`` then needs ``params``.
    predict : {"paper", "exponential"}
        Variance prediction (Eq. 17b or the exponential OU discretisation); ``"paper"`` needs η² < 2σ².
    eta : float, optional
        η of the filter when ``lr`` should only scale the step (see the module docstring).

    Returns
    -------
    optax.GradientTransformation
        ``init(params) -> AdaBayesState``, ``update(grads, state, params=None) -> (updates, state)``.

    Raises
    ------
    ImportError
        If jax or optax is not installed.
    ValueError
        For a hyperparameter out of its range (named in the message).
    """
    _require_jax()
    import jax
    import jax.numpy as jnp
    import optax

    beta1, _ = check_betas(betas)
    check_predict(predict)
    h = _hyper(lr, eta, lr_sgd, batch_size, weight_decay)
    if predict == "paper":
        _ou_check(h.eta, h.sigma2)

    def init(params: Any) -> AdaBayesState:
        m = jax.tree.map(jnp.zeros_like, params)
        var = jax.tree.map(lambda p: jnp.full_like(p, h.sigma2), params)  # Alg. 1: σ²_post = σ² before step 1
        return AdaBayesState(jnp.zeros([], jnp.int32), m, var)

    def update(grads: Any, state: AdaBayesState, params: Any = None) -> tuple[Any, AdaBayesState]:
        _need_params(params, h.weight_decay)
        count = state.count + 1
        c = _step_scale(lr, eta, state.count)
        factor, noise = _predict_coefficients(h.eta, h.sigma2, predict)

        def leaf(grad: Any, m: Any, var: Any, param: Any) -> tuple[Any, Any, Any]:
            g = -h.batch_size * grad  # the paper's summed ascent gradient
            m = beta1 * m + (1.0 - beta1) * g  # Eq. 2
            var_prior = kalman_step.predict_variance(var, factor, noise)  # Eq. 17b
            var = kalman_step.update_variance(var_prior, g * g)  # Eq. 18a (H ≈ g², Eq. 42)
            step = _scaled(var, m / (1.0 - beta1 ** count.astype(m.dtype)))  # σ²_post ⟨g⟩ (Eq. 19b)
            return _decayed(step, param, c, h.weight_decay), m, var

        out = _map_leaves(leaf, grads, state.m, state.var_post, params)
        return out[0], AdaBayesState(count, out[1], out[2])

    return optax.GradientTransformation(init, update)


def adabayes_fp(
    lr: Number | Callable[[Any], Number] = 1e-3,
    lr_sgd: Number = 0.1,
    *,
    batch_size: Number,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: Number = 0.0,
    eta: Number | None = None,
) -> optax.GradientTransformation:
    """AdaBayes-FP (Alg. 2) as an optax transformation: σ²_post at the fixed point of Eq. 21.

    Per step, with ``g = -batch_size * grad``: ``⟨g⟩``, ``⟨g²⟩`` the debiased EMAs of Eqs. 2 and 4;
    ``1/σ²_post = 1/(2σ²) + sqrt(1/(4σ⁴) + ⟨g²⟩/η²)`` (Eq. 21); update ``-cλ μ + c σ²_post ⟨g⟩`` (Eq. 19).
    With ``lr_sgd = inf`` this is AdamW with ε = 0 (Eq. 27). Parameters as in :func:`adabayes` (β2 enters Eq. 4).

    Returns
    -------
    optax.GradientTransformation
        ``init(params) -> AdaBayesFPState``, ``update(grads, state, params=None) -> (updates, state)``.

    Raises
    ------
    ImportError, ValueError
        As :func:`adabayes`.
    """
    _require_jax()
    import jax
    import jax.numpy as jnp
    import optax

    beta1, beta2 = check_betas(betas)
    h = _hyper(lr, eta, lr_sgd, batch_size, weight_decay)

    def init(params: Any) -> AdaBayesFPState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdaBayesFPState(jnp.zeros([], jnp.int32), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(grads: Any, state: AdaBayesFPState, params: Any = None) -> tuple[Any, AdaBayesFPState]:
        _need_params(params, h.weight_decay)
        count = state.count + 1
        c = _step_scale(lr, eta, state.count)
        half = 0.5 / h.sigma2  # 1/(2σ²), 0 for σ² = inf

        def leaf(grad: Any, m: Any, v: Any, param: Any) -> tuple[Any, Any, Any]:
            g = -h.batch_size * grad
            m = beta1 * m + (1.0 - beta1) * g  # Eq. 2
            v = beta2 * v + (1.0 - beta2) * (g * g)  # Eq. 4
            t = count.astype(m.dtype)
            precision = half + jnp.hypot(half, jnp.sqrt(v / (1.0 - beta2**t)) / h.eta)  # Eq. 21
            step = _scaled(1.0 / precision, m / (1.0 - beta1**t))  # σ²_post ⟨g⟩ (Eq. 19b)
            return _decayed(step, param, c, h.weight_decay), m, v

        out = _map_leaves(leaf, grads, state.m, state.v, params)
        return out[0], AdaBayesFPState(count, out[1], out[2])

    return optax.GradientTransformation(init, update)


class _LeafOut(NamedTuple):
    update: Any
    a: Any
    b: Any


def _map_leaves(fn: Callable, grads: Any, a: Any, b: Any, params: Any) -> tuple[Any, Any, Any]:
    """Apply ``fn(grad, a, b, param)`` leaf by leaf; return the three output pytrees (updates, a, b)."""
    import jax

    if params is None:
        outs = jax.tree.map(lambda g, x, y: _LeafOut(*fn(g, x, y, None)), grads, a, b)
    else:
        outs = jax.tree.map(lambda g, x, y, p: _LeafOut(*fn(g, x, y, p)), grads, a, b, params)
    is_out = lambda x: isinstance(x, _LeafOut)  # noqa: E731
    updates, new_a, new_b = (jax.tree.map(lambda o, k=k: o[k], outs, is_leaf=is_out) for k in range(3))
    return updates, new_a, new_b
