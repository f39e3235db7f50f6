"""Fused CPU step of AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2): numba kernels, no torch.compile (private).

One call updates a whole list of tensors in place: the kernel receives tables of the tensors' data addresses
and sizes (the tensors' own memory, no copies for contiguous fp32/fp64 tensors), cuts them into blocks of
:data:`BLOCK` elements and runs the blocks in parallel (``numba.prange``) in a single parallel region. The
kernels are compiled once per state dtype (float32, float64) and cached on disk (``cache=True``); the serial and
the parallel build are two functions with distinct names, because numba's disk cache is keyed by the qualified
name. Number of threads: torch's (``torch.get_num_threads()``, capped at numba's pool size).

Conventions: exactly those of :mod:`filtering._torch_kernels` (read its module docstring), so the numbers are
those of its ``single`` path up to fp rounding:

- the state is in the units of ``p.grad``: ``m`` and ``v`` are the raw EMAs of ``p.grad`` and ``p.grad**2``
  (Eqs. 2, 4); the paper's summed ascent gradient is ``g = -B p.grad``; AdaBayes's ``var_post`` is σ²_post;
- :func:`adabayes_cpu_step` / :func:`adabayes_fp_cpu_step` take the per-step scalars by the names of the fields of
  ``_torch_kernels._ABScalars`` / ``_FPScalars`` (each a float, or one value per tensor so that tensors at
  different step counts share a call); :func:`ab_fused_cpu` / :func:`fp_fused_cpu` follow the kernel protocol
  ``kernel(tensors, counts, const, cache)`` of :mod:`filtering._torch_kernels` (host kernels: ``counts`` a list);
- σ²_post·m (or m / denominator) is formed before the step's scale; a zero ``m`` gives a zero step even where
  σ²_post = inf (σ²_post is clamped at the dtype's largest value inside the step); ``scale == 0`` (lr scheduled
  to 0) leaves ``p`` alone apart from the decay factor.

Parameters of dtype float16 / bfloat16 are updated through an fp32 working copy (state and arithmetic in fp32,
the result rounded back once per step), as the torch paths do. Tensors that are not contiguous are copied to
contiguous ones and the results copied back. ``maximize=True`` uses ``-p.grad`` for ``p.grad`` everywhere (the
EMAs then hold the negated gradient, as torch's Adam does).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import torch
from numba import types as nbtypes
from numba.extending import intrinsic
from torch import Tensor

__all__ = ["BLOCK", "SERIAL_BELOW", "ab_fused_cpu", "adabayes_cpu_step", "adabayes_fp_cpu_step", "fp_fused_cpu"]

BLOCK = 1 << 14  # elements per parallel work item (64 KiB of fp32 per operand)
SERIAL_BELOW = 1 << 16  # fewer elements than this in one call: the serial kernel (a parallel region costs ~10 µs)

_STATE_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_LOW_PRECISION = (torch.float16, torch.bfloat16)

# --------------------------------------------------------------------------------------------------------------
# numba pieces


def _as_pointer_typing(typingctx, address, like):  # noqa: ARG001 (numba's intrinsic signature)
    """``(int64 address, array like) -> CPointer(like.dtype)``: the address of a tensor's first element."""
    if not isinstance(address, nbtypes.Integer) or not isinstance(like, nbtypes.Array):
        return None
    pointer = nbtypes.CPointer(like.dtype)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address, like), codegen


_as_pointer: Any = intrinsic(_as_pointer_typing)  # called inside kernels as _as_pointer(address, like)


@numba.njit(cache=True)
def _block_table(sizes):  # pragma: no cover - compiled by numba
    """Per block: the index of its tensor and its first element (blocks of BLOCK elements, tensor by tensor)."""
    total = 0
    for n in sizes:
        total += (n + BLOCK - 1) // BLOCK
    tensor = np.empty(total, dtype=np.int64)
    start = np.empty(total, dtype=np.int64)
    b = 0
    for i in range(sizes.size):
        for lo in range(0, sizes[i], BLOCK):
            tensor[b] = i
            start[b] = lo
            b += 1
    return tensor, start


# Columns of a kernel's scalar table ``sc`` (one row per tensor, in the state dtype: fp32 state computes in fp32
# with scalars rounded to fp32, as torch does with Python scalars).
AB_FIELDS = ("w1", "beta2", "w2", "factor", "noise", "b2", "v_scale", "rate_max", "decay", "scale", "gsign")
FP_FIELDS = ("w1", "beta2", "w2", "k2bc2", "kbc", "tiny", "decay", "scale", "gsign")


