"""AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2) steps as a public functional API, like ``torch.optim.adam.adam``.

:func:`adabayes_step` and :func:`adabayes_fp_step` update lists of parameters and their state in place; every
hyperparameter is keyword-only. They validate, then :func:`dispatch` runs each *bucket* (tensors on one device with
one dtype) through one kernel path of :data:`PATHS`, chosen by :func:`choose_path`. The optimiser classes of
:mod:`filtering.torch_adapter` are thin wrappers that keep the state and call :func:`dispatch` with constants
validated once per step.

Conventions (DESIGN.md): ``p.grad`` is the gradient of the *mean* loss over ``batch_size`` examples, so the paper's
summed ascent gradient is ``g = -batch_size * p.grad``; σ² = ``lr_sgd / batch_size`` (Eq. 23); ``weight_decay`` is
λ of Eq. 19a per step. ``lr = c · eta``: ``eta`` is the filter's η, ``c`` the scheduler's factor that scales the step
and λ. The state is kept in the units of ``p.grad`` (see :mod:`filtering._torch_kernels`).

Paths: the single-tensor loop, ``torch._foreach_*`` ops, the capturable (CUDA-graph safe) expressions, their
torch.compile (``compiled``), and the fused kernels ``numba`` (CPU, :mod:`filtering._fused_cpu`; the CPU default and
``fused=True``) and ``triton`` (CUDA, :mod:`filtering._triton_kernels`; the CUDA default and ``fused=True``), which
are imported at their first step and fall back to ``compiled`` where numba / Triton cannot be imported. Adding a
kernel path is one entry in :data:`PATHS` (and, to make ``fused=True`` pick it on a device type, one in
:data:`FUSED`); a kernel follows the protocol in :mod:`filtering._torch_kernels`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _torch_kernels as K
from ._torch_kernels import ABConstants, ABTensors, FPConstants, FPTensors, KernelCache
from .ou import variance_predict_coefficients
from .validation import (
    check_batch_size,
    check_betas,
    check_flag,
    check_ou_stable,
    check_positive,
    check_predict,
    check_unit_interval,
)

__all__ = [
    "FALLBACK",
    "FUSED",
    "FUSED_BY_DEFAULT",
    "PATHS",
    "REQUIRES",
    "Hyperparameters",
    "KernelCache",
    "KernelPath",
    "adabayes_constants",
    "adabayes_fp_constants",
    "adabayes_fp_step",
    "adabayes_step",
    "check_flags",
    "choose_path",
    "dispatch",
    "fused_path",
    "hyperparameters",
    "path_available",
]


# --------------------------------------------------------------------------------------------------------------
# hyperparameters


class Hyperparameters(NamedTuple):
    """One call's validated hyperparameters, as Python floats (a NumPy or 0-d tensor lr becomes a float)."""

    lr: float
    eta: float
    lr_scale: float  # c = lr / eta, the scheduler's factor (exactly 1.0 at constant lr)
    lr_sgd: float
    batch_size: float
    sigma2: float  # Eq. 23
    beta1: float
    beta2: float
    weight_decay: float


def hyperparameters(
    *, lr: object, eta: object, lr_sgd: object, batch_size: object, betas: object, weight_decay: object
) -> Hyperparameters:
    """Validate and convert; raises ValueError (TypeError for a non-number) naming the first bad argument.

    ``lr`` may be 0 (a schedule that stops the parameters); ``eta`` must be > 0; ``lr_sgd`` may be inf.
    """
    lr_f = check_positive("lr", lr, allow_zero=True)
    eta_f = check_positive("eta (η of the filter: the group's lr when it was added)", eta)
    lr_sgd_f = check_positive("lr_sgd", lr_sgd, allow_inf=True)
    batch = check_batch_size(batch_size)
    beta1, beta2 = check_betas(betas)
    wd = check_unit_interval("weight_decay", weight_decay)
    sigma2 = lr_sgd_f / batch  # Eq. 23
    return Hyperparameters(lr_f, eta_f, lr_f / eta_f, lr_sgd_f, batch, sigma2, beta1, beta2, wd)


