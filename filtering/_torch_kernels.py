"""Per-step tensor kernels behind :mod:`filtering.torch_functional` (private; imports torch).

**Kernel protocol.** Every implementation of one AdaBayes / AdaBayes-FP step over a *bucket* (tensors sharing device
and dtype) is a function ``kernel(tensors, counts, const, cache) -> None`` that updates the tensors in place:

- ``tensors``: :class:`ABTensors` or :class:`FPTensors`, lists of equal length (real tensors: complex parameters
  arrive as ``torch.view_as_real`` views; state in the state dtype, parameters possibly fp16 / bf16);
- ``counts``: the step number ``t`` being taken, per tensor: ``list[int]`` for host kernels, or a 1-D float64 tensor
  on the bucket's device for device kernels (``KernelPath.device_counts`` in :mod:`filtering.torch_functional`);
- ``const``: :class:`ABConstants` / :class:`FPConstants`, the step-independent scalars (Python floats);
- ``cache``: the caller's :class:`KernelCache` (compiled functions and what dynamo refused to compile).

Implementations here: ``*_single`` (one tensor at a time) and ``*_foreach`` (``torch._foreach_*``) as in-place op
chains with Python-float scalars; ``*_capturable`` (no host synchronisation: CUDA-graph safe and traceable by
``torch.compile``) and ``*_compiled`` (the same function through ``torch.compile``) as out-of-place expressions that
call :mod:`filtering.kalman_step` for Eqs. 17b and 18a. The in-place chains inline those two equations for speed;
``tests/test_torch_parity.py`` compares them with the primitives.

**Units.** The state is kept in the units of ``p.grad`` (the gradient of the *mean* loss, descent direction): ``m``
and ``v`` are the raw EMAs of ``p.grad`` and ``p.grad**2`` (Eqs. 2 and 4), so the paper's summed-ascent moments are
``⟨g⟩ = -B m / (1 - β1^t)`` and ``⟨g²⟩ = B² v / (1 - β2^t)``. AdaBayes's ``var`` is σ²_post itself (paper units).

**AdaBayes-FP in these units.** With ``k = η / (2 η_SGD)`` (= η / (2 σ² B)) Eq. 21 gives
``B σ²_post = η / (k + sqrt(k² + v̂))`` with ``v̂ = v / (1 - β2^t)``, hence
``p <- (1 - cλ) p - c η sqrt(bc2)/bc1 · m / (sqrt(v + k² bc2) + k sqrt(bc2))`` (Eqs. 19, 21): an AdamW step whose ε
is replaced by the prior term; ``k = 0`` (``lr_sgd = inf``) is AdamW with ε = 0 (Eq. 27).

**Overflow order (issue 13).** Every path forms σ²_post·m (AdaBayes) or m / denominator (AdaBayes-FP) *before*
multiplying by the step's scale ``-c B / (1 - β1^t)``: that product is small whenever the step is, so a finite
gradient near the dtype's maximum (σ²_post = 0) cannot turn the parameter into NaN through ``scale · m = inf``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import kalman_step

__all__ = [
    "ABConstants",
    "ABTensors",
    "CompiledKernels",
    "FPConstants",
    "FPTensors",
    "KernelCache",
    "ab_capturable",
    "ab_compiled",
    "ab_foreach",
    "ab_single",
    "fp_capturable",
    "fp_compiled",
    "fp_foreach",
    "fp_single",
]


class ABTensors(NamedTuple):
    """The tensors one AdaBayes step reads and updates (lists of equal length).

    ``exp_avg_sqs`` is ``None`` when the ⟨g²⟩ EMA is not kept (``track_g2=False``; Alg. 1 does not need it).
    """

    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor] | None
    var_posts: list[Tensor]


class FPTensors(NamedTuple):
    """The tensors one AdaBayes-FP step reads and updates (lists of equal length)."""

    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]


class ABConstants(NamedTuple):
    """Step-independent scalars of an AdaBayes step (Python floats / bools).

    Attributes
    ----------
    beta1, beta2 : float
        EMA coefficients of Eqs. 2 and 4.
    factor, noise : float
        ``σ²_prior = factor σ²_post + noise`` (Eq. 17b or its exponential variant).
    batch_size : float
        B: the paper's ``g² = B² p.grad²`` (Eq. 18a) and ``⟨g⟩ = -B m / (1 - β1^t)``.
    decay : float
        ``1 - cλ`` (Eq. 19a; ``c = lr / eta`` is the scheduler's factor).
    lr_scale : float
        ``c = lr / eta`` multiplying the step of Eq. 19b.
    sigma2_inf : bool
        σ² = inf (``lr_sgd = inf``): σ²_post may be inf, so the step uses it clamped to the dtype's largest value
        (``m = 0`` times an infinite σ²_post then gives 0, as :func:`filtering.rules.adabayes` does).
    smooth_g2 : bool
        Use ⟨g²⟩ (the debiased β2 EMA of Eq. 4) instead of this step's g² as H in Eq. 18a.
    """

    beta1: float
    beta2: float
    factor: float
    noise: float
    batch_size: float
    decay: float
    lr_scale: float
    sigma2_inf: bool
    smooth_g2: bool


class FPConstants(NamedTuple):
    """Step-independent scalars of an AdaBayes-FP step (Python floats).

    Attributes
    ----------
    beta1, beta2 : float
        EMA coefficients of Eqs. 2 and 4.
    k : float
        ``η / (2 η_SGD)`` = ``η / (2 σ² B)`` (Eqs. 21, 23); 0 for ``lr_sgd = inf``.
    eta : float
        η of the filter.
    decay, lr_scale : float
        As in :class:`ABConstants`.
    """

    beta1: float
    beta2: float
    k: float
    eta: float
    decay: float
    lr_scale: float


# --------------------------------------------------------------------------------------------------------------
# scalars of one step (host kernels: Python floats per step count)


class _ABScalars(NamedTuple):
    w1: float  # 1 - β1 (Eq. 2)
    beta2: float
    w2: float  # 1 - β2 (Eq. 4)
    factor: float  # Eq. 17b
    noise: float  # Eq. 17b
    b2: float  # B², H ≈ B² p.grad² (Eqs. 18a, 42)
    v_scale: float  # B² / (1 - β2^t) when smooth_g2 (H ≈ ⟨g²⟩), else 0
    rate_max: float  # clamp of σ²_post in the step (inf: none)
    decay: float  # Eq. 19a
    scale: float  # -c B / (1 - β1^t), multiplying m σ²_post (Eq. 19b)


class _FPScalars(NamedTuple):
    w1: float
    beta2: float
    w2: float
    k2bc2: float  # k² (1 - β2^t), under the square root (Eq. 21)
    kbc: float  # k sqrt(1 - β2^t), added to it (Eq. 21)
    tiny: float  # lower clamp of the denominator (> 0 only when k is 0 or below the dtype's tiny)
    decay: float
    scale: float  # -c η sqrt(1 - β2^t) / (1 - β1^t), multiplying m / denominator (Eq. 19b)


def _rate_max(const: ABConstants, dtype: torch.dtype) -> float:
    return torch.finfo(dtype).max if const.sigma2_inf else math.inf


def _fp_tiny(const: FPConstants, dtype: torch.dtype) -> float:
    """The denominator's clamp: the dtype's tiny when k sqrt(1 - β2) (its smallest prior term) is below it."""
    tiny = torch.finfo(dtype).tiny
    return tiny if const.k * math.sqrt(1.0 - const.beta2) < tiny else 0.0


def _ab_scalars(const: ABConstants, count: int, dtype: torch.dtype) -> _ABScalars:
    batch = const.batch_size
    return _ABScalars(
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        factor=const.factor,
        noise=const.noise,
        b2=batch * batch,
        v_scale=batch * batch / (1.0 - const.beta2**count) if const.smooth_g2 else 0.0,
        rate_max=_rate_max(const, dtype),
        decay=const.decay,
        scale=-const.lr_scale * batch / (1.0 - const.beta1**count),
    )


def _fp_scalars(const: FPConstants, count: int, dtype: torch.dtype) -> _FPScalars:
    bc2 = 1.0 - const.beta2**count
    sqrt_bc2 = math.sqrt(bc2)
    return _FPScalars(
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        k2bc2=const.k * const.k * bc2,
        kbc=const.k * sqrt_bc2,
        tiny=_fp_tiny(const, dtype),
        decay=const.decay,
        scale=-const.lr_scale * const.eta * sqrt_bc2 / (1.0 - const.beta1**count),
    )


def _by_count(counts: Sequence[int]) -> dict[int, list[int]]:
    """Indices of the tensors at each step count (foreach ops take one Python scalar per call)."""
    out: dict[int, list[int]] = {}
    for i, c in enumerate(counts):
        out.setdefault(c, []).append(i)
    return out


def _pick(lists: Iterable[list[Tensor] | None], idx: list[int]) -> list[list[Tensor] | None]:
    return [None if lst is None else [lst[i] for i in idx] for lst in lists]


# --------------------------------------------------------------------------------------------------------------
# single-tensor loop (in-place op chains, Python-float scalars)


def _apply_step(p: Tensor, state_dtype: torch.dtype, decay: float, scale: float, update: Tensor) -> None:
    """``p <- decay p + scale update`` (Eq. 19), in the state dtype and written back to ``p``.

    ``update`` is m σ²_post or m / denominator, formed before the scale (see the module docstring). ``scale = 0``
    (lr scheduled to 0) leaves ``p`` alone even where ``update`` overflowed.
    """
    work = p if p.dtype == state_dtype else p.to(state_dtype)
    if decay != 1.0:
        work.mul_(decay)  # Eq. 19a
    if scale != 0.0:
        work.add_(update, alpha=scale)  # Eq. 19b
    if work is not p:
        p.copy_(work)


def _ab_one(p: Tensor, g: Tensor, m: Tensor, v: Tensor | None, var: Tensor, s: _ABScalars) -> None:
    g = g.to(m.dtype)
    m.lerp_(g, s.w1)  # Eq. 2
    if v is not None:
        v.mul_(s.beta2).addcmul_(g, g, value=s.w2)  # Eq. 4
    if s.factor != 1.0:
        var.mul_(s.factor)  # Eq. 17b (inlined kalman_step.predict_variance)
    var.add_(s.noise).reciprocal_()  # Eq. 17b; now the prior precision
    if s.v_scale and v is not None:
        var.add_(v, alpha=s.v_scale)  # Eq. 18a with H ≈ ⟨g²⟩ (smooth_g2)
    else:
        var.addcmul_(g, g, value=s.b2)  # Eq. 18a with H ≈ g² (Eq. 42)
    var.reciprocal_()  # Eq. 18a (inlined kalman_step.update_variance)
    rate = var.clamp_max(s.rate_max) if s.rate_max != math.inf else var
    _apply_step(p, m.dtype, s.decay, s.scale, torch.mul(m, rate))


def ab_single(tensors: ABTensors, counts: list[int], const: ABConstants, _cache: KernelCache) -> None:
    """AdaBayes step, one tensor at a time (host kernel)."""
    params, grads, ms, vs, vars_ = tensors
    for i, (p, count) in enumerate(zip(params, counts, strict=True)):
        s = _ab_scalars(const, count, ms[i].dtype)
        _ab_one(p, grads[i], ms[i], None if vs is None else vs[i], vars_[i], s)


def _fp_one(p: Tensor, g: Tensor, m: Tensor, v: Tensor, s: _FPScalars) -> None:
    g = g.to(m.dtype)
    m.lerp_(g, s.w1)  # Eq. 2
    v.mul_(s.beta2).addcmul_(g, g, value=s.w2)  # Eq. 4
    den = torch.add(v, s.k2bc2).sqrt_() if s.k2bc2 else v.sqrt()  # Eq. 21 (see the module docstring)
    if s.kbc:
        den.add_(s.kbc)
    if s.tiny:
        den.clamp_min_(s.tiny)
    _apply_step(p, m.dtype, s.decay, s.scale, torch.div(m, den, out=den))


def fp_single(tensors: FPTensors, counts: list[int], const: FPConstants, _cache: KernelCache) -> None:
    """AdaBayes-FP step, one tensor at a time (host kernel)."""
    params, grads, ms, vs = tensors
    for i, (p, count) in enumerate(zip(params, counts, strict=True)):
        _fp_one(p, grads[i], ms[i], vs[i], _fp_scalars(const, count, ms[i].dtype))


# --------------------------------------------------------------------------------------------------------------
# foreach (multi-tensor) ops: the same arithmetic as the single-tensor loop, bit for bit


def _foreach_apply(
    params: list[Tensor],
    state_dtype: torch.dtype,
    decay: float,
    scale: float,
    updates: list[Tensor] | tuple[Tensor, ...],
) -> None:
    work = params if params[0].dtype == state_dtype else [p.to(state_dtype) for p in params]
    if decay != 1.0:
        torch._foreach_mul_(work, decay)  # Eq. 19a
    if scale != 0.0:
        torch._foreach_add_(work, updates, alpha=scale)  # Eq. 19b
    if work is not params:
        torch._foreach_copy_(params, work)


def _foreach_grads(grads: list[Tensor], state_dtype: torch.dtype) -> list[Tensor]:
    return grads if grads[0].dtype == state_dtype else [g.to(state_dtype) for g in grads]


def _ab_foreach_bucket(tensors: ABTensors, s: _ABScalars) -> None:
    params, grads, ms, vs, vars_ = tensors
    grads = _foreach_grads(grads, ms[0].dtype)
    torch._foreach_lerp_(ms, grads, s.w1)  # Eq. 2
    if vs is not None:
        torch._foreach_mul_(vs, s.beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=s.w2)  # Eq. 4
    if s.factor != 1.0:
        torch._foreach_mul_(vars_, s.factor)  # Eq. 17b
    torch._foreach_add_(vars_, s.noise)  # Eq. 17b
    torch._foreach_reciprocal_(vars_)
    if s.v_scale and vs is not None:
        torch._foreach_add_(vars_, vs, alpha=s.v_scale)  # Eq. 18a, H ≈ ⟨g²⟩
    else:
        torch._foreach_addcmul_(vars_, grads, grads, value=s.b2)  # Eq. 18a, H ≈ g²
    torch._foreach_reciprocal_(vars_)  # Eq. 18a
    rates = torch._foreach_clamp_max(vars_, s.rate_max) if s.rate_max != math.inf else vars_
    _foreach_apply(params, ms[0].dtype, s.decay, s.scale, torch._foreach_mul(ms, rates))


def ab_foreach(tensors: ABTensors, counts: list[int], const: ABConstants, _cache: KernelCache) -> None:
    """AdaBayes step with ``torch._foreach_*`` ops (host kernel; one call per distinct step count)."""
    for count, idx in _by_count(counts).items():
        sub = ABTensors._make(_pick(tensors, idx))
        _ab_foreach_bucket(sub, _ab_scalars(const, count, tensors.exp_avgs[0].dtype))


def _fp_foreach_bucket(tensors: FPTensors, s: _FPScalars) -> None:
    params, grads, ms, vs = tensors
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
    _foreach_apply(params, ms[0].dtype, s.decay, s.scale, torch._foreach_div(ms, den))


def fp_foreach(tensors: FPTensors, counts: list[int], const: FPConstants, _cache: KernelCache) -> None:
    """AdaBayes-FP step with ``torch._foreach_*`` ops (host kernel; one call per distinct step count)."""
    for count, idx in _by_count(counts).items():
        sub = FPTensors._make(_pick(tensors, idx))
        _fp_foreach_bucket(sub, _fp_scalars(const, count, tensors.exp_avgs[0].dtype))


# --------------------------------------------------------------------------------------------------------------
# device kernels: scalars that depend on the step are computed from the step tensors on the device, so there is no
# host synchronisation (CUDA-graph capture, torch.compile tracing). ``sc`` holds the step-independent scalars as
# Python floats (capturable: baked into the kernels) or as 0-d tensors (compiled: a new lr does not recompile).


def _ab_multi(tensors: ABTensors, counts: Tensor, sc: Sequence[Any], smooth_g2: bool) -> None:
    """AdaBayes over a bucket with the step count ``counts[i]`` (1-D float64) of each tensor."""
    beta1, beta2, factor, noise, batch, rate_max, decay, c = sc
    params, grads, ms, vs, vars_ = tensors
    for i, (p, g, m, var) in enumerate(zip(params, grads, ms, vars_, strict=True)):
        count = counts[i]
        g = g.to(m.dtype)
        m_new = m + (1.0 - beta1) * (g - m)  # Eq. 2
        h = batch * batch * (g * g)  # Eq. 42: H ≈ g² in summed units
        if vs is not None:
            v_new = beta2 * vs[i] + (1.0 - beta2) * (g * g)  # Eq. 4
            if smooth_g2:
                h = batch * batch * v_new / (1.0 - beta2**count)  # H ≈ ⟨g²⟩
            vs[i].copy_(v_new)
        var_prior = kalman_step.predict_variance(var, factor, noise)  # Eq. 17b
        var_post = kalman_step.update_variance(var_prior, h)  # Eq. 18a
        scale = -c * batch / (1.0 - beta1**count)  # Eq. 19b with ⟨g⟩ = -B m / (1 - β1^t)
        p_dec = decay * p.to(m.dtype)  # Eq. 19a
        update = m_new * torch.clamp_max(var_post, rate_max)  # m σ²_post before the scale: no overflow
        p_new = torch.where(scale != 0.0, p_dec + scale * update, p_dec)  # c = 0: p alone even if update = inf
        m.copy_(m_new)
        var.copy_(var_post)
        p.copy_(p_new)


def _fp_multi(tensors: FPTensors, counts: Tensor, sc: Sequence[Any]) -> None:
    """AdaBayes-FP over a bucket with the step count ``counts[i]`` (1-D float64) of each tensor."""
    beta1, beta2, k, tiny, decay, c, eta = sc
    params, grads, ms, vs = tensors
    for i, (p, g, m, v) in enumerate(zip(params, grads, ms, vs, strict=True)):
        count = counts[i]
        bc2 = 1.0 - beta2**count
        g = g.to(m.dtype)
        m_new = m + (1.0 - beta1) * (g - m)  # Eq. 2
        v_new = beta2 * v + (1.0 - beta2) * (g * g)  # Eq. 4
        den = torch.clamp_min(torch.sqrt(v_new + k * k * bc2) + k * bc2**0.5, tiny)  # Eq. 21
        scale = -c * eta * bc2**0.5 / (1.0 - beta1**count)  # Eq. 19b
        p_dec = decay * p.to(m.dtype)  # Eq. 19a
        p_new = torch.where(scale != 0.0, p_dec + scale * (m_new / den), p_dec)  # m / den before the scale
        m.copy_(m_new)
        v.copy_(v_new)
        p.copy_(p_new)


def _ab_device_scalars(const: ABConstants, dtype: torch.dtype) -> tuple[float, ...]:
    return (
        const.beta1,
        const.beta2,
        const.factor,
        const.noise,
        const.batch_size,
        _rate_max(const, dtype),
        const.decay,
        const.lr_scale,
    )


def _fp_device_scalars(const: FPConstants, dtype: torch.dtype) -> tuple[float, ...]:
    return (const.beta1, const.beta2, const.k, _fp_tiny(const, dtype), const.decay, const.lr_scale, const.eta)


def ab_capturable(tensors: ABTensors, counts: Tensor, const: ABConstants, _cache: KernelCache) -> None:
    """AdaBayes step without host synchronisation (device kernel: ``capturable=True``, inside ``torch.compile``)."""
    _ab_multi(tensors, counts, _ab_device_scalars(const, tensors.exp_avgs[0].dtype), const.smooth_g2)


def fp_capturable(tensors: FPTensors, counts: Tensor, const: FPConstants, _cache: KernelCache) -> None:
    """AdaBayes-FP step without host synchronisation (device kernel)."""
    _fp_multi(tensors, counts, _fp_device_scalars(const, tensors.exp_avgs[0].dtype))


# --------------------------------------------------------------------------------------------------------------
# compiled: the device kernels through torch.compile, scalars travelling as a 1-D tensor.
#
# The compiled code is specialised on the bucket's tensor count, shapes, strides and dtypes, and torch._dynamo keeps
# at most ``torch._dynamo.config.recompile_limit`` (8) specialisations per function, shared by every caller in the
# process. Many groups of different shapes, or params whose grad is sometimes None (the bucket changes from step to
# step), exceed it; with fullgraph=True dynamo then raises instead of compiling. Buckets that hit the limit run the
# foreach kernel instead (same numbers up to rounding), with one warning per KernelCache; buckets already compiled
# keep their compiled code.


def _recompile_limit_errors() -> tuple[type[BaseException], ...]:
    """The exception(s) torch._dynamo raises under ``fullgraph=True`` when a function's recompile limit is hit."""
    import torch._dynamo.exc as dynamo_exc

    names = ("FailOnRecompileLimitHit", "FailOnCacheLimitHit")  # the latter: older torch releases
    return tuple(getattr(dynamo_exc, n) for n in names if hasattr(dynamo_exc, n))


def _signature(tensors: Iterable[list[Tensor] | None]) -> tuple:
    """What the compiled code is specialised on, per tensor (a miss only costs one more refused compile)."""
    return tuple(None if ts is None else tuple((t.shape, t.stride(), t.dtype, t.device) for t in ts) for ts in tensors)


class CompiledKernels:
    """The compiled AdaBayes / AdaBayes-FP functions and the buckets dynamo refused to compile.

    One instance per :class:`KernelCache` (i.e. per optimiser): the refusals and the warning are remembered per
    optimiser, while the compiled code itself is cached by torch per function, process-wide.
    """

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., None]] = {}
        self.refused: dict[str, set[tuple]] = {}
        self.warned = False

    def function(self, name: str) -> Callable[..., None]:
        """``torch.compile`` of the device kernel ``name`` (``"adabayes"`` or ``"adabayes_fp"``), made once."""
        if name not in self._functions:
            fns: dict[str, Callable[..., None]] = {"adabayes": _ab_multi, "adabayes_fp": _fp_multi}
            fn = fns[name]
            self._functions[name] = torch.compile(fn, fullgraph=True, dynamic=False)
        return self._functions[name]

    def run(self, name: str, args: tuple, fallback: Callable[[], None]) -> None:
        """Run the compiled ``name`` on ``args``; ``fallback()`` for buckets past dynamo's recompile limit.

        A bucket refused once is remembered by its signature and goes straight to the fallback afterwards, so it
        does not pay a refused compile at every step. Until the first refusal no signature is computed.
        """
        refused = self.refused.setdefault(name, set())
        key = _signature(args[0]) if refused else None
        if key is not None and key in refused:
            fallback()
            return
        try:
            self.function(name)(*args)
        except _recompile_limit_errors():
            refused.add(key if key is not None else _signature(args[0]))
            self._warn_once()
            fallback()

    def _warn_once(self) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(
                "fused=True: torch._dynamo's recompile limit (torch._dynamo.config.recompile_limit) was hit by "
                "parameter buckets of new shapes; those buckets use the foreach path from now on (same numbers "
                "up to rounding, slower). Raise the limit or use fewer distinct parameter groups / shapes to "
                "keep them compiled.",
                RuntimeWarning,
                stacklevel=6,
            )