@numba.njit(inline="always", error_model="numpy")
def _ema_mean(m, g, w1, one):  # pragma: no cover - compiled by numba
    """Eq. 2 as ``torch.lerp(m, g, w1)`` computes it (the form depends on the weight's side of 1/2)."""
    if w1 < 0.5:
        return m + w1 * (g - m)  # Eq. 2
    return g - (g - m) * (one - w1)  # Eq. 2


@numba.njit(inline="always", error_model="numpy")
def _variance_step(var_post, factor, noise, h, one):  # pragma: no cover - compiled by numba
    """Eqs. 17b and 18a, an inlined copy of :func:`filtering.kalman_step.predict_variance` and
    :func:`~filtering.kalman_step.update_variance` whose constant 1 has the state dtype (their literal ``1.0``
    would make numba compute fp32 state in float64); tests compare the two bit for bit."""
    var_prior = factor * var_post + noise  # Eq. 17b
    return one / (one / var_prior + h)  # Eq. 18a


@numba.njit(inline="always", error_model="numpy")
def _new_param(p, decay, scale, update):  # pragma: no cover - compiled by numba
    """Eq. 19: ``decay p + scale update``; ``scale == 0`` leaves ``decay p`` (an overflowed update is not added)."""
    if scale != 0:
        return decay * p + scale * update  # Eqs. 19a, 19b
    return decay * p  # Eq. 19a


# error_model="numpy": 1/0 = inf (σ²_prior = inf and a zero gradient, Eq. 18a) and no zero-division branch, so the
# loops vectorise
@numba.njit(cache=True, error_model="numpy")
def _ab_block(p, g, m, v, var, has_v, smooth, sc):  # pragma: no cover - compiled by numba
    """AdaBayes on one block: 1-D arrays of one dtype (``v`` unused unless ``has_v``); ``sc``: AB_FIELDS."""
    w1, beta2, w2, factor, noise, b2 = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]
    v_scale, rate_max, decay, scale, gsign = sc[6], sc[7], sc[8], sc[9], sc[10]
    one = sc.dtype.type(1.0)
    for j in range(p.size):
        gj = gsign * g[j]
        mj = _ema_mean(m[j], gj, w1, one)  # Eq. 2
        m[j] = mj
        h = b2 * gj * gj  # Eq. 42: H ≈ g² = B² p.grad²
        if has_v:
            vj = beta2 * v[j] + w2 * gj * gj  # Eq. 4
            v[j] = vj
            if smooth:
                h = v_scale * vj  # H ≈ ⟨g²⟩ = B² v / (1 - β2^t)
        vp = _variance_step(var[j], factor, noise, h, one)  # Eqs. 17b, 18a
        var[j] = vp
        # m σ²_post before the scale (no overflow at the dtype's max); rate_max is finite, so m = 0 gives 0
        p[j] = _new_param(p[j], decay, scale, mj * min(vp, rate_max))  # Eq. 19


@numba.njit(cache=True, error_model="numpy")
def _fp_block(p, g, m, v, sc):  # pragma: no cover - compiled by numba
    """AdaBayes-FP on one block: 1-D arrays of one dtype; ``sc``: FP_FIELDS."""
    w1, beta2, w2, k2bc2, kbc = sc[0], sc[1], sc[2], sc[3], sc[4]
    tiny, decay, scale, gsign = sc[5], sc[6], sc[7], sc[8]
    one = sc.dtype.type(1.0)
    for j in range(p.size):
        gj = gsign * g[j]
        mj = _ema_mean(m[j], gj, w1, one)  # Eq. 2
        m[j] = mj
        vj = beta2 * v[j] + w2 * gj * gj  # Eq. 4
        v[j] = vj
        den = max(np.sqrt(vj + k2bc2) + kbc, tiny)  # Eq. 21 in p.grad units (see _torch_kernels)
        p[j] = _new_param(p[j], decay, scale, mj / den)  # Eq. 19


