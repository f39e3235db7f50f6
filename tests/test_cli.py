"""The ``adabayes`` command fails politely (issue 11 item 5): one line, exit status 2 for a user error, 130 for
Ctrl-C with the finished epochs kept, output paths checked before any work, forgiving optimiser names, every
default in ``--help``, ``--version``, ``--help`` without torch, and ``--debug`` for the traceback.

Each scenario of issue 11's "Why" has a test here (unknown optimiser, ``--epochs -1``, ``--out FILE``, an existing
run folder, a truncated checkpoint, ``table --jobs 0``, ``generative --steps 100``, Ctrl-C).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adabayes import cli
from adabayes.cli import main
from adabayes.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--n-train", "64", "--n-test", "32", "--batch-size", "32", "--width", "2"]
TINY += ["--no-progress", "--device", "cpu", "--threads", "1"]


def _one_line(capsys, prefix: str) -> str:
    """The whole stderr, which must be exactly one line starting with ``prefix``; returns it."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in err
    return lines[0]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# ----------------------------------------------------------------------------------------------------------------
# the scenarios of issue 11


def test_unknown_optimizer_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--optimizer", "adagrad", *TINY, "--out", str(tmp_path / "r")]) == 2
    line = _one_line(capsys, "adabayes train: error: argument --optimizer: must be one of sgd, adam")
    assert "got 'adagrad'" in line
    assert not (tmp_path / "r").exists()


def test_negative_epochs_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--epochs", "-1", *TINY, "--out", str(tmp_path / "r")]) == 2
    assert _one_line(capsys, "adabayes train: error: ") == (
        "adabayes train: error: argument --epochs: must be an integer in [1, inf), got -1"
    )


def test_out_naming_a_file_fails_before_any_work(tmp_path, capsys, monkeypatch):
    from simulations.training import loop

    def no_work(*_args, **_kwargs):
        raise AssertionError("data were loaded although --out names a file")

    monkeypatch.setattr(loop, "_prepare", no_work)
    target = tmp_path / "FILE"
    target.write_text("mine")
    assert main(["train", *TINY, "--out", str(target)]) == 2
    line = _one_line(capsys, "adabayes train: error: --out ")
    assert "is a file; it must name a folder" in line
    assert target.read_text() == "mine"
    # a file among the parents too
    assert main(["train", *TINY, "--out", str(target / "sub")]) == 2
    assert "is a file, not a folder" in _one_line(capsys, "adabayes train: error: --out ")


def test_table_and_fig3_check_their_paths_before_any_work(tmp_path, capsys, monkeypatch):
    from simulations.training import loop

    monkeypatch.setattr(loop, "_prepare", lambda *_a, **_k: pytest.fail("trained before checking paths"))
    (tmp_path / "FILE").write_text("")
    (tmp_path / "folder.png").mkdir()
    argv = ["table", "--optimizers", "sgd", "--seeds", "0", "--epochs", "1", *TINY]
    assert main([*argv, "--out", str(tmp_path / "FILE")]) == 2
    _one_line(capsys, "adabayes table: error: --out ")
    assert main([*argv, "--out", str(tmp_path / "t"), "--figure", str(tmp_path / "folder.png")]) == 2
    assert "is a folder; it must name a file" in _one_line(capsys, "adabayes table: error: --figure ")
    assert main([*argv, "--out", str(tmp_path / "t"), "--markdown", str(tmp_path / "FILE" / "t.md")]) == 2
    _one_line(capsys, "adabayes table: error: --markdown ")
    assert main(["fig3-network", "--epochs", "1", *TINY, "--out", str(tmp_path / "FILE")]) == 2
    _one_line(capsys, "adabayes fig3-network: error: --out ")