def adabayes_constants(hp: Hyperparameters, *, predict: object = "paper", smooth_g2: object = False) -> ABConstants:
    """The step-independent scalars of an AdaBayes step (Eq. 17b's coefficients, decay, scale factor)."""
    check_predict(predict)
    smooth = bool(check_flag("smooth_g2", smooth_g2))
    if predict == "paper":
        check_ou_stable(hp.eta, hp.sigma2)
    factor, noise = variance_predict_coefficients(hp.eta, hp.sigma2, str(predict))  # Eq. 17b
    return ABConstants(
        beta1=hp.beta1,
        beta2=hp.beta2,
        factor=float(factor),
        noise=float(noise),
        batch_size=hp.batch_size,
        decay=1.0 - hp.lr_scale * hp.weight_decay,  # Eq. 19a
        lr_scale=hp.lr_scale,
        sigma2_inf=hp.sigma2 == float("inf"),
        smooth_g2=smooth,
    )


def adabayes_fp_constants(hp: Hyperparameters) -> FPConstants:
    """The step-independent scalars of an AdaBayes-FP step (``k = η / (2 η_SGD)`` of Eq. 21, decay, scale)."""
    return FPConstants(
        beta1=hp.beta1,
        beta2=hp.beta2,
        k=hp.eta / (2.0 * hp.lr_sgd),  # = η / (2 σ² B), Eqs. 21, 23
        eta=hp.eta,
        decay=1.0 - hp.lr_scale * hp.weight_decay,  # Eq. 19a
        lr_scale=hp.lr_scale,
    )


def check_flags(*, foreach: object, fused: object, capturable: object, maximize: object) -> None:
    """Validate the implementation flags: ``foreach``/``fused`` None or bool, ``capturable``/``maximize`` bool."""
    foreach_b = check_flag("foreach", foreach, allow_none=True)
    fused_b = check_flag("fused", fused, allow_none=True)
    capturable_b = check_flag("capturable", capturable)
    check_flag("maximize", maximize)
    if foreach_b and fused_b:
        raise ValueError("foreach and fused cannot both be True")
    if fused_b and capturable_b:
        raise ValueError(
            "fused=True and capturable=True cannot be combined: the fused paths move their scalars to the device "
            "at every step; use capturable=True alone (CUDA graphs) or torch.compile(opt.step)"
        )


# --------------------------------------------------------------------------------------------------------------
# kernel paths


class KernelPath(NamedTuple):
    """One implementation of both steps (see the kernel protocol in :mod:`filtering._torch_kernels`).

    Attributes
    ----------
    adabayes, adabayes_fp : callable
        ``kernel(tensors, counts, const, cache) -> None``.
    device_counts : bool
        The kernel takes the step counts as a 1-D float64 tensor on the bucket's device (no host synchronisation)
        rather than as a list of Python ints.
    """

    adabayes: Callable[..., None]
    adabayes_fp: Callable[..., None]
    device_counts: bool


def _lazy(module: str, name: str) -> Callable[..., None]:
    """Kernel ``name`` of ``filtering.<module>``, imported at its first call (numba and Triton load only when used)."""

    def kernel(*args: Any) -> None:
        return getattr(_module(module), name)(*args)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


@functools.cache
def _module(module: str) -> Any:
    return importlib.import_module(f"{__package__}.{module}")


PATHS: dict[str, KernelPath] = {
    "single": KernelPath(K.ab_single, K.fp_single, device_counts=False),
    "foreach": KernelPath(K.ab_foreach, K.fp_foreach, device_counts=False),
    "capturable": KernelPath(K.ab_capturable, K.fp_capturable, device_counts=True),
    "compiled": KernelPath(K.ab_compiled, K.fp_compiled, device_counts=True),
    "numba": KernelPath(_lazy("_fused_cpu", "ab_fused_cpu"), _lazy("_fused_cpu", "fp_fused_cpu"), device_counts=False),
    "triton": KernelPath(
        _lazy("_triton_kernels", "ab_triton"), _lazy("_triton_kernels", "fp_triton"), device_counts=True
    ),
}
"""Every kernel path by name: ``numba`` (:mod:`filtering._fused_cpu`, CPU tensors) and ``triton``
(:mod:`filtering._triton_kernels`, CUDA tensors; CPU tensors under ``TRITON_INTERPRET=1``) are the fused kernels."""

