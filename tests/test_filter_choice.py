"""kalman_filter's choice between the NumPy loop and the compiled kernel (filtering._filter_choice): the rule, the
override, and a process that filters a little never importing numba. Both paths give the same bits
(tests/test_kalman_step.py); here the public function is run on both and compared."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from filtering import _filter_choice as choice
from filtering import state_space as ss


@pytest.fixture
def fresh_ledger(monkeypatch):
    """A ledger as in a new process, the environment override removed."""
    monkeypatch.delenv("ADABAYES_FILTER_PATH", raising=False)
    monkeypatch.setattr(choice._Ledger, "spent", 0.0)
    monkeypatch.setattr(choice._Ledger, "compiled", False)
    return choice._Ledger


@pytest.fixture
def recorded(monkeypatch):
    """Both implementations replaced by recorders: the list of the paths taken, in call order."""
    calls = []

    def recorder(name):
        return lambda *_args, **_kwargs: calls.append(name) or 0

    import filtering._scalar_kernel as kernel

    monkeypatch.setattr(choice, "run_numpy", recorder("numpy"))
    monkeypatch.setattr(kernel, "run", recorder("compiled"))
    return calls


def _call(shape):
    g, n = np.zeros(shape), int(np.prod(shape[1:]))
    choice.run(g, g, np.ones(n), np.ones(n), np.zeros(n), np.ones(n), has_mu=False, mean_out=g, var_out=g)


def test_small_calls_run_in_numpy_until_their_time_reaches_the_load_cost(fresh_ledger, recorded, monkeypatch):
    monkeypatch.setattr(choice, "LOAD_SECONDS", 1e-3)
    assert 1e-5 < choice.numpy_seconds(10, 3) < 5e-4
    for spent in (0.0, 5e-4, 9.99e-4):  # the ledger as the NumPy calls would have filled it
        fresh_ledger.spent = spent
        _call((10, 3))
    # 0.999 ms spent + this call's predicted time > 1 ms: the kernel is loaded, and kept even when the ledger says less
    fresh_ledger.spent = 0.0
    _call((10, 3))
    assert recorded == ["numpy", "numpy", "compiled", "compiled"]


def test_the_prediction_uses_the_call_s_steps_and_every_parameter_axis(fresh_ledger, recorded, monkeypatch):
    """A (100, 2, 2) call costs more than a 100-step call of 1 filter and than a 4-step call of 4 filters."""
    small, full = choice.numpy_seconds(100, 1), choice.numpy_seconds(100, 4)
    assert choice.numpy_seconds(4, 4) < small < full
    monkeypatch.setattr(choice, "LOAD_SECONDS", (small + full) / 2)
    _call((100, 2, 2))
    assert recorded == ["compiled"]


def test_a_call_bringing_the_ledger_exactly_to_the_load_cost_runs_in_numpy(fresh_ledger, recorded, monkeypatch):
    monkeypatch.setattr(choice, "LOAD_SECONDS", choice.numpy_seconds(10, 3))
    _call((10, 3))
    assert recorded == ["numpy"] and not fresh_ledger.compiled


@pytest.mark.parametrize("path", ["compiled", "numpy", " Compiled ", "NUMPY"])
def test_the_override_fixes_the_path_whatever_the_workload(fresh_ledger, recorded, monkeypatch, path):
    monkeypatch.setenv("ADABAYES_FILTER_PATH", path)
    monkeypatch.setattr(choice, "LOAD_SECONDS", choice.numpy_seconds(10, 3) * 100)  # auto would pick NumPy
    _call((10, 3))
    fresh_ledger.spent = 1e9  # auto would pick the compiled kernel
    _call((10, 3))
    want = path.strip().lower()
    assert recorded == [want, want]


def test_a_call_predicted_to_cost_more_than_the_load_goes_compiled_at_once(fresh_ledger):
    big = int(2 * choice.LOAD_SECONDS / choice.ELEMENT_SECONDS / 100)
    assert choice.numpy_seconds(100, big) > choice.LOAD_SECONDS
    assert choice._use_compiled(100, big) and fresh_ledger.compiled


def test_the_numpy_ledger_counts_measured_time(fresh_ledger):
    g = np.random.default_rng(0).standard_normal((50, 4))
    ss.kalman_filter(g, np.ones_like(g), 0.01, 0.1)
    assert 0.0 < fresh_ledger.spent < choice.LOAD_SECONDS and not fresh_ledger.compiled


@pytest.mark.parametrize("with_mu", [False, True])
def test_both_paths_of_kalman_filter_give_the_same_bits_and_errors(monkeypatch, with_mu):
    rng = np.random.default_rng(3)
    g, h = rng.standard_normal((40, 3, 5)), 10.0 ** rng.uniform(-2, 2, (40, 3, 5))
    mu = rng.standard_normal((40, 3, 5)) if with_mu else None
    results, errors = {}, {}
    for path in ("numpy", "compiled"):
        monkeypatch.setenv("ADABAYES_FILTER_PATH", path)
        r = ss.kalman_filter(g, h, 0.05, 0.2, mu=mu, var0=np.inf)
        results[path] = (r.mean_post, r.var_post)
        bad = h.copy()
        bad[7, 1, 2] = np.nan
        with pytest.raises(ValueError) as err:
            ss.kalman_filter(g, bad, 0.05, 0.2, mu=mu)
        errors[path] = str(err.value)
    np.testing.assert_array_equal(results["numpy"][0], results["compiled"][0])
    np.testing.assert_array_equal(results["numpy"][1], results["compiled"][1])
    assert errors["numpy"] == errors["compiled"]


def test_a_bad_override_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("ADABAYES_FILTER_PATH", "gpu")
    with pytest.raises(ValueError, match="ADABAYES_FILTER_PATH must be one of auto, compiled, numpy, got 'gpu'"):
        ss.kalman_filter(np.zeros((3, 2)), np.ones((3, 2)), 0.01, 0.1)


def test_a_process_that_filters_a_little_never_imports_numba():
    code = (
        "import sys, numpy as np\n"
        "from filtering.state_space import kalman_filter\n"
        "g = np.random.default_rng(0).standard_normal((100, 10))\n"
        "r = kalman_filter(g, np.ones_like(g), 1e-3, 0.1)\n"
        "assert np.isfinite(r.var_post).all()\n"
        "print('numba' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ADABAYES_FILTER_PATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", out.stderr
