"""simulations.training.tuning: equal-budget Optuna studies in SQLite that resume after a kill, share work
between two worker processes, and never repeat a completed trial. Training is replaced by a fake evaluator
(a function of the hyperparameters, with sleeps), so these tests measure the study machinery only."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from simulations.training.protocols import fixed_hparams, study_config  # noqa: E402
from simulations.training.tuning import SPACES, check_space, collect, run_worker, study_name, suggest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OPTIMIZERS = ["sgd", "adabayes"]
TRIALS = 4


def _config(out, protocols=("paper", "tuned"), trials=TRIALS, optimizers=OPTIMIZERS):
    return study_config(list(protocols), quick=True, out=out, tasks=["digits"], optimizers=optimizers, trials=trials)


def _small(out):
    """The configuration of the worker-process tests: sgd only, tuning and its final seeds."""
    return _config(out, protocols=("tuned",), optimizers=["sgd"])


def _fake(log=None, sleep=0.0, fail_lr=None):
    """val loss = (log10 lr + 2.5)² (+ seed and epoch terms); logs start/end lines; raises on ``fail_lr``."""

    def evaluate(spec, on_epoch):
        hp = spec.hp()
        if log is not None:
            with open(log, "a") as f:
                f.write(f"start {spec.key()}\n")
        if fail_lr is not None and hp["lr"] == fail_lr:
            raise ValueError("this configuration cannot train")
        rows = []
        for e in range(spec.task.epochs):
            time.sleep(sleep)
            v = (math.log10(hp["lr"]) + 2.5) ** 2 + 0.01 * spec.seed + 0.001 * e
            row = {"epoch": e + 1, "val_loss": v, "val_error": 0.1, "test_loss": v + 0.1, "test_error": 0.2}
            on_epoch(row)
            rows.append(row)
        if log is not None:
            with open(log, "a") as f:
                f.write(f"end {spec.key()}\n")
        return rows

    return evaluate


def _trials(config, kind, opt, states=None):
    name = study_name(kind, config.tasks[0], opt, config.tuning_seed if kind == "tune" else None)
    try:
        study = optuna.load_study(study_name=name, storage=config.storage_url())
    except KeyError:  # not created yet
        return []
    return study.get_trials(deepcopy=False, states=states)


def _complete(config, kind, opt):
    return _trials(config, kind, opt, (TrialState.COMPLETE,))


# ------------------------------------------------------------------------------------------ search spaces


def test_spaces_contain_the_paper_and_matched_configurations():
    for opt, space in SPACES.items():
        for protocol in ("paper", "matched"):
            hp = fixed_hparams(protocol, opt)
            for name, (lo, hi) in space.items():
                assert lo <= hp[name] <= hi, (opt, protocol, name)
    trial = optuna.trial.FixedTrial({"lr": 1e-3, "lr_sgd": 1.0, "weight_decay": 1e-5})
    assert suggest(trial, "adabayes") == {"lr": 1e-3, "lr_sgd": 1.0, "weight_decay": 1e-5}


def test_adabayes_space_is_checked_against_the_batch_size():
    check_space("adabayes", 128)
    with pytest.raises(ValueError, match=r"batch_size must be < 2 lr_sgd_min / lr_max\*\*2 = 150 .* got 256"):
        check_space("adabayes", 256)  # η = 2e-2, η_SGD = 0.03 would break Eq. 17b's η² < 2σ²


# ------------------------------------------------------------------------------------ one worker, in-process


def test_equal_budget_paper_first_and_final_seeds_on_the_best(tmp_path):
    config = _config(tmp_path)
    trained = run_worker(config, _fake())
    for opt in OPTIMIZERS:
        tune = _complete(config, "tune", opt)
        assert len(tune) == TRIALS  # the same budget for every optimiser
        first = min(tune, key=lambda t: t.number)
        assert first.user_attrs.get("paper") and first.params == {
            k: fixed_hparams("paper", opt)[k] for k in SPACES[opt]
        }
        assert all(t.user_attrs["stats"]["selected_epoch"] == 1 for t in tune)  # the fake's val loss grows
    result = collect(config)
    for opt in OPTIMIZERS:
        best = min(_complete(config, "tune", opt), key=lambda t: t.value)
        assert result["best"]["digits"][opt] == best.params
        finals = result["runs"]["digits"]["tuned"][opt]
        assert sorted(finals) == [0, 1] and all(r["hparams"]["lr"] == best.params["lr"] for r in finals.values())
        assert sorted(result["runs"]["digits"]["paper"][opt]) == [0, 1]
    # per optimiser: the trials, 2 paper seeds and 2 final seeds, which are the paper's runs when the paper's
    # configuration wins the tuning
    paper = {o: {k: fixed_hparams("paper", o)[k] for k in SPACES[o]} for o in OPTIMIZERS}
    shared = sum(result["best"]["digits"][o] == paper[o] for o in OPTIMIZERS)
    assert trained == len(OPTIMIZERS) * (TRIALS + 2 + 2) - 2 * shared
    # everything is done: a second worker finds nothing to train
    assert run_worker(config, _fake()) == 0


def test_matched_shares_the_unchanged_optimisers_runs_with_paper(tmp_path):
    config = _config(tmp_path, protocols=("paper", "matched"))
    log = tmp_path / "log"
    run_worker(config, _fake(log))
    # sgd: 2 seeds shared by both protocols; adabayes: 2 paper + 2 matched
    assert len(_complete(config, "runs", "sgd")) == 2
    assert len(_complete(config, "runs", "adabayes")) == 4
    assert log.read_text().count("end ") == 6
    runs = collect(config)["runs"]["digits"]
    assert runs["matched"]["adabayes"][0]["hparams"]["lr_sgd"] == pytest.approx(1.0)
    assert runs["matched"]["adabayes"][0]["hparams"]["weight_decay"] == pytest.approx(5e-4)
    assert runs["matched"]["sgd"][0] == runs["paper"]["sgd"][0]


def test_a_configuration_that_raises_is_recorded_and_replaced(tmp_path):
    config = _config(tmp_path, protocols=("tuned",))
    paper_lr = fixed_hparams("paper", "sgd")["lr"]
    run_worker(config, _fake(fail_lr=paper_lr))
    failed = _trials(config, "tune", "sgd", (TrialState.FAIL,))
    assert [t.user_attrs["failed_as"] for t in failed] == ["error: ValueError: this configuration cannot train"]
    assert len(_complete(config, "tune", "sgd")) == TRIALS


def test_ctrl_c_fails_the_trial_and_the_rerun_redoes_only_it(tmp_path):
    config = _config(tmp_path, protocols=("tuned",))
    log = tmp_path / "log"
    good = _fake(log)
    calls = {"n": 0}

    def interrupted_on_third(spec, on_epoch):
        calls["n"] += 1
        if calls["n"] == 3:
            with open(log, "a") as f:
                f.write(f"start {spec.key()}\n")
            raise KeyboardInterrupt
        return good(spec, on_epoch)

    with pytest.raises(KeyboardInterrupt):
        run_worker(config, interrupted_on_third)
    (stopped,) = _trials(config, "tune", "sgd", (TrialState.FAIL,))
    assert stopped.user_attrs["failed_as"] == "interrupted"
    run_worker(config, good)
    tune = _complete(config, "tune", "sgd")
    assert len(tune) == TRIALS
    (retry,) = [t for t in tune if t.user_attrs.get("retry_of") == stopped.number]
    assert retry.params == stopped.params
    lines = log.read_text().split()
    assert lines.count("end") == sum(len(_complete(config, k, o)) for k in ("tune", "runs") for o in OPTIMIZERS)


# --------------------------------------------------------------------------------------- worker processes


WORKER = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_tuning import _fake, _small
from simulations.training.tuning import run_worker

out, worker, peers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
(out / f"ready-{{worker}}").touch()
while len(list(out.glob("ready-*"))) < peers:  # start together
    time.sleep(0.05)
n = run_worker(_small(out), _fake(out / "log", sleep=float(sys.argv[4])), worker=worker, poll_s=0.1)
(out / f"trained-{{worker}}").write_text(str(n))
"""