class KernelCache:
    """Per-caller store of whatever a kernel keeps between steps (an optimiser owns one).

    Today only the compiled path uses it (:attr:`compiled`); a new kernel path adds its own attribute here.
    """

    def __init__(self) -> None:
        self.compiled = CompiledKernels()


def _scalar_tensor(values: tuple[float, ...], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float64).to(device, non_blocking=True)


def ab_compiled(tensors: ABTensors, counts: Tensor, const: ABConstants, cache: KernelCache) -> None:
    """AdaBayes step through the compiled device kernel (same numbers as :func:`ab_foreach` up to rounding: the
    compiler may contract multiply-adds); :func:`ab_foreach` past dynamo's recompile limit."""
    sc = _scalar_tensor(_ab_device_scalars(const, tensors.exp_avgs[0].dtype), counts.device)

    def fallback() -> None:
        ab_foreach(tensors, [int(c) for c in counts.tolist()], const, cache)

    cache.compiled.run("adabayes", (tensors, counts, sc.unbind(), const.smooth_g2), fallback)


def fp_compiled(tensors: FPTensors, counts: Tensor, const: FPConstants, cache: KernelCache) -> None:
    """AdaBayes-FP step through the compiled device kernel (see :func:`ab_compiled`)."""
    sc = _scalar_tensor(_fp_device_scalars(const, tensors.exp_avgs[0].dtype), counts.device)

    def fallback() -> None:
        fp_foreach(tensors, [int(c) for c in counts.tolist()], const, cache)

    cache.compiled.run("adabayes_fp", (tensors, counts, sc.unbind()), fallback)
