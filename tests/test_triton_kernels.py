"""The Triton multi-tensor kernels (filtering._triton_kernels), run on CPU tensors by Triton's interpreter.

How the interpreter is switched on: Triton 3.x reads ``TRITON_INTERPRET`` through ``triton.knobs.runtime.interpret``
(an environment-backed setting read on every access) when ``triton.jit`` wraps a function. filtering._triton_kernels
wraps its kernels on first use, once per value of that setting, so the fixture below only has to set the variable
before the first launch; no subprocess is needed and importing triton first does no harm.

Tolerances: in the interpreter every operation is a NumPy fp32/fp64 operation in the same order as the numba kernel,
so the two agree bit for bit (asserted) in float32 and float64, and float64 equals filtering.rules to rel 1e-12.
The same holds for fp16/bf16
parameters (the kernel rounds fp32 -> bf16 to nearest-even by hand, because the interpreter's own conversion
truncates). On CUDA the kernels use IEEE division and square root and no fused multiply-adds, so they should agree
bit for bit too; the CUDA test (skipped without a GPU, never run yet) allows rtol 2e-5 / atol 1e-6 for fp32.
Without a GPU the CUDA code paths are still compiled to PTX for sm_90 (Triton ships ptxas) and the PTX inspected.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from test_fused_cpu import (  # noqa: E402 (tests/ is on sys.path under pytest)
    SHAPES,
    B,
    TorchRun,
    ab_scalars,
    assert_rel,
    fp_scalars,
    gradient_stream,
    initial_params,
)

from filtering import _fused_cpu as F  # noqa: E402
from filtering import rules  # noqa: E402
from filtering.ou import variance_predict_coefficients  # noqa: E402

# the interpreter computes 1/0 = inf (σ²_prior = inf, Eq. 18a) with NumPy, which warns; the kernel means it
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
STEPS = 12  # the interpreter runs one Python call per block and operation: keep the streams short
has_cuda = torch.cuda.is_available()


@pytest.fixture
def tk(monkeypatch):
    """filtering._triton_kernels with the interpreter on (CPU tensors)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from filtering import _triton_kernels

    return _triton_kernels


class ABTensors(NamedTuple):  # the fields of filtering._torch_kernels.ABTensors (the protocol is duck-typed)
    params: list
    grads: list
    exp_avgs: list
    exp_avg_sqs: list | None
    var_posts: list


class FPTensors(NamedTuple):
    params: list
    grads: list
    exp_avgs: list
    exp_avg_sqs: list


class ABConstants(NamedTuple):
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
    beta1: float
    beta2: float
    k: float
    eta: float
    decay: float
    lr_scale: float


HYPER = dict(lr=2e-3, betas=(0.9, 0.99), weight_decay=1e-3)


def _pair(dtype, lr_sgd, ab, state_dtype=None, seed=5):
    p0 = initial_params(seed)
    if dtype in (torch.bfloat16, torch.float16):
        p0 = [torch.tensor(p, dtype=dtype).double().numpy() for p in p0]
    return [TorchRun(p0, dtype, lr_sgd / B, ab=ab, state_dtype=state_dtype) for _ in range(2)]


def _equal_runs(a: TorchRun, b: TorchRun) -> None:
    lists = ["params", "m", "v"] + (["var"] if a.var is not None else [])
    for name in lists:
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            assert torch.equal(x, y), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lr_sgd", [0.3, math.inf])
def test_interpreted_kernels_equal_the_numba_kernels(tk, dtype: torch.dtype, lr_sgd: float) -> None:
    gs = gradient_stream(5, steps=STEPS)
    (a, b), (c, d) = _pair(dtype, lr_sgd, ab=True), _pair(dtype, lr_sgd, ab=False)
    for t, g in enumerate(gs, start=1):
        s = ab_scalars(HYPER["lr"], lr_sgd, HYPER["betas"], HYPER["weight_decay"], "paper", t)
        F.adabayes_cpu_step(a.params, a.grads(g), a.m, a.v, a.var, **s)
        tk.adabayes_triton_step(b.params, b.grads(g), b.m, b.v, b.var, **s)
        s = fp_scalars(HYPER["lr"], lr_sgd, HYPER["betas"], HYPER["weight_decay"], t, dtype)
        F.adabayes_fp_cpu_step(c.params, c.grads(g), c.m, c.v, **s)
        tk.adabayes_fp_triton_step(d.params, d.grads(g), d.m, d.v, **s)
    _equal_runs(a, b)
    _equal_runs(c, d)


