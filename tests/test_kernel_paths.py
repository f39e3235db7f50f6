"""The fused kernel paths wired into the optimisers: ``numba`` (CPU) and ``triton`` (CUDA; CPU under the interpreter).

What is checked, through the public classes and :func:`filtering.torch_functional.choose_path`:

- the path chosen for each flag combination is the one the docstrings name, with the fallbacks when numba /
  Triton cannot be imported (simulated by pointing the path at a module that does not exist);
- AdaBayes / AdaBayesFP on the numba path (the CPU default and ``fused=True``; a counting wrapper proves the numba
  kernels ran) against ``filtering.rules`` in float64 (rel 1e-12 on parameters and state; the momentum with an
  absolute floor of 1e-12 of its largest entry, where Eq. 2 cancels), and against the single-tensor path in
  float32 (rtol 2e-5: each step rounds ~10 fp32 operations in a different order, ~6e-8 each, over 20 steps) and
  bf16 (one bf16 rounding, 2^-7 relative): both predict options, weight decay, ``lr_sgd = inf``, ``maximize``,
  complex parameters, a state-dict round trip;
- the ``triton`` path through the optimiser under ``TRITON_INTERPRET=1`` on tiny CPU tensors, against the
  single-tensor path (float64 rel 1e-12, float32 rtol 2e-5).

Everything skips cleanly without numba / Triton; nothing here needs a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from gradient_streams import gradient_stream as shared_stream
from gradient_streams import initial_params as shared_initial

torch = pytest.importorskip("torch")

from filtering import rules  # noqa: E402
from filtering import torch_functional as TF  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

SHAPES = [(9, 7), (5,), (2, 3, 3, 3), (1,)]
B = 16.0  # a power of two: g = -B p.grad is exact, so the rules see the optimiser's gradients exactly
STEPS = 20
CPU = torch.device("cpu")
numba_missing = not TF.path_available("numba")
needs_numba = pytest.mark.skipif(numba_missing, reason="numba is not importable")


def _gradients(seed: int, steps: int = STEPS) -> list[list[np.ndarray]]:
    """Mean-loss gradients from 1e-4 to 1e2 with exact zeros (one entry per tensor never sees a gradient)."""
    return shared_stream(SHAPES, seed, steps)


def _initial(seed: int) -> list[np.ndarray]:
    return shared_initial(SHAPES, seed)


class Counter:
    """Wraps a kernel path so a test can tell that its kernels ran (and how often)."""

    def __init__(self, path: TF.KernelPath) -> None:
        self.calls = 0
        self.path = TF.KernelPath(self._counted(path.adabayes), self._counted(path.adabayes_fp), path.device_counts)

    def _counted(self, kernel: Callable[..., None]) -> Callable[..., None]:
        def run(*args: object) -> None:
            self.calls += 1
            kernel(*args)

        return run


@pytest.fixture
def numba_calls(monkeypatch) -> Counter:
    """The numba path with a call counter (choose_path still decides whether it runs)."""
    counter = Counter(TF.PATHS["numba"])
    monkeypatch.setitem(TF.PATHS, "numba", counter.path)
    return counter


def _run(cls: type, params0: list[np.ndarray], grads: list[list[np.ndarray]], dtype: torch.dtype, **kw):
    """Parameters after the optimiser's steps on the gradient stream, and the optimiser."""
    params = [torch.tensor(p, dtype=torch.float64).to(dtype).requires_grad_() for p in params0]
    opt = cls(params, batch_size=B, **kw)
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = torch.tensor(g, dtype=torch.float64).to(dtype)
        opt.step()
    return params, opt


def _rules(rule, params0: list[np.ndarray], grads: list[list[np.ndarray]]):
    mus = [p.copy() for p in params0]
    states = [rule.init(p) for p in params0]
    for gs in grads:
        for i, g in enumerate(gs):
            step, states[i] = rule.update(-B * g, states[i], mus[i])  # the paper's summed ascent gradient
            mus[i] = mus[i] + step
    return mus, states


