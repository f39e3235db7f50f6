"""Triton multi-tensor step of AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2) for CUDA tensors (private).

One launch updates a whole bucket (tensors on one device sharing parameter, gradient and state dtypes): the kernel
reads a table of the tensors' addresses and sizes and a table of blocks (tensor index, first element), one
program per block of :data:`BLOCK` elements. The scalars travel as a ``(n_tensors, n_fields)`` tensor on the
device, so a new step count or a scheduled lr changes data, never the compiled kernel; the only compile-time
constants are the dtypes, whether the ⟨g²⟩ EMA is kept and whether it replaces g² (``smooth_g2``).

The arithmetic and conventions are those of :mod:`filtering._fused_cpu` (same scalar names, same formulas: state in
``p.grad`` units, σ²_post·m formed before the scale, σ²_post clamped at the dtype's maximum inside the step). fp16 /
bf16 parameters and gradients are read and written in their own dtype and computed in the state dtype (fp32), with
no working copy; the result is rounded to the parameter dtype to nearest-even (as torch's ``copy_``). fp32 division
and square root are the IEEE-rounded ones (``div_rn``, ``sqrt_rn``) and multiply-adds are not fused
(``enable_fp_fusion=False``), so a GPU computes what the numba kernel computes, operation for operation.

``TRITON_INTERPRET=1`` runs the kernels on CPU tensors through Triton's interpreter (tests); the flag is read
when a kernel is first built in a process for the current setting (:func:`_jitted`), not at import.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["AB_FIELDS", "BLOCK", "FP_FIELDS", "ab_triton", "adabayes_fp_triton_step", "adabayes_triton_step",
           "fp_triton"]  # fmt: skip

BLOCK = 1024  # elements per program
AB_FIELDS = ("w1", "beta2", "w2", "factor", "noise", "b2", "v_scale", "rate_max", "decay", "scale", "gsign")
FP_FIELDS = ("w1", "beta2", "w2", "k2bc2", "kbc", "tiny", "decay", "scale", "gsign")

Scalar = float | Sequence[float] | np.ndarray | Tensor
"""A kernel scalar: one value for all tensors, or one per tensor (1-D; a tensor stays on its device)."""


# --------------------------------------------------------------------------------------------------------------
# kernels (plain functions here, wrapped by triton.jit on first use)
#
# meta (int64): [addresses: rows x n] [sizes: n] [block tensor: nb] [block start: nb]; rows = p, g, m, v, var.


def _ab_kernel(meta, sc, n, nb, p0, g0, s0, HAS_V: tl.constexpr, SMOOTH: tl.constexpr, F64: tl.constexpr,
               NF: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip  # pragma: no cover - run by triton
    b = tl.program_id(0)
    i = tl.load(meta + 6 * n + b)
    offs = tl.load(meta + 6 * n + nb + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(meta + 5 * n + i)
    P = p0.dtype.element_ty
    G = g0.dtype.element_ty
    S = s0.dtype.element_ty
    p_ptr = tl.load(meta + i).to(tl.pointer_type(P))
    g_ptr = tl.load(meta + n + i).to(tl.pointer_type(G))
    m_ptr = tl.load(meta + 2 * n + i).to(tl.pointer_type(S))
    v_ptr = tl.load(meta + 3 * n + i).to(tl.pointer_type(S))
    var_ptr = tl.load(meta + 4 * n + i).to(tl.pointer_type(S))
    row = sc + i * NF
    w1, beta2, w2 = tl.load(row), tl.load(row + 1), tl.load(row + 2)
    factor, noise, b2, v_scale = tl.load(row + 3), tl.load(row + 4), tl.load(row + 5), tl.load(row + 6)
    rate_max, decay, scale, gsign = tl.load(row + 7), tl.load(row + 8), tl.load(row + 9), tl.load(row + 10)

    g = gsign * tl.load(g_ptr + offs, mask=mask, other=0.0).to(S)
    m = tl.load(m_ptr + offs, mask=mask, other=0.0)
    m = tl.where(w1 < 0.5, m + w1 * (g - m), g - (g - m) * (1.0 - w1))  # Eq. 2 (torch's lerp)
    tl.store(m_ptr + offs, m, mask=mask)
    h = b2 * g * g  # Eq. 42: H ≈ g² = B² p.grad²
    if HAS_V:
        v = beta2 * tl.load(v_ptr + offs, mask=mask, other=0.0) + w2 * g * g  # Eq. 4
        tl.store(v_ptr + offs, v, mask=mask)
        if SMOOTH:
            h = v_scale * v  # H ≈ ⟨g²⟩
    var_prior = factor * tl.load(var_ptr + offs, mask=mask, other=1.0) + noise  # Eq. 17b
    if F64:
        var_post = 1.0 / (1.0 / var_prior + h)  # Eq. 18a
    else:
        var_post = tl.div_rn(1.0, tl.div_rn(1.0, var_prior) + h)  # Eq. 18a
    tl.store(var_ptr + offs, var_post, mask=mask)
    update = m * tl.minimum(var_post, rate_max)  # m σ²_post before the scale; rate_max finite: m = 0 gives 0
    p = decay * tl.load(p_ptr + offs, mask=mask, other=0.0).to(S)  # Eq. 19a
    p = tl.where(scale != 0.0, p + scale * update, p)  # Eq. 19b; scale = 0 (lr = 0) leaves p to the decay
    if P == tl.bfloat16:  # round to nearest even by hand: Triton's interpreter truncates fp32 -> bf16
        bits = p.to(tl.uint32, bitcast=True)
        bits = tl.where(p == p, (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16, (bits >> 16) | 0x40)  # NaN stays NaN
        tl.store(p_ptr + offs, bits.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(p_ptr + offs, p.to(P), mask=mask)


def _fp_kernel(meta, sc, n, nb, p0, g0, s0, F64: tl.constexpr, NF: tl.constexpr,
               BLOCK: tl.constexpr):  # fmt: skip  # pragma: no cover - run by triton
    b = tl.program_id(0)
    i = tl.load(meta + 5 * n + b)
    offs = tl.load(meta + 5 * n + nb + b) + tl.arange(0, BLOCK)
    mask = offs < tl.load(meta + 4 * n + i)
    P = p0.dtype.element_ty
    G = g0.dtype.element_ty
    S = s0.dtype.element_ty
    p_ptr = tl.load(meta + i).to(tl.pointer_type(P))
    g_ptr = tl.load(meta + n + i).to(tl.pointer_type(G))
    m_ptr = tl.load(meta + 2 * n + i).to(tl.pointer_type(S))
    v_ptr = tl.load(meta + 3 * n + i).to(tl.pointer_type(S))
    row = sc + i * NF
    w1, beta2, w2 = tl.load(row), tl.load(row + 1), tl.load(row + 2)
    k2bc2, kbc, tiny = tl.load(row + 3), tl.load(row + 4), tl.load(row + 5)
    decay, scale, gsign = tl.load(row + 6), tl.load(row + 7), tl.load(row + 8)

    g = gsign * tl.load(g_ptr + offs, mask=mask, other=0.0).to(S)
    m = tl.load(m_ptr + offs, mask=mask, other=0.0)
    m = tl.where(w1 < 0.5, m + w1 * (g - m), g - (g - m) * (1.0 - w1))  # Eq. 2 (torch's lerp)
    tl.store(m_ptr + offs, m, mask=mask)
    v = beta2 * tl.load(v_ptr + offs, mask=mask, other=0.0) + w2 * g * g  # Eq. 4
    tl.store(v_ptr + offs, v, mask=mask)
    if F64:
        den = tl.maximum(tl.sqrt(v + k2bc2) + kbc, tiny)  # Eq. 21 in p.grad units
        update = m / den
    else:
        den = tl.maximum(tl.sqrt_rn(v + k2bc2) + kbc, tiny)  # Eq. 21 in p.grad units
        update = tl.div_rn(m, den)
    p = decay * tl.load(p_ptr + offs, mask=mask, other=0.0).to(S)  # Eq. 19a
    p = tl.where(scale != 0.0, p + scale * update, p)  # Eq. 19b
    if P == tl.bfloat16:  # round to nearest even by hand: Triton's interpreter truncates fp32 -> bf16
        bits = p.to(tl.uint32, bitcast=True)
        bits = tl.where(p == p, (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16, (bits >> 16) | 0x40)  # NaN stays NaN
        tl.store(p_ptr + offs, bits.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(p_ptr + offs, p.to(P), mask=mask)


@functools.cache
def _jitted(name: str, interpret: bool) -> Any:  # noqa: ARG001 (part of the cache key)
    """``triton.jit`` of kernel ``name``, built once per process and interpreter setting (TRITON_INTERPRET)."""
    fn = {"ab": _ab_kernel, "fp": _fp_kernel}[name]
    return triton.jit(fn, do_not_specialize=["n", "nb"])


def _kernel(name: str) -> Any:
    return _jitted(name, bool(triton.knobs.runtime.interpret))


# --------------------------------------------------------------------------------------------------------------
# host side: tables


class _Bucket:
    """Address/size/block table of a bucket on its device, with contiguous working copies where needed."""

    def __init__(self, rows: Sequence[Sequence[Tensor]], names: Sequence[str]) -> None:
        n = len(rows[0])
        if not n:
            raise ValueError("params must not be empty")
        for name, row in zip(names, rows, strict=True):
            if len(row) != n:
                raise ValueError(f"{name} has {len(row)} tensors, params has {n}")
        self.device = _tensor(names[0], 0, rows[0][0]).device
        self.state_dtype = _tensor(names[2], 0, rows[2][0]).dtype
        if self.state_dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{names[2]} must be float32 or float64 tensors, got {self.state_dtype}")
        self._copies: list[tuple[Tensor, Tensor]] = []  # (original, contiguous copy) to write back
        self._keep: list[Tensor] = []  # copies alive until the launch is queued
        sizes = np.array([_tensor(names[0], i, p).numel() for i, p in enumerate(rows[0])], dtype=np.int64)
        addr = np.empty((len(rows), n), dtype=np.int64)
        for r, (name, row) in enumerate(zip(names, rows, strict=True)):
            expected = (_tensor(name, 0, row[0]).dtype, f"{name}[0]") if r < 2 else (self.state_dtype, names[2] + "[0]")
            for i, t in enumerate(row):
                addr[r, i] = self._usable(name, i, t, expected, r != 1, int(sizes[i])).data_ptr()
        per_tensor = (sizes + BLOCK - 1) // BLOCK
        self.blocks = int(per_tensor.sum())
        block_tensor = np.repeat(np.arange(n, dtype=np.int64), per_tensor)
        first_block = np.cumsum(per_tensor) - per_tensor
        block_start = (np.arange(self.blocks, dtype=np.int64) - np.repeat(first_block, per_tensor)) * BLOCK
        meta = np.concatenate([addr.reshape(-1), sizes, block_tensor, block_start])
        self.meta = torch.from_numpy(meta).to(self.device, non_blocking=True)
        self.n = n
        self.first = [rows[0][0], rows[1][0], rows[2][0]]  # their pointer types give the kernel's dtypes

    def _usable(
        self, name: str, i: int, t: Tensor, expected: tuple[torch.dtype, str], writable: bool, size: int
    ) -> Tensor:
        """``t`` if it can be used in place, else a contiguous copy (written back after the step if writable)."""
        _tensor(name, i, t)
        if t.device != self.device:
            raise ValueError(f"{name}[{i}] is on {t.device}, params[0] on {self.device}")
        if t.dtype != expected[0]:
            raise TypeError(f"{name}[{i}] has dtype {t.dtype}, {expected[1]} has {expected[0]}: one dtype per list")
        if t.numel() != size:
            raise ValueError(f"{name}[{i}] has {t.numel()} elements, params[{i}] has {size}")
        if t.is_contiguous():
            return t
        work = t.contiguous()
        if writable:
            self._copies.append((t, work))
        self._keep.append(work)
        return work

    def scalars(self, fields: tuple[str, ...], values: dict[str, Scalar]) -> Tensor:
        """``(n, len(fields))`` scalar table in the state dtype on the device (tensor values are not synced)."""
        host = np.zeros((self.n, len(fields)), dtype=np.float64)
        on_device: dict[int, Tensor] = {}
        for k, name in enumerate(fields):
            value = values[name]
            if isinstance(value, Tensor):
                on_device[k] = value
                continue
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != self.n):
                raise ValueError(f"{name} must be a float or have one value per tensor ({self.n}), got {arr.shape}")
            host[:, k] = arr
        table = torch.from_numpy(host).to(self.device, self.state_dtype, non_blocking=True)
        for k, value in on_device.items():
            table[:, k] = value.to(self.device, self.state_dtype).expand(self.n)
        return table

    def write_back(self) -> None:
        for orig, work in self._copies:
            orig.copy_(work)


def _tensor(name: str, i: int, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(t).__name__}")
    return t


def _sign(maximize: bool) -> float:
    if not isinstance(maximize, bool):
        raise TypeError(f"maximize must be a bool, got {type(maximize).__name__}")
    return -1.0 if maximize else 1.0


# --------------------------------------------------------------------------------------------------------------
# public steps


def adabayes_triton_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor] | None,
    var_posts: Sequence[Tensor],
    *,
    w1: Scalar,
    beta2: Scalar,
    w2: Scalar,
    factor: Scalar,
    noise: Scalar,
    b2: Scalar,
    rate_max: Scalar,
    decay: Scalar,
    scale: Scalar,
    v_scale: Scalar = 0.0,
    maximize: bool = False,
) -> None:
    """One AdaBayes step (Alg. 1) over a bucket of CUDA tensors in one Triton launch, in place.

    The same step, arguments and conventions as :func:`filtering._fused_cpu.adabayes_cpu_step` (Eqs. 2, 4, 17b,
    18a, 19); scalars may also be tensors of shape () or (n,) on the device (no host synchronisation).

    Parameters
    ----------
    params : sequence of n Tensor, shapes ``S_i``, one dtype (float32/float64/float16/bfloat16)
    grads : sequence of n Tensor, ``S_i.numel()`` elements each, one dtype
    exp_avgs, exp_avg_sqs (or None), var_posts : sequences of n Tensor, the state dtype (float32/float64)
    w1, beta2, w2, factor, noise, b2, rate_max, decay, scale, v_scale : float, array (n,) or Tensor
        As :func:`filtering._fused_cpu.adabayes_cpu_step`.
    maximize : bool
        Ascend ``p.grad`` instead of descending it.
    """
    has_v = exp_avg_sqs is not None
    smooth = _nonzero(v_scale)
    if smooth and not has_v:
        raise ValueError("v_scale != 0 (H ≈ ⟨g²⟩) needs exp_avg_sqs")
    states: list[Sequence[Tensor]] = [exp_avgs, exp_avg_sqs if exp_avg_sqs is not None else exp_avgs, var_posts]
    bucket = _Bucket([params, grads, *states], ("params", "grads", "exp_avgs", "exp_avg_sqs", "var_posts"))
    finite_max = torch.finfo(bucket.state_dtype).max
    values = dict(w1=w1, beta2=beta2, w2=w2, factor=factor, noise=noise, b2=b2, v_scale=v_scale,
                  rate_max=_clamp(rate_max, finite_max), decay=decay, scale=scale, gsign=_sign(maximize))  # fmt: skip
    sc = bucket.scalars(AB_FIELDS, values)
    if bucket.blocks:
        _kernel("ab")[(bucket.blocks,)](
            bucket.meta, sc, bucket.n, bucket.blocks, *bucket.first,
            HAS_V=has_v, SMOOTH=smooth, F64=bucket.state_dtype == torch.float64, NF=len(AB_FIELDS), BLOCK=BLOCK,
            enable_fp_fusion=False,
        )  # fmt: skip
    bucket.write_back()


def adabayes_fp_triton_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    *,
    w1: Scalar,
    beta2: Scalar,
    w2: Scalar,
    k2bc2: Scalar,
    kbc: Scalar,
    tiny: Scalar,
    decay: Scalar,
    scale: Scalar,
    maximize: bool = False,
) -> None:
    """One AdaBayes-FP step (Alg. 2) over a bucket of CUDA tensors in one Triton launch, in place.

    The same step, arguments and conventions as :func:`filtering._fused_cpu.adabayes_fp_cpu_step` (Eqs. 2, 4, 19,
    21); scalars may also be device tensors of shape () or (n,).
    """
    bucket = _Bucket([params, grads, exp_avgs, exp_avg_sqs], ("params", "grads", "exp_avgs", "exp_avg_sqs"))
    values = dict(w1=w1, beta2=beta2, w2=w2, k2bc2=k2bc2, kbc=kbc, tiny=tiny, decay=decay, scale=scale,
                  gsign=_sign(maximize))  # fmt: skip
    sc = bucket.scalars(FP_FIELDS, values)
    if bucket.blocks:
        _kernel("fp")[(bucket.blocks,)](
            bucket.meta, sc, bucket.n, bucket.blocks, *bucket.first,
            F64=bucket.state_dtype == torch.float64, NF=len(FP_FIELDS), BLOCK=BLOCK, enable_fp_fusion=False,
        )  # fmt: skip
    bucket.write_back()


def _nonzero(value: Scalar) -> bool:
    """Whether ``value`` is nonzero anywhere (a device tensor is treated as nonzero without a sync)."""
    if isinstance(value, Tensor):
        return True
    return bool(np.any(np.asarray(value) != 0))


def _clamp(value: Scalar, top: float) -> Scalar:
    if isinstance(value, Tensor):
        return value.clamp_max(top)
    return np.minimum(np.asarray(value, dtype=np.float64), top)


# --------------------------------------------------------------------------------------------------------------
# the kernel protocol of filtering._torch_kernels (device kernels: counts is a float64 tensor on the device)


def ab_triton(tensors: Any, counts: Tensor, const: Any, _cache: object = None) -> None:
    """AdaBayes step of a bucket in the kernel protocol of :mod:`filtering._torch_kernels` (device kernel).

    Parameters
    ----------
    tensors : ABTensors
        ``(params, grads, exp_avgs, exp_avg_sqs or None, var_posts)`` on one CUDA device.
    counts : Tensor, shape (n,), float64, on the device
        The step number t being taken, per tensor (no host synchronisation).
    const : ABConstants
        ``beta1, beta2, factor, noise, batch_size, decay, lr_scale, sigma2_inf, smooth_g2``.
    """
    batch = const.batch_size
    dtype = tensors.exp_avgs[0].dtype
    adabayes_triton_step(
        *tensors,
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        factor=const.factor,
        noise=const.noise,
        b2=batch * batch,  # Eq. 42
        v_scale=batch * batch / (1.0 - const.beta2**counts) if const.smooth_g2 else 0.0,  # ⟨g²⟩ (Eq. 4)
        rate_max=torch.finfo(dtype).max if const.sigma2_inf else math.inf,
        decay=const.decay,  # Eq. 19a
        scale=-const.lr_scale * batch / (1.0 - const.beta1**counts),  # Eq. 19b
    )


def fp_triton(tensors: Any, counts: Tensor, const: Any, _cache: object = None) -> None:
    """AdaBayes-FP step of a bucket in the kernel protocol of :mod:`filtering._torch_kernels` (device kernel).

    Parameters
    ----------
    tensors : FPTensors
        ``(params, grads, exp_avgs, exp_avg_sqs)`` on one CUDA device.
    counts : Tensor, shape (n,), float64, on the device
    const : FPConstants
        ``beta1, beta2, k, eta, decay, lr_scale``.
    """
    dtype = tensors.exp_avgs[0].dtype
    bc2 = 1.0 - const.beta2**counts
    sqrt_bc2 = bc2.sqrt()
    tiny = torch.finfo(dtype).tiny
    adabayes_fp_triton_step(
        *tensors,
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        k2bc2=const.k * const.k * bc2,  # Eq. 21
        kbc=const.k * sqrt_bc2,  # Eq. 21
        tiny=tiny if const.k * math.sqrt(1.0 - const.beta2) < tiny else 0.0,
        decay=const.decay,  # Eq. 19a
        scale=-const.lr_scale * const.eta * sqrt_bc2 / (1.0 - const.beta1**counts),  # Eq. 19b
    )
