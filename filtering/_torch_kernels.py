"""Per-step tensor kernels behind :mod:`filtering.torch_adapter` (private; imports torch).

Three interchangeable implementations of one AdaBayes / AdaBayes-FP step over a *bucket* of tensors that share
device, parameter dtype and step count: a per-tensor loop (``single``), torch's ``_foreach_*`` multi-tensor ops
(``foreach``) and a ``torch.compile``-d multi-tensor function (``fused``). All three take the same precomputed
Python scalars (:class:`FPScalars`, :class:`ABScalars`) so the maths lives in one place,
:meth:`filtering.torch_adapter.AdaBayes._scalars`.

Units. The state is kept in the units of ``p.grad`` (the gradient of the *mean* loss, descent direction):
``m`` and ``v`` are the raw EMAs of ``p.grad`` and ``p.grad**2`` (Eqs. 2 and 4), so the paper's summed-ascent
moments are ``⟨g⟩ = -B m / (1 - β1^t)`` and ``⟨g²⟩ = B² v / (1 - β2^t)``. AdaBayes's ``var`` is σ²_post itself
(paper units). Tensors in a bucket have the state dtype (the parameter's dtype, fp32 for fp16/bf16).

AdaBayes-FP in these units. With ``k = η / (2 η_SGD)`` (= η / (2 σ² B)) Eq. 21 gives
``B σ²_post = η / (k + sqrt(k² + v̂))`` with ``v̂ = v / (1 - β2^t)``, hence the parameter update
``p <- (1 - cλ) p - c η sqrt(bc2)/bc1 · m / (sqrt(v + k² bc2) + k sqrt(bc2))`` (Eqs. 19, 21), an AdamW step
whose ε is replaced by the prior term; ``k = 0`` (``lr_sgd = inf``) is AdamW with ε = 0 (Eq. 27).
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["ABScalars", "FPScalars", "ab_foreach", "ab_fused", "ab_single", "fp_foreach", "fp_fused", "fp_single"]


class FPScalars(NamedTuple):
    """Scalars of one AdaBayes-FP step for a bucket (all Python floats).

    Attributes
    ----------
    w1 : float
        ``1 - β1`` (weight of the new gradient in the EMA of Eq. 2).
    beta2, w2 : float
        ``β2`` and ``1 - β2`` (Eq. 4).
    k2bc2 : float
        ``k² (1 - β2^t)`` added under the square root (Eq. 21).
    kbc : float
        ``k sqrt(1 - β2^t)`` added to the square root (Eq. 21).
    tiny : float
        Lower clamp of the denominator, > 0 only when ``kbc`` is 0 (``lr_sgd = inf``): a zero ``m`` then gives a
        zero step instead of 0/0.
    decay : float
        ``1 - cλ`` (Eq. 19a; ``c = lr / eta`` is the scheduler's factor).
    scale : float
        ``-c η sqrt(1 - β2^t) / (1 - β1^t)`` multiplying ``m / denominator`` (Eq. 19b).
    """

    w1: float
    beta2: float
    w2: float
    k2bc2: float
    kbc: float
    tiny: float
    decay: float
    scale: float


class ABScalars(NamedTuple):
    """Scalars of one AdaBayes step for a bucket (all Python floats).

    Attributes
    ----------
    w1, beta2, w2 : float
        As in :class:`FPScalars` (the ⟨g²⟩ EMA is kept for recording only).
    factor, noise : float
        ``σ²_prior = factor σ²_post + noise`` (Eq. 17b or its exponential variant).
    b2 : float
        ``B²``: the paper's ``g² = B² p.grad²`` (Eq. 18a).
    rate_max : float
        Upper clamp of σ²_post inside the step, finite only when σ² = inf (so that ``m = 0`` times an infinite
        σ²_post gives 0, as :func:`filtering.rules.adabayes` does); ``inf`` otherwise (no clamp).
    decay : float
        ``1 - cλ`` (Eq. 19a).
    scale : float
        ``-c B / (1 - β1^t)`` multiplying ``m σ²_post`` (Eq. 19b with ``⟨g⟩ = -B m / (1 - β1^t)``).
    """

    w1: float
    beta2: float
    w2: float
    factor: float
    noise: float
    b2: float
    rate_max: float
    decay: float
    scale: float


# --------------------------------------------------------------------------------------------------------------
# single-tensor loop


def _working_param(p: Tensor, state_dtype: torch.dtype) -> Tensor:
    """The parameter in the state dtype: ``p`` itself, or an fp32 copy for fp16/bf16 parameters."""
    return p if p.dtype == state_dtype else p.to(state_dtype)


def _update_param(p: Tensor, work: Tensor, decay: float, scale: float, num: Tensor, den: Tensor, div: bool) -> None:
    """``p <- decay p + scale num / den`` (``div``) or ``decay p + scale num den`` (Eq. 19), written back to p."""
    if decay != 1.0:
        work.mul_(decay)  # Eq. 19a
    if scale != 0.0:  # c = 0 (lr scheduled to 0) leaves p alone even if num * den overflowed
        if div:
            work.addcdiv_(num, den, value=scale)  # Eq. 19b
        else:
            work.addcmul_(num, den, value=scale)  # Eq. 19b
    if work is not p:
        p.copy_(work)


def fp_single(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], s: FPScalars) -> None:
    """AdaBayes-FP step, one tensor at a time (shapes: each ``params[i]``; state in the state dtype)."""
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        g = g.to(m.dtype)
        m.lerp_(g, s.w1)  # Eq. 2
        v.mul_(s.beta2).addcmul_(g, g, value=s.w2)  # Eq. 4
        den = torch.add(v, s.k2bc2).sqrt_() if s.k2bc2 else v.sqrt()  # Eq. 21 (see module docstring)
        if s.kbc:
            den.add_(s.kbc)
        if s.tiny:
            den.clamp_min_(s.tiny)
        _update_param(p, _working_param(p, m.dtype), s.decay, s.scale, m, den, div=True)


def ab_single(
    params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], vars_: list[Tensor], s: ABScalars
) -> None:
    """AdaBayes step, one tensor at a time (``vs``: the ⟨g²⟩ EMA, recorded only; ``vars_``: σ²_post)."""
    for p, g, m, v, var in zip(params, grads, ms, vs, vars_, strict=True):
        g = g.to(m.dtype)
        m.lerp_(g, s.w1)  # Eq. 2
        v.mul_(s.beta2).addcmul_(g, g, value=s.w2)  # Eq. 4 (recorded, not used by Alg. 1)
        if s.factor != 1.0:
            var.mul_(s.factor)  # Eq. 17b
        var.add_(s.noise).reciprocal_().addcmul_(g, g, value=s.b2).reciprocal_()  # Eqs. 17b, 18a
        rate = var.clamp_max(s.rate_max) if s.rate_max != float("inf") else var
        _update_param(p, _working_param(p, m.dtype), s.decay, s.scale, m, rate, div=False)


# --------------------------------------------------------------------------------------------------------------
# foreach (multi-tensor) ops


def _foreach_working(params: list[Tensor], state_dtype: torch.dtype) -> list[Tensor]:
    if params[0].dtype == state_dtype:
        return params
    return [p.to(state_dtype) for p in params]


def _foreach_update(
    params: list[Tensor],
    work: list[Tensor],
    decay: float,
    scale: float,
    num: list[Tensor],
    den: list[Tensor],
    div: bool,
) -> None:
    if decay != 1.0:
        torch._foreach_mul_(work, decay)  # Eq. 19a
    if scale != 0.0:
        if div:
            torch._foreach_addcdiv_(work, num, den, value=scale)  # Eq. 19b
        else:
            torch._foreach_addcmul_(work, num, den, value=scale)  # Eq. 19b
    if work is not params:
        torch._foreach_copy_(params, work)


def _foreach_grads(grads: list[Tensor], state_dtype: torch.dtype) -> list[Tensor]:
    return grads if grads[0].dtype == state_dtype else [g.to(state_dtype) for g in grads]


def fp_foreach(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], s: FPScalars) -> None:
    """AdaBayes-FP step with ``torch._foreach_*`` ops; the same arithmetic as :func:`fp_single`."""
    grads = _foreach_grads(grads, ms[0].dtype)
    torch._foreach_lerp_(ms, grads, s.w1)  # Eq. 2
    torch._foreach_mul_(vs, s.beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=s.w2)  # Eq. 4
    if s.k2bc2:
        den = torch._foreach_add(vs, s.k2bc2)
        torch._foreach_sqrt_(den)  # Eq. 21
    else:
        den = torch._foreach_sqrt(vs)
    if s.kbc:
        torch._foreach_add_(den, s.kbc)
    if s.tiny:
        torch._foreach_clamp_min_(den, s.tiny)
    _foreach_update(params, _foreach_working(params, ms[0].dtype), s.decay, s.scale, ms, den, div=True)


def ab_foreach(
    params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], vars_: list[Tensor], s: ABScalars
) -> None:
    """AdaBayes step with ``torch._foreach_*`` ops; the same arithmetic as :func:`ab_single`."""
    grads = _foreach_grads(grads, ms[0].dtype)
    torch._foreach_lerp_(ms, grads, s.w1)  # Eq. 2
    torch._foreach_mul_(vs, s.beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=s.w2)  # Eq. 4
    if s.factor != 1.0:
        torch._foreach_mul_(vars_, s.factor)  # Eq. 17b
    torch._foreach_add_(vars_, s.noise)  # Eq. 17b
    torch._foreach_reciprocal_(vars_)
    torch._foreach_addcmul_(vars_, grads, grads, value=s.b2)  # Eq. 18a
    torch._foreach_reciprocal_(vars_)
    rates = torch._foreach_clamp_max(vars_, s.rate_max) if s.rate_max != float("inf") else vars_
    _foreach_update(params, _foreach_working(params, ms[0].dtype), s.decay, s.scale, ms, rates, div=False)


# --------------------------------------------------------------------------------------------------------------
# fused: one torch.compile-d function per algorithm; scalars travel as a 1-D tensor so that a new step (new bias
# corrections) or a scheduled lr does not recompile. Each tensor's update is one elementwise kernel.
#
# The compiled code is specialised on the bucket's tensor count, shapes, strides and dtypes, and torch._dynamo keeps
# at most ``torch._dynamo.config.recompile_limit`` (8) specialisations per function, shared by every optimiser in
# the process. Many groups of different shapes, or params whose grad is sometimes None (the bucket changes from step
# to step), exceed it; with fullgraph=True dynamo then raises instead of compiling. Buckets that hit the limit run
# the foreach kernel instead (same numbers up to rounding), with one warning per process; buckets already compiled
# keep their compiled code.


def _fp_multi(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], sc: Tensor) -> None:
    w1, beta2, w2, k2bc2, kbc, tiny, decay, scale = sc.unbind()
    for p, g, m, v in zip(params, grads, ms, vs, strict=True):
        g = g.to(m.dtype)
        m_new = m + w1 * (g - m)  # Eq. 2
        v_new = beta2 * v + w2 * (g * g)  # Eq. 4
        den = torch.clamp_min(torch.sqrt(v_new + k2bc2) + kbc, tiny)  # Eq. 21
        p_dec = decay * p.to(m.dtype)  # Eq. 19a
        p_new = torch.where(scale != 0.0, p_dec + scale * (m_new / den), p_dec)  # Eq. 19b; c = 0: p alone
        m.copy_(m_new)
        v.copy_(v_new)
        p.copy_(p_new)


def _ab_multi(
    params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], vars_: list[Tensor], sc: Tensor
) -> None:
    w1, beta2, w2, factor, noise, b2, rate_max, decay, scale = sc.unbind()
    for p, g, m, v, var in zip(params, grads, ms, vs, vars_, strict=True):
        g = g.to(m.dtype)
        m_new = m + w1 * (g - m)  # Eq. 2
        v_new = beta2 * v + w2 * (g * g)  # Eq. 4 (recorded, not used by Alg. 1)
        var_prior = factor * var + noise  # Eq. 17b
        var_post = 1.0 / (1.0 / var_prior + b2 * (g * g))  # Eq. 18a
        p_dec = decay * p.to(m.dtype)  # Eq. 19a
        # Eq. 19b; c = 0 (lr scheduled to 0) leaves p alone even if m σ²_post overflowed (0 * inf = NaN)
        p_new = torch.where(scale != 0.0, p_dec + scale * (m_new * torch.clamp_max(var_post, rate_max)), p_dec)
        m.copy_(m_new)
        v.copy_(v_new)
        var.copy_(var_post)
        p.copy_(p_new)


@functools.cache
def _compiled(name: str):
    fn = {"fp": _fp_multi, "ab": _ab_multi}[name]
    return torch.compile(fn, fullgraph=True, dynamic=False)


def _recompile_limit_errors() -> tuple[type[BaseException], ...]:
    """The exception(s) torch._dynamo raises under ``fullgraph=True`` when a function's recompile limit is hit."""
    import torch._dynamo.exc as dynamo_exc

    names = ("FailOnRecompileLimitHit", "FailOnCacheLimitHit")  # the latter: older torch releases
    return tuple(getattr(dynamo_exc, n) for n in names if hasattr(dynamo_exc, n))


_warned_recompile_limit = False
_past_limit: dict[str, set[tuple]] = {"fp": set(), "ab": set()}  # bucket signatures dynamo refused to compile


def _signature(lists: tuple[list[Tensor], ...]) -> tuple:
    """What the compiled code is specialised on, per tensor (a miss only costs one more refused compile)."""
    return tuple((t.shape, t.stride(), t.dtype, t.device) for ts in lists for t in ts)


def _run_compiled(name: str, lists: tuple[list[Tensor], ...], scalars: Tensor, fallback) -> None:
    """Run the compiled ``name`` kernel; for buckets past dynamo's recompile limit run ``fallback()`` instead.

    A bucket refused once is remembered by its signature and goes straight to the fallback afterwards, so it does
    not pay a refused compile (guard checks, a log line from dynamo) at every step. Until the first refusal no
    signature is computed.
    """
    global _warned_recompile_limit
    past = _past_limit[name]
    key = _signature(lists) if past else None
    if key is not None and key in past:
        fallback()
        return
    try:
        _compiled(name)(*lists, scalars)
    except _recompile_limit_errors():
        past.add(key if key is not None else _signature(lists))
        if not _warned_recompile_limit:
            _warned_recompile_limit = True
            warnings.warn(
                "fused=True: torch._dynamo's recompile limit (torch._dynamo.config.recompile_limit) was hit by "
                "parameter buckets of new shapes; those buckets use the foreach path from now on (same numbers "
                "up to rounding, slower). Raise the limit or use fewer distinct parameter groups / shapes to "
                "keep them compiled.",
                RuntimeWarning,
                stacklevel=4,
            )
        fallback()


def _scalar_tensor(values: tuple[float, ...], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype).to(like.device, non_blocking=True)


def fp_fused(params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], s: FPScalars) -> None:
    """AdaBayes-FP step through the compiled multi-tensor function (same numbers as :func:`fp_foreach` up to
    rounding: the compiler may contract multiply-adds); :func:`fp_foreach` past dynamo's recompile limit."""
    sc = _scalar_tensor(tuple(s), ms[0])
    _run_compiled("fp", (params, grads, ms, vs), sc, lambda: fp_foreach(params, grads, ms, vs, s))


def ab_fused(
    params: list[Tensor], grads: list[Tensor], ms: list[Tensor], vs: list[Tensor], vars_: list[Tensor], s: ABScalars
) -> None:
    """AdaBayes step through the compiled multi-tensor function (see :func:`fp_fused`)."""
    rate_max = min(s.rate_max, torch.finfo(ms[0].dtype).max)
    sc = _scalar_tensor(tuple(s._replace(rate_max=rate_max)), ms[0])
    _run_compiled("ab", (params, grads, ms, vs, vars_), sc, lambda: ab_foreach(params, grads, ms, vs, vars_, s))