def test_interpreted_float64_equals_rules(tk) -> None:
    gs, p0 = gradient_stream(6, steps=STEPS), initial_params(6)
    ab, fp = TorchRun(p0, torch.float64, 0.3 / B, ab=True), TorchRun(p0, torch.float64, 0.3 / B, ab=False)
    for t, g in enumerate(gs, start=1):
        s = ab_scalars(HYPER["lr"], 0.3, HYPER["betas"], HYPER["weight_decay"], "exponential", t)
        tk.adabayes_triton_step(ab.params, ab.grads(g), ab.m, None, ab.var, **s)
        s = fp_scalars(HYPER["lr"], 0.3, HYPER["betas"], HYPER["weight_decay"], t, torch.float64)
        tk.adabayes_fp_triton_step(fp.params, fp.grads(g), fp.m, fp.v, **s)
    for rule, run in ((rules.adabayes(lr_sgd=0.3, batch_size=B, predict="exponential", **HYPER), ab),
                      (rules.adabayes_fp(lr_sgd=0.3, batch_size=B, **HYPER), fp)):  # fmt: skip
        mus = [p.copy() for p in p0]
        states = [rule.init(p) for p in p0]
        for g in gs:
            for i in range(len(SHAPES)):
                step, states[i] = rule.update(-B * g[i], states[i], mus[i])
                mus[i] = mus[i] + step
        for i in range(len(SHAPES)):
            assert_rel(run.params[i], mus[i], 1e-12)
        if run is ab:
            for i in range(len(SHAPES)):
                assert_rel(run.var[i], states[i].var_post, 1e-12)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_interpreted_low_precision_params(tk, low: torch.dtype) -> None:
    """fp16/bf16 params read and written in place (no working copy), fp32 state: bit for bit the numba kernel's
    fp32 working copy rounded back to nearest-even."""
    gs = gradient_stream(7, steps=5)
    a, b = _pair(low, 0.3, ab=True, state_dtype=torch.float32)
    for t, g in enumerate(gs, start=1):
        s = ab_scalars(HYPER["lr"], 0.3, HYPER["betas"], HYPER["weight_decay"], "paper", t)
        F.adabayes_cpu_step(a.params, a.grads(g), a.m, a.v, a.var, **s)
        tk.adabayes_triton_step(b.params, b.grads(g), b.m, b.v, b.var, **s)
    for x, y in zip(a.params, b.params, strict=True):
        assert y.dtype == low
        assert torch.equal(x, y)
    assert a.m[0].dtype == torch.float32


@pytest.mark.parametrize(("smooth_g2", "lr_sgd"), [(False, 0.3), (True, 0.3), (False, math.inf)])
def test_protocol_kernels_equal_the_numba_protocol_kernels(tk, smooth_g2: bool, lr_sgd: float) -> None:
    """ab_triton / fp_triton take the counts as a float64 tensor (per tensor: different bias corrections) and
    compute the per-step scalars from it without leaving the device; equal to the numba protocol kernels."""
    factor, noise = variance_predict_coefficients(HYPER["lr"], lr_sgd / B, "paper")
    ab_const = ABConstants(0.9, 0.99, factor, noise, B, 1.0 - 0.7 * 1e-3, 0.7, math.isinf(lr_sgd), smooth_g2)
    fp_const = FPConstants(0.9, 0.99, HYPER["lr"] / (2 * lr_sgd), HYPER["lr"], 1.0 - 0.7 * 1e-3, 0.7)
    (a, b), (c, d) = _pair(torch.float32, lr_sgd, ab=True), _pair(torch.float32, lr_sgd, ab=False)
    first = [1, 7, 1, 3, 40]
    for t, g in enumerate(gradient_stream(8, steps=STEPS)):
        counts = [c0 + t for c0 in first]
        F.ab_fused_cpu(ABTensors(a.params, a.grads(g), a.m, a.v, a.var), counts, ab_const)
        tk.ab_triton(ABTensors(b.params, b.grads(g), b.m, b.v, b.var), torch.tensor(counts, dtype=torch.float64),
                     ab_const)  # fmt: skip
        F.fp_fused_cpu(FPTensors(c.params, c.grads(g), c.m, c.v), counts, fp_const)
        tk.fp_triton(FPTensors(d.params, d.grads(g), d.m, d.v), torch.tensor(counts, dtype=torch.float64), fp_const)
    _equal_runs(a, b)
    _equal_runs(c, d)


def test_interpreted_maximize_and_non_contiguous(tk) -> None:
    gen = torch.Generator().manual_seed(9)
    base = torch.randn(5, 6, generator=gen)
    params = [base.t(), torch.randn(2, 3, 4, 4, generator=gen).to(memory_format=torch.channels_last)]
    grads = [torch.randn(5, 6, generator=gen).t(), torch.randn(2, 3, 4, 4, generator=gen)]
    state = [[torch.rand(p.shape, generator=gen) for p in params] for _ in range(3)]
    ref = [[t.clone(memory_format=torch.contiguous_format) for t in ts] for ts in (params, grads, *state)]
    s = ab_scalars(1e-3, 0.3, (0.9, 0.99), 1e-3, "paper", 3)
    F.adabayes_cpu_step(ref[0], [-g for g in ref[1]], *ref[2:], **s)
    tk.adabayes_triton_step(params, grads, *state, **s, maximize=True)
    for got, expected in zip((params, *state), (ref[0], *ref[2:]), strict=True):
        for x, y in zip(got, expected, strict=True):
            assert torch.equal(x, y)
    assert torch.equal(base.t(), ref[0][0])  # written through to the original storage


