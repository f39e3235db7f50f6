"""Figures render from saved data only (synthetic npz/json written here, no simulation)."""
# The fake data are written with simulations.io, the experiments' own writer, so the format tested is theirs.

from __future__ import annotations

import numpy as np
import pytest

from figures.render import FIGURES, render_all
from simulations.io import save_json, save_npz


def _fake_generative(d):
    n = 50
    h = np.logspace(-3, 4, n)
    arrays = {"h": h, "z_edges": np.linspace(-5, 5, 101), "kalman_final_rate": 1 / (1e3 + np.sqrt(h) * 1e3)}
    for r in ("adabayes", "adabayes_fp", "fading", "adamw", "kalman"):
        arrays[f"{r}_g2"] = h
        arrays[f"{r}_rate"] = 1 / (5e2 + np.sqrt(5e5**2 / 1e6 + h * 1e6))
        arrays[f"{r}_zhist"] = np.exp(-0.5 * np.linspace(-5, 5, 100) ** 2) * 1000
    g = np.logspace(-3, 4, 20)
    arrays.update(
        grid_g2=g,
        grid_eq21=1 / (1e3 + np.sqrt(g) * 1e3),
        grid_exact=1 / (1e3 + np.sqrt(g) * 1e3),
        grid_stochastic=1.01 / (1e3 + np.sqrt(g) * 1e3),
        grid_stochastic_lo=0.5 / (1e3 + np.sqrt(g) * 1e3),
        grid_stochastic_hi=2 / (1e3 + np.sqrt(g) * 1e3),
        stochastic_points_g2=h[::5],
        stochastic_points_rate=arrays["adabayes_rate"][::5],
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


def test_fig3_artists_follow_the_data():
    from matplotlib.colors import to_rgba

    from figures.fig3 import draw_fig3
    from figures.style import COLORS, new_figure, plt

    g2 = np.logspace(-2, 4, 37)
    rate = 1 / (5e2 + np.sqrt(2.5e5 + g2 * 1e6))
    curves = {"grid_g2": np.logspace(-2, 4, 20), "grid_eq21": np.full(20, 1e-3), "grid_exact": np.full(20, 1e-3)}
    fig, ax = new_figure()
    draw_fig3(ax, {"adabayes": 1e-3 / np.sqrt(g2)}, {"adabayes": rate}, curves, 1e-3, 1e-3, "t")
    (points,) = ax.collections
    assert points.get_offsets().shape == (37, 2)
    np.testing.assert_allclose(points.get_offsets()[:, 1], rate)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "Eq. 21 fixed point" in labels and "exact fixed point" in labels
    eq21 = next(line for line in ax.get_lines() if line.get_label() == "Eq. 21 fixed point")
    assert eq21.get_xydata().shape == (20, 2)
    # points must not share the colour of the Eq. 21 curve (or any theory line)
    point_rgba = tuple(points.get_facecolor()[0][:3])
    assert all(to_rgba(line.get_color())[:3] != point_rgba for line in ax.get_lines())
    assert to_rgba(COLORS["points"])[:3] == point_rgba
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "eta" in ax.get_xlabel() and "sigma" in ax.get_ylabel()
    plt.close(fig)


def test_fig3_draws_the_stochastic_curve_its_band_and_the_per_parameter_predictions():
    from matplotlib.collections import PolyCollection

    from figures.fig3 import draw_fig3
    from figures.style import COLORS, new_figure, plt

    g = np.logspace(-2, 4, 20)
    mean = 1 / (1e3 + np.sqrt(g) * 1e3)
    curves = {
        "grid_g2": g,
        "grid_eq21": mean,
        "grid_exact": 0.9 * mean,
        "grid_stochastic": 1.1 * mean,
        "grid_stochastic_lo": 0.5 * mean,
        "grid_stochastic_hi": 2.0 * mean,
        "stochastic_points_g2": g[::4],
        "stochastic_points_rate": 1.2 * mean[::4],
    }
    fig, ax = new_figure()
    draw_fig3(ax, {"adabayes": 1e-3 / np.sqrt(g)}, {"adabayes": mean}, curves, 1e-3, 1e-3, "t")
    stoch = [line for line in ax.get_lines() if line.get_label().startswith("stochastic")]
    assert len(stoch) == 1 and stoch[0].get_color() == COLORS["stochastic"]
    np.testing.assert_allclose(stoch[0].get_ydata(), 1.1 * mean)
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.5 * mean.min()) and ys.max() == pytest.approx(2.0 * mean.max())
    diamonds = [c for c in ax.collections if c.get_label() == "stochastic, each parameter's own g"]
    assert len(diamonds) == 1 and diamonds[0].get_offsets().shape == (5, 2)
    np.testing.assert_allclose(diamonds[0].get_offsets()[:, 0], 1e-3 / np.sqrt(g[::4]))
    assert not any("Jensen" in line.get_label() for line in ax.get_lines())  # superseded (issue 9)
    plt.close(fig)


