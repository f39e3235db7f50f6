"""The optimisers under extreme gradients (issue 13), the ⟨g²⟩ EMA option (issue 15) and the survivors of the
issue-12 mutation run that live in the torch kernels.

- Gradients at the fp32 / bf16 / fp16 maxima, and finite fp32 gradients above ~2.7e36 with B = 128, used to make
  the weights NaN on the single and foreach paths (``scale · m`` overflowed before multiplying σ²_post = 0).
- One gradient spike moves an AdaBayes weight by ≈ -1.15 per 1e3 of spike (Alg. 1 as printed);
  ``smooth_g2=True`` bounds it like AdamW and AdaBayes-FP (:mod:`filtering.spike_response`).
- ``track_g2=False`` drops the ⟨g²⟩ EMA (28 instead of 36 bytes per parameter and step) without changing a bit of
  Alg. 1, and every read-out that needs ⟨g²⟩ says which option to set.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from filtering import fixed_point  # noqa: E402
from filtering.recording import LearningRateRecorder  # noqa: E402
from filtering.spike_response import OPTIMIZERS, spike_displacement  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

CLASSES = [AdaBayes, AdaBayesFP]
EAGER = {"single": {"foreach": False}, "foreach": {"foreach": True}, "capturable": {"capturable": True}}
_needs_cxx = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="fused=True on CPU needs a C++ compiler"
)
ALL = [*EAGER, pytest.param("fused", marks=[pytest.mark.slow, _needs_cxx])]


def _kw(path: str) -> dict[str, bool]:
    return {"fused": True} if path == "fused" else EAGER[path]


# --------------------------------------------------------------------------------------------------------------
# overflow order


@pytest.mark.parametrize("path", ALL)
@pytest.mark.parametrize("cls", CLASSES)
def test_huge_finite_fp32_gradient_leaves_a_finite_decayed_weight(cls: type, path: str) -> None:
    """p.grad = ±3e36 and ±3.4e38 (finite fp32), B = 128: B² g² overflows, so σ²_post = 0 (AdaBayes) and the
    denominator is inf (AdaBayes-FP): the step is exactly 0 and only the decay acts. Forming ``scale · m`` first
    gave -inf · 0 = NaN here."""
    lam = 1e-3
    values = torch.tensor([3e36, -3e36, 3.4e38, -3.4e38])
    p = torch.ones(4, requires_grad=True)
    opt = cls([p], batch_size=128, weight_decay=lam, **_kw(path))
    p.grad = values.clone()
    opt.step()
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.detach(), torch.full((4,), 1.0 - lam), rtol=1e-6, atol=0)


DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# every dtype on the eager paths; the compiled path (slow to compile) in fp32 state via fp32 and bf16 parameters
MAXIMA_CASES = [(path, dtype) for path in EAGER for dtype in DTYPES] + [
    pytest.param("fused", dtype, marks=[pytest.mark.slow, _needs_cxx]) for dtype in DTYPES[:2]
]


@pytest.mark.parametrize(("path", "dtype"), MAXIMA_CASES)
@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_at_the_dtype_maximum_keep_parameters_finite(cls: type, dtype: torch.dtype, path: str) -> None:
    """±finfo(dtype).max gradients, alternating with ordinary ones, B = 128: parameters and momentum stay finite,
    no state entry is NaN, and the read-outs are NaN-free."""
    big = torch.finfo(dtype).max
    p = torch.ones(6, dtype=dtype, requires_grad=True)
    opt = cls([p], batch_size=128, weight_decay=1e-4, **_kw(path))
    grads = [[big, -big, 0.5, -0.5, 0.0, big], [0.01, 0.02, -big, big, 0.0, -0.01], [0.01] * 6]
    for g in grads * 2:
        p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        assert torch.isfinite(p).all()
        state = opt.state[p]
        assert torch.isfinite(state["exp_avg"]).all()
        assert not any(torch.isnan(v).any() for v in state.values() if torch.is_tensor(v))
        assert not torch.isnan(opt.learning_rates(p)).any()


# --------------------------------------------------------------------------------------------------------------
# survivors of the mutation run in the compiled kernel (fused on CPU compiles through inductor: slow)


@pytest.mark.slow
@_needs_cxx
@pytest.mark.parametrize("fused_path", ["numba", pytest.param("compiled", marks=[pytest.mark.slow, _needs_cxx])])
def test_fused_adabayes_with_infinite_lr_sgd_and_zero_gradient_stays_put(fused_path: str, monkeypatch) -> None:
    """σ² = inf and no gradient yet: σ²_post = inf and m = 0; the step must be 0, not 0 · inf = NaN (the clamp of
    σ²_post to the dtype's maximum inside each fused kernel is what makes it 0). ``fused=True`` runs the numba
    kernel on CPU; the compiled (torch.compile) kernel is its fallback, selected here through ``FUSED``."""
    from filtering import torch_functional as TF

    monkeypatch.setitem(TF.FUSED, "cpu", fused_path)
    p = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = AdaBayes([p], lr_sgd=math.inf, batch_size=10, fused=True)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0, -2.0, 3.0]))
    assert torch.isinf(opt.state[p]["var_post"]).all()
    p.grad = torch.tensor([0.1, 0.0, -0.1])
    opt.step()
    assert torch.isfinite(p).all() and p[1].item() == -2.0


@pytest.mark.slow
@_needs_cxx
@pytest.mark.parametrize("cls", CLASSES)
def test_fused_float64_on_cpu_equals_foreach(cls: type) -> None:
    """The compiled path in float64 on CPU against foreach: rtol 1e-12 after 5 steps (contracted multiply-adds and
    float64 bias corrections differ at the last bits only)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(9, 4), (5,)]
    x0 = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(5)]
    results = []
    for kw in ({"fused": True}, {"foreach": True}):
        params = [x.clone().requires_grad_() for x in x0]
        opt = cls(params, lr=2e-3, lr_sgd=0.3, batch_size=16, weight_decay=1e-3, **kw)
        for gs in grads:
            for p, g in zip(params, gs, strict=True):
                p.grad = g
            opt.step()
        results.append([p.detach() for p in params])
    for a, b, x in zip(*results, x0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
        assert (a - x).abs().max() > 1e-4  # the steps moved it


# --------------------------------------------------------------------------------------------------------------
# spike sensitivity (Alg. 1) and the bounded option


@pytest.fixture(scope="module")
def spikes() -> dict[str, list[float]]:
    """Median spike displacement (8 weights, 300 + 1 + 700 steps) per optimiser of filtering.spike_response."""
    return {
        name: [float(np.median(spike_displacement(make, s, burn_in=300, after=700, seeds=8))) for s in (1e3, 1e5)]
        for name, make in OPTIMIZERS.items()
    }


def test_one_gradient_spike_moves_an_adabayes_weight_in_proportion(spikes: dict[str, list[float]]) -> None:
    """Alg. 1: ≈ -B (1-β1) spike η² β1/(1-β1)² = -1.15 per 1e3 (B = 128, η = 1e-3, β1 = 0.9), linear in the spike,
    and more than 20 times what the same spike does to AdamW or AdaBayes-FP."""
    small, large = spikes["AdaBayes"]
    assert -1.3 < small < -1.0
    assert 95.0 < large / small < 105.0
    others = max(abs(v) for name in ("AdamW", "AdaBayes-FP") for v in spikes[name])
    assert abs(small) > 20 * others


def test_smooth_g2_bounds_the_spike_response_like_adamw_and_adabayes_fp(spikes: dict[str, list[float]]) -> None:
    others = max(abs(v) for name in ("AdamW", "AdaBayes-FP") for v in spikes[name])
    for value in spikes["AdaBayes smooth_g2"]:
        assert abs(value) <= others
        assert abs(value) < 0.05


@pytest.mark.parametrize("path", list(EAGER))
@pytest.mark.parametrize("smooth", [False, True])
def test_constant_gradient_magnitude_reaches_the_exact_fixed_point(smooth: bool, path: str) -> None:
    """p.grad = ±c (⟨g²⟩ = g² = B² c² every step): Alg. 1 and its smooth_g2 variant both converge to the exact fixed
    point of the precision recursion (filtering.fixed_point.exact_precision), which smoothing leaves unchanged."""
    b, c, eta, lr_sgd = 16, 0.05, 1e-2, 0.5
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = AdaBayes([p], lr=eta, lr_sgd=lr_sgd, batch_size=b, smooth_g2=smooth, **EAGER[path])
    for t in range(3000):
        p.grad = torch.tensor([c, -c], dtype=torch.float64) * (-1) ** t
        opt.step()
    expected = 1.0 / fixed_point.exact_precision((b * c) ** 2, eta, lr_sgd / b)
    np.testing.assert_allclose(opt.learning_rates(p).numpy(), expected, rtol=1e-9)


def test_smooth_g2_needs_track_g2() -> None:
    with pytest.raises(ValueError, match="smooth_g2"):
        AdaBayes([torch.zeros(2, requires_grad=True)], batch_size=4, smooth_g2=True, track_g2=False)
    with pytest.raises(ValueError, match="smooth_g2"):
        AdaBayes([torch.zeros(2, requires_grad=True)], batch_size=4, smooth_g2="yes")


# --------------------------------------------------------------------------------------------------------------
# track_g2=False: 28 bytes per parameter


@pytest.mark.parametrize("path", list(EAGER))
def test_track_g2_off_changes_no_bit_of_alg1_and_keeps_two_state_tensors(path: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 5, generator=gen)
    on, off = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    opt_on = AdaBayes([on], batch_size=32, weight_decay=1e-3, **EAGER[path])
    opt_off = AdaBayes([off], batch_size=32, weight_decay=1e-3, track_g2=False, **EAGER[path])
    for _ in range(6):
        g = torch.randn(6, 5, generator=gen)
        on.grad, off.grad = g, g.clone()
        opt_on.step()
        opt_off.step()
    assert torch.equal(on, off)
    assert torch.equal(opt_on.state[on]["var_post"], opt_off.state[off]["var_post"])
    tensors = {k: v for k, v in opt_off.state[off].items() if k != "step"}
    assert set(tensors) == {"exp_avg", "var_post"}
    # per fp32 parameter a step reads p, p.grad, m, σ²_post and writes p, m, σ²_post: 7 x 4 = 28 bytes (36 with v)
    state_bytes = sum(v.numel() * v.element_size() for v in tensors.values())
    assert state_bytes == 8 * off.numel()


def test_track_g2_off_read_outs_name_the_option() -> None:
    p = torch.zeros(3, requires_grad=True)
    opt = AdaBayes([p], batch_size=8, track_g2=False)
    p.grad = torch.ones(3)
    opt.step()
    assert opt.readout(p).g2 is None
    assert torch.isfinite(opt.learning_rates(p)).all()
    with pytest.raises(ValueError, match="track_g2=True"):
        opt.mean_squared_gradients(p)
    with pytest.raises(ValueError, match="track_g2=True"):
        LearningRateRecorder(opt)
    opt.param_groups[0]["track_g2"] = True  # switched on after a step: ⟨g²⟩ cannot be rebuilt
    with pytest.raises(ValueError, match=r"lacks \['exp_avg_sq'\] after 1 steps"):
        opt.step()
    state = AdaBayes([torch.zeros(3, requires_grad=True)], batch_size=8, track_g2=False).state_dict()
    assert state["param_groups"][0]["track_g2"] is False
