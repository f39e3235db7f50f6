"""``adabayes table`` and ``adabayes fig3-network`` on tiny MNIST-1D runs; table summary and marking."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from adabayes.cli import main
from simulations.training.fig3 import fixed_point_deviation
from simulations.training.table import markdown_table, summarise

TINY = ["--n-train", "256", "--n-test", "128", "--batch-size", "64", "--width", "4", "--no-progress"]


def _rows(errors, losses):
    return [
        {"epoch": i + 1, "test_error": e, "test_loss": v} for i, (e, v) in enumerate(zip(errors, losses, strict=True))
    ]


def test_summary_takes_min_over_epochs_and_stats_over_seeds():
    runs = {
        "sgd": [_rows([0.5, 0.1, 0.2], [1.0, 0.3, 0.4]), _rows([0.4, 0.3], [0.9, 0.5])],
        "adam": [_rows([0.3, 0.2], [0.6, 0.7]), _rows([0.25, 0.3], [0.8, 0.5])],
        "adabayes": [_rows([0.2, 0.15], [0.5, 0.45]), _rows([0.3, 0.16], [0.6, 0.55])],
    }
    s = summarise(runs)
    assert s["sgd"]["min_test_error_pct"] == pytest.approx([10.0, 30.0])
    assert s["sgd"]["error_mean"] == pytest.approx(20.0)
    assert s["sgd"]["error_std"] == pytest.approx(np.std([10.0, 30.0], ddof=1))
    assert s["adam"]["min_test_loss"] == pytest.approx([0.6, 0.5])
    table = markdown_table(s, 2)
    # best adaptive per column is bold; SGD is bold only where it beats every adaptive method
    assert "| AdaBayes | **15.50 ± 0.71** | **0.5000 ± 0.0707** |" in table
    assert "| SGD | 20.00 ± 14.14 | **0.4000 ± 0.1414** |" in table
    assert "| Adam | 22.50 ± 3.54 | 0.5500 ± 0.0707 |" in table


def test_table_command_writes_markdown_json_and_png(tmp_path, capsys):
    out = tmp_path / "table"
    argv = ["table", "--optimizers", "sgd", "adabayes-fp", "--seeds", "0", "1", "--epochs", "2", "--jobs", "1"]
    assert main([*argv, *TINY, "--out", str(out)]) == 0
    text = (out / "table.md").read_text()
    assert "| SGD |" in text and "| AdaBayes-FP |" in text and "over 2 seeds" in text
    record = json.loads((out / "summary.json").read_text())
    assert set(record["summary"]) == {"sgd", "adabayes_fp"}
    assert record["summary"]["sgd"]["epochs"] == [2, 2]
    assert record["epochs_trained_this_call"] == 8 and record["epochs_loaded_from_checkpoints"] == 0
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # a second call re-summarises the finished runs without training again: same numbers
    capsys.readouterr()
    assert main([*argv, *TINY, "--out", str(out)]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["summary"] == record["summary"]
    assert again["epochs_trained_this_call"] == 0 and again["epochs_loaded_from_checkpoints"] == 8


def test_table_rejects_unknown_optimizer(tmp_path, capsys):
    assert main(["table", "--optimizers", "adagrad", "--epochs", "1", *TINY, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "adabayes table: error: argument --optimizers: must be one of sgd, adam, amsgrad, adamw, adabayes, "
        "adabayes_fp (case, '-' and '_' do not matter), got 'adagrad'"
    ]


def test_table_rejects_duplicate_optimizers_and_zero_epochs(tmp_path, capsys):
    for optimizers in (["sgd", "SGD"], ["adabayes_fp", "AdaBayes-FP"], ["adabayesfp", "adabayes-fp"]):
        assert main(["table", "--optimizers", *optimizers, "--epochs", "1", *TINY, "--out", str(tmp_path)]) == 2
        assert "optimizers must be distinct" in capsys.readouterr().err
    assert main(["table", "--optimizers", "sgd", "--epochs", "0", *TINY, "--out", str(tmp_path)]) == 2
    assert "argument --epochs: must be an integer in [1, inf), got 0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_table_one_seed_constant_lr_header_and_parsed_command(tmp_path, capsys):
    out = tmp_path / "one"
    argv = ["table", "--optimizers", "sgd", "--seeds", "3", "--epochs", "1", "--milestone", "1.0", "--jobs", "1"]
    assert main([*argv, *TINY, "--out", str(out)]) == 0
    text = (out / "table.md").read_text()
    assert "constant LR" in text and "LR / 10" not in text
    assert "± n/a" in text and "± 0.00" not in text
    record = json.loads((out / "summary.json").read_text())
    assert record["summary"]["sgd"]["error_std"] is None
    # the command is rebuilt from the parsed arguments (not pytest's sys.argv) and re-parses to the same run
    import argparse
    import shlex

    from simulations.training import table

    command = shlex.split(record["command"])
    assert command[:2] == ["adabayes", "table"]

    def parse(words):
        parser = argparse.ArgumentParser()
        table.add_arguments(parser)
        return vars(parser.parse_args(words))

    assert parse(command[2:]) == parse([*argv[1:], *TINY, "--out", str(out)])
    assert "--seeds 3" in record["command"] and "--milestone 1.0" in record["command"]


def test_table_header_names_the_drop_epoch_and_not_one_that_never_comes():
    from simulations.training.optimizers import drop_epoch

    assert drop_epoch(20, 0.75) == 15  # the committed table's "LR / 10 at epoch 15"
    assert drop_epoch(1, 0.75) is None


def test_fig3_network_records_points_near_the_fixed_point(tmp_path):
    out = tmp_path / "fig3"
    argv = ["fig3-network", "--epochs", "3", "--record-epochs", "1", "3", "--entries-per-tensor", "50"]
    assert main([*argv, *TINY, "--out", str(out)]) == 0
    data = dict(np.load(out / "fig3_network.npz"))
    assert {"var_post", "g2", "adam_lr", "step"} <= set(data)
    assert len(np.unique(data["step"])) == 2  # sampled after epochs 1 and 3 (4 steps each)
    sigma2 = 0.1 / 64
    assert np.all(data["var_post"] <= sigma2 * (1 + 1e-6))  # Alg. 1 starts at σ² and the precision only grows
    summary = json.loads((out / "fig3_network.json").read_text())
    assert summary["deviation"]["n_points"] > 100
    assert (out / "fig3_network.png").read_bytes()[:4] == b"\x89PNG"


def test_fixed_point_deviation_is_zero_on_the_fixed_point():
    from filtering.fixed_point import exact_precision

    g2 = np.geomspace(1e-4, 1e4, 50)
    eta, sigma2 = 1e-3, 1e-3
    record = {
        "var_post": 1.0 / exact_precision(g2, eta, sigma2),
        "g2": g2,
        "eta": np.full(50, eta),
        "sigma2": np.full(50, sigma2),
        "step": np.full(50, 7),
    }
    dev = fixed_point_deviation(record)
    assert dev["exact"]["median_abs_log10"] < 1e-12
    assert dev["eq21"]["q90_abs_log10"] < 0.01  # Eq. 21 drops only O(η²/σ²) terms


def _tiny_fig3_args(tmp_path, record_epochs):
    import argparse

    from simulations.training import fig3

    parser = argparse.ArgumentParser()
    fig3.add_arguments(parser)
    return parser.parse_args(
        ["--epochs", "3", "--record-epochs", *map(str, record_epochs), *TINY, "--out", str(tmp_path)]
    )


def _fake_train(diverge_at):
    """A stand-in for loop.train: real AdaBayes steps on one tensor, a non-finite loss at ``diverge_at``."""
    import torch

    from filtering.torch_adapter import AdaBayes
    from simulations.training.loop import TrainResult

    def fake(config, *, callbacks=(), **_):
        w = torch.nn.Parameter(torch.ones(8))
        opt = AdaBayes([w], batch_size=config.batch_size)
        history = []
        for epoch in range(1, config.epochs + 1):
            w.grad = torch.full((8,), 0.1)
            opt.step()
            row = {"epoch": epoch, "test_error": 0.5, "test_loss": 1.0}
            if epoch == diverge_at:
                row["diverged"] = True
            history.append(row)
            for cb in callbacks:
                cb(epoch, None, opt, row)
            if row.get("diverged"):
                break
        return TrainResult(config, history, None, opt)

    return fake


def test_fig3_divergence_before_the_first_recorded_epoch_is_a_clear_error(tmp_path, monkeypatch):
    from simulations.training import fig3, loop

    monkeypatch.setattr(loop, "train", _fake_train(diverge_at=1))
    with pytest.raises(fig3.NothingRecorded, match=r"diverged .* at epoch 1.*first requested epoch 2"):
        fig3.record_fig3(_tiny_fig3_args(tmp_path, [2, 3]))


def test_fig3_lists_the_epochs_actually_recorded(tmp_path, monkeypatch, capsys):
    from simulations.training import fig3, loop

    monkeypatch.setattr(loop, "train", _fake_train(diverge_at=2))
    arrays, last = fig3.record_fig3(_tiny_fig3_args(tmp_path, [1, 3]))
    assert arrays["epoch"].tolist() == [1] and last["diverged"]
    assert "[3] were not recorded" in capsys.readouterr().err


# --------------------------------------------------------------------------- the optimiser verdict (issue 10)


def _well_formed(interval, upper=math.inf):
    assert interval["n"] == 2
    values = [interval[k] for k in ("mean", "low", "high", "t_low", "t_high")]
    assert all(math.isfinite(v) for v in values)
    assert interval["low"] <= interval["mean"] <= interval["high"]
    assert interval["t_low"] <= interval["mean"] <= interval["t_high"]
    assert 0.0 <= interval["low"] and interval["high"] <= upper


def test_verdict_quick_runs_every_protocol_with_well_formed_statistics(tmp_path, capsys):
    from simulations.training.catalog import OPTIMIZERS
    from simulations.training.conversion import matched_decoupled_decay, matched_lr_sgd

    out = tmp_path / "verdict"
    argv = ["table", "--protocol", "paper", "matched", "tuned", "--quick", "--tasks", "digits", "--jobs", "1"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"## Protocol `{p}`" in printed for p in ("paper", "matched", "tuned"))
    record = json.loads((out / "summary.json").read_text())
    assert record["command"].startswith("adabayes table") and "--protocol paper matched tuned" in record["command"]
    k = len(OPTIMIZERS)
    for protocol in ("paper", "matched", "tuned"):
        s = record["summaries"][protocol]["digits"]
        assert set(s["optimizers"]) == set(OPTIMIZERS)
        for entry in s["optimizers"].values():
            assert entry["seeds"] == [0, 1]
            _well_formed(entry["test_error_pct"], upper=100.0)
            _well_formed(entry["test_loss"])
            assert entry["paper_min_test_error_pct"]["mean"] <= entry["test_error_pct"]["mean"]  # test-set selection
        ranks = s["ranks"]["test_error_pct"]
        assert sorted(ranks) == sorted(OPTIMIZERS) and sum(ranks.values()) == pytest.approx(k * (k + 1) / 2)
        assert all(1.0 <= r <= k for r in ranks.values())
        assert sum(s["p_best"]["test_error_pct"].values()) == pytest.approx(1.0)
        assert set(s["pairs"]) == {"adabayes-adam", "adabayes_fp-adamw", "adabayes-sgd", "adabayes_fp-sgd"}
        for diff in s["pairs"].values():
            d = diff["test_error_pct"]
            assert d["seeds"] == [0, 1] and 0 <= d["a_better"] <= 2 and 0.0 < d["p_sign_flip"] <= 1.0
            assert d["interval"]["low"] <= d["interval"]["mean"] <= d["interval"]["high"]
    # the matched protocol uses the conversion of simulations.training.conversion (tests/test_conversion.py)
    hp = record["hyperparameters"]
    for opt in ("adabayes", "adabayes_fp"):
        assert hp["matched"]["digits"][opt]["lr_sgd"] == pytest.approx(matched_lr_sgd(0.1, 0.9))
        assert hp["paper"]["digits"][opt]["lr_sgd"] == pytest.approx(0.1)
    for opt in ("adabayes", "adabayes_fp", "adamw"):
        assert hp["matched"]["digits"][opt]["weight_decay"] == pytest.approx(matched_decoupled_decay(0.1, 0.9, 5e-4))
    for opt in ("sgd", "adam", "amsgrad"):
        assert hp["matched"]["digits"][opt] == hp["paper"]["digits"][opt]
    # tuned: the same budget for every optimiser, its best configuration re-run on the final seeds
    for opt in OPTIMIZERS:
        trials = record["trials"]["digits"][opt]
        assert len(trials) == 2 and trials[0]["paper"]
        assert hp["tuned"]["digits"][opt] == pytest.approx(record["best"]["digits"][opt] | _fixed(opt, hp))
    assert record["compute"]["trials"] >= 6 * 2 * 2  # tuning trials and final seeds at least
    for name in ("curves_error", "curves_loss", "sensitivity", "adabayes_map"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fixed(opt, hp):
    """Hyperparameters outside the search space keep the paper's value (none today: every key is searched)."""
    from simulations.training.tuning import SPACES

    return {k: v for k, v in hp["paper"]["digits"][opt].items() if k not in SPACES[opt]}


