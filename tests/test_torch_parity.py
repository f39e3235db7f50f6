"""torch.optim parity of AdaBayes / AdaBayesFP with AdamW (issue 11) and of the kernels with their references.

Each behaviour torch's AdamW has is tested here: tensor ``state["step"]``, one graph under ``torch.compile(opt.step)``,
``capturable``, ``maximize``, complex parameters as real pairs, per-key lazy state (``ScheduleFreeWrapper``), state
dicts (today's round trip and the format saved before steps were tensors), the public functional API. The in-place
kernels, which inline Eqs. 17b and 18a for speed, are compared with :mod:`filtering.kalman_step`.
"""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from filtering import _torch_kernels as K  # noqa: E402
from filtering import kalman_step  # noqa: E402
from filtering import torch_functional as TF  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

CLASSES = [AdaBayes, AdaBayesFP]
EAGER = {"single": {"foreach": False}, "foreach": {"foreach": True}, "capturable": {"capturable": True}}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _model(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def _train(model: torch.nn.Module, step, steps: int, seed: int, opt: torch.optim.Optimizer) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(10, 6, generator=gen).to(dtype)
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        step()


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --------------------------------------------------------------------------------------------------------------
# step as a tensor, torch.compile


@pytest.mark.parametrize("cls", CLASSES)
def test_step_is_a_float32_tensor_on_cpu_by_default(cls: type) -> None:
    model = _model()
    opt = cls(model.parameters(), batch_size=10)
    _train(model, opt.step, 3, seed=0, opt=opt)
    for p in model.parameters():
        step = opt.state[p]["step"]
        assert torch.is_tensor(step) and step.dtype == torch.float32 and step.dim() == 0
        assert step.device.type == "cpu" and step.item() == 3.0


@pytest.mark.parametrize("cls", CLASSES)
def test_torch_compile_of_step_builds_one_graph_and_matches_eager(cls: type) -> None:
    """Before: 8 graphs in 8 steps (the int step was a guarded constant), then eager. Now 1, like AdamW; the
    traced (capturable) arithmetic equals the eager single-tensor path to float64 rounding."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    compiled, eager = _model(), _model()
    opt_c = cls(compiled.parameters(), batch_size=10, weight_decay=1e-3)
    opt_e = cls(eager.parameters(), batch_size=10, weight_decay=1e-3)
    counter = CompileCounter()
    step = torch.compile(opt_c.step, backend=counter)
    _train(compiled, step, 8, seed=1, opt=opt_c)
    _train(eager, opt_e.step, 8, seed=1, opt=opt_e)
    assert counter.frame_count == 1
    for x, y in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15)
    assert opt_c.state[next(compiled.parameters())]["step"].item() == 8.0
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------------------------------
# capturable, maximize, complex


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cls", CLASSES)
def test_capturable_on_cpu_runs_and_equals_the_default(cls: type, dtype: torch.dtype) -> None:
    """capturable computes the step's scalars from the step tensors (no .item()); on CPU it must equal the default
    path: float64 to rounding (1e-12), float32 to 1e-6 (bias corrections in float64 vs Python floats)."""
    models = [_model(dtype), _model(dtype)]
    opts = [
        cls(models[0].parameters(), batch_size=10, weight_decay=1e-3, capturable=True),
        cls(models[1].parameters(), batch_size=10, weight_decay=1e-3),
    ]
    for m, o in zip(models, opts, strict=True):
        _train(m, o.step, 6, seed=2, opt=o)
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    for x, y in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol * 1e-3)
        assert opts[0].state[x]["step"].device == x.device
        torch.testing.assert_close(opts[0].learning_rates(x), opts[1].learning_rates(y), rtol=rtol, atol=0)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("cls", CLASSES)
def test_capturable_step_replays_in_a_cuda_graph(cls: type) -> None:
    """capturable=True on CUDA: steps on the device, and a CUDA graph of step() replayed 5 times equals 5 eager
    capturable steps on the same gradients (AdamW's capturable contract)."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1000, generator=gen).cuda()
    grads = [torch.randn(1000, generator=gen).cuda() for _ in range(8)]
    ref = x0.clone().requires_grad_()
    opt_ref = cls([ref], batch_size=16, weight_decay=1e-3, capturable=True)
    p = x0.clone().requires_grad_()
    opt = cls([p], batch_size=16, weight_decay=1e-3, capturable=True)
    p.grad = grads[0].clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for g in grads[:3]:  # warm-up outside the graph (creates the state)
            p.grad.copy_(g)
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for g in grads[:3]:
        ref.grad = g.clone()
        opt_ref.step()
    for g in grads[3:]:
        p.grad.copy_(g)
        graph.replay()
        ref.grad = g.clone()
        opt_ref.step()
    torch.cuda.synchronize()
    assert opt.state[p]["step"].device.type == "cuda" and opt.state[p]["step"].item() == 8.0
    torch.testing.assert_close(p, ref, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("path", list(EAGER))
@pytest.mark.parametrize("cls", CLASSES)
def test_maximize_equals_minimizing_the_negated_gradient(cls: type, path: str) -> None:
    """maximize=True with p.grad = g is maximize=False with p.grad = -g (parameters and state bit for bit), and
    leaves p.grad unchanged."""
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    a, b = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    opt_a = cls([a], batch_size=8, weight_decay=1e-3, maximize=True, **EAGER[path])
    opt_b = cls([b], batch_size=8, weight_decay=1e-3, **EAGER[path])
    for _ in range(5):
        g = torch.randn(5, 4, generator=gen, dtype=torch.float64)
        a.grad, b.grad = g.clone(), -g
        opt_a.step()
        opt_b.step()
        assert torch.equal(a.grad, g)
    assert torch.equal(a, b)
    for key in opt_a.state[a]:
        assert torch.equal(opt_a.state[a][key], opt_b.state[b][key]), key
    assert not torch.equal(a, x0)


@pytest.mark.parametrize("path", list(EAGER))
@pytest.mark.parametrize("cls", CLASSES)
def test_complex_parameters_equal_running_on_view_as_real(cls: type, path: str) -> None:
    gen = torch.Generator().manual_seed(4)
    z0 = torch.randn(3, 4, generator=gen, dtype=torch.complex128)
    z = z0.clone().requires_grad_()
    r = torch.view_as_real(z0).clone().requires_grad_()
    opt_z = cls([z], batch_size=8, weight_decay=1e-3, **EAGER[path])
    opt_r = cls([r], batch_size=8, weight_decay=1e-3, **EAGER[path])
    for _ in range(5):
        g = torch.randn(3, 4, generator=gen, dtype=torch.complex128)
        z.grad, r.grad = g, torch.view_as_real(g).clone()
        opt_z.step()
        opt_r.step()
    assert torch.equal(torch.view_as_real(z), r)
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt_z.state[z][key].dtype == torch.complex128
        assert torch.equal(torch.view_as_real(opt_z.state[z][key]), opt_r.state[r][key])
    assert torch.equal(opt_z.learning_rates(z), opt_r.learning_rates(r))  # shape (3, 4, 2): one rate per real entry
    assert torch.equal(opt_z.mean_squared_gradients(z), opt_r.mean_squared_gradients(r))
    assert not torch.equal(opt_z.learning_rates(z)[..., 0], opt_z.learning_rates(z)[..., 1])


# --------------------------------------------------------------------------------------------------------------
# lazy state per key: wrappers that put their own state first


@pytest.mark.parametrize("cls", CLASSES)
def test_state_is_initialised_per_missing_key(cls: type) -> None:
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = cls([p], batch_size=4)
    opt.state[p]["wrapper_buffer"] = torch.ones(3)  # what a wrapper writes before the first step
    p.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    assert {"step", "exp_avg", "exp_avg_sq", "wrapper_buffer"} <= opt.state[p].keys()
    assert opt.state[p]["step"].item() == 1.0 and torch.equal(opt.state[p]["wrapper_buffer"], torch.ones(3))


@pytest.mark.parametrize("cls", CLASSES)
def test_schedulefree_wrapper_trains(cls: type) -> None:
    """schedulefree.ScheduleFreeWrapper puts its ``z`` into the base optimiser's state before the first step; that
    used to raise KeyError('step'). Now it trains a least-squares problem: the loss falls and the step counts."""
    schedulefree = pytest.importorskip("schedulefree")
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    w_true = torch.randn(8, generator=gen, dtype=torch.float64)
    y = a @ w_true
    w = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    base = cls([w], lr=3e-2, lr_sgd=1.0, batch_size=64)
    opt = schedulefree.ScheduleFreeWrapper(base, momentum=0.9)
    opt.train()

    def loss() -> torch.Tensor:
        return (a @ w - y).pow(2).mean()

    first = loss().item()
    for _ in range(400):
        opt.zero_grad()
        loss().backward()
        opt.step()
    opt.eval()
    assert {"z", "step", "exp_avg"} <= base.state[w].keys()
    assert base.state[w]["step"].item() == 400.0
    assert loss().item() < 0.1 * first
    assert torch.isfinite(w).all()


# --------------------------------------------------------------------------------------------------------------
# state dicts


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_of_before_tensor_steps_loads_and_continues(cls: type) -> None:
    """tests/data/torch_state_dict_v0.pt was written by the optimisers as they were before issue 11 (commit
    602562e^: int ``step``, groups without ``maximize``/``capturable``/``track_g2``/``smooth_g2``) after 3 steps
    of a Linear(3, 2) float32 model, with the parameters that code reached after 3 more steps.

    Loaded today, every saved state tensor is restored bit for bit and the step becomes a tensor. Continued, the
    parameters match the old code's to fp32 rounding (relative 4e-7, i.e. 2 ulp): not bit for bit, because the
    step now forms σ²_post·m (or m / denominator) before the scale, the order that cannot overflow (issue 13)."""
    saved = torch.load(Path(__file__).parent / "data" / "torch_state_dict_v0.pt", weights_only=True)[cls.__name__]
    assert isinstance(saved["opt"]["state"][0]["step"], int)
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(saved["model"])
    opt = cls(model.parameters(), lr=1.0e-3, batch_size=99)  # hyperparameters come from the state dict
    opt.load_state_dict(saved["opt"])
    for i, p in enumerate(model.parameters()):
        assert torch.is_tensor(opt.state[p]["step"]) and opt.state[p]["step"].item() == 3.0
        for key, value in saved["opt"]["state"][i].items():
            if key != "step":
                assert torch.equal(opt.state[p][key], value), key
    group = opt.param_groups[0]
    assert group["maximize"] is False and group["capturable"] is False and group["batch_size"] == 8
    for x in saved["inputs"][3:]:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["expected"][key], rtol=4e-7, atol=0)
        assert not torch.equal(value, saved["model"][key])  # the three steps did move it


@pytest.mark.parametrize("cls", CLASSES)
def test_loaded_steps_are_copies_and_capturable_groups_get_them_on_the_param_device(cls: type) -> None:
    model = _model()
    opt = cls(model.parameters(), batch_size=10)
    _train(model, opt.step, 2, seed=6, opt=opt)
    sd = opt.state_dict()
    twin = _model()
    opt2 = cls(twin.parameters(), batch_size=10, capturable=True)
    sd2 = copy.deepcopy(sd)
    for g in sd2["param_groups"]:
        g["capturable"] = True
    opt2.load_state_dict(sd2)
    p = next(twin.parameters())
    assert opt2.state[p]["step"] is not sd2["state"][0]["step"]
    assert opt2.state[p]["step"].device == p.device
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    reloaded = torch.load(buf, weights_only=True)
    opt.load_state_dict(reloaded)
    _train(model, opt.step, 1, seed=7, opt=opt)
    assert reloaded["state"][0]["step"].item() == 2.0  # the loaded dict is not advanced by the optimiser


# --------------------------------------------------------------------------------------------------------------
# the functional API


@pytest.mark.parametrize("path", list(EAGER))
def test_functional_steps_equal_the_classes(path: str) -> None:
    """adabayes_step / adabayes_fp_step on plain lists give the optimisers' numbers bit for bit."""
    gen = torch.Generator().manual_seed(8)
    x0 = torch.randn(7, generator=gen, dtype=torch.float64)
    kw = {"lr": 2e-3, "lr_sgd": 0.3, "batch_size": 16, "weight_decay": 1e-3}
    for cls, fn in ((AdaBayes, TF.adabayes_step), (AdaBayesFP, TF.adabayes_fp_step)):
        p = x0.clone().requires_grad_()
        opt = cls([p], betas=(0.8, 0.99), **kw, **EAGER[path])
        q = x0.clone()
        m, v = torch.zeros(7, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
        var = torch.full((7,), 0.3 / 16, dtype=torch.float64)
        step = torch.zeros(())
        for _ in range(4):
            g = torch.randn(7, generator=gen, dtype=torch.float64)
            p.grad = g
            opt.step()
            if cls is AdaBayes:
                fn([q], [g], [m], [var], [step], exp_avg_sqs=[v], beta1=0.8, beta2=0.99, **kw, **EAGER[path])
            else:
                fn([q], [g], [m], [v], [step], beta1=0.8, beta2=0.99, **kw, **EAGER[path])
        assert torch.equal(p.detach(), q) and step.item() == 4.0


def test_functional_api_validates_its_arguments() -> None:
    p, g = torch.zeros(3), torch.ones(3)
    state = [torch.zeros(3)], [torch.full((3,), 0.01)], [torch.zeros(())]
    kw = {"lr": 1e-3, "lr_sgd": 0.1, "batch_size": 10, "beta1": 0.9}
    with pytest.raises(ValueError, match="lr_sgd"):
        TF.adabayes_step([p], [g], *state, **{**kw, "lr_sgd": -1.0})
    with pytest.raises(ValueError, match="exp_avgs"):
        TF.adabayes_step([p], [g], [], state[1], state[2], **kw)
    with pytest.raises(TypeError, match="state_steps"):
        TF.adabayes_step([p], [g], state[0], state[1], [0], **kw)
    with pytest.raises(ValueError, match="smooth_g2"):
        TF.adabayes_step([p], [g], *state, smooth_g2=True, **kw)
    with pytest.raises(ValueError, match="capturable"):
        TF.adabayes_fp_step(
            [p], [g], state[0], [torch.zeros(3)], state[2], beta2=0.99, fused=True, capturable=True, **kw
        )
    TF.adabayes_step([p], [g], *state, **kw)
    assert state[2][0].item() == 1.0


def test_dispatch_table_chooses_paths_as_documented() -> None:
    cpu, cuda, meta = torch.device("cpu"), torch.device("cuda"), torch.device("meta")
    default_cpu = "numba" if TF.path_available("numba") else "single"  # the fused CPU kernel when numba imports
    assert TF.choose_path(cpu, foreach=None, fused=None, capturable=False) == default_cpu
    assert TF.choose_path(cpu, foreach=True, fused=None, capturable=False) == "foreach"
    assert TF.choose_path(cpu, foreach=None, fused=None, capturable=True) == "capturable"
    assert TF.choose_path(cpu, foreach=None, fused=True, capturable=False) == TF.FUSED["cpu"]
    assert TF.choose_path(cuda, foreach=False, fused=None, capturable=False) == "single"
    expected = TF.FUSED["cuda"] if TF.FUSED_BY_DEFAULT["cuda"]() else "foreach"
    assert TF.choose_path(cuda, foreach=None, fused=None, capturable=False) == expected
    with pytest.raises(RuntimeError, match="fused=True supports"):
        TF.choose_path(meta, foreach=None, fused=True, capturable=False)
    for path in TF.PATHS.values():
        assert callable(path.adabayes) and callable(path.adabayes_fp)
    assert set(TF.FUSED.values()) <= set(TF.PATHS)


# --------------------------------------------------------------------------------------------------------------
# the in-place kernels against the Kalman primitives (they inline Eqs. 17b and 18a for speed)


@pytest.mark.parametrize("predict", ["paper", "exponential"])
@pytest.mark.parametrize("kernel", [K.ab_single, K.ab_foreach])
def test_inplace_variance_chain_equals_kalman_step_primitives(kernel, predict: str) -> None:
    """One step of the in-place chain vs predict_variance + update_variance (float64, H = B² p.grad², Eq. 42), and
    the parameter update vs Eq. 19 written out, over σ²_post spanning 1e-12..1 and gradients with exact zeros."""
    gen = torch.Generator().manual_seed(9)
    n, batch = 200, 32.0
    hp = TF.hyperparameters(lr=2e-3, eta=2e-3, lr_sgd=0.4, batch_size=batch, betas=(0.9, 0.999), weight_decay=1e-3)
    const = TF.adabayes_constants(hp, predict=predict)
    var0 = 10.0 ** (-12 * torch.rand(n, generator=gen, dtype=torch.float64))
    g = torch.randn(n, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-4, 3, (n,), generator=gen)
    g[::7] = 0.0
    p0, m0 = torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64)
    p, m, var = p0.clone(), m0.clone(), var0.clone()
    kernel(K.ABTensors([p], [g], [m], None, [var]), [3], const, K.KernelCache())
    expected_var = kalman_step.update_variance(
        kalman_step.predict_variance(var0, const.factor, const.noise), batch * batch * g * g
    )
    torch.testing.assert_close(var, expected_var, rtol=4e-16, atol=0)
    m_new = 0.9 * m0 + 0.1 * g
    expected_p = (1 - 1e-3) * p0 + expected_var * (-batch * m_new / (1 - 0.9**3))  # Eq. 19
    torch.testing.assert_close(p, expected_p, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("smooth", [False, True])
def test_capturable_kernel_equals_inplace_kernel(smooth: bool) -> None:
    """The out-of-place device kernel (kalman_step primitives, tensor step counts) against the in-place chain,
    float64, different step counts in one bucket, with and without smooth_g2."""
    gen = torch.Generator().manual_seed(10)
    hp = TF.hyperparameters(lr=1e-3, eta=1e-3, lr_sgd=0.1, batch_size=128, betas=(0.9, 0.99), weight_decay=1e-4)
    const = TF.adabayes_constants(hp, smooth_g2=smooth)
    make = [torch.rand(4, 5, generator=gen, dtype=torch.float64) for _ in range(8)]
    a = [t.clone() for t in make]
    b = [t.clone() for t in make]
    g = [torch.randn(4, 5, generator=gen, dtype=torch.float64), torch.randn(4, 5, generator=gen, dtype=torch.float64)]
    K.ab_single(K.ABTensors(a[0:2], g, a[2:4], a[4:6], a[6:8]), [1, 5], const, K.KernelCache())
    counts = torch.tensor([1.0, 5.0], dtype=torch.float64)
    K.ab_capturable(K.ABTensors(b[0:2], g, b[2:4], b[4:6], b[6:8]), counts, const, K.KernelCache())
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-16)


def test_readout_before_any_step_and_for_a_parameter_elsewhere() -> None:
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = AdaBayes([p], lr_sgd=0.2, batch_size=10)
    r = opt.readout(p, torch.tensor([0, 3]))
    assert r.step == 0 and r.lr == 1e-3 and math.isclose(r.sigma2, 0.02)
    assert torch.equal(r.var_post, torch.full((2,), 0.02, dtype=torch.float64))
    assert torch.equal(r.g2, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="not a parameter"):
        opt.readout(torch.zeros(4, requires_grad=True))
    np.testing.assert_array_equal(opt.learning_rates(p).numpy(), 0.02)