def _assert_rel(actual: torch.Tensor, expected: np.ndarray, rel: float) -> None:
    a = actual.detach().double().numpy()
    both_inf = np.isinf(a) & np.isinf(expected) & (np.sign(a) == np.sign(expected))
    with np.errstate(invalid="ignore"):
        err = np.abs(a - expected)
    assert not np.isnan(a).any()
    assert np.all(both_inf | (err <= rel * np.abs(expected))), f"max rel err {np.max(err[~both_inf])}"


def _assert_states_close(opt_a, opt_b, params_a, params_b, rtol: float) -> None:
    for p, q in zip(params_a, params_b, strict=True):
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert sa.keys() == sb.keys()
        for key in sa:
            a, b = sa[key], sb[key]
            atol = rtol * float(b.abs().max()) if key == "exp_avg" else 0.0  # Eq. 2 cancels near m = 0
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, key=key: f"{key}: {m}")


# --------------------------------------------------------------------------------------------------------------
# choose_path


def test_choose_path_as_documented() -> None:
    cuda, meta = torch.device("cuda"), torch.device("meta")
    cpu_fused = "numba" if TF.path_available("numba") else "compiled"
    assert TF.choose_path(CPU, foreach=None, fused=True, capturable=False) == cpu_fused
    cpu_default = "numba" if TF.path_available("numba") else "single"
    assert TF.choose_path(CPU, foreach=None, fused=None, capturable=False) == cpu_default
    assert TF.choose_path(CPU, foreach=False, fused=None, capturable=False) == "single"
    assert TF.choose_path(CPU, foreach=None, fused=False, capturable=False) == "single"
    assert TF.choose_path(CPU, foreach=True, fused=None, capturable=False) == "foreach"
    assert TF.choose_path(CPU, foreach=None, fused=None, capturable=True) == "capturable"
    triton = TF.path_available("triton")
    assert TF.choose_path(cuda, foreach=None, fused=True, capturable=False) == ("triton" if triton else "compiled")
    assert TF.choose_path(cuda, foreach=None, fused=None, capturable=False) == ("triton" if triton else "foreach")
    assert TF.choose_path(cuda, foreach=False, fused=None, capturable=False) == "single"
    with pytest.raises(RuntimeError, match="fused=True supports cpu and cuda tensors only"):
        TF.choose_path(meta, foreach=None, fused=True, capturable=False)


def test_missing_numba_or_triton_falls_back(monkeypatch) -> None:
    """A path whose kernel module cannot be imported: fused=True runs torch.compile, the default the plain loops."""
    monkeypatch.setitem(TF.REQUIRES, "numba", "_no_such_kernel_module")
    monkeypatch.setitem(TF.REQUIRES, "triton", "_no_such_kernel_module")
    assert not TF.path_available("numba") and not TF.path_available("triton")
    assert TF.path_available("single")
    assert TF.choose_path(CPU, foreach=None, fused=True, capturable=False) == "compiled"
    assert TF.choose_path(CPU, foreach=None, fused=None, capturable=False) == "single"
    cuda = torch.device("cuda")
    assert TF.choose_path(cuda, foreach=None, fused=True, capturable=False) == "compiled"
    assert TF.choose_path(cuda, foreach=None, fused=None, capturable=False) == "foreach"