def test_slopes_panel_draws_one_point_set_and_fit_line_per_rule():
    from figures.slopes import _panel
    from figures.style import new_figure, plt

    g2 = np.logspace(0, 4, 50)
    fits = {
        "adamw": {"window": (100, 1600), "slope": -0.5, "stderr": 0.01, "intercept": -3.0, "theory": -0.5},
        "sgd": {"window": (100, 1600), "slope": float("nan"), "stderr": float("nan"), "intercept": 0, "theory": 0},
    }
    fig, ax = new_figure()
    _panel(ax, {"adamw": (g2, 1e-3 / np.sqrt(g2)), "sgd": (g2, np.full(50, 1e-5))}, fits, "t")
    assert [c.get_offsets().shape[0] for c in ax.collections] == [50, 50]  # one point set per rule
    assert len(ax.get_lines()) == 1  # only the finite fit is drawn
    assert any("not the paper's" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_figures_command_errors_on_missing_data(tmp_path):
    import argparse

    import pytest

    from figures import render

    with pytest.raises(FileNotFoundError):
        render_all(tmp_path / "nope", tmp_path / "figs")
    assert not (tmp_path / "figs").exists()
    args = argparse.Namespace(data=str(tmp_path / "nope"), out=None)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        render.run(args)
    assert not (tmp_path / "figures").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no simulation output"):
        render.run(argparse.Namespace(data=str(tmp_path / "empty"), out=str(tmp_path / "f")))
    assert not (tmp_path / "f").exists()


def test_figures_finds_the_data_folder_of_a_reproduce_output(tmp_path, capsys):
    """``adabayes figures --data results`` right after ``adabayes reproduce --out results`` (data in results/data)."""
    import argparse

    from figures import render

    _fake_generative(tmp_path / "data")
    assert render.run(argparse.Namespace(data=str(tmp_path), out=None)) == 0
    assert (tmp_path / "figures" / "fig3_generative.png").stat().st_size > 10_000
    assert "fig3_generative" in capsys.readouterr().out


def test_broken_input_is_an_error_string_not_an_exception(tmp_path):
    _fake_generative(tmp_path)
    save_json(tmp_path / "calibration.json", {"stats": {}})
    out = render_all(tmp_path, tmp_path / "figs")
    assert str(out["calibration"]).startswith("error")
    assert out["fig3_generative"].exists()


def test_figures_import_nothing_from_simulations():
    """Data flow one way (simulations -> saved files -> figures): no figures module imports simulations."""
    import ast
    import pathlib

    import figures

    paths = sorted(pathlib.Path(figures.__file__).parent.glob("*.py"))
    assert len(paths) >= 8, paths  # the package itself, not whatever folder the tests run from
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
        assert not [m for m in imported if m.split(".")[0] == "simulations"], f"{path} imports {imported}"


def test_figures_help_has_its_own_registry():
    from figures.registry import SUBCOMMANDS
    from figures.render import HELP
    from simulations.registry import SUBCOMMANDS as SIM

    assert HELP == SUBCOMMANDS["figures"][1]
    if "figures" in SIM:  # forwarding entry until adabayes.cli reads figures.registry
        assert SIM["figures"] == SUBCOMMANDS["figures"]


def _fake_quadratic(d, steps=300):
    n, rules = 60, ("sgd", "adam", "adamw", "adabayes", "adabayes_fp", "fading", "von")
    g2 = np.logspace(-2, 4, n)
    arrays = {}
    for r in rules:
        arrays[f"fig3_{r}_g2"] = g2
        arrays[f"fig3_{r}_rate"] = 1 / (5e2 + np.sqrt(2.5e5 + g2 * 1e6))
    g = np.logspace(-2, 4, 20)
    arrays.update(grid_g2=g, grid_eq21=1 / (5e2 + np.sqrt(2.5e5 + g * 1e6)), grid_exact=1 / (1e3 + np.sqrt(g) * 1e3))
    arrays["grid_stochastic"] = arrays["grid_eq21"]
    linear = np.unique(np.linspace(0, steps - 1, 100).astype(int))
    fine = np.union1d(linear, np.unique(np.geomspace(1, steps, 60).astype(int) - 1))
    arrays["loss_t"], arrays["loss_fine_t"] = linear, fine
    arrays["tuned_loss"] = np.outer(10.0 / (1 + linear), np.arange(1, 8))
    arrays["tuned_loss_fine"] = np.outer(10.0 / (1 + fine), np.arange(1, 8))
    save_npz(d / "quadratic.npz", **arrays)
    tuned = {r: {"hyper": {"lr": 1e-3}} for r in rules}
    meta = {"fig3": {"eta": 1e-3, "sigma2": 1e-3}, "config": {"n": n, "batch_size": 100}}
    save_json(d / "quadratic.json", meta | {"tuned": tuned, "tuned_columns": list(rules)})


def _render(monkeypatch, module, function: str, *args):
    """Call ``module.function(*args)`` and return the figure it saved (still drawable after closing)."""
    captured = []
    real_save = module.save
    monkeypatch.setattr(module, "save", lambda fig, path: captured.append(fig) or real_save(fig, path))
    getattr(module, function)(*args)
    (fig,) = captured
    return fig


def _outside(fig, ax, legend) -> bool:
    """Whether the legend's box lies entirely outside the axes' data area (after a draw)."""
    fig.canvas.draw()
    a, b = ax.get_window_extent(), legend.get_window_extent()
    return b.y1 <= a.y0 or b.y0 >= a.y1 or b.x1 <= a.x0 or b.x0 >= a.x1


def test_plus_minus_prints_two_significant_digits_of_the_error():
    from figures.style import plus_minus

    assert plus_minus(-0.48531, 0.00031) == "-0.48531 ± 0.00031"
    assert plus_minus(-0.503, 0.0052) == "-0.5030 ± 0.0052"
    assert plus_minus(-0.5, 0.05) == "-0.500 ± 0.050"
    assert plus_minus(0.0, 0.0) == "0 (exact)"
    assert plus_minus(-3e-17, 2.8e-18) == "0 (exact)"  # a constant rate's fit: rounding noise only
    assert float(plus_minus(-0.485, 4.3e-4).split("± ")[1]) > 0  # the error is never printed as zero


def test_slopes_legend_is_outside_the_data_and_errors_are_not_rounded_to_zero():
    from figures.slopes import _panel
    from figures.style import new_figure, plt

    g2 = np.logspace(0, 4, 50)
    fits = {"adamw": {"window": (100, 1600), "slope": -0.49821, "stderr": 0.00043, "intercept": -3.0, "theory": -0.5}}
    fig, ax = new_figure()
    _panel(ax, {"adamw": (g2, 1e-3 / np.sqrt(g2))}, fits, "t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("-0.49821 ± 0.00043" in t for t in labels), labels
    assert _outside(fig, ax, ax.get_legend())
    plt.close(fig)


def test_calibration_legend_leaves_the_tails_visible(tmp_path, monkeypatch):
    import figures.calibration as cal

    _fake_generative(tmp_path)
    fig = _render(monkeypatch, cal, "render", tmp_path, tmp_path / "c.png")
    ax = fig.axes[0]
    assert _outside(fig, ax, ax.get_legend())
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_error_map_labels_are_horizontal_and_the_legend_is_outside(tmp_path, monkeypatch):
    import figures.error_map as em
    from simulations.curves import error_map

    _fake_generative(tmp_path)
    arrays = dict(np.load(tmp_path / "generative.npz")) | error_map(1e-3, n_g2=120, n_sigma2=60)
    save_npz(tmp_path / "generative.npz", **arrays)
    fig = _render(monkeypatch, em, "render", tmp_path, tmp_path / "e.png")
    ax = fig.axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"1 %", "2 %", "10 %"}, list(texts)
    assert all(t.get_rotation() == 0 for t in texts.values())
    assert _outside(fig, ax, ax.get_legend())
    # each label sits just above its contour's horizontal branch, in order: 1 % highest
    ys = [texts[k].xy[1] for k in ("1 %", "2 %", "10 %")]
    assert ys[0] > ys[1] > ys[2]


def test_fig3_quadratic_second_rule_points_are_visible_and_the_title_has_eta_sigma2(tmp_path, monkeypatch):
    from matplotlib.colors import to_rgba

    import figures.fig3 as f3

    _fake_quadratic(tmp_path)
    ax = _render(monkeypatch, f3, "render_quadratic", tmp_path, tmp_path / "q.png").axes[0]
    first, second = ax.collections
    assert second.get_alpha() >= 0.7 and second.get_zorder() > max(line.get_zorder() for line in ax.get_lines())
    rgba = to_rgba(second.get_edgecolor()[0] if len(second.get_edgecolor()) else second.get_facecolor()[0])
    assert max(rgba[:3]) - min(rgba[:3]) > 0.3  # a colour, not a light grey
    assert rgba[:3] != tuple(to_rgba(first.get_facecolor()[0])[:3])
    title = ax.get_title()
    assert r"$\eta$=0.001" in title and r"$\sigma^2$=0.001" in title


def test_losses_start_at_step_one_on_log_samples_and_no_two_rules_look_alike(tmp_path, monkeypatch):
    import figures.losses as lo

    _fake_quadratic(tmp_path)
    fig = _render(monkeypatch, lo, "render", tmp_path, tmp_path / "l.png")
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 7
    x = lines[0].get_xdata()
    assert x[0] == 1 and x[1] == 2 and np.all(np.diff(x) > 0)  # no straight segment from t = 1 to 31
    assert np.max(x[1:10] / x[:9]) <= 2.0
    styles = [(line.get_color(), str(line.get_linestyle())) for line in lines]
    assert len(set(styles)) == len(styles)
    by_label = {line.get_label().split(" (")[0]: line for line in lines}
    assert by_label["Adam"].get_linestyle() != by_label["AdamW"].get_linestyle()
    assert _outside(fig, ax, ax.get_legend())