def _ab_loops(addr, sizes, has_v, sc):  # pragma: no cover - compiled by numba
    # addr: (5, n) int64 addresses of p, g, m, v (or m), var_post; sizes: (n,); sc: (n, len(AB_FIELDS))
    tensor, start = _block_table(sizes)
    for b in numba.prange(tensor.size):
        i = tensor[b]
        n = sizes[i]
        lo = start[b]
        hi = min(lo + BLOCK, n)
        row = sc[i]
        p = numba.carray(_as_pointer(addr[0, i], row), n)[lo:hi]
        g = numba.carray(_as_pointer(addr[1, i], row), n)[lo:hi]
        m = numba.carray(_as_pointer(addr[2, i], row), n)[lo:hi]
        v = numba.carray(_as_pointer(addr[3, i], row), n)[lo:hi]
        var = numba.carray(_as_pointer(addr[4, i], row), n)[lo:hi]
        _ab_block(p, g, m, v, var, has_v, row[6] != 0, row)


def _fp_loops(addr, sizes, sc):  # pragma: no cover - compiled by numba
    # addr: (4, n) int64 addresses of p, g, m, v; sizes: (n,); sc: (n, len(FP_FIELDS))
    tensor, start = _block_table(sizes)
    for b in numba.prange(tensor.size):
        i = tensor[b]
        n = sizes[i]
        lo = start[b]
        hi = min(lo + BLOCK, n)
        row = sc[i]
        p = numba.carray(_as_pointer(addr[0, i], row), n)[lo:hi]
        g = numba.carray(_as_pointer(addr[1, i], row), n)[lo:hi]
        m = numba.carray(_as_pointer(addr[2, i], row), n)[lo:hi]
        v = numba.carray(_as_pointer(addr[3, i], row), n)[lo:hi]
        _fp_block(p, g, m, v, row)


def _named_copy(fn: Callable, name: str) -> Callable:
    """``fn`` under another qualified name (numba's disk cache is keyed by it: one name per build)."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = name
    return clone


def _build(fn: Callable, parallel: bool) -> Callable:
    # error_model="numpy": 1/0 = inf (σ²_prior = inf with a zero gradient, Eq. 18a) instead of an exception
    name = f"{fn.__name__}_{'parallel' if parallel else 'serial'}"
    return numba.njit(parallel=parallel, cache=True, error_model="numpy")(_named_copy(fn, name))


_KERNELS = {
    ("ab", False): _build(_ab_loops, parallel=False),
    ("ab", True): _build(_ab_loops, parallel=True),
    ("fp", False): _build(_fp_loops, parallel=False),
    ("fp", True): _build(_fp_loops, parallel=True),
}


Scalar = float | Sequence[float] | np.ndarray
"""A kernel scalar: one value for every tensor, or one value per tensor (1-D, the number of tensors)."""


def _scalar_table(fields: tuple[str, ...], values: dict[str, Scalar], n: int, dtype: torch.dtype) -> np.ndarray:
    """``(n, len(fields))`` table of the scalars in the state dtype (torch rounds Python scalars so too)."""
    table = np.empty((n, len(fields)), dtype=_STATE_DTYPES[dtype])
    for k, name in enumerate(fields):
        value = np.asarray(values[name], dtype=np.float64)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
            raise ValueError(f"{name} must be a float or have one value per tensor ({n}), got shape {value.shape}")
        table[:, k] = value
    return table


def _pool_size() -> int:
    """The number of threads numba's pool was started with (``NUMBA_NUM_THREADS``)."""
    return int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))


def _kernel(name: str, total: int) -> Callable:
    """The serial or parallel build for ``total`` elements, with torch's thread count set on numba's pool."""
    threads = max(1, min(torch.get_num_threads(), _pool_size()))
    parallel = threads > 1 and total >= SERIAL_BELOW
    if parallel and numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    return _KERNELS[(name, parallel)]


# --------------------------------------------------------------------------------------------------------------
# operand tables


