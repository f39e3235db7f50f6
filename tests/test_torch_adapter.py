"""Tests of filtering.torch_adapter: equivalence with filtering.rules, pytorch-rad and AdamW; torch.optim contract."""

from __future__ import annotations

import copy
import io
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from filtering import fixed_point, rules  # noqa: E402
from filtering import torch_functional as TF  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP, LearningRateRecorder, _approx_precision  # noqa: E402

PATHS = ("single", "foreach", "capturable")
_needs_cxx = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="fused=True on CPU needs a C++ compiler"
)
# every path, the compiled one on CPU through inductor (compiles on first use: slow)
ALL_PATHS = (*PATHS, pytest.param("fused", marks=[pytest.mark.slow, _needs_cxx]))


def _path_kwargs(path: str) -> dict[str, bool]:
    return {
        "single": {"foreach": False},
        "foreach": {"foreach": True},
        "capturable": {"capturable": True},
        "fused": {"fused": True},
    }[path]


def _gradient_sequence(rng: np.random.Generator, steps: int, shape: tuple[int, ...]) -> np.ndarray:
    """Mean-loss gradients spanning both regimes of Eq. 21 (|grad| from 1e-4 to 1e2), with exact zeros."""
    scale = 10.0 ** rng.uniform(-4, 2, size=shape)
    g = rng.standard_normal((steps, *shape)) * scale + 0.3 * scale
    g[:, ..., 0] = 0.0  # one entry never sees a gradient: zero steps, σ²_post from the prior alone
    g[rng.random(g.shape) < 0.05] = 0.0
    return g


# --------------------------------------------------------------------------------------------------------------
# the reference: filtering.rules in float64