def test_verdict_options_are_checked(tmp_path, capsys):
    out = str(tmp_path / "v")
    assert main(["table", "--protocol", "tuned", "--epochs", "3", "--out", out]) == 2
    assert "--epochs cannot be combined with --protocol" in capsys.readouterr().err
    assert main(["table", "--quick", "--out", out]) == 2
    assert "--quick needs --protocol" in capsys.readouterr().err
    assert main(["table", "--protocol", "best", "--out", out]) == 2
    assert "invalid choice: 'best'" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_a_worker_whose_run_was_interrupted_starts_no_queued_run(tmp_path, monkeypatch):
    """CI stop 16: a Ctrl-C held during a checkpoint write is raised after it, bypassing the worker's SIGINT
    handler; the worker then took the run already queued to it and trained it to the end. Any interruption of a
    run must stop the worker's later tasks."""
    from simulations.training import loop, table

    calls = []

    def interrupted_train(*args, **kwargs):
        calls.append(kwargs["out_dir"])
        raise KeyboardInterrupt  # what ``_sigint_deferred`` raises after the write, the handler never having run

    monkeypatch.setattr(loop, "train", interrupted_train)
    monkeypatch.setattr(table, "_INTERRUPTED", type(table._INTERRUPTED)())
    with pytest.raises(KeyboardInterrupt):
        table._train_one(None, "cpu", str(tmp_path / "a"), 1, False)
    with pytest.raises(KeyboardInterrupt):
        table._train_one(None, "cpu", str(tmp_path / "b"), 1, False)  # the queued task
    assert calls == [str(tmp_path / "a")]
