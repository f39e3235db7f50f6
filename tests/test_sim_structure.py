"""Checks as data, the per-chunk histogram, the loss sampling, default folders and --help of the experiments."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from simulations.checks import INFO, AtLeast, AtMost, Equals, Spec, Within, evaluate


def test_evaluate_applies_each_bound_and_fills_the_detail():
    m = {"a": 0.01, "b": float("nan"), "c": 3.0, "tol": 0.5, "n": 7, "what": "x"}
    specs = [
        Spec("t/at_most", "Eq. 21", "a", AtMost(0.02), detail="{n} params, {what}"),
        Spec("t/at_most_nan", "Eq. 21", "b", AtMost(0.02)),
        Spec("t/within", "Eq. 11", "c", Within(2.8, "tol")),
        Spec("t/within_far", "Eq. 11", "c", Within(0.0, "tol", "{target:.3g} ± {tol:.2g} (4 s.e.)")),
        Spec("t/at_least", "", "c", AtLeast(8, ">= 8 (by construction)"), "identity"),
        Spec("t/equals", "", "n", Equals(7)),
        Spec("t/info", "Eq. 31", "c", INFO),
    ]
    got = {c.name: c for c in evaluate(specs, m)}
    assert got["t/at_most"].passed is True and got["t/at_most"].detail == "7 params, x"
    assert got["t/at_most"].bound == "<= 0.02" and got["t/at_most"].equation == "Eq. 21"
    assert got["t/at_most_nan"].passed is False  # NaN never passes
    assert got["t/within"].passed is True and got["t/within"].bound == "2.8 ± 0.5"
    assert got["t/within_far"].passed is False and got["t/within_far"].bound == "0 ± 0.5 (4 s.e.)"
    assert got["t/at_least"].passed is False and got["t/at_least"].kind == "identity"
    assert got["t/equals"].passed is True and got["t/equals"].bound == "== 7"
    assert got["t/info"].passed is None and got["t/info"].kind == "info" and got["t/info"].bound == "info"
    with pytest.raises(KeyError):
        evaluate([Spec("t/missing", "", "nope", AtMost(1))], m)


def test_every_declared_spec_reads_a_measurement_that_exists():
    """The specs of each experiment name numbers the measure step really produces (small real runs)."""
    from simulations.generative import GenerativeConfig, calibration_checks, simulate_generative, summarise
    from simulations.generative_checks import CALIBRATION_SPECS, GENERATIVE_SPECS

    cfg = GenerativeConfig(n_params=60, steps=600, burn_in=300, log10_h=(-3.0, 4.0))
    data = simulate_generative(cfg, np.random.default_rng(0), show_progress=False)
    checks = summarise(data, cfg, np.random.default_rng(1))["checks"] + calibration_checks(data, cfg)[1]
    assert [c.name for c in checks] == [s.name for s in (*GENERATIVE_SPECS, *CALIBRATION_SPECS)]
    assert len(checks) == 33 and all(c.equation for c in checks if c.kind == "verified")
    assert all("{" not in c.detail for c in checks)  # every template field was filled


def test_z_histogram_per_chunk_equals_the_per_step_histogram():
    from simulations.generative import Z_EDGES, _Accumulator

    rng = np.random.default_rng(3)
    acc = _Accumulator(50)
    per_step = np.zeros(Z_EDGES.size - 1)
    for chunk in range(3):
        for _ in range(40):
            z = 2.5 * rng.standard_normal(50)
            acc.add(np.full(50, 0.1), rng.standard_normal(50), z)
            per_step += np.histogram(np.clip(z, Z_EDGES[0], Z_EDGES[-1]), Z_EDGES)[0]
        if chunk < 2:
            acc.flush()
    np.testing.assert_array_equal(acc.result("x")["x_zhist"], per_step)  # result() flushes the last chunk
    assert per_step.sum() == 120 * 50


def test_loss_curves_keep_the_linear_samples_and_add_log_spaced_ones():
    from simulations.quadratic import _LossCurves

    curves = _LossCurves(3000, 2, 100, 60)
    assert np.array_equal(curves.linear_t, np.unique(np.linspace(0, 2999, 100).astype(int)))
    assert set(curves.linear_t) <= set(curves.times) and curves.times[:4].tolist() == [0, 1, 2, 3]
    mus = np.ones((3, 2))
    for t in curves.times:
        curves.record(int(t), mus * t, mus, np.array([True, False]))
    lin = curves.linear()
    np.testing.assert_array_equal(lin[:, 0], 0.5 * 3 * curves.linear_t)
    assert np.all(np.isinf(lin[:, 1]))  # a diverged column


def _parser(module) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p


def test_experiments_slopes_and_figures_share_one_default_data_folder():
    from figures import render
    from simulations import factorised_vs_joint, generative, quadratic, slopes

    defaults = {m.__name__: _parser(m).parse_args([]).out for m in (generative, quadratic, factorised_vs_joint, slopes)}
    assert set(defaults.values()) == {"results/data"}, defaults
    assert _parser(render).parse_args([]).data == "results/data"


def test_help_states_the_quick_and_full_sizes():
    from simulations import generative, quadratic

    text = _parser(generative).format_help().replace("\n", " ")
    assert "default 6000; with --quick 4000" in " ".join(text.split())
    assert "default 1500; with --quick 300" in " ".join(text.split())
    assert "with --quick 1500" in " ".join(_parser(quadratic).format_help().split())


def test_slopes_without_data_names_what_to_run(tmp_path):
    from simulations import slopes

    with pytest.raises(FileNotFoundError, match="adabayes generative"):
        slopes.run(_parser(slopes).parse_args(["--out", str(tmp_path)]))
    assert not (tmp_path / "slopes.json").exists()
    with pytest.raises(FileNotFoundError):
        slopes.run(_parser(slopes).parse_args(["--out", str(tmp_path / "missing")]))
    assert not (tmp_path / "missing").exists()  # nothing created


def test_generative_steps_below_the_default_burn_in_is_one_clear_error():
    from simulations import generative

    with pytest.raises(ValueError, match="--burn-in"):
        generative.config_from_args(_parser(generative).parse_args(["--steps", "100"]))
    cfg = generative.config_from_args(_parser(generative).parse_args(["--steps", "100", "--burn-in", "50"]))
    assert (cfg.steps, cfg.burn_in) == (100, 50)


def test_output_dir_refuses_a_file(tmp_path):
    from simulations.common import output_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        output_dir(tmp_path / "f" / "sub")
    assert output_dir(tmp_path / "a" / "b").is_dir()


def test_fixed_point_curves_hold_every_registered_curve():
    from simulations.curves import FIXED_POINT_CURVES, fixed_point_curves

    c = fixed_point_curves(1e-2, 1e4, 1e-3, 1e-3, points=50)
    assert set(c) == {"grid_g2", *FIXED_POINT_CURVES} and all(v.shape == (50,) for v in c.values())
    assert c["grid_g2"][0] == pytest.approx(1e-2) and c["grid_g2"][-1] == pytest.approx(1e4)
    assert np.all(c["grid_jensen"] >= c["grid_exact"])  # the Jensen gap is positive
    assert math.isclose(c["grid_eq21"][0], 1 / (1 / 2e-3 + math.sqrt(1 / 4e-6 + 1e-2 / 1e-6)), rel_tol=1e-12)