class _Operands:
    """Address tables of a bucket's tensors, with working copies where a tensor cannot be used in place.

    Rows: ``params``, ``grads``, then the state lists. A parameter of another dtype than the state (fp16/bf16)
    or any non-contiguous tensor is replaced by a contiguous copy in the state dtype; :meth:`write_back` copies
    the results into the originals (gradients are only read).

    Attributes
    ----------
    addr : ndarray of int64, shape (rows, n)
        Address of each tensor's first element (the tensor's own memory or its working copy's).
    sizes : ndarray of int64, shape (n,)
        Number of elements of each parameter.
    dtype : torch.dtype
        The state dtype (float32 or float64).
    """

    def __init__(self, rows: Sequence[Sequence[Tensor]], names: Sequence[str]) -> None:
        self.count = len(rows[0])
        for name, row in zip(names, rows, strict=True):
            if len(row) != self.count:
                raise ValueError(f"{name} has {len(row)} tensors, params has {self.count}")
        if not self.count:
            raise ValueError("params must not be empty")
        self.dtype = rows[2][0].dtype if isinstance(rows[2][0], Tensor) else None
        if self.dtype not in _STATE_DTYPES:
            raise TypeError(f"{names[2]} must be float32 or float64 tensors, got {self.dtype}")
        sizes = [_checked(names[0], i, p).numel() for i, p in enumerate(rows[0])]
        self.sizes = np.array(sizes, dtype=np.int64)
        self.total = int(self.sizes.sum())
        self._keep: list[Tensor] = []  # working copies of gradients, alive until the kernel has run
        self._copies: list[tuple[Tensor, Tensor]] = []  # (original, working copy) pairs to write back
        pairs = enumerate(zip(names, rows, strict=True))
        table = [self._row(name, row, sizes, writable=r != 1) for r, (name, row) in pairs]
        self.addr = np.array(table, dtype=np.int64)
        copied = {id(orig) for orig, _ in self._copies}
        self._in_place = [p for p in rows[0] if id(p) not in copied and not p.is_inference()]

    def _row(self, name: str, row: Sequence[Tensor], sizes: list[int], writable: bool) -> list[int]:
        """Addresses of one list's tensors: a fast check per tensor (this runs for every tensor at every step)."""
        dtype, out = self.dtype, []
        for i, t in enumerate(row):
            try:
                usable = t.dtype is dtype and t.is_cpu and t.numel() == sizes[i] and t.is_contiguous()
            except AttributeError:  # not a tensor: reported by _address
                usable = False
            out.append(t.data_ptr() if usable else self._address(name, i, t, writable))
        return out

    def _address(self, name: str, i: int, t: Tensor, writable: bool) -> int:
        """The address of ``t`` or of a contiguous working copy in the state dtype; errors naming the tensor."""
        _checked(name, i, t)
        if t.numel() != self.sizes[i]:
            raise ValueError(f"{name}[{i}] has {t.numel()} elements, params[{i}] has {self.sizes[i]}")
        if t.dtype != self.dtype and (name not in ("params", "grads") or not _low(t.dtype, self.dtype)):
            raise TypeError(f"{name}[{i}] has dtype {t.dtype}, which cannot use state of dtype {self.dtype}")
        work = t.detach().to(dtype=self.dtype, memory_format=torch.contiguous_format, copy=True)
        if writable:
            self._copies.append((t, work))
        else:
            self._keep.append(work)
        return work.data_ptr()

    def write_back(self) -> None:
        """Copy the working copies' results into the original tensors; count an in-place write for autograd."""
        for orig, work in self._copies:
            orig.copy_(work)
        if self._in_place:  # the kernel wrote through raw pointers: tell autograd, as an in-place op would
            torch.autograd.graph.increment_version(self._in_place)