def _spawn(tmp_path, worker, peers, sleep):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER.format(repo=str(REPO), tests=str(REPO / "tests"))))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), str(worker), str(peers), str(sleep)])


def _log_counts(path):
    words = path.read_text().split() if path.exists() else []
    return words.count("start"), words.count("end")


def test_a_killed_worker_resumes_where_it_stopped(tmp_path):
    config = _small(tmp_path)
    proc = _spawn(tmp_path, 0, 1, sleep=0.3)
    log = tmp_path / "log"
    deadline = time.time() + 240
    try:
        # kill -9 in the middle of a trial, once 2 tuning trials are complete
        while time.time() < deadline:
            started, ended = _log_counts(log)
            if started > ended and ended >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never reached the tuning trials")
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (running,) = _trials(config, "tune", "sgd", (TrialState.RUNNING,))  # owned by a dead process
    before = {t.number for t in _complete(config, "tune", "sgd")}
    assert len(before) == 2

    run_worker(config, _fake(log))  # rerun (another pid on the same host: the dead owner is detected at once)

    tune = _complete(config, "tune", "sgd")
    assert len(tune) == TRIALS
    (stale,) = _trials(config, "tune", "sgd", (TrialState.FAIL,))
    assert stale.number == running.number and stale.user_attrs["failed_as"] == "stale"
    (retry,) = [t for t in tune if t.user_attrs.get("retry_of") == stale.number]
    assert retry.params == stale.params  # the interrupted configuration, trained again
    assert before <= {t.number for t in tune}  # completed trials were kept, not redone
    started, ended = _log_counts(log)
    total = len(tune) + len(_complete(config, "runs", "sgd"))
    assert ended == total and started == total + 1  # one evaluation lost to the kill, none repeated


def test_two_worker_processes_share_one_sqlite_study(tmp_path):
    config = _small(tmp_path)
    procs = [_spawn(tmp_path, i, 2, sleep=0.15) for i in range(2)]
    for p in procs:
        p.wait(timeout=300)
    assert [p.returncode for p in procs] == [0, 0]
    counts = [int((tmp_path / f"trained-{i}").read_text()) for i in range(2)]
    assert min(counts) >= 1  # both did some of the work
    tune = _complete(config, "tune", "sgd")
    assert len(tune) == TRIALS  # the budget, not one trial more
    assert len({json.dumps(t.params, sort_keys=True) for t in tune}) == TRIALS  # no point trained twice
    keys = [t.user_attrs["spec_key"] for t in _complete(config, "runs", "sgd")]
    assert len(keys) == len(set(keys)) == 2
    started, ended = _log_counts(tmp_path / "log")
    assert started == ended == len(tune) + len(keys) == sum(counts)
    assert os.path.exists(tmp_path / "study.db")