def test_existing_run_folder_is_one_line_exit_2(tmp_path, capsys):
    argv = ["train", "--optimizer", "sgd", "--epochs", "1", *TINY, "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    capsys.readouterr()
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    assert main(argv) == 2
    line = _one_line(capsys, "adabayes train: error: ")
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


def test_truncated_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    argv = ["train", "--optimizer", "sgd", "--epochs", "2", *TINY, "--out", str(tmp_path / "r")]
    assert main([*argv, "--stop-after", "1"]) == 0
    path = tmp_path / "r" / "checkpoint.pt"
    os.truncate(path, path.stat().st_size // 2)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    assert "is truncated" in _one_line(capsys, "adabayes train: error: ")


def test_table_jobs_zero_is_one_line_exit_2(tmp_path, capsys):
    argv = ["table", "--jobs", "0", "--optimizers", "sgd", "--seeds", "0", "--epochs", "1", *TINY]
    assert main([*argv, "--out", str(tmp_path / "t")]) == 2
    assert _one_line(capsys, "adabayes table: error: ") == (
        "adabayes table: error: argument --jobs: must be an integer in [1, inf), got 0"
    )
    assert not (tmp_path / "t").exists()


def test_generative_with_too_few_steps_is_one_line_exit_2(tmp_path, capsys):
    """A ValueError from an experiment's own checks (not a training command) is printed the same way."""
    assert main(["generative", "--steps", "100", "--out", str(tmp_path), "--no-progress"]) == 2
    line = _one_line(capsys, "adabayes generative: error: ")
    assert "100" in line or "steps" in line


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended before {path.name} appeared: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def test_ctrl_c_exits_130_with_the_finished_epochs_kept(tmp_path):
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "adabayes", "train", "--optimizer", "sgd", "--epochs", "500", *TINY]
    proc = subprocess.Popen(
        [*argv, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    _wait_for(out / "history.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("adabayes train: interrupted (")
    assert "of 500 epochs finished and kept in" in lines[0] and lines[0].endswith("continue with --resume)")
    from simulations.training.records import load_checkpoint

    kept = load_checkpoint(out)
    assert kept is not None and kept["epoch"] >= 1
    assert f"({kept['epoch']} of 500 epochs" in lines[0]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # the kept epochs resume
    done = subprocess.run(
        [*argv, "--out", str(out), "--resume", "--stop-after", str(kept["epoch"] + 1)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["epoch"] == kept["epoch"] + 1


# ----------------------------------------------------------------------------------------------------------------
# names, messages, help, version


@pytest.mark.parametrize("spelling", ["AdaBayesFP", "adabayesfp", "adabayes-fp", "adabayes_fp", "ADABAYES_FP"])
def test_optimizer_names_ignore_case_hyphens_and_underscores(spelling):
    from simulations.training import train_cli

    parser = cli.subcommand_parser("train", train_cli)
    assert parser.parse_args(["--optimizer", spelling]).optimizer == "adabayes_fp"


def test_lr_zero_and_negative_name_the_same_bound(tmp_path, capsys):
    lines = []
    for value in ("0", "-1"):
        assert main(["train", "--lr", value, *TINY, "--out", str(tmp_path / "r")]) == 2
        lines.append(_one_line(capsys, "adabayes train: error: argument --lr: must be in (0, inf), got "))
    assert lines[0].endswith("got 0.0") and lines[1].endswith("got -1.0")
    # the Python API says the same
    from simulations.training.loop import TrainConfig

    for value in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"lr must be in \(0, inf\)"):
            TrainConfig(lr=value)


def test_weight_decay_out_of_range_for_the_optimizer_is_one_line(tmp_path, capsys):
    assert main(["train", "--optimizer", "adamw", "--weight-decay", "1.5", *TINY, "--out", str(tmp_path)]) == 2
    assert "weight_decay must be in [0, 1), got 1.5" in _one_line(capsys, "adabayes train: error: ")


def test_unknown_command_and_unknown_option_are_one_line(capsys):
    assert main(["tarin"]) == 2
    line = _one_line(capsys, "adabayes: error: unknown command 'tarin' (did you mean 'train'?)")
    assert "fig3-network" in line
    assert main(["train", "--bogus"]) == 2
    assert _one_line(capsys, "adabayes train: error: ") == "adabayes train: error: unrecognized arguments: --bogus"
    assert main(["--bogus"]) == 2
    _one_line(capsys, "adabayes: error: ")


def test_version_comes_from_the_package_metadata(capsys):
    from importlib import metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adabayes {metadata.version('adabayes')}"
    import adabayes

    assert adabayes.__version__ == metadata.version("adabayes")  # was a stale literal "0.1.0" beside 0.2.0


@pytest.mark.parametrize("command", ["train", "table", "fig3-network"])
def test_help_shows_every_default(command, capsys):
    import argparse
    import importlib

    module = importlib.import_module(cli._subcommands()[command][0])
    parser = cli.subcommand_parser(command, module)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._StoreTrueAction):
            continue
        text = formatter._get_help_string(action) % {"default": action.default}
        assert "default" in text, (command, action.option_strings, text)
    assert main([command, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: 128)" in shown  # --batch-size


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from adabayes.cli import main\n"
        "for command in ('train', 'table', 'fig3-network'):\n"
        "    assert main([command, '--help']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported for --help'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------------------------------------------
# --debug, internal errors, UserError from anywhere


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, capsys):
    target = tmp_path / "FILE"
    target.write_text("")
    for argv in (["--debug", "train", *TINY, "--out", str(target)], ["train", *TINY, "--out", str(target), "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "NotADirectoryError" in err
        assert err.strip().splitlines()[-1].startswith("adabayes train: error: --out ")


def test_a_user_error_raised_anywhere_is_one_line(tmp_path, capsys, monkeypatch):
    from simulations.training import loop

    def fail(*_args, **_kwargs):
        raise UserError("something the user can fix\nsecond line")

    monkeypatch.setattr(loop, "_prepare", fail)
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 2
    assert _one_line(capsys, "adabayes train: error: ") == (
        "adabayes train: error: something the user can fix second line"
    )


def test_an_internal_error_is_one_line_exit_1_with_a_hint(tmp_path, capsys, monkeypatch):
    from simulations.training import loop

    def bug(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(loop, "_prepare", bug)
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 1
    assert _one_line(capsys, "adabayes train: internal error: ") == (
        "adabayes train: internal error: RuntimeError: boom (rerun with --debug for the traceback)"
    )


def test_ctrl_c_stops_a_parallel_table_and_its_workers(tmp_path):
    """Ctrl-C to the process group of ``table --jobs 2``: exit 130 with one line, every worker's current run
    interrupted (its finished epochs kept) and no queued run started; no process of the group is left."""
    import glob

    out = tmp_path / "t"
    argv = [sys.executable, "-m", "adabayes", "table", "--jobs", "2", "--optimizers", "sgd", "adam", "--seeds", "0"]
    argv += ["1", "--epochs", "300", *TINY, "--out", str(out)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not glob.glob(str(out / "runs" / "*" / "history.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines == [
        f"adabayes table: interrupted (finished runs and epochs are kept in {out}; rerun the same command to continue)"
    ]
    deadline = time.monotonic() + 60
    while True:  # the workers (same process group) are gone too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "worker processes outlived the interrupted table"
        time.sleep(0.2)
    histories = [
        json.loads(Path(h).read_text())["history"] for h in glob.glob(str(out / "runs" / "*" / "history.json"))
    ]
    assert histories and all(len(h) < 300 for h in histories)
    assert not glob.glob(str(out / "runs" / "*" / ".*.tmp"))