def _checked(name: str, i: int, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_cpu:
        raise ValueError(f"{name}[{i}] is on {t.device}; the numba step runs on CPU tensors only")
    return t


def _low(dtype: torch.dtype, state_dtype: torch.dtype) -> bool:
    """fp16/bf16 parameters (and gradients) run with fp32 state; otherwise the dtypes must agree."""
    return dtype in _LOW_PRECISION and state_dtype == torch.float32


def _sign(maximize: bool) -> float:
    if not isinstance(maximize, bool):
        raise TypeError(f"maximize must be a bool, got {type(maximize).__name__}")
    return -1.0 if maximize else 1.0


# --------------------------------------------------------------------------------------------------------------
# public steps


def adabayes_cpu_step(
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
    """One AdaBayes step (Alg. 1) over lists of CPU tensors, in place, in one parallel numba kernel.

    Per element, with ``d = p.grad`` (``-p.grad`` for ``maximize``):

    - ``m <- m + w1 (d - m)`` (Eq. 2, as torch's ``lerp``), and ``v <- beta2 v + w2 d²`` (Eq. 4) if
      ``exp_avg_sqs`` is given (Alg. 1 does not need it: ``None`` moves 28 instead of 36 bytes per fp32 parameter);
    - ``h = b2 d²`` (Eq. 42, g² = B² p.grad²), or ``h = v_scale v`` (⟨g²⟩) where ``v_scale != 0``;
    - ``σ²_post <- 1 / (1 / (factor σ²_post + noise) + h)`` (Eqs. 17b, 18a);
    - ``p <- decay p + scale (m min(σ²_post, rate_max))`` (Eq. 19; the product m σ²_post is formed first, and
      ``rate_max`` is lowered to the dtype's largest value, so ``m = 0`` gives a zero step where σ²_post = inf).

    Parameters
    ----------
    params : sequence of n Tensor, shapes ``S_i``
        CPU tensors of float32/float64, or float16/bfloat16 with float32 state (updated through an fp32 copy).
    grads : sequence of n Tensor, ``S_i.numel()`` elements each
        ``p.grad`` (gradient of the mean loss); only read.
    exp_avgs, exp_avg_sqs, var_posts : sequences of n Tensor, shapes ``S_i``, the state dtype
        ``m``, ``v`` (or ``None``) and σ²_post, updated in place. The state dtype is float32 or float64.
    w1, beta2, w2, factor, noise, b2, rate_max, decay, scale, v_scale : float or array of shape (n,)
        ``w1 = 1 - β1``, ``w2 = 1 - β2``, ``factor``/``noise`` of Eq. 17b, ``b2 = B²``, ``rate_max`` (inf, or
        the dtype's max when σ² = inf), ``decay = 1 - cλ``, ``scale = -c B / (1 - β1^t)``,
        ``v_scale = B² / (1 - β2^t)`` for H ≈ ⟨g²⟩ or 0. A per-tensor array lets tensors at different step
        counts share one call. The names are the fields of ``_torch_kernels._ABScalars``.
    maximize : bool
        Ascend ``p.grad`` instead of descending it.

    Raises
    ------
    ValueError
        If the lists differ in length, a tensor is not on the CPU, its size differs from its parameter's, a
        scalar array has the wrong length, or ``v_scale`` is nonzero without ``exp_avg_sqs``.
    TypeError
        If a tensor has a dtype the step cannot use (state not float32/float64, or not matching the others).
    """
    has_v = exp_avg_sqs is not None
    if not has_v and np.any(np.asarray(v_scale) != 0):
        raise ValueError("v_scale != 0 (H ≈ ⟨g²⟩) needs exp_avg_sqs")
    states: list[Sequence[Tensor]] = [exp_avgs, exp_avg_sqs if exp_avg_sqs is not None else exp_avgs, var_posts]
    ops = _Operands([params, grads, *states], ("params", "grads", "exp_avgs", "exp_avg_sqs", "var_posts"))
    finite_max = torch.finfo(ops.dtype).max  # m = 0 times σ²_post = inf must give 0
    rate_max = np.minimum(rate_max, finite_max)
    values = dict(w1=w1, beta2=beta2, w2=w2, factor=factor, noise=noise, b2=b2, v_scale=v_scale, rate_max=rate_max,
                  decay=decay, scale=scale, gsign=_sign(maximize))  # fmt: skip
    sc = _scalar_table(AB_FIELDS, values, ops.count, ops.dtype)
    if ops.total:
        _kernel("ab", ops.total)(ops.addr, ops.sizes, has_v, sc)
    ops.write_back()


def adabayes_fp_cpu_step(
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
    """One AdaBayes-FP step (Alg. 2) over lists of CPU tensors, in place, in one parallel numba kernel.

    Per element, with ``d = p.grad`` (``-p.grad`` for ``maximize``): ``m <- m + w1 (d - m)`` (Eq. 2);
    ``v <- beta2 v + w2 d²`` (Eq. 4); ``p <- decay p + scale (m / max(sqrt(v + k2bc2) + kbc, tiny))`` (Eqs. 19, 21
    in ``p.grad`` units: the denominator is ``sqrt(1 - β2^t) B σ²_post / η``, see :mod:`filtering._torch_kernels`).

    Parameters
    ----------
    params, grads, exp_avgs, exp_avg_sqs : sequences of n Tensor, shapes ``S_i``
        As in :func:`adabayes_cpu_step` (``exp_avg_sqs`` is required: Eq. 21 reads it).
    w1, beta2, w2, k2bc2, kbc, tiny, decay, scale : float or array of shape (n,)
        ``k2bc2 = k² (1 - β2^t)``, ``kbc = k sqrt(1 - β2^t)`` with ``k = η / (2 η_SGD)``, ``tiny`` the
        denominator's clamp (the dtype's tiny when ``k`` is 0), ``scale = -c η sqrt(1 - β2^t) / (1 - β1^t)``;
        the fields of ``_torch_kernels._FPScalars``.
    maximize : bool
        Ascend ``p.grad`` instead of descending it.

    Raises
    ------
    ValueError, TypeError
        As :func:`adabayes_cpu_step`.
    """
    ops = _Operands([params, grads, exp_avgs, exp_avg_sqs], ("params", "grads", "exp_avgs", "exp_avg_sqs"))
    values = dict(w1=w1, beta2=beta2, w2=w2, k2bc2=k2bc2, kbc=kbc, tiny=tiny, decay=decay, scale=scale,
                  gsign=_sign(maximize))  # fmt: skip
    sc = _scalar_table(FP_FIELDS, values, ops.count, ops.dtype)
    if ops.total:
        _kernel("fp", ops.total)(ops.addr, ops.sizes, sc)
    ops.write_back()


# --------------------------------------------------------------------------------------------------------------
# the kernel protocol of filtering._torch_kernels: kernel(tensors, counts, const, cache)


def ab_fused_cpu(tensors: Any, counts: Sequence[int], const: Any, _cache: object = None) -> None:
    """AdaBayes step of a bucket in the kernel protocol of :mod:`filtering._torch_kernels` (host kernel).

    Parameters
    ----------
    tensors : ABTensors
        ``(params, grads, exp_avgs, exp_avg_sqs or None, var_posts)``, CPU tensors.
    counts : sequence of int, length n
        The step number t being taken, per tensor (tensors at different counts share the call).
    const : ABConstants
        ``beta1, beta2, factor, noise, batch_size, decay, lr_scale, sigma2_inf, smooth_g2``.
    """
    t = np.asarray(counts, dtype=np.float64)
    batch = const.batch_size
    dtype = tensors.exp_avgs[0].dtype if tensors.exp_avgs else torch.float32
    adabayes_cpu_step(
        *tensors,
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        factor=const.factor,
        noise=const.noise,
        b2=batch * batch,  # Eq. 42: g² = B² p.grad²
        v_scale=batch * batch / (1.0 - const.beta2**t) if const.smooth_g2 else 0.0,  # ⟨g²⟩, Eq. 4
        rate_max=torch.finfo(dtype).max if const.sigma2_inf else math.inf,
        decay=const.decay,  # Eq. 19a
        scale=-const.lr_scale * batch / (1.0 - const.beta1**t),  # Eq. 19b with ⟨g⟩ = -B m / (1 - β1^t)
    )


def fp_fused_cpu(tensors: Any, counts: Sequence[int], const: Any, _cache: object = None) -> None:
    """AdaBayes-FP step of a bucket in the kernel protocol of :mod:`filtering._torch_kernels` (host kernel).

    Parameters
    ----------
    tensors : FPTensors
        ``(params, grads, exp_avgs, exp_avg_sqs)``, CPU tensors.
    counts : sequence of int, length n
        The step number t being taken, per tensor.
    const : FPConstants
        ``beta1, beta2, k, eta, decay, lr_scale`` (``k = η / (2 η_SGD)``).
    """
    t = np.asarray(counts, dtype=np.float64)
    dtype = tensors.exp_avgs[0].dtype if tensors.exp_avgs else torch.float32
    bc2 = 1.0 - const.beta2**t
    sqrt_bc2 = np.sqrt(bc2)
    tiny = torch.finfo(dtype).tiny
    adabayes_fp_cpu_step(
        *tensors,
        w1=1.0 - const.beta1,
        beta2=const.beta2,
        w2=1.0 - const.beta2,
        k2bc2=const.k * const.k * bc2,  # Eq. 21
        kbc=const.k * sqrt_bc2,  # Eq. 21
        tiny=tiny if const.k * math.sqrt(1.0 - const.beta2) < tiny else 0.0,  # k = 0 (lr_sgd = inf): 0/0 -> 0
        decay=const.decay,  # Eq. 19a
        scale=-const.lr_scale * const.eta * sqrt_bc2 / (1.0 - const.beta1**t),  # Eq. 19b
    )
