"""LearningRateRecorder: uses only the optimiser's public ``readout``; warns when it saves nothing; complex
parameters; the ⟨g²⟩ requirement (more recorder tests, against real training, are in test_torch_adapter.py)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from filtering.recording import LearningRateRecorder  # noqa: E402
from filtering.torch_adapter import AdaBayes, AdaBayesFP, Readout  # noqa: E402


class _ReadoutOnly:
    """The least an optimiser must offer the recorder: param_groups, a step hook and readout(p, index)."""

    def __init__(self, params: list[Any]) -> None:
        self.param_groups = [{"params": params}]
        self.steps = 0
        self._hooks: list[Any] = []

    def register_step_post_hook(self, hook: Any) -> Any:
        self._hooks.append(hook)
        return self

    def remove(self) -> None:
        self._hooks.clear()

    def step(self) -> None:
        self.steps += 1
        for hook in self._hooks:
            hook(self, (), {})

    def readout(self, p: Any, index: Any) -> Readout:
        base = torch.arange(p.numel(), dtype=torch.float64)[index]
        return Readout(var_post=1e-3 * (base + 1), g2=4.0 * (base + 1), step=self.steps, lr=0.02, sigma2=0.5)


def test_recorder_needs_nothing_but_the_public_readout() -> None:
    params = [torch.zeros(10), torch.zeros(3)]
    opt = _ReadoutOnly(params)
    rec = LearningRateRecorder(opt, every=2, entries_per_tensor=4, seed=1)
    for _ in range(4):
        opt.step()
    out = rec.arrays()
    assert len(rec) == 2 * (4 + 3) and set(out["step"]) == {2, 4}
    first = (out["tensor"] == 0) & (out["step"] == 2)
    entries = rec.indices[0]
    np.testing.assert_array_equal(out["var_post"][first], 1e-3 * (entries + 1))
    np.testing.assert_array_equal(out["g2"][first], 4.0 * (entries + 1))
    np.testing.assert_allclose(out["adam_lr"][first], 0.02 / np.sqrt(4.0 * (entries + 1)), rtol=1e-15)
    np.testing.assert_array_equal(out["sigma2"], 0.5)
    np.testing.assert_array_equal(out["tensor_numel"], [10, 3])
    with pytest.raises(TypeError, match="readout"):
        LearningRateRecorder(torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1))


def test_save_warns_when_nothing_was_recorded(tmp_path) -> None:
    """every=50 on a 10-step run: the file holds empty arrays, and the recorder says so."""
    p = torch.zeros(5, requires_grad=True)
    opt = AdaBayes([p], batch_size=8)
    rec = LearningRateRecorder(opt, every=50)
    for _ in range(10):
        p.grad = torch.randn(5)
        opt.step()
    with pytest.warns(RuntimeWarning, match=r"no samples were recorded \(10 optimizer steps seen.*every 50"):
        rec.save(tmp_path / "empty.npz")
    with np.load(tmp_path / "empty.npz") as z:
        assert z["var_post"].size == 0
    rec.record()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.save(tmp_path / "full.npz")
    with np.load(tmp_path / "full.npz") as z:
        assert z["var_post"].size == 5


def test_recorder_skips_tensors_before_their_first_step() -> None:
    ps = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    opt = AdaBayesFP(ps, batch_size=8)
    rec = LearningRateRecorder(opt, every=1)
    ps[0].grad = torch.ones(3)
    opt.step()  # ps[1] has no gradient: no state, nothing to record
    out = rec.arrays()
    assert len(rec) == 3 and set(out["tensor"]) == {0}


def test_recorder_samples_complex_parameters_as_real_pairs() -> None:
    z = torch.zeros(3, 2, dtype=torch.complex128, requires_grad=True)
    opt = AdaBayes([z], batch_size=8)
    rec = LearningRateRecorder(opt, every=1, entries_per_tensor=100)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        z.grad = torch.randn(3, 2, generator=gen, dtype=torch.complex128)
        opt.step()
    out = rec.arrays()
    last = out["step"] == 3
    assert list(rec.indices[0]) == list(range(12)) and out["tensor_numel"][0] == 12
    np.testing.assert_array_equal(out["var_post"][last], opt.learning_rates(z).reshape(-1).numpy())
    np.testing.assert_array_equal(out["g2"][last], opt.mean_squared_gradients(z).reshape(-1).numpy())