def test_bad_inputs_raise(tk) -> None:
    s = ab_scalars(1e-3, 0.3, (0.9, 0.99), 0.0, "paper", 1)
    z = [torch.zeros(4)]
    with pytest.raises(ValueError, match="grads has 2 tensors"):
        tk.adabayes_triton_step(z, z * 2, z, None, z, **s)
    with pytest.raises(TypeError, match=r"var_posts\[0\] has dtype torch.float32, exp_avgs\[0\] has torch.float64"):
        tk.adabayes_triton_step(z, z, [torch.zeros(4, dtype=torch.float64)], None, z, **s)
    with pytest.raises(ValueError, match="needs exp_avg_sqs"):
        tk.adabayes_triton_step(z, z, z, None, z, **(s | {"v_scale": 1.0}))
    with pytest.raises(ValueError, match="one value per tensor"):
        tk.adabayes_triton_step(z, z, z, None, z, **(s | {"scale": [1.0, 2.0]}))


# --------------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda, reason="needs CUDA")
def test_cuda_kernels_match_the_numba_kernels_and_do_not_recompile(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    from filtering import _triton_kernels as tk

    gs = gradient_stream(10, steps=STEPS)
    cpu, gpu = _pair(torch.float32, 0.3, ab=True)
    gpu.params, gpu.m, gpu.v, gpu.var = ([t.cuda() for t in ts] for ts in (gpu.params, gpu.m, gpu.v, gpu.var))
    for t, g in enumerate(gs, start=1):
        s = ab_scalars(HYPER["lr"], 0.3, HYPER["betas"], HYPER["weight_decay"], "paper", t, c=1.0 / t)
        F.adabayes_cpu_step(cpu.params, cpu.grads(g), cpu.m, cpu.v, cpu.var, **s)
        tk.adabayes_triton_step(gpu.params, [x.cuda() for x in cpu.grads(g)], gpu.m, gpu.v, gpu.var, **s)
    for x, y in zip(cpu.params + cpu.var, gpu.params + gpu.var, strict=True):
        torch.testing.assert_close(y.cpu(), x, rtol=2e-5, atol=1e-6)
    kernel_cache = tk._kernel("ab").device_caches[torch.cuda.current_device()][0]  # triton 3.x: compiled variants
    assert len(kernel_cache) == 1, "a new lr (c = 1/t here) or step count must not compile the kernel again"


# --------------------------------------------------------------------------------------------------------------
# CUDA code generation without a GPU: Triton's NVIDIA backend ships ptxas, so the kernels can be compiled to PTX
# here; this checks the code paths the interpreter does not (pointer casts, constexpr branches, IEEE division).


def _compile_to_ptx(name: str, p_dtype: str, s_dtype: str, capability: int, fuse: bool = False) -> str:
    triton = pytest.importorskip("triton")
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError:
        pytest.skip("this triton has no ASTSource / GPUTarget")
    from filtering import _triton_kernels as tk

    fn = triton.jit({"ab": tk._ab_kernel, "fp": tk._fp_kernel}[name], do_not_specialize=["n", "nb"])
    signature = {"meta": "*i64", "sc": f"*{s_dtype}", "n": "i64", "nb": "i64", "p0": f"*{p_dtype}",
                 "g0": f"*{p_dtype}", "s0": f"*{s_dtype}"}  # fmt: skip
    constexprs = {"F64": s_dtype == "fp64", "BLOCK": tk.BLOCK}
    if name == "ab":
        constexprs |= {"HAS_V": True, "SMOOTH": False, "NF": len(tk.AB_FIELDS)}
    else:
        constexprs["NF"] = len(tk.FP_FIELDS)
    signature |= dict.fromkeys(constexprs, "constexpr")
    try:
        source = ASTSource(fn, signature, constexprs=constexprs)
        target = GPUTarget("cuda", capability, 32)
        kernel = triton.compile(source, target=target, options={"enable_fp_fusion": fuse})
    except RuntimeError as exc:  # no NVIDIA backend / ptxas in this install
        pytest.skip(f"cannot compile for CUDA here: {exc}")
    return kernel.asm["ptx"]


@pytest.mark.parametrize("name", ["ab", "fp"])
@pytest.mark.parametrize(
    ("p_dtype", "s_dtype"), [("fp32", "fp32"), ("bf16", "fp32"), ("fp16", "fp32"), ("fp64", "fp64")]
)
def test_kernels_compile_for_cuda_without_a_gpu(name: str, p_dtype: str, s_dtype: str, monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ptx = _compile_to_ptx(name, p_dtype, s_dtype, 90)
    assert ".entry" in ptx
    if s_dtype == "fp32":
        assert "div.rn.f32" in ptx  # IEEE division, as torch's (not div.full / div.approx)
        assert "fma.rn.f32" not in ptx  # no contracted multiply-adds: the numba kernel's arithmetic
    if p_dtype in ("bf16", "fp16"):
        assert "st.global.b16" in ptx  # parameters written back in 16 bits, in place
    if name == "fp" and s_dtype == "fp32":  # the check above can fail: with fusion on, the same kernel has FMAs
        assert "fma.rn.f32" in _compile_to_ptx(name, p_dtype, s_dtype, 90, fuse=True)
