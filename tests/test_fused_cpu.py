"""The numba CPU step (filtering._fused_cpu) against filtering.rules, filtering.kalman_step and the torch kernels.

Tolerances: float64 equals filtering.rules to rel 1e-12 over 60 steps (the two differ only in the order of a few
roundings per step), and the torch single-tensor path to rel 1e-12. fp32 equals the torch single-tensor path to
rtol 2e-5 / atol 1e-6 on the parameters after 60 steps: both round every operation to fp32, but torch's vectorised
lerp (Eq. 2) uses a fused multiply-add, so m differs in its last bit now and then, and more in relative terms where
Eq. 2 cancels (m near 0: compared with an absolute tolerance of rtol·max|m|). Observed on the development machine
(AVX2): parameters 3.2e-6 relative at worst after 60 steps, 2 of the 5 tensors bit-identical.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradient_streams import gradient_stream as shared_stream
from gradient_streams import initial_params as shared_initial

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from filtering import _fused_cpu as F  # noqa: E402
from filtering import kalman_step, rules  # noqa: E402
from filtering.ou import variance_predict_coefficients  # noqa: E402

SHAPES = [(33, 7), (5,), (4, 3, 3, 3), (1,), (300,)]
B = 16.0  # a power of two: g = -B p.grad is exact, so the rules see exactly the kernel's gradients
STEPS = 60


# --------------------------------------------------------------------------------------------------------------
# the scalars, derived here from the hyperparameters (the meaning documented in filtering._torch_kernels)


def ab_scalars(lr, lr_sgd, betas, weight_decay, predict, count, c=1.0):
    """ABScalars of step ``count``: g = -B p.grad, σ² = lr_sgd / B (Eq. 23), Eq. 17b's factor and noise."""
    factor, noise = variance_predict_coefficients(lr, lr_sgd / B, predict)
    return dict(w1=1.0 - betas[0], beta2=betas[1], w2=1.0 - betas[1], factor=factor, noise=noise, b2=B * B,
                rate_max=math.inf, decay=1.0 - c * weight_decay, scale=-c * B / (1.0 - betas[0] ** count))  # fmt: skip


def fp_scalars(lr, lr_sgd, betas, weight_decay, count, dtype, c=1.0):
    """FPScalars of step ``count``: Eq. 21 with k = η / (2 η_SGD) in p.grad units."""
    k = lr / (2.0 * lr_sgd)
    bc2 = 1.0 - betas[1] ** count
    kbc = k * math.sqrt(bc2)
    tiny = torch.finfo(dtype).tiny
    return dict(w1=1.0 - betas[0], beta2=betas[1], w2=1.0 - betas[1], k2bc2=k * k * bc2, kbc=kbc,
                tiny=tiny if kbc < tiny else 0.0, decay=1.0 - c * weight_decay,
                scale=-c * lr * math.sqrt(bc2) / (1.0 - betas[0] ** count))  # fmt: skip


def gradient_stream(seed: int, steps: int = STEPS) -> list[list[np.ndarray]]:
    """Mean-loss gradients from 1e-4 to 1e2 with exact zeros: one entry never sees a gradient, 5 % are 0."""
    return shared_stream(SHAPES, seed, steps)


def initial_params(seed: int) -> list[np.ndarray]:
    return shared_initial(SHAPES, seed)


class TorchRun:
    """Parameters and state as torch tensors, stepped by one of the kernels."""

    def __init__(self, params: list[np.ndarray], dtype: torch.dtype, sigma2: float, ab: bool, state_dtype=None):
        sd = state_dtype or dtype
        self.params = [torch.tensor(p, dtype=dtype) for p in params]
        self.m = [torch.zeros(p.shape, dtype=sd) for p in params]
        self.v = [torch.zeros(p.shape, dtype=sd) for p in params]
        self.var = [torch.full(p.shape, sigma2, dtype=sd) for p in params] if ab else None

    def grads(self, gs: list[np.ndarray]) -> list[torch.Tensor]:
        return [torch.tensor(g, dtype=p.dtype) for g, p in zip(gs, self.params, strict=True)]