FUSED: dict[str, str] = {"cuda": "triton", "cpu": "numba"}
"""The path ``fused=True`` runs on each device type, when :func:`path_available` says it can run (else its
:data:`FALLBACK`)."""

FALLBACK: dict[str, str] = {"triton": "compiled", "numba": "compiled"}
"""Where a fused path whose package is missing falls back to (``compiled``: torch.compile of the device kernel)."""

REQUIRES: dict[str, str] = {"numba": "_fused_cpu", "triton": "_triton_kernels"}
"""The module of ``filtering`` each path's kernels live in (it imports numba / triton): imported once per process
to check the path can run."""


@functools.cache
def _importable(module: str) -> bool:
    """Whether ``filtering.<module>`` imports (a missing or broken numba / triton install makes it fail)."""
    try:
        _module(module)
    except ImportError:
        return False
    return True


def path_available(name: str) -> bool:
    """Whether kernel path ``name`` can run here (the module of :data:`REQUIRES` imports, if it needs one)."""
    return name not in REQUIRES or _importable(REQUIRES[name])


def fused_path(device_type: str) -> str:
    """The path ``fused=True`` runs on ``device_type``: :data:`FUSED`, or its :data:`FALLBACK` if unavailable."""
    name = FUSED[device_type]
    while not path_available(name):
        name = FALLBACK[name]
    return name


FUSED_BY_DEFAULT: dict[str, Callable[[], bool]] = {
    "cuda": functools.partial(path_available, "triton"),
    "cpu": functools.partial(path_available, "numba"),
}
"""Device types on which ``fused=None, foreach=None`` runs the fused path (:func:`fused_path`), when the check
returns True: CUDA with Triton importable; CPU with numba importable (its kernels measured 4-10x faster than the
single-tensor loop, the previous CPU default, on 2.3 M and 25.6 M parameters with 1 and 2 threads: BENCHMARKS.md,
``benchmarks/optimizer_step.py``)."""


def choose_path(device: torch.device, *, foreach: bool | None, fused: bool | None, capturable: bool) -> str:
    """The :data:`PATHS` key for one bucket (like torch/optim/adam.py, chosen per step).

    Inside ``torch.compile`` (the caller's graph) and for ``capturable=True``: ``"capturable"``. ``fused=True``:
    :func:`fused_path` of the device type (``numba`` on CPU, ``triton`` on CUDA; ``compiled``, i.e.
    torch.compile, where that package is missing). Defaults (``fused=None, foreach=None``): the fused path where
    :data:`FUSED_BY_DEFAULT` says so (CPU with numba, CUDA with Triton), else ``foreach`` on CUDA and the
    single-tensor loop elsewhere (faster than foreach on small CPUs, see BENCHMARKS.md). ``foreach=False`` /
    ``fused=False`` always give the single-tensor loop, ``foreach=True`` the foreach ops.
    """
    if torch.compiler.is_compiling():
        return "capturable"
    if fused:
        if device.type not in FUSED:
            raise RuntimeError(f"fused=True supports {' and '.join(sorted(FUSED))} tensors only, got {device}")
        return fused_path(device.type)
    if capturable:
        return "capturable"
    if fused is None and foreach is None and FUSED_BY_DEFAULT.get(device.type, bool)():
        return fused_path(device.type)
    use_foreach = foreach if foreach is not None else device.type == "cuda"
    return "foreach" if use_foreach else "single"


# --------------------------------------------------------------------------------------------------------------
# dispatch


