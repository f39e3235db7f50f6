"""Figures render from saved data only (synthetic npz/json written here, no simulation)."""

from __future__ import annotations

import numpy as np

from figures.render import FIGURES, render_all
from simulations.io import save_json, save_npz


def _fake_generative(d):
    n = 50
    h = np.logspace(-3, 4, n)
    arrays = {"h": h, "z_edges": np.linspace(-5, 5, 101), "kalman_final_rate": 1 / (1e3 + np.sqrt(h) * 1e3)}
    for r in ("adabayes", "adabayes_fp", "fading", "adam", "kalman"):
        arrays[f"{r}_g2"] = h
        arrays[f"{r}_rate"] = 1 / (5e2 + np.sqrt(5e5**2 / 1e6 + h * 1e6))
        arrays[f"{r}_zhist"] = np.exp(-0.5 * np.linspace(-5, 5, 100) ** 2) * 1000
    g = np.logspace(-3, 4, 20)
    arrays.update(
        grid_g2=g,
        grid_eq21=1 / (1e3 + np.sqrt(g) * 1e3),
        grid_exact=1 / (1e3 + np.sqrt(g) * 1e3),
        grid_jensen=1 / (1e3 + np.sqrt(g) * 1e3),
        map_g2=g,
        map_sigma2=np.logspace(-6, 1, 10),
        map_err=np.outer(np.logspace(-6, 1, 10), g) * 1e-3,
        map_eta=np.array(1e-3),
    )
    save_npz(d / "generative.npz", **arrays)
    save_json(d / "generative.json", {"config": {"eta": 1e-3, "sigma2": 1e-3}})
    stats = {"z_mean": 0.0, "z_var": 1.0, "cover68": 0.68, "cover95": 0.95}
    save_json(d / "calibration.json", {"stats": {"kalman": stats, "adabayes": stats}})


def test_render_all_draws_available_figures_and_reports_missing(tmp_path):
    _fake_generative(tmp_path)
    out = render_all(tmp_path, tmp_path / "figs")
    for name in ("fig3_generative", "calibration", "error_map"):
        assert out[name].exists() and out[name].stat().st_size > 10_000, name
    assert str(out["fig3_quadratic"]).startswith("missing")
    assert set(out) == set(FIGURES)


def test_broken_input_is_an_error_string_not_an_exception(tmp_path):
    _fake_generative(tmp_path)
    save_json(tmp_path / "calibration.json", {"stats": {}})
    out = render_all(tmp_path, tmp_path / "figs")
    assert str(out["calibration"]).startswith("error")
    assert out["fig3_generative"].exists()


def test_figures_do_not_import_simulation_run_code():
    import pathlib

    for path in pathlib.Path("figures").glob("*.py"):
        text = path.read_text()
        for mod in ("simulations.generative", "simulations.quadratic", "simulations.factorised_vs_joint"):
            assert mod not in text, f"{path} imports {mod}"