def run_numba_ab(gs_stream, params0, dtype, *, lr, lr_sgd, betas, weight_decay, predict, with_v=True, **kw):
    run = TorchRun(params0, dtype, lr_sgd / B, ab=True)
    for t, gs in enumerate(gs_stream, start=1):
        s = ab_scalars(lr, lr_sgd, betas, weight_decay, predict, t)
        F.adabayes_cpu_step(run.params, run.grads(gs), run.m, run.v if with_v else None, run.var, **s, **kw)
    return run


def run_numba_fp(gs_stream, params0, dtype, *, lr, lr_sgd, betas, weight_decay, **kw):
    run = TorchRun(params0, dtype, lr_sgd / B, ab=False)
    for t, gs in enumerate(gs_stream, start=1):
        s = fp_scalars(lr, lr_sgd, betas, weight_decay, t, run.m[0].dtype)
        F.adabayes_fp_cpu_step(run.params, run.grads(gs), run.m, run.v, **s, **kw)
    return run


def run_rules(rule, gs_stream, params0):
    mus = [p.copy() for p in params0]
    states = [rule.init(p) for p in params0]
    for gs in gs_stream:
        for i, g in enumerate(gs):
            step, states[i] = rule.update(-B * g, states[i], mus[i])  # the paper's summed ascent gradient
            mus[i] = mus[i] + step
    return mus, states


def assert_rel(actual: torch.Tensor, expected: np.ndarray, rel: float) -> None:
    a = actual.double().numpy()
    scale = np.abs(expected)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf (checked below)
        err = np.abs(a - expected)
    both_inf = np.isinf(a) & np.isinf(expected) & (np.sign(a) == np.sign(expected))
    assert not np.isnan(a).any()
    assert np.all(both_inf | (err <= rel * scale)), f"max rel err {np.max(err[~both_inf] / scale[~both_inf])}"


# --------------------------------------------------------------------------------------------------------------
# float64: equal to filtering.rules


@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("lr_sgd", [0.3, math.inf])
@pytest.mark.parametrize("with_v", [True, False])
def test_adabayes_float64_equals_rules(predict: str, lr_sgd: float, with_v: bool) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=1e-3)
    gs, p0 = gradient_stream(1), initial_params(1)
    run = run_numba_ab(gs, p0, torch.float64, predict=predict, with_v=with_v, **hyper)
    rule = rules.adabayes(batch_size=B, predict=predict, **hyper)
    mus, states = run_rules(rule, gs, p0)
    for i in range(len(SHAPES)):
        assert_rel(run.params[i], mus[i], 1e-12)
        assert_rel(run.var[i], states[i].var_post, 1e-12)  # σ²_post (Eqs. 17b, 18a), inf where g was always 0
        m_ref = states[i].m  # the EMA of g = -B p.grad (Eq. 2); absolute tolerance where terms cancelled
        np.testing.assert_allclose(-B * run.m[i].numpy(), m_ref, rtol=1e-12, atol=1e-12 * np.abs(m_ref).max())
    if with_v:  # Eq. 4 kept for recording: the raw EMA of p.grad²
        v_ref = [np.zeros(s) for s in SHAPES]
        for step in gs:
            v_ref = [0.99 * v + 0.01 * g * g for v, g in zip(v_ref, step, strict=True)]
        for i in range(len(SHAPES)):
            np.testing.assert_allclose(run.v[i].numpy(), v_ref[i], rtol=1e-12, atol=0)


@pytest.mark.parametrize("lr_sgd", [0.3, math.inf])
def test_adabayes_fp_float64_equals_rules(lr_sgd: float) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=1e-3)
    gs, p0 = gradient_stream(2), initial_params(2)
    run = run_numba_fp(gs, p0, torch.float64, **hyper)
    mus, states = run_rules(rules.adabayes_fp(batch_size=B, **hyper), gs, p0)
    for i in range(len(SHAPES)):
        assert_rel(run.params[i], mus[i], 1e-12)
        assert_rel(B * B * run.v[i], states[i].v, 1e-12)