def test_kernel_modules_are_imported_only_when_a_step_needs_them() -> None:
    """``import filtering.torch_functional`` loads neither numba nor Triton (start-up time, issue 15 item 6)."""
    import subprocess
    import sys

    code = (
        "import sys, filtering.torch_functional, filtering.torch_adapter; "
        "print(sorted(m for m in ('numba', 'triton', 'filtering._fused_cpu', 'filtering._triton_kernels') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------------------------
# numba path: float64 against filtering.rules


@needs_numba
@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("lr_sgd", [0.3, math.inf])
@pytest.mark.parametrize("fused", [None, True])
def test_adabayes_numba_float64_equals_rules(numba_calls, predict: str, lr_sgd: float, fused: bool | None) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=1e-3)
    grads, p0 = _gradients(1), _initial(1)
    params, opt = _run(AdaBayes, p0, grads, torch.float64, predict=predict, fused=fused, **hyper)
    assert numba_calls.calls == STEPS
    mus, states = _rules(rules.adabayes(batch_size=B, predict=predict, **hyper), p0, grads)
    for p, mu, st in zip(params, mus, states, strict=True):
        _assert_rel(p, mu, 1e-12)
        _assert_rel(opt.state[p]["var_post"], st.var_post, 1e-12)  # Eqs. 17b, 18a; inf where g was always 0
        m = -B * opt.state[p]["exp_avg"].numpy()  # the EMA of g = -B p.grad (Eq. 2)
        np.testing.assert_allclose(m, st.m, rtol=1e-12, atol=1e-12 * np.abs(st.m).max())


@needs_numba
@pytest.mark.parametrize("lr_sgd", [0.3, math.inf])
@pytest.mark.parametrize("fused", [None, True])
def test_adabayes_fp_numba_float64_equals_rules(numba_calls, lr_sgd: float, fused: bool | None) -> None:
    hyper = dict(lr=2e-3, lr_sgd=lr_sgd, betas=(0.9, 0.99), weight_decay=1e-3)
    grads, p0 = _gradients(2), _initial(2)
    params, opt = _run(AdaBayesFP, p0, grads, torch.float64, fused=fused, **hyper)
    assert numba_calls.calls == STEPS
    mus, states = _rules(rules.adabayes_fp(batch_size=B, **hyper), p0, grads)
    for p, mu, st in zip(params, mus, states, strict=True):
        _assert_rel(p, mu, 1e-12)
        _assert_rel(B * B * opt.state[p]["exp_avg_sq"], st.v, 1e-12)  # Eq. 4 in summed units


# --------------------------------------------------------------------------------------------------------------
# numba path: float32 / bf16 and the options, against the single-tensor path


CASES = [
    (AdaBayes, {}),
    (AdaBayes, {"predict": "exponential", "weight_decay": 1e-2}),
    (AdaBayes, {"track_g2": False}),
    (AdaBayes, {"smooth_g2": True}),
    (AdaBayes, {"maximize": True}),
    (AdaBayesFP, {}),
    (AdaBayesFP, {"weight_decay": 1e-2, "lr_sgd": math.inf}),
    (AdaBayesFP, {"maximize": True}),
]


