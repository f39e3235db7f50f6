"""The compiled multi-tensor path (torch.compile; on CPU through inductor's C++ backend, on CUDA via Triton) and, on
CUDA, ``fused=True`` and the default (the Triton kernels of filtering._triton_kernels where Triton imports).

``fused=True`` runs the numba / Triton kernels where they import (tests/test_kernel_paths.py); the compiled path is
their fallback, so the CPU tests here select it by pointing ``FUSED["cpu"]`` at it. The compiled step may contract
multiply-adds and reorder scalar products, so it is compared with the foreach path at an fp32 tolerance: rtol 1e-5,
atol 1e-7 on the parameters after 5 steps (each step rounds ~10 elementwise operations at ~6e-8; observed
differences are ~5e-7 relative). In float64 the same comparison holds to rtol 1e-12. GPU tests skip cleanly without
CUDA.
"""

from __future__ import annotations

import contextlib
import shutil

import pytest

torch = pytest.importorskip("torch")

from filtering import torch_functional as TF  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _run(cls: type, device: str, dtype: torch.dtype, steps: int = 5, **kw) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(33, 7), (5,), (4, 3, 3, 3)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype).requires_grad_() for s in shapes]
    grads = [
        [torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype) for s in shapes] for _ in range(steps)
    ]
    opt = cls(params, lr=2e-3, lr_sgd=0.3, batch_size=16, weight_decay=1e-3, **kw)
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = g
        opt.step()
    return [p.detach().double().cpu() for p in params]


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor], rtol: float, atol: float) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


@pytest.fixture
def compiled_on_cpu(monkeypatch):
    """``fused=True`` on CPU runs the compiled path (the fallback where numba does not import)."""
    monkeypatch.setitem(TF.FUSED, "cpu", "compiled")
    assert TF.choose_path(torch.device("cpu"), foreach=None, fused=True, capturable=False) == "compiled"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="needs a C++ compiler")
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_compiled_cpu_path_matches_foreach(cls: type, compiled_on_cpu) -> None:
    for dtype, rtol, atol in ((torch.float32, 1e-5, 1e-7), (torch.bfloat16, 1e-5, 1e-7)):
        _assert_close(_run(cls, "cpu", dtype, fused=True), _run(cls, "cpu", dtype, foreach=True), rtol, atol)


@pytest.fixture
def fresh_dynamo():
    """Empty torch._dynamo caches before and after (the recompile limit counts across the whole process; what an
    optimiser remembers about refused buckets lives in the optimiser itself, so nothing else needs resetting)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="needs a C++ compiler")
@pytest.mark.parametrize(("cls", "limit"), [(AdaBayesFP, None), (AdaBayes, 2)])
def test_more_bucket_shapes_than_the_recompile_limit_fall_back_to_foreach(
    cls: type, limit: int | None, fresh_dynamo, compiled_on_cpu
) -> None:
    """More distinct buckets than dynamo's recompile limit (limit + 3 groups of different shapes; the default
    limit is 8) used to raise FailOnRecompileLimitHit; the buckets past the limit now run foreach, with a
    RuntimeWarning. AdaBayes runs under a lowered limit of 2 to save compile time (~1 s per shape)."""
    if limit is None:
        limit = torch._dynamo.config.recompile_limit
    n = limit + 3
    gen = torch.Generator().manual_seed(1)
    x0 = [torch.randn(i + 1, generator=gen) for i in range(n)]
    grads = [[torch.randn(i + 1, generator=gen) for i in range(n)] for _ in range(2)]
    results = []
    for kw in ({"fused": True}, {"foreach": True}):
        params = [x.clone().requires_grad_() for x in x0]
        opt = cls([{"params": [p]} for p in params], lr_sgd=0.3, batch_size=10, **kw)
        warns = pytest.warns(RuntimeWarning, match="recompile limit") if "fused" in kw else contextlib.nullcontext()
        with torch._dynamo.config.patch(recompile_limit=limit), warns:
            for gs in grads:
                for p, g in zip(params, gs, strict=True):
                    p.grad = g
                opt.step()
        results.append([p.detach() for p in params])
    _assert_close(results[0], results[1], 1e-5, 1e-7)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_cuda_default_and_fused_match_foreach(cls: type, monkeypatch) -> None:
    ref = _run(cls, "cuda", torch.float32, foreach=True)
    _assert_close(_run(cls, "cuda", torch.float32), ref, 1e-5, 1e-7)  # default: Triton when it imports
    _assert_close(_run(cls, "cuda", torch.float32, fused=True), ref, 1e-5, 1e-7)
    monkeypatch.setitem(TF.FUSED, "cuda", "compiled")  # the fallback
    _assert_close(_run(cls, "cuda", torch.float32, fused=True), ref, 1e-5, 1e-7)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_cuda_float64_paths_match_cpu(cls: type) -> None:
    cpu = _run(cls, "cpu", torch.float64, foreach=False)
    _assert_close(_run(cls, "cuda", torch.float64, foreach=True), cpu, 1e-12, 1e-14)
    _assert_close(_run(cls, "cuda", torch.float64, fused=True), cpu, 1e-12, 1e-14)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_cuda_low_precision_params_keep_fp32_state(cls: type, dtype: torch.dtype) -> None:
    p = torch.randn(100, device="cuda", dtype=dtype, requires_grad=True)
    opt = cls([p], batch_size=16, fused=True)
    for _ in range(3):
        p.grad = torch.randn_like(p)
        opt.step()
    assert torch.isfinite(p).all()
    assert opt.state[p]["exp_avg"].dtype == torch.float32