def test_zero_gradients_give_zero_steps_without_nan() -> None:
    """All-zero gradients with σ² = inf: σ²_post stays inf, m stays 0, the step is 0 (decay only), no NaN."""
    p0 = initial_params(3)
    zeros = [[np.zeros(s) for s in SHAPES] for _ in range(3)]
    for dtype in (torch.float32, torch.float64):
        ab = run_numba_ab(zeros, p0, dtype, lr=1e-3, lr_sgd=math.inf, betas=(0.9, 0.999), weight_decay=0.0,
                          predict="paper")  # fmt: skip
        fp = run_numba_fp(zeros, p0, dtype, lr=1e-3, lr_sgd=math.inf, betas=(0.9, 0.999), weight_decay=0.0)
        for i, p in enumerate(p0):
            expected = torch.tensor(p, dtype=dtype)
            assert torch.equal(ab.params[i], expected) and torch.equal(fp.params[i], expected)
            assert torch.isinf(ab.var[i]).all() and not torch.isnan(fp.params[i]).any()


def test_inlined_variance_step_equals_kalman_step_bit_for_bit() -> None:
    """The kernel's copy of Eqs. 17b/18a (typed constant 1) against filtering.kalman_step, fp32 and fp64."""
    rng = np.random.default_rng(4)
    var = np.concatenate([10.0 ** rng.uniform(-12, 3, 200), [np.inf, np.inf, 0.0]])
    h = np.concatenate([10.0 ** rng.uniform(-8, 8, 200), [0.0, 3.0, 1.0]])
    for dtype, (factor, noise) in [(np.float64, (0.97, 1e-6)), (np.float32, (0.97, 1e-6)), (np.float64, (1.0, 0.0))]:
        v, hh, f, q = var.astype(dtype), h.astype(dtype), dtype(factor), dtype(noise)
        with np.errstate(divide="ignore"):
            expected = kalman_step.update_variance(kalman_step.predict_variance(v, f, q), hh)
        got = np.array([F._variance_step(v[i], f, q, hh[i], dtype(1.0)) for i in range(v.size)], dtype=dtype)
        assert expected.dtype == dtype
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------------------------------------------
# fp32 and low precision: equal to the torch kernels


def _torch_kernels():
    """filtering._torch_kernels with the kernel protocol (tensors, counts, const, cache) these tests drive."""
    from filtering import _torch_kernels as K

    names = ("ABConstants", "ABTensors", "FPConstants", "FPTensors", "KernelCache", "ab_single", "fp_single")
    missing = [n for n in names if not hasattr(K, n)]
    if missing:
        pytest.skip(f"filtering._torch_kernels lacks {missing}; the float64 tests against filtering.rules still run")
    return K


def _constants(K, lr, lr_sgd, smooth_g2=False, lr_scale=1.0):
    factor, noise = variance_predict_coefficients(lr, lr_sgd / B, "paper")
    decay = 1.0 - lr_scale * 1e-3
    ab = K.ABConstants(beta1=0.9, beta2=0.99, factor=factor, noise=noise, batch_size=B, decay=decay,
                       lr_scale=lr_scale, sigma2_inf=math.isinf(lr_sgd), smooth_g2=smooth_g2)  # fmt: skip
    fp = K.FPConstants(beta1=0.9, beta2=0.99, k=lr / (2.0 * lr_sgd), eta=lr, decay=decay, lr_scale=lr_scale)
    return ab, fp


@pytest.mark.parametrize(
    ("dtype", "smooth_g2", "lr_sgd"),
    [(torch.float32, False, 0.3), (torch.float32, True, 0.3), (torch.float32, False, math.inf),
     (torch.float64, False, 0.3), (torch.float64, True, math.inf)],
)  # fmt: skip
def test_protocol_kernels_match_torch_single_path(dtype: torch.dtype, smooth_g2: bool, lr_sgd: float) -> None:
    """ab_fused_cpu / fp_fused_cpu against _torch_kernels.ab_single / fp_single over 60 steps, with tensors at
    different step counts in one call (fp32: rtol 2e-5, atol 1e-6, see the module docstring; fp64: rtol 1e-12)."""
    K = _torch_kernels()
    ab_const, fp_const = _constants(K, 2e-3, lr_sgd, smooth_g2)
    gs, p0 = gradient_stream(5), initial_params(5)
    runs = {name: TorchRun(p0, dtype, lr_sgd / B, ab=True) for name in ("ours_ab", "ref_ab")}
    runs |= {name: TorchRun(p0, dtype, lr_sgd / B, ab=False) for name in ("ours_fp", "ref_fp")}
    first = [1, 7, 1, 3, 40]  # tensors added at different times: their bias corrections differ
    for t, g in enumerate(gs):
        counts = [c + t for c in first]
        for name, run in runs.items():
            if name.endswith("ab"):
                tensors = K.ABTensors(run.params, run.grads(g), run.m, run.v, run.var)
                kernel, const = (F.ab_fused_cpu if name.startswith("ours") else K.ab_single), ab_const
            else:
                tensors = K.FPTensors(run.params, run.grads(g), run.m, run.v)
                kernel, const = (F.fp_fused_cpu if name.startswith("ours") else K.fp_single), fp_const
            kernel(tensors, counts, const, K.KernelCache())
    rtol = 2e-5 if dtype == torch.float32 else 1e-12
    for kind in ("ab", "fp"):
        ours, ref = runs[f"ours_{kind}"], runs[f"ref_{kind}"]
        for a, b in zip(ours.params, ref.params, strict=True):
            torch.testing.assert_close(a, b, rtol=rtol, atol=rtol / 20)
        for a, b in zip(ours.m + ours.v, ref.m + ref.v, strict=True):  # m: cancellation in Eq. 2 near m = 0
            torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))
    for a, b in zip(runs["ours_ab"].var, runs["ref_ab"].var, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=0.0)