@needs_numba
@pytest.mark.parametrize(("cls", "kw"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_default_path_equals_single_path(numba_calls, cls: type, kw: dict, dtype: torch.dtype) -> None:
    hyper = dict(lr=2e-3, lr_sgd=0.3, weight_decay=1e-3) | kw
    grads, p0 = _gradients(3), _initial(3)
    ours, opt = _run(cls, p0, grads, dtype, **hyper)
    assert numba_calls.calls == STEPS
    ref, opt_ref = _run(cls, p0, grads, dtype, foreach=False, **hyper)
    assert numba_calls.calls == STEPS  # the single path did not run the numba kernels
    rtol = 2e-5 if dtype == torch.float32 else 1e-12
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=rtol * 1e-3)
    _assert_states_close(opt, opt_ref, ours, ref, rtol)


@needs_numba
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_numba_bf16_params_keep_fp32_state(numba_calls, cls: type) -> None:
    grads, p0 = _gradients(4, steps=8), _initial(4)
    ours, opt = _run(cls, p0, grads[:8], torch.bfloat16, fused=True)
    assert numba_calls.calls == 8
    ref, opt_ref = _run(cls, p0, grads[:8], torch.bfloat16, foreach=False)
    for p, q in zip(ours, ref, strict=True):
        assert p.dtype == torch.bfloat16 and opt.state[p]["exp_avg"].dtype == torch.float32
        torch.testing.assert_close(p.float(), q.float(), rtol=2**-7, atol=1e-6)  # one bf16 rounding apart
    _assert_states_close(opt, opt_ref, ours, ref, 2e-5)


@needs_numba
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_numba_complex_params_equal_view_as_real(numba_calls, cls: type) -> None:
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(6, 4, dtype=torch.complex128, generator=gen).requires_grad_()
    x = torch.view_as_real(z.detach()).clone().requires_grad_()
    opt_z, opt_x = cls([z], batch_size=B, weight_decay=1e-3), cls([x], batch_size=B, weight_decay=1e-3, foreach=False)
    for _ in range(5):
        g = torch.randn(6, 4, dtype=torch.complex128, generator=gen)
        z.grad, x.grad = g, torch.view_as_real(g).clone()
        opt_z.step()
        opt_x.step()
    assert numba_calls.calls == 5
    torch.testing.assert_close(torch.view_as_real(z.detach()), x.detach(), rtol=1e-12, atol=0.0)


@needs_numba
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_numba_state_dict_round_trip_continues_like_the_single_path(numba_calls, cls: type) -> None:
    """Five numba steps, save, load into a fresh optimiser, five more: equal to ten single-path steps."""
    grads, p0 = _gradients(6, steps=10), _initial(6)
    ours, opt = _run(cls, p0, grads[:5], torch.float64, fused=True)
    saved = opt.state_dict()
    fresh = cls(ours, batch_size=B, fused=True)
    fresh.load_state_dict(saved)
    for gs in grads[5:]:
        for p, g in zip(ours, gs, strict=True):
            p.grad = torch.tensor(g, dtype=torch.float64)
        fresh.step()
    assert numba_calls.calls == 10
    ref, opt_ref = _run(cls, p0, grads, torch.float64, foreach=False)
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)
        assert float(fresh.state[p]["step"]) == 10.0
    _assert_states_close(fresh, opt_ref, ours, ref, 1e-12)


# --------------------------------------------------------------------------------------------------------------
# triton path through the optimiser, interpreted on CPU tensors


@pytest.fixture
def interpreted_triton(monkeypatch) -> Counter:
    """``fused=True`` on CPU runs the triton path under ``TRITON_INTERPRET=1``, with a call counter."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if not TF.path_available("triton"):
        pytest.skip("filtering._triton_kernels does not import")
    counter = Counter(TF.PATHS["triton"])
    monkeypatch.setitem(TF.PATHS, "triton", counter.path)
    monkeypatch.setitem(TF.FUSED, "cpu", "triton")
    return counter


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # 1/0 = inf in Eq. 18a, by NumPy
@pytest.mark.parametrize(
    ("cls", "kw", "dtype"),
    [
        (AdaBayes, {}, torch.float64),
        (AdaBayes, {"predict": "exponential", "maximize": True}, torch.float32),
        (AdaBayes, {"track_g2": False, "lr_sgd": math.inf}, torch.float64),
        (AdaBayesFP, {}, torch.float64),
        (AdaBayesFP, {"maximize": True}, torch.float32),
    ],
)
def test_triton_path_through_the_optimiser_equals_single_path(
    interpreted_triton, cls: type, kw: dict, dtype: torch.dtype
) -> None:
    hyper = dict(lr=2e-3, lr_sgd=0.3, weight_decay=1e-3) | kw
    grads, p0 = _gradients(7, steps=6), _initial(7)
    ours, opt = _run(cls, p0, grads, dtype, fused=True, **hyper)
    assert interpreted_triton.calls == 6
    ref, opt_ref = _run(cls, p0, grads, dtype, foreach=False, **hyper)
    rtol = 2e-5 if dtype == torch.float32 else 1e-12
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=rtol * 1e-3)
    _assert_states_close(opt, opt_ref, ours, ref, rtol)
