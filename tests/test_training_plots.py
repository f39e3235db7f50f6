"""Artist data of the network figures (issue 11 item 7): a real Fig. 3 title, a legend per recorded step instead
of a colour bar, mathtext labels, and a one-epoch table whose curves are visible."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from simulations.training.plots import (
    LEGEND_STEPS_UP_TO,
    curves_figure,
    fig3_figure,
    plot_curves,
    plot_fig3,
)


def _rows(n_epochs: int, offset: float = 0.0) -> list[dict[str, float]]:
    return [
        {"epoch": e + 1, "test_loss": 1.0 / (e + 1) + offset, "test_error": 0.5 / (e + 1) + offset}
        for e in range(n_epochs)
    ]


def _all_text(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_one_epoch_curves_are_drawn_as_markers():
    runs = {"sgd": [_rows(1), _rows(1, 0.1)], "adabayes": [_rows(1, 0.05)]}
    fig = curves_figure(runs, labels={"sgd": "SGD", "adabayes": "AdaBayes"})
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]  # not the error-bar caps
        assert len(lines) == 2
        for line in lines:
            assert line.get_marker() == "o" and len(line.get_xdata()) == 1
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["SGD (n=2)", "AdaBayes (n=1)"]
    loss = next(line for line in fig.axes[0].get_lines() if line.get_label() == "SGD (n=2)").get_ydata()
    assert loss == pytest.approx([np.mean([1.0, 1.1])])  # the mean over seeds
    # the min..max range of the two SGD seeds is an error bar (a band of zero width would not show)
    bars = [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 1
    segment = bars[0].lines[2][0].get_segments()[0]
    assert segment[:, 1] == pytest.approx([1.0, 1.1])
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert ticks and all(t.lstrip("−-").isdigit() for t in ticks)  # whole epochs only


def test_long_curves_have_no_markers_and_empty_runs_say_so(tmp_path):
    fig = curves_figure({"sgd": [_rows(40)]})
    assert fig.axes[0].get_lines()[0].get_marker() in ("None", None, "")
    empty = curves_figure({"sgd": [[]], "adam": [[], []]})
    assert all(not ax.get_lines() for ax in empty.axes)
    assert _all_text(empty).count("no finished epoch to plot") == 2
    path = plot_curves({"sgd": [_rows(1)]}, tmp_path / "sub" / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def _record(steps: list[int], per_step: int = 30) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = len(steps) * per_step
    adam_lr = 10 ** rng.uniform(-4, -2, n)
    return {
        "var_post": np.minimum(adam_lr, 1e-3),
        "adam_lr": adam_lr,
        "eta": np.full(n, 1e-3),
        "sigma2": np.full(n, 1e-3),
        "step": np.repeat(steps, per_step),
    }


def test_fig3_has_a_legend_entry_per_recorded_step_and_mathtext_labels(tmp_path):
    fig = fig3_figure(_record([31, 155, 1240]), title="t", epochs=[1, 5, 40])
    assert len(fig.axes) == 1  # no colour bar for three steps
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["step 31 (epoch 1)", "step 155 (epoch 5)", "step 1240 (epoch 40)"]
    assert len(ax.collections) >= 3
    assert ax.get_ylabel() == r"AdaBayes learning rate $\sigma^2_{\mathrm{post}}$"
    assert r"$\eta/\sqrt{\langle g^2\rangle}$" in ax.get_xlabel()
    assert not [t for t in _all_text(fig) if "σ²_post" in t]
    assert not [t for t in _all_text(fig) if "_post" in t and "$" not in t]  # no raw subscript left
    assert plot_fig3(_record([31, 155]), tmp_path / "f.png", epochs=[1, 5]).read_bytes()[:4] == b"\x89PNG"


def test_fig3_with_many_steps_uses_a_colour_bar():
    steps = list(range(10, 10 * (LEGEND_STEPS_UP_TO + 3), 10))
    fig = fig3_figure(_record(steps, per_step=5))
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "optimiser step"
    assert not [t for t in fig.axes[0].get_legend().get_texts() if t.get_text().startswith("step ")]


def test_fig3_title_names_data_model_optimiser_and_steps():
    from simulations.training.fig3 import fig3_title
    from simulations.training.loop import TrainConfig

    config = TrainConfig(optimizer="adabayes", width=16, epochs=40, milestone=1.0)
    record = _record([31, 155, 1240])
    record["epoch"] = np.array([1, 5, 40])
    title = fig3_title(config, record)
    first, second = title.split("\n")
    assert first == "AdaBayes on MNIST-1D / resnet1d (width 16), B = 128, seed 0"
    assert second == "η = 0.001, σ² = 0.001, constant lr; steps 31, 155, 1240 (epochs 1, 5, 40)"
    assert "default model" not in title
    fp = fig3_title(TrainConfig(optimizer="adabayes_fp", dataset="digits"), {**_record([4]), "epoch": np.array([1])})
    assert fp.startswith("AdaBayes-FP on digits (8x8) / cnn, B = 128") and fp.endswith("step 4 (epoch 1)")