GROUPS = [  # (lr, lr_sgd, batch_size, weight_decay, shape)
    (1e-3, 0.1, 128, 5e-5, (4, 6)),
    (3e-3, 0.5, 7, 0.0, (9,)),
    (2e-3, math.inf, 32, 1e-3, (3, 2, 2)),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("algo", ["paper", "exponential", "fp"])
def test_float64_trajectories_equal_numpy_rules(algo: str, path: str) -> None:
    """Both optimisers, three param groups (batch sizes, decays, lr_sgd = inf), vs rules.adabayes(_fp)."""
    rng = np.random.default_rng(1)
    steps = 40
    betas = (0.8, 0.99)
    params0 = [rng.standard_normal(shape) for *_, shape in GROUPS]
    grads = [_gradient_sequence(rng, steps, shape) for *_, shape in GROUPS]
    tparams = [torch.tensor(p, requires_grad=True) for p in params0]
    groups = [
        {"params": [tp], "lr": lr, "lr_sgd": lr_sgd, "batch_size": b, "weight_decay": wd}
        for tp, (lr, lr_sgd, b, wd, _) in zip(tparams, GROUPS, strict=True)
    ]
    if algo == "fp":
        opt = AdaBayesFP(groups, batch_size=1, betas=betas, **_path_kwargs(path))
        refs = [
            rules.adabayes_fp(lr, lr_sgd, batch_size=b, betas=betas, weight_decay=wd) for lr, lr_sgd, b, wd, _ in GROUPS
        ]
    else:
        opt = AdaBayes(groups, batch_size=1, betas=betas, predict=algo, **_path_kwargs(path))
        refs = [
            rules.adabayes(lr, lr_sgd, batch_size=b, betas=betas, weight_decay=wd, predict=algo)
            for lr, lr_sgd, b, wd, _ in GROUPS
        ]
    np_params = [p.copy() for p in params0]
    np_states = [r.init(p) for r, p in zip(refs, params0, strict=True)]
    for t in range(steps):
        for tp, g in zip(tparams, grads, strict=True):
            tp.grad = torch.tensor(g[t])
        opt.step()
        for i, (ref, (_, _, b, _, _)) in enumerate(zip(refs, GROUPS, strict=True)):
            step, np_states[i] = ref.update(-b * grads[i][t], np_states[i], np_params[i])  # g = -B p.grad
            np_params[i] = rules.apply_updates(np_params[i], step)
            # rel 1e-12; atol 1e-15 (params are O(1)) for entries that pass through 0, where the rounding of the
            # subtraction dominates a relative measure
            np.testing.assert_allclose(tparams[i].detach().numpy(), np_params[i], rtol=1e-12, atol=1e-15)
    for tp, st in zip(tparams, np_states, strict=True):
        np.testing.assert_allclose(opt.learning_rates(tp).numpy(), st.var_post, rtol=1e-12)
        if algo == "fp":
            np.testing.assert_allclose(
                opt.mean_squared_gradients(tp).numpy(), st.v / (1 - betas[1] ** steps), rtol=1e-12
            )


def test_mean_squared_gradients_of_adabayes_is_the_debiased_ema() -> None:
    rng = np.random.default_rng(2)
    g = rng.standard_normal((15, 5))
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = AdaBayes([p], batch_size=20, betas=(0.9, 0.95))
    assert torch.equal(opt.mean_squared_gradients(p), torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(opt.learning_rates(p), torch.full((5,), 0.1 / 20, dtype=torch.float64), rtol=0)
    v = np.zeros(5)
    for t in range(15):
        p.grad = torch.tensor(g[t])
        opt.step()
        v = 0.95 * v + 0.05 * (20 * g[t]) ** 2
    np.testing.assert_allclose(opt.mean_squared_gradients(p).numpy(), v / (1 - 0.95**15), rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# other implementations


@pytest.mark.parametrize("path", PATHS)
def test_exponential_predict_equals_pytorch_rad(path: str) -> None:
    """``AdaBayes(predict="exponential")`` is pytorch-rad's AdaBayes (rad.optim.AdaBayes, v0.2.1).

    Mapping (read from its source): rad multiplies ``p.grad`` by ``batch_size`` in place (so it gets a clone),
    keeps ``exp_avg`` of that descent gradient and ``s2post`` starting at ``lr_sgd / batch_size``, predicts
    with ``exp(-η²/σ²)`` and ``σ²(1 - exp(-η²/σ²))``, adds ``grad²`` to the precision and steps
    ``p -= s2post · exp_avg / (1 - β1^t)`` -- our Eqs. 17b (exponential), 18a, 19b with ``g = -B p.grad``.
    rad computes σ² as ``lr · (lr_sgd / lr) / B`` (an ulp away from ours) and 1 - exp(-x) without expm1;
    both are rounding-level differences. Its weight decay, applied *after* the step as
    ``p *= 1 - weight_decay``, differs from Eq. 19a's order, so the comparison uses weight_decay = 0 (rad's
    default is 5e-5). ``eps`` is unused by rad.
    """
    rad_optim = pytest.importorskip("rad.optim")
    rng = np.random.default_rng(3)
    lr, lr_sgd, b, betas = 2e-3, 0.3, 50, (0.85, 0.995)
    p0 = rng.standard_normal((6, 5))
    ours = torch.tensor(p0, requires_grad=True)
    theirs = torch.tensor(p0, requires_grad=True)
    opt = AdaBayes([ours], lr, lr_sgd, batch_size=b, betas=betas, predict="exponential", **_path_kwargs(path))
    ref = rad_optim.AdaBayes([theirs], lr=lr, lr_sgd=lr_sgd, betas=betas, weight_decay=0.0, batch_size=b)
    for g in _gradient_sequence(rng, 60, p0.shape):
        ours.grad = torch.tensor(g)
        theirs.grad = torch.tensor(g)  # a separate tensor: rad rescales it in place
        opt.step()
        ref.step()
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(opt.state[ours]["var_post"].numpy(), ref.state[theirs]["s2post"].numpy(), rtol=1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_fp_with_infinite_lr_sgd_is_adamw_eps0(path: str) -> None:
    """Eq. 27: AdaBayesFP(lr_sgd=inf, weight_decay=λ) ≡ AdamW(eps=0, weight_decay=λ/lr), also under a
    scheduler (our λ and step scale with lr like AdamW's ``lr · weight_decay``)."""
    rng = np.random.default_rng(4)
    lr, lam, b = 3e-3, 1e-3, 64
    shapes = [(7, 3), (11,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    ours = [torch.tensor(p, requires_grad=True) for p in p0]
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = AdaBayesFP(ours, lr, math.inf, batch_size=b, weight_decay=lam, **_path_kwargs(path))
    ref = torch.optim.AdamW(theirs, lr=lr, eps=0.0, weight_decay=lam / lr, foreach=path == "foreach")
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5) for o in (opt, ref)]
    grads = [rng.standard_normal((30, *s)) + 0.2 for s in shapes]
    for t in range(30):
        for x, y, g in zip(ours, theirs, grads, strict=True):
            x.grad = torch.tensor(g[t])
            y.grad = torch.tensor(g[t])
        opt.step()
        ref.step()
        for s in scheds:
            s.step()
        for x, y in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy(), rtol=1e-12, atol=0)


def test_scheduled_lr_scales_eta_and_sigma2_for_fp() -> None:
    """Documented lr semantics: lr = c·eta multiplies σ²_post and λ by c; for AdaBayes-FP that is exactly
    rules.adabayes_fp with (c η, c lr_sgd, c λ) (Eq. 21 is homogeneous)."""
    rng = np.random.default_rng(5)
    lr, lr_sgd, b, lam, c = 1e-3, 0.2, 16, 1e-4, 0.3
    p0 = rng.standard_normal(12)
    p = torch.tensor(p0, requires_grad=True)
    opt = AdaBayesFP([p], lr, lr_sgd, batch_size=b, weight_decay=lam)
    opt.param_groups[0]["lr"] = c * lr
    ref = rules.adabayes_fp(c * lr, c * lr_sgd, batch_size=b, weight_decay=c * lam)
    state, x = ref.init(p0), p0.copy()
    for g in _gradient_sequence(rng, 25, (12,)):
        p.grad = torch.tensor(g)
        opt.step()
        step, state = ref.update(-b * g, state, x)
        x = rules.apply_updates(x, step)
    np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-12)
    np.testing.assert_allclose(opt.learning_rates(p).numpy(), state.var_post, rtol=1e-12)


@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_lr_zero_freezes_parameters_but_filter_runs(cls: type) -> None:
    p = torch.randn(8, dtype=torch.float64, requires_grad=True)
    opt = cls([p], batch_size=4, weight_decay=1e-2)
    p.grad = torch.randn(8, dtype=torch.float64)
    opt.step()
    before = p.detach().clone()
    opt.param_groups[0]["lr"] = 0.0
    p.grad = torch.randn(8, dtype=torch.float64)
    opt.step()
    assert torch.equal(p.detach(), before)
    assert opt.state[p]["step"] == 2


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("predict", ["paper", "exponential"])
def test_adabayes_scheduled_lr_matches_inline_reference(predict: str, path: str) -> None:
    """AdaBayes (Alg. 1) under a schedule lr_t = c_t η with c_t != 1, against the documented semantics.

    Reference, float64, written out here: the filter (Eqs. 2, 17b, 18a) does not see c_t, so σ²_post follows
    ``filtering.rules.adabayes`` exactly; the step is ``p <- (1 - c_t λ) p + c_t σ²_post ⟨g⟩`` (Eq. 19 scaled by
    c_t) with ⟨g⟩ = -B m / (1 - β1^t); ``learning_rates`` is c_t σ²_post.
    """
    rng = np.random.default_rng(11)
    eta, lr_sgd, b, lam, betas, n, steps = 2e-3, 0.3, 8, 1e-3, (0.85, 0.99), 10, 30
    c = np.concatenate([[1.0], 0.5 + 1.5 * rng.random(steps - 2), [0.0]])  # c_t in [0.5, 2), last step lr = 0
    grads = _gradient_sequence(rng, steps, (n,))
    x = rng.standard_normal(n)
    p = torch.tensor(x, requires_grad=True)
    opt = AdaBayes([p], eta, lr_sgd, batch_size=b, betas=betas, weight_decay=lam, predict=predict, **_path_kwargs(path))
    ref = rules.adabayes(eta, lr_sgd, batch_size=b, betas=betas, weight_decay=lam, predict=predict)
    state = ref.init(x)
    sigma2 = lr_sgd / b
    if predict == "paper":
        factor, noise = (1.0 - eta**2 / (2.0 * sigma2)) ** 2, eta**2  # Eq. 17b
    else:
        factor, noise = math.exp(-(eta**2) / sigma2), -sigma2 * math.expm1(-(eta**2) / sigma2)
    m, var = np.zeros(n), np.full(n, sigma2)
    for t in range(steps):
        opt.param_groups[0]["lr"] = c[t] * eta
        p.grad = torch.tensor(grads[t])
        opt.step()
        _, state = ref.update(-b * grads[t], state, x)  # the filter alone (its step is not used)
        m = betas[0] * m + (1 - betas[0]) * grads[t]  # Eq. 2, in p.grad units
        var = 1.0 / (1.0 / (factor * var + noise) + (b * grads[t]) ** 2)  # Eqs. 17b, 18a
        x = (1.0 - c[t] * lam) * x + c[t] * var * (-b * m / (1.0 - betas[0] ** (t + 1)))  # Eq. 19, scaled by c_t
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.state[p]["var_post"].numpy(), state.var_post, rtol=1e-12)
        np.testing.assert_allclose(opt.learning_rates(p).numpy(), c[t] * var, rtol=1e-12)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_lr_zero_with_infinite_lr_sgd_is_nan_free(cls: type, path: str) -> None:
    """lr = 0 (c = 0) with lr_sgd = inf: read-outs are 0, not 0·inf or 0/0, and the step leaves p alone even
    when m σ²_post (or m / denominator) overflows -- here forced by putting a huge m into the state."""
    p = torch.ones(4, requires_grad=True)
    x0 = p.detach().clone()
    opt = cls([p], lr=1e-3, lr_sgd=math.inf, batch_size=1, weight_decay=1e-2, **_path_kwargs(path))
    rec = LearningRateRecorder(opt, every=1, entries_per_tensor=4)
    opt.param_groups[0]["lr"] = 0.0
    assert torch.equal(opt.learning_rates(p), torch.zeros(4))  # before any step: c σ² = 0 · inf
    p.grad = torch.zeros(4)
    opt.step()  # σ²_post = inf (AdaBayes) / precision 0 (FP): no gradient seen yet
    assert torch.equal(opt.learning_rates(p), torch.zeros(4))
    opt.state[p]["exp_avg"].fill_(1e30)  # m σ²_post and m / tiny overflow to inf in fp32
    opt.step()
    assert torch.equal(p.detach(), x0)
    assert torch.equal(opt.learning_rates(p), torch.zeros(4))
    out = rec.arrays()
    assert len(rec) == 8 and not any(np.isnan(out[k]).any() for k in ("var_post", "sigma2", "eta", "adam_lr"))
    np.testing.assert_array_equal(out["var_post"], 0.0)
    np.testing.assert_array_equal(out["sigma2"], 0.0)
    opt.param_groups[0]["lr"] = 1e-3  # back on: σ²_post = inf is a legitimate read-out at c > 0
    rates = opt.learning_rates(p)
    assert not torch.isnan(rates).any()


def test_approx_precision_tensor_twin_equals_fixed_point() -> None:
    """The adapter's Eq. 21 on tensors is filtering.fixed_point.approx_precision (float64, incl. σ² = inf)."""
    rng = np.random.default_rng(12)
    g2 = np.concatenate([[0.0, 1e-300, 1e300], 10.0 ** rng.uniform(-12, 12, 50)])
    for eta, sigma2 in ((1e-3, 1e-3), (3e-2, 7.0), (1e-3, math.inf)):
        ours = _approx_precision(torch.tensor(g2), eta, sigma2).numpy()
        np.testing.assert_allclose(ours, fixed_point.approx_precision(g2, eta, sigma2), rtol=1e-15, atol=0)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_failed_step_does_not_advance_the_step_count(cls: type, path: str, monkeypatch) -> None:
    """A kernel that raises leaves the step count alone, so retrying gives the step a clean run gives; the read-out
    after the failed *first* step is the prior's (c σ², ⟨g²⟩ = 0), not NaN from a bias correction 1 - β2^0 = 0."""
    field = "adabayes" if cls is AdaBayes else "adabayes_fp"
    kernel = getattr(TF.PATHS[path], field)
    calls = []

    def fail_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return kernel(*args)

    monkeypatch.setitem(TF.PATHS, path, TF.PATHS[path]._replace(**{field: fail_once}))
    ps = [torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True) for _ in range(2)]
    opts = [cls([q], batch_size=4, weight_decay=1e-3, **_path_kwargs(path)) for q in ps]
    for q in ps:
        q.grad = torch.tensor([0.3, -0.2, 1e-3], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="transient"):
        opts[0].step()
    assert opts[0].state[ps[0]]["step"] == 0
    readout = opts[0].readout(ps[0])
    assert readout.step == 0
    assert torch.equal(readout.g2, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(readout.var_post, torch.full((3,), 0.1 / 4, dtype=torch.float64), rtol=1e-15, atol=0)
    assert torch.equal(opts[0].mean_squared_gradients(ps[0]), readout.g2)
    opts[0].step()  # the retry
    opts[1].step()  # a clean run (the patched kernel passes through after its first call)
    assert opts[0].state[ps[0]]["step"] == 1
    assert torch.equal(ps[0], ps[1])
    assert torch.equal(opts[0].learning_rates(ps[0]), opts[1].learning_rates(ps[1]))


@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_numpy_and_tensor_lr_are_accepted_and_bool_rejected(cls: type) -> None:
    """lr as a numpy float (or 0-d tensor) steps like the same value as a Python float; a bool is a TypeError,
    at construction and when a scheduler writes it into a group later."""
    results = []
    for lr in (float(np.float32(1e-3)), np.float32(1e-3), torch.tensor(float(np.float32(1e-3)))):
        p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([p], lr=lr, batch_size=4)
        for _ in range(3):
            p.grad = torch.tensor([0.5, 1e-3], dtype=torch.float64)
            opt.step()
            opt.param_groups[0]["lr"] = np.float64(0.5) * lr  # a scheduler writing a numpy float
        results.append(p.detach().clone())
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    with pytest.raises(TypeError, match="lr"):
        cls([torch.zeros(2, requires_grad=True)], lr=True, batch_size=4)
    opt.param_groups[0]["lr"] = True
    with pytest.raises(TypeError, match="lr"):
        opt.step()


# --------------------------------------------------------------------------------------------------------------
# torch.optim contract


def _model(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(10, 6, generator=gen).to(dtype)
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_state_dict_round_trip_is_bit_identical(cls: type, dtype: torch.dtype) -> None:
    kw = {"lr": 2e-3, "batch_size": 10, "weight_decay": 1e-4}
    m_full = _model(dtype)
    o_full = cls(m_full.parameters(), **kw)
    _train(m_full, o_full, 6, seed=1)
    _train(m_full, o_full, 6, seed=2)

    m_a = _model(dtype)
    o_a = cls(m_a.parameters(), **kw)
    _train(m_a, o_a, 6, seed=1)
    buf = io.BytesIO()
    torch.save({"model": m_a.state_dict(), "opt": o_a.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    m_b = _model(dtype)
    o_b = cls(m_b.parameters(), lr=1.0e-3, batch_size=99)  # hyperparameters come from the state dict
    m_b.load_state_dict(saved["model"])
    o_b.load_state_dict(saved["opt"])
    for p in m_b.parameters():
        for key in ("exp_avg", "exp_avg_sq"):
            assert o_b.state[p][key].dtype == (torch.float32 if dtype != torch.float64 else dtype)
    _train(m_b, o_b, 6, seed=2)
    for x, y in zip(m_full.parameters(), m_b.parameters(), strict=True):
        assert torch.equal(x, y)


def test_loading_the_other_optimizers_state_dict_raises_value_error() -> None:
    """AdaBayesFP's state dict into AdaBayes (no ``predict``, no ``var_post``) and vice versa: a ValueError that
    says so, raised before anything is loaded, instead of a KeyError at the next step."""
    models = [_model(torch.float64), _model(torch.float64)]
    ab = AdaBayes(models[0].parameters(), batch_size=10)
    fp = AdaBayesFP(models[1].parameters(), batch_size=10)
    for m, o in zip(models, (ab, fp), strict=True):
        _train(m, o, 2, seed=0)
    ab_state = copy.deepcopy(ab.state_dict())
    with pytest.raises(ValueError, match=r"not an AdaBayes state dict.*predict.*AdaBayesFP"):
        ab.load_state_dict(fp.state_dict())
    with pytest.raises(ValueError, match=r"not an AdaBayesFP state dict.*predict.*AdaBayes"):
        fp.load_state_dict(ab.state_dict())
    sd = fp.state_dict()
    for g in sd["param_groups"]:
        g["predict"] = "paper"  # groups look right, state still lacks var_post
    with pytest.raises(ValueError, match="var_post"):
        ab.load_state_dict(sd)
    after = ab.state_dict()
    assert after["param_groups"] == ab_state["param_groups"]
    assert all(torch.equal(after["state"][i]["var_post"], ab_state["state"][i]["var_post"]) for i in after["state"])
    _train(models[0], ab, 1, seed=1)  # still usable


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_foreach_equals_single_tensor_bitwise(cls: type, dtype: torch.dtype) -> None:
    models = [_model(dtype), _model(dtype)]
    opts = [
        cls(models[0].parameters(), batch_size=10, weight_decay=1e-3, foreach=False),
        cls(models[1].parameters(), batch_size=10, weight_decay=1e-3, foreach=True),
    ]
    for m, o in zip(models, opts, strict=True):
        _train(m, o, 8, seed=3)
    for x, y in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(x, y)
        for key in opts[0].state[x]:
            if torch.is_tensor(opts[0].state[x][key]):
                assert torch.equal(opts[0].state[x][key], opts[1].state[y][key])


EXTREME = (0.0, 1e-30, -1e-30, 1e30, -1e30)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_extreme_gradients_give_finite_parameters(cls: type, dtype: torch.dtype, path: str) -> None:
    """Gradients 0, ±1e-30, ±1e30 (as representable in the gradient's dtype; fp16 has neither 1e30 nor
    1e-30, so it gets its largest finite value ±65504 and its smallest subnormal instead).

    Parameters and ``exp_avg`` stay finite and no state is NaN. In fp32 state (fp32/bf16/fp16 parameters)
    1e30² overflows, so ``exp_avg_sq`` may be +inf -- as in torch's Adam -- which gives a zero step.
    """
    values = EXTREME if dtype != torch.float16 else (0.0, 6e-8, -6e-8, 65504.0, -65504.0)
    p = torch.ones(len(values) * len(values), dtype=dtype, requires_grad=True)
    opt = cls([p], batch_size=100, weight_decay=1e-4, **_path_kwargs(path))
    seq = torch.tensor([[a, b] for a in values for b in values], dtype=torch.float64).T  # all ordered pairs
    for t in range(6):
        p.grad = seq[t % 2].to(dtype)
        assert torch.isfinite(p.grad).all()
        opt.step()
        assert torch.isfinite(p).all()
        assert torch.isfinite(opt.state[p]["exp_avg"]).all()
        for key, v in opt.state[p].items():
            if torch.is_tensor(v):
                assert not torch.isnan(v).any(), key
        assert not torch.isnan(opt.learning_rates(p)).any()
        assert not torch.isnan(opt.mean_squared_gradients(p)).any()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_infinite_lr_sgd_with_zero_and_extreme_gradients_is_nan_free(cls: type, path: str) -> None:
    """σ² = inf: σ²_post = inf until a nonzero gradient arrives; a zero ⟨g⟩ then gives a zero step (float64,
    where 1e-30² does not underflow)."""
    p = torch.ones(5, dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr_sgd=math.inf, batch_size=10, **_path_kwargs(path))
    p.grad = torch.zeros(5, dtype=torch.float64)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(5, dtype=torch.float64))
    for _ in range(3):
        p.grad = torch.tensor(EXTREME, dtype=torch.float64)
        opt.step()
        assert torch.isfinite(p).all()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_step_never_modifies_grad(cls: type, path: str) -> None:
    model = _model()
    opt = cls(model.parameters(), batch_size=10, weight_decay=1e-3, **_path_kwargs(path))
    model(torch.randn(10, 6)).pow(2).mean().backward()
    before = [(p.grad.data_ptr(), p.grad.clone()) for p in model.parameters()]
    opt.step()
    for p, (ptr, g) in zip(model.parameters(), before, strict=True):
        assert p.grad.data_ptr() == ptr and torch.equal(p.grad, g)


def test_closure_is_called_and_its_loss_returned() -> None:
    model = _model()
    opt = AdaBayes(model.parameters(), batch_size=10)
    x = torch.randn(10, 6)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and opt.state[next(model.parameters())]["step"] == 1


BAD = [
    ({"lr": 0.0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr_sgd": 0.0}, "lr_sgd"),
    ({"lr_sgd": -0.1}, "lr_sgd"),
    ({"batch_size": 0.5}, "batch_size"),
    ({"batch_size": math.inf}, "batch_size"),
    ({"betas": (1.0, 0.999)}, "betas[0]"),
    ({"betas": (0.9, -0.1)}, "betas[1]"),
    ({"betas": (0.9,)}, "betas"),
    ({"betas": 0.9}, "betas"),  # not a sequence
    ({"betas": "ab"}, "betas"),
    ({"weight_decay": 1.0}, "weight_decay"),
    ({"weight_decay": -1e-4}, "weight_decay"),
    ({"foreach": "yes"}, "foreach"),
    ({"fused": 1}, "fused"),
    ({"foreach": True, "fused": True}, "foreach"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD)
@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_bad_hyperparameters_raise_value_error_naming_them(cls: type, kwargs: dict, name: str) -> None:
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        cls([p], **{"batch_size": 10, **kwargs})
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        cls([{"params": [p], **kwargs}], batch_size=10)  # per-group override


def test_bad_adabayes_only_hyperparameters() -> None:
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="predict"):
        AdaBayes([p], batch_size=10, predict="euler")
    with pytest.raises(ValueError, match="lr"):  # OU decay factor of Eq. 14 must lie in (0, 1]
        AdaBayes([p], lr=0.1, lr_sgd=0.1, batch_size=100)
    AdaBayes([p], lr=0.1, lr_sgd=0.1, batch_size=100, predict="exponential")  # fine: no such constraint
    with pytest.raises(TypeError):
        AdaBayes([p])  # batch_size is required
    opt = AdaBayes([p], batch_size=10)
    with pytest.raises(ValueError, match="batch_size"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "batch_size": 0})
    assert len(opt.param_groups) == 1
    opt.param_groups[0]["lr"] = -1.0  # made invalid after construction: caught by step()
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    with pytest.raises(ValueError, match="params"):
        AdaBayes([torch.zeros(3, dtype=torch.int64)], batch_size=10)


@pytest.mark.parametrize("cls", [AdaBayes, AdaBayesFP])
def test_sparse_gradients_are_rejected(cls: type) -> None:
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = cls(emb.parameters(), batch_size=4)
    emb(torch.tensor([1, 2, 2, 5])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


# --------------------------------------------------------------------------------------------------------------
# recording


def test_recorder_samples_fixed_entries_and_matches_readout(tmp_path) -> None:
    model = _model(torch.float64)
    opt = AdaBayes(model.parameters(), batch_size=10)
    rec = LearningRateRecorder(opt, every=3, entries_per_tensor=5, seed=7, capacity=1000)
    again = LearningRateRecorder(opt, every=3, entries_per_tensor=5, seed=7, attach=False)
    assert all(np.array_equal(a, b) for a, b in zip(rec.indices, again.indices, strict=True))
    assert [len(i) for i in rec.indices] == [5, 5, 5, 3]  # the last bias has 3 entries
    _train(model, opt, 9, seed=4)
    out = rec.arrays()
    assert len(rec) == 3 * 18 and set(np.unique(out["step"])) == {3, 6, 9}
    params = list(model.parameters())
    last = out["step"] == 9
    for i, p in enumerate(params):
        sel = last & (out["tensor"] == i)
        np.testing.assert_array_equal(out["entry"][sel], rec.indices[i])
        np.testing.assert_allclose(out["var_post"][sel], opt.learning_rates(p).reshape(-1)[rec.indices[i]].numpy())
        g2 = opt.mean_squared_gradients(p).reshape(-1)[rec.indices[i]].numpy()
        np.testing.assert_allclose(out["g2"][sel], g2, rtol=1e-14)
        np.testing.assert_allclose(out["adam_lr"][sel], 1e-3 / np.sqrt(g2), rtol=1e-14)
    np.testing.assert_allclose(out["sigma2"], 0.1 / 10)
    rec.save(tmp_path / "fig3.npz")
    with np.load(tmp_path / "fig3.npz") as z:
        assert {"var_post", "g2", "adam_lr", "step", "tensor", "entry", "eta", "sigma2", "tensor_numel"} <= set(z)
        np.testing.assert_array_equal(z["var_post"], out["var_post"])
    rec.close()
    _train(model, opt, 3, seed=5)
    assert len(rec) == 54


def test_recorder_follows_groups_replaced_by_load_state_dict() -> None:
    """load_state_dict replaces the group dicts; the recorder must read the current ones (a later lr change)."""
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = AdaBayes([p], batch_size=10)
    rec = LearningRateRecorder(opt, every=1, entries_per_tensor=2)
    p.grad = torch.ones(4, dtype=torch.float64)
    opt.step()
    opt.load_state_dict(opt.state_dict())
    opt.param_groups[0]["lr"] = 5e-4  # c = 1/2
    opt.step()
    out = rec.arrays()
    last = out["step"] == 2
    np.testing.assert_array_equal(out["eta"][last], 5e-4)
    np.testing.assert_allclose(out["var_post"][last], opt.learning_rates(p)[rec.indices[0]].numpy(), rtol=1e-15)
    np.testing.assert_allclose(out["var_post"][last], 0.5 * opt.state[p]["var_post"][rec.indices[0]].numpy())
    np.testing.assert_allclose(out["sigma2"][last], 0.5 * 0.1 / 10)
    np.testing.assert_allclose(out["adam_lr"][last], 5e-4 / np.sqrt(out["g2"][last]))


def test_recorder_buffer_is_bounded_and_keeps_the_latest() -> None:
    p = torch.zeros(100, dtype=torch.float64, requires_grad=True)
    opt = AdaBayesFP([p], batch_size=10)
    rec = LearningRateRecorder(opt, every=1, entries_per_tensor=4, capacity=10)
    for _ in range(7):
        p.grad = torch.randn(100, dtype=torch.float64)
        opt.step()
    out = rec.arrays()
    assert len(rec) == 10 and rec.n_overwritten == 18
    np.testing.assert_array_equal(out["step"], [5, 5, 6, 6, 6, 6, 7, 7, 7, 7])
    with pytest.raises(ValueError, match="every"):
        LearningRateRecorder(opt, every=0)


def test_importing_filtering_does_not_import_torch() -> None:
    code = (
        "import sys, filtering, filtering.rules, filtering.fixed_point, filtering.recording;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adabayes_package_exports_the_optimisers_lazily() -> None:
    """``import adabayes`` does not import torch; ``from adabayes import AdaBayes, ...`` and ``adabayes.torch``
    give the classes of filtering.torch_adapter."""
    code = (
        "import sys, adabayes;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert {'AdaBayes', 'AdaBayesFP', 'LearningRateRecorder'} <= set(dir(adabayes))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import adabayes
    import adabayes.torch
    from adabayes import AdaBayes as A
    from adabayes import AdaBayesFP as B
    from adabayes import LearningRateRecorder as R

    assert (A, B, R) == (AdaBayes, AdaBayesFP, LearningRateRecorder)
    assert (adabayes.torch.AdaBayes, adabayes.torch.AdaBayesFP) == (AdaBayes, AdaBayesFP)
    assert adabayes.torch.adabayes_step is adabayes.adabayes_step
    with pytest.raises(AttributeError, match="no attribute 'Adam'"):
        adabayes.Adam  # noqa: B018


def test_adabayes_without_torch_imports_and_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import adabayes\n"
        "try:\n"
        "    from adabayes import AdaBayes\n"
        "except ImportError as exc:\n"
        "    assert 'adabayes[torch]' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_deepcopy_and_param_groups_added_later() -> None:
    model = _model(torch.float64)
    opt = AdaBayesFP([model[0].weight], batch_size=10)
    opt.add_param_group({"params": [model[0].bias], "lr": 5e-3, "lr_sgd": math.inf})
    assert opt.param_groups[1]["eta"] == 5e-3 and opt.param_groups[1]["batch_size"] == 10
    _train(model, opt, 2, seed=0)
    clone = copy.deepcopy(opt)
    assert clone.state_dict()["state"][1]["step"] == 2