def test_float32_is_close_to_float64() -> None:
    """fp32 state against the float64 step (itself equal to filtering.rules): the error stays at fp32 rounding."""
    hyper = dict(lr=2e-3, lr_sgd=0.3, betas=(0.9, 0.99), weight_decay=1e-3, predict="paper")
    gs, p0 = gradient_stream(6), initial_params(6)
    r32 = run_numba_ab(gs, p0, torch.float32, **hyper)
    r64 = run_numba_ab(gs, p0, torch.float64, **hyper)
    for a, b in zip(r32.params, r64.params, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-6)
    for a, b in zip(r32.var, r64.var, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_low_precision_params_use_an_fp32_working_copy(low: torch.dtype) -> None:
    """bf16/fp16 params: each step equals the fp32 step on the upcast params, rounded back once (bit for bit),
    and stays within one low-precision rounding of the torch single path."""
    gs, p0 = gradient_stream(7, steps=10), initial_params(7)
    p0 = [torch.tensor(p, dtype=low).double().numpy() for p in p0]  # representable in the low precision
    hyper = dict(lr=2e-3, lr_sgd=0.3, betas=(0.9, 0.99), weight_decay=1e-3)
    low_run = TorchRun(p0, low, 0.3 / B, ab=True, state_dtype=torch.float32)
    ref = TorchRun(p0, torch.float32, 0.3 / B, ab=True)
    for t, g in enumerate(gs, start=1):
        s = ab_scalars(predict="paper", count=t, **hyper)
        F.adabayes_cpu_step(low_run.params, low_run.grads(g), low_run.m, low_run.v, low_run.var, **s)
        g32 = [x.float() for x in low_run.grads(g)]
        F.adabayes_cpu_step(ref.params, g32, ref.m, ref.v, ref.var, **s)
        ref.params = [p.to(low).float() for p in ref.params]  # the working copy is rounded back every step
    for a, b in zip(low_run.params, ref.params, strict=True):
        assert a.dtype == low
        assert torch.equal(a.float(), b)
    for a, b in zip(low_run.m, ref.m, strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_low_precision_matches_torch_single_path() -> None:
    """bf16 params through both kernels' fp32 working copies: at most one bf16 rounding apart (2^-7 relative)."""
    K = _torch_kernels()
    ab_const, fp_const = _constants(K, 2e-3, 0.3)
    gs, p0 = gradient_stream(8, steps=10), initial_params(8)
    p0 = [torch.tensor(p, dtype=torch.bfloat16).double().numpy() for p in p0]
    runs = [TorchRun(p0, torch.bfloat16, 0.3 / B, ab=True, state_dtype=torch.float32) for _ in range(4)]
    for t, g in enumerate(gs, start=1):
        counts = [t] * len(SHAPES)
        for run, kernel in zip(runs[:2], (F.ab_fused_cpu, K.ab_single), strict=True):
            kernel(K.ABTensors(run.params, run.grads(g), run.m, run.v, run.var), counts, ab_const, None)
        for run, kernel in zip(runs[2:], (F.fp_fused_cpu, K.fp_single), strict=True):
            kernel(K.FPTensors(run.params, run.grads(g), run.m, run.v), counts, fp_const, None)
    for ours, ref in (runs[:2], runs[2:]):
        for a, b in zip(ours.params, ref.params, strict=True):
            assert a.dtype == torch.bfloat16
            torch.testing.assert_close(a.float(), b.float(), rtol=2**-7, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# layouts, flags, threads, errors


def _one_step(params, grads, ms, vs, vars_, **kw):
    F.adabayes_cpu_step(params, grads, ms, vs, vars_, **ab_scalars(1e-3, 0.3, (0.9, 0.99), 1e-3, "paper", 3), **kw)


def test_non_contiguous_tensors_are_copied_and_written_back() -> None:
    gen = torch.Generator().manual_seed(9)
    base_p, base_v = torch.randn(5, 6, generator=gen), torch.rand(5, 6, generator=gen)
    params = [base_p.t(), torch.randn(2, 3, 4, 4, generator=gen).to(memory_format=torch.channels_last)]
    grads = [torch.randn(5, 6, generator=gen).t(), torch.randn(2, 3, 4, 4, generator=gen)]
    ms = [torch.rand(6, 5, generator=gen), torch.rand(2, 3, 4, 4, generator=gen)]
    vs = [base_v.t(), torch.rand(2, 3, 4, 4, generator=gen)]
    last = torch.rand(2, 3, 4, 4, generator=gen).to(memory_format=torch.channels_last)
    vars_ = [torch.rand(6, 5, generator=gen), last]
    assert not any(t.is_contiguous() for t in (params[0], params[1], grads[0], vs[0], vars_[1]))
    ref = [[t.clone(memory_format=torch.contiguous_format) for t in ts] for ts in (params, grads, ms, vs, vars_)]
    _one_step(*ref)
    _one_step(params, grads, ms, vs, vars_)
    for got, expected in zip((params, ms, vs, vars_), (ref[0], ref[2], ref[3], ref[4]), strict=True):
        for a, b in zip(got, expected, strict=True):
            assert torch.equal(a, b)
    assert torch.equal(base_p.t(), ref[0][0]) and torch.equal(base_v.t(), ref[3][0])  # originals' storage written


def test_maximize_negates_the_gradient() -> None:
    gs, p0 = gradient_stream(10, steps=5), initial_params(10)
    neg = [[-g for g in step] for step in gs]
    hyper = dict(lr=2e-3, lr_sgd=0.3, betas=(0.9, 0.99), weight_decay=1e-3)
    a = run_numba_ab(gs, p0, torch.float64, predict="paper", maximize=True, **hyper)
    b = run_numba_ab(neg, p0, torch.float64, predict="paper", **hyper)
    c = run_numba_fp(gs, p0, torch.float64, maximize=True, **hyper)
    d = run_numba_fp(neg, p0, torch.float64, **hyper)
    for x, y in ((a, b), (c, d)):
        for p, q in zip(x.params + x.m, y.params + y.m, strict=True):
            assert torch.equal(p, q)
    e = run_numba_fp(gs, p0, torch.float64, **hyper)
    assert not torch.equal(c.params[0], e.params[0])


def test_zero_scale_leaves_params_to_the_decay_only() -> None:
    """lr scheduled to 0 (c = 0: scale 0, decay 1): params unchanged bit for bit while the filter state moves."""
    p = [torch.randn(1000, dtype=torch.float32)]
    before = p[0].clone()
    var = [torch.full((1000,), math.inf)]
    s = ab_scalars(1e-3, math.inf, (0.9, 0.99), 1e-2, "paper", 1, c=0.0)
    F.adabayes_cpu_step(p, [torch.full((1000,), 1e-3)], [torch.zeros(1000)], None, var, **s)
    assert torch.equal(p[0], before) and torch.isfinite(var[0]).all()


def test_parallel_and_serial_builds_agree_bit_for_bit(monkeypatch) -> None:
    if F._pool_size() < 2:
        pytest.skip("numba has a single thread here")
    gen = torch.Generator().manual_seed(11)
    shapes = [(3 * F.BLOCK + 17,), (5,), (F.BLOCK,)]
    runs = []
    for threads, serial_below in ((1, 1 << 40), (2, 0)):
        monkeypatch.setattr(F, "SERIAL_BELOW", serial_below)
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            gen.manual_seed(11)
            p = [torch.randn(s, generator=gen) for s in shapes]
            g = [torch.randn(s, generator=gen) for s in shapes]
            m, v, var = ([torch.rand(s, generator=gen) for s in shapes] for _ in range(3))
            _one_step(p, g, m, v, var)
            F.adabayes_fp_cpu_step(p, g, m, v, **fp_scalars(1e-3, 0.3, (0.9, 0.99), 0.0, 2, torch.float32))
        finally:
            torch.set_num_threads(old)
        runs.append(p + m + v + var)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_in_place_step_counts_as_a_version_bump() -> None:
    """Autograd must see the write: a graph that saved the parameter refuses to backpropagate afterwards."""
    p = torch.randn(10, requires_grad=True)
    loss = (p * p).sum()  # saves p for backward
    with torch.no_grad():
        _one_step([p], [torch.ones(10)], [torch.zeros(10)], None, [torch.ones(10)])
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_bad_inputs_raise_naming_the_argument() -> None:
    p, z = [torch.zeros(4)], [torch.zeros(4)]
    with pytest.raises(ValueError, match="grads has 2 tensors"):
        _one_step(p, [torch.zeros(4)] * 2, z, None, [torch.zeros(4)])
    with pytest.raises(ValueError, match=r"exp_avgs\[0\] has 3 elements"):
        _one_step(p, [torch.zeros(4)], [torch.zeros(3)], None, [torch.zeros(4)])
    with pytest.raises(TypeError, match=r"var_posts\[0\] has dtype torch.float64"):
        _one_step(p, [torch.zeros(4)], [torch.zeros(4)], None, [torch.zeros(4, dtype=torch.float64)])
    with pytest.raises(TypeError, match="exp_avgs must be float32 or float64"):
        _one_step([torch.zeros(4, dtype=torch.bfloat16)], [torch.zeros(4)], [torch.zeros(4, dtype=torch.bfloat16)],
                  None, [torch.zeros(4)])  # fmt: skip
    with pytest.raises(ValueError, match=r"params\[0\] is on meta"):
        _one_step([torch.zeros(4, device="meta")], [torch.zeros(4)], [torch.zeros(4)], None, [torch.zeros(4)])
    with pytest.raises(TypeError, match="maximize must be a bool"):
        _one_step(p, [torch.zeros(4)], [torch.zeros(4)], None, [torch.zeros(4)], maximize=1)
    with pytest.raises(ValueError, match="params must not be empty"):
        _one_step([], [], [], None, [])


@pytest.mark.parametrize("kw", [{}, {"track_g2": False}, {"smooth_g2": True}, {"maximize": True}])
def test_wired_into_the_optimiser_classes(monkeypatch, kw: dict) -> None:
    """The ``numba`` kernel path of filtering.torch_functional: AdaBayes / AdaBayesFP with ``fused=True`` on CPU
    run these kernels (counted) and equal their single-tensor path (float64, 20 steps, rel 1e-12)."""
    from filtering import torch_functional as tf
    from filtering.torch_adapter import AdaBayes, AdaBayesFP

    calls: list[str] = []

    def counted(kernel):
        def run(*args):
            calls.append(kernel.__name__)
            return kernel(*args)

        return run

    assert tf.choose_path(torch.device("cpu"), foreach=None, fused=True, capturable=False) == "numba"
    path = tf.KernelPath(counted(F.ab_fused_cpu), counted(F.fp_fused_cpu), device_counts=False)
    monkeypatch.setitem(tf.PATHS, "numba", path)
    classes = [AdaBayes] if "track_g2" in kw or "smooth_g2" in kw else [AdaBayes, AdaBayesFP]
    for cls in classes:
        gen = torch.Generator().manual_seed(12)
        ours = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in SHAPES]
        ref = [p.detach().clone().requires_grad_() for p in ours]
        hyper = dict(lr=2e-3, lr_sgd=0.3, batch_size=B, weight_decay=1e-3, **kw)
        opt_ours, opt_ref = cls(ours, fused=True, **hyper), cls(ref, foreach=False, **hyper)
        for _ in range(20):
            for p, q in zip(ours, ref, strict=True):
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                q.grad = p.grad.clone()
            opt_ours.step()
            opt_ref.step()
        for p, q in zip(ours, ref, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=0.0)
    assert len(calls) == 20 * len(classes)  # the numba kernels ran every step