def _as_real(t: Tensor) -> Tensor:
    """Complex tensors as real pairs (``torch.view_as_real``: a view, so in-place updates reach ``t``)."""
    return torch.view_as_real(t) if t.is_complex() else t


def _pick(tensors: Sequence[list[Tensor] | None], idx: list[int]) -> list[list[Tensor] | None]:
    return [None if lst is None else [lst[i] for i in idx] for lst in tensors]


def _buckets(params: list[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        out.setdefault((p.device, p.dtype), []).append(i)
    return out


def _counts(path: KernelPath, steps: list[Tensor], device: torch.device) -> list[int] | Tensor:
    """The step number being taken (state step + 1) per tensor, in the form the kernel path takes."""
    if path.device_counts:
        return torch.stack(steps).to(device=device, dtype=torch.float64, non_blocking=True) + 1.0
    return [int(s) + 1 for s in torch.stack(steps).tolist()]  # one host read, not one .item() per tensor


def dispatch(
    kernel: str,
    tensors: ABTensors | FPTensors,
    state_steps: list[Tensor],
    const: ABConstants | FPConstants,
    *,
    maximize: bool,
    foreach: bool | None,
    fused: bool | None,
    capturable: bool,
    cache: KernelCache | None = None,
) -> None:
    """Run ``kernel`` (``"adabayes"`` or ``"adabayes_fp"``) on already validated inputs, bucket by bucket.

    Complex tensors are viewed as real pairs; ``maximize`` negates the gradients (into new tensors: ``p.grad``
    itself is never modified). Each bucket's ``state_steps`` (0-d float tensors) are incremented only once its
    kernel has run, so a step that raises can be retried with the same count.
    """
    if not tensors.params:
        return
    cache = cache if cache is not None else KernelCache()
    if maximize:
        tensors = tensors._replace(grads=list(torch._foreach_neg(tensors.grads)))
    if any(p.is_complex() for p in tensors.params):  # (a complex parameter has complex gradient and state)
        tensors = type(tensors)._make(None if lst is None else [_as_real(t) for t in lst] for lst in tensors)
    for (device, _), idx in _buckets(tensors.params).items():
        path = PATHS[choose_path(device, foreach=foreach, fused=fused, capturable=capturable)]
        steps = [state_steps[i] for i in idx]
        bucket = type(tensors)._make(_pick(tensors, idx))
        getattr(path, kernel)(bucket, _counts(path, steps, device), const, cache)
        torch._foreach_add_(steps, 1.0)


def _check_lists(tensors: Sequence[list[Tensor] | None], names: Sequence[str], state_steps: list[Any]) -> None:
    n = len(tensors[0] or [])
    for name, lst in zip(names, tensors, strict=True):
        if lst is not None and len(lst) != n:
            raise ValueError(f"{name} must have one entry per parameter ({n}), got {len(lst)}")
    if len(state_steps) != n:
        raise ValueError(f"state_steps must have one entry per parameter ({n}), got {len(state_steps)}")
    if not all(torch.is_tensor(s) and s.dim() == 0 and s.is_floating_point() for s in state_steps):
        raise TypeError("state_steps must be 0-d floating-point tensors (the steps taken so far), e.g. torch.zeros(())")


def adabayes_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    var_posts: Sequence[Tensor],
    state_steps: Sequence[Tensor],
    *,
    exp_avg_sqs: Sequence[Tensor] | None = None,
    lr: float,
    lr_sgd: float,
    batch_size: float,
    beta1: float,
    beta2: float = 0.999,
    eta: float | None = None,
    weight_decay: float = 0.0,
    predict: str = "paper",
    smooth_g2: bool = False,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    cache: KernelCache | None = None,
) -> None:
    """One AdaBayes step (Alg. 1) on every tensor, in place.

    Per entry, with ``g = -B p.grad``: ``m <- β1 m + (1-β1) p.grad`` (Eq. 2); ``σ²_prior = factor σ²_post + noise``
    (Eq. 17b); ``σ²_post = 1 / (1/σ²_prior + g²)`` (Eq. 18a with H ≈ g², Eq. 42); ``p <- (1 - cλ) p + c σ²_post ⟨g⟩``
    with ``⟨g⟩ = -B m / (1-β1^t)`` (Eq. 19). See :class:`filtering.torch_adapter.AdaBayes` for the options.

    Parameters
    ----------
    params, grads, exp_avgs, var_posts : sequence of Tensor
        Parameters (real or complex; fp16/bf16 allowed), their gradients (never modified), the momentum ``m`` and
        σ²_post, each of the parameter's shape; state in the parameter's dtype, or fp32 for fp16/bf16 parameters.
        Start ``exp_avgs`` at 0 and ``var_posts`` at σ² = ``lr_sgd / batch_size``.
    state_steps : sequence of 0-d float Tensor
        Steps taken so far (start at 0); each is incremented by 1. On the parameter's device for ``capturable``.
    exp_avg_sqs : sequence of Tensor, optional
        The β2-EMA of ``p.grad**2`` (Eq. 4), updated when given: the ⟨g²⟩ read-outs and ``smooth_g2`` need it.
    lr, lr_sgd, batch_size, beta1, beta2, eta, weight_decay, predict, smooth_g2 : keyword-only
        As the optimiser's hyperparameters; ``eta`` defaults to ``lr`` (``c = lr / eta = 1``).
    maximize, foreach, fused, capturable : keyword-only
        As in ``torch.optim.AdamW``.
    cache : KernelCache, optional
        Where compiled kernels remember what dynamo refused to compile (an optimiser passes its own).
    """
    hp = hyperparameters(
        lr=lr,
        eta=lr if eta is None else eta,
        lr_sgd=lr_sgd,
        batch_size=batch_size,
        betas=(beta1, beta2),
        weight_decay=weight_decay,
    )
    check_flags(foreach=foreach, fused=fused, capturable=capturable, maximize=maximize)
    if smooth_g2 and exp_avg_sqs is None:
        raise ValueError("smooth_g2=True needs exp_avg_sqs (the ⟨g²⟩ EMA that replaces g² in Eq. 18a)")
    const = adabayes_constants(hp, predict=predict, smooth_g2=smooth_g2)
    tensors = ABTensors(
        list(params), list(grads), list(exp_avgs), None if exp_avg_sqs is None else list(exp_avg_sqs), list(var_posts)
    )
    _check_lists(tensors, ABTensors._fields, list(state_steps))
    dispatch(
        "adabayes",
        tensors,
        list(state_steps),
        const,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        cache=cache,
    )


def adabayes_fp_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    state_steps: Sequence[Tensor],
    *,
    lr: float,
    lr_sgd: float,
    batch_size: float,
    beta1: float,
    beta2: float,
    eta: float | None = None,
    weight_decay: float = 0.0,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    cache: KernelCache | None = None,
) -> None:
    """One AdaBayes-FP step (Alg. 2) on every tensor, in place.

    ``1/σ²_post = 1/(2σ²) + sqrt(1/(4σ⁴) + ⟨g²⟩/η²)`` (Eq. 21) from the debiased EMAs of Eqs. 2 and 4, then
    ``p <- (1 - cλ) p + c σ²_post ⟨g⟩`` (Eq. 19). Arguments as in :func:`adabayes_step` (start ``exp_avg_sqs`` at 0).
    """
    hp = hyperparameters(
        lr=lr,
        eta=lr if eta is None else eta,
        lr_sgd=lr_sgd,
        batch_size=batch_size,
        betas=(beta1, beta2),
        weight_decay=weight_decay,
    )
    check_flags(foreach=foreach, fused=fused, capturable=capturable, maximize=maximize)
    tensors = FPTensors(list(params), list(grads), list(exp_avgs), list(exp_avg_sqs))
    _check_lists(tensors, FPTensors._fields, list(state_steps))
    dispatch(
        "adabayes_fp",
        tensors,
        list(state_steps),
        adabayes_fp_constants(hp),
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        capturable=capturable,
        cache=cache,
    )
