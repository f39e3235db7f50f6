"""``adabayes reproduce``: end to end (--quick), exit status, what it reports, and how it treats its folder.

No test here measures time: a slow machine makes a run slow, never failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adabayes import reproduce
from adabayes.errors import UserError
from adabayes.reproduce_derivations import DerivationsJob, child_command
from adabayes.reproduce_outdir import MANIFEST
from simulations.checks import Check


@pytest.mark.slow
def test_quick_reproduce_passes_and_writes_everything(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "adabayes", "reproduce", "--out", str(tmp_path), "--quick", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard only, far above any run time
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    checks = json.loads((tmp_path / "checks.json").read_text())["checks"]
    failed = [c for c in checks if c["passed"] is False]
    assert not failed, failed
    names = {c["name"]: c for c in checks}
    # the checks the issue asks for exist, with the right kind (their thresholds live in the modules)
    for regime in ("sgd", "crossover", "adam", "decade_max"):
        assert names[f"generative/adabayes_vs_eq21_{regime}"]["kind"] == "verified"
        assert names[f"generative/adabayes_vs_eq21_{regime}"]["equation"] == "Eq. 21"
    assert names["generative/g2_decades"]["kind"] == "identity"
    assert names["quadratic/eq11_identity"]["kind"] == "identity"
    assert names["generative/kalman_vs_eq21_median_valid"]["kind"] == "info"
    assert names["derivations/records"]["value"] >= 40 and names["derivations/markdown"]["passed"]
    for rule in ("fading", "adabayes", "adam"):
        assert f"slopes/quadratic_{rule}_vs_local" in names
    # issue 9: the stochastic prediction is checked per decade of ⟨g²⟩ in both experiments
    for experiment, at_least in (("generative", 6), ("quadratic", 4)):
        per_decade = [c for n, c in names.items() if n.startswith(f"{experiment}/stochastic_vs_points_1e")]
        assert sum(c["kind"] == "verified" for c in per_decade) >= at_least, per_decade
    for fig in ("fig3_generative", "fig3_quadratic", "slopes", "error_map", "calibration", "losses"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
    for data in ("generative", "quadratic", "factorised_vs_joint"):
        assert (tmp_path / "data" / f"{data}.npz").exists()
    report = (tmp_path / "report.md").read_text()
    assert "figures/fig3_generative.png" in report and "FAIL" not in report and "--quick" in report
    assert report.count("vs the stochastic theory") == 2 and "Coupled quadratic" in report
    numbers = [line.split(".")[0] for line in report.splitlines() if line.startswith("## ")]
    assert numbers == [f"## {k}" for k in range(1, len(numbers) + 1)], numbers  # sections 1, 2, 3, ...
    assert (tmp_path / "derivations.md").stat().st_size > 1000
    # right after reproduce, `adabayes figures --data DIR` finds DIR/data
    again = subprocess.run(
        [sys.executable, "-m", "adabayes", "figures", "--data", str(tmp_path), "--out", str(tmp_path / "again")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "again" / "losses.png").exists()


def _args(tmp_path, *extra):
    p = argparse.ArgumentParser()
    reproduce.add_arguments(p)
    return p.parse_args(["--out", str(tmp_path), "--skip-derivations", *extra])


@pytest.fixture(autouse=True)
def _no_figures(request, monkeypatch):
    """Fake experiments write only checks: the figures step is skipped (except in the end-to-end test)."""
    if "slow" not in request.keywords:
        monkeypatch.setattr(reproduce, "_draw_figures", lambda *_: [])


def _fake_experiment(checks_by_file=None, rc=0, hook=None):
    """A stand-in for ``_run_experiment`` that writes the experiment's JSON with the given checks."""

    def fake_run(name, module_name, data, args):
        if hook is not None:
            hook(name, data)
        for jf in reproduce.EXPERIMENTS[name][1]:
            checks = (checks_by_file or {}).get(jf, [Check(f"{name}/ok", 0.0, "<= 1", True)])
            (data / jf).write_text(json.dumps({"checks": [c.to_dict() for c in checks]}))
        return rc, 0.0

    return fake_run


def test_failing_check_gives_nonzero_exit(tmp_path, monkeypatch):
    bad = {"generative.json": [Check("x/y", 1.0, "<= 0", False)], "calibration.json": []}
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment(bad, rc=1))
    assert reproduce.run(_args(tmp_path, "--only", "generative")) == 1
    assert "**FAIL**" in (tmp_path / "report.md").read_text()


def test_unknown_experiment_is_a_user_error_before_anything_runs(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(reproduce, "_start_derivations", lambda *a: called.append(a))
    p = argparse.ArgumentParser()
    reproduce.add_arguments(p)
    with pytest.raises(UserError, match="--only"):
        reproduce.run(p.parse_args(["--out", str(tmp_path / "o"), "--only", "nope"]))
    assert not called and not (tmp_path / "o").exists()


def test_nonzero_exit_without_new_json_fails_even_with_a_passing_old_json(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    old = {"checks": [Check("old/ok", 0.0, "<= 1", True).to_dict()]}
    (data / "factorised_vs_joint.json").write_text(json.dumps(old))
    monkeypatch.setattr(reproduce, "_run_experiment", lambda *_: (3, 0.0))  # writes nothing, exits 3
    assert reproduce.run(_args(tmp_path, "--only", "factorised-vs-joint", "--force")) == 1
    names = {c["name"] for c in json.loads((tmp_path / "checks.json").read_text())["checks"]}
    assert "old/ok" not in names and {"factorised-vs-joint/output", "factorised-vs-joint/exit"} <= names


def test_only_does_not_report_old_results_and_records_the_command(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "quadratic.json").write_text(json.dumps({"checks": [Check("old/bad", 1.0, "<= 0", False).to_dict()]}))
    new = {"factorised_vs_joint.json": [Check("new/ok", 0, "<= 1", True)]}
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment(new))
    assert reproduce.run(_args(tmp_path, "--only", "factorised-vs-joint")) == 0
    report = (tmp_path / "report.md").read_text()
    assert "new/ok" in report and "old/bad" not in report
    assert "--only factorised-vs-joint --skip-derivations" in report


# ---- the output folder (issue 13)


def test_a_run_starts_by_marking_the_folder_in_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    assert reproduce.run(_args(tmp_path)) == 0
    assert "No check failed." in (tmp_path / "report.md").read_text()
    seen = {}

    def hook(name, data):
        seen[name] = ((tmp_path / "report.md").read_text(), (tmp_path / "checks.json").exists())

    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment(hook=hook))
    assert reproduce.run(_args(tmp_path)) == 0
    report, checks_exist = seen["generative"]
    assert "RUN IN PROGRESS" in report and "No check failed." not in report and not checks_exist


def test_an_interrupted_run_leaves_no_passing_report(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    assert reproduce.run(_args(tmp_path)) == 0

    def interrupted(name, data):
        if name == "quadratic":
            raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment(hook=interrupted))
    with pytest.raises(KeyboardInterrupt):
        reproduce.run(_args(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "INTERRUPTED" in report and "No check failed." not in report
    assert not (tmp_path / "checks.json").exists()


def test_user_files_with_our_names_need_force(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    (tmp_path / "report.md").write_text("my notes")
    with pytest.raises(UserError, match="--force"):
        reproduce.run(_args(tmp_path))
    assert (tmp_path / "report.md").read_text() == "my notes" and not (tmp_path / "data").exists()
    assert reproduce.run(_args(tmp_path, "--force")) == 0
    assert "No check failed." in (tmp_path / "report.md").read_text()
    assert "report.md" in json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert reproduce.run(_args(tmp_path)) == 0  # our own files are ours now: no --force needed


def test_outputs_of_the_experiment_commands_count_as_ours(tmp_path, monkeypatch):
    """``adabayes generative`` then ``adabayes reproduce --out`` the same place: no --force needed; a user's is."""
    from simulations.io import save_json

    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    save_json(tmp_path / "data" / "generative.json", {"checks": []})  # as `adabayes generative --out DIR/data`
    assert reproduce.run(_args(tmp_path, "--only", "generative")) == 0
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / "data" / "generative.json").write_text("{}")  # not written by adabayes
    with pytest.raises(UserError, match=r"generative\.json"):
        reproduce.run(_args(other, "--only", "generative"))


def test_writes_do_not_follow_links_out_of_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="outside --out"):
        reproduce.run(_args(out, "--force"))  # --force does not allow it either
    assert list(outside.iterdir()) == []
    (out / "data").unlink()
    precious = outside / "precious.md"
    precious.write_text("keep me")
    (out / "report.md").symlink_to(precious)
    with pytest.raises(UserError, match="--force"):
        reproduce.run(_args(out))
    assert reproduce.run(_args(out, "--force")) == 0
    assert precious.read_text() == "keep me"  # the link was replaced, not followed
    assert not (out / "report.md").is_symlink() and "No check failed." in (out / "report.md").read_text()


def test_only_does_not_silently_replace_a_fuller_report(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "_run_experiment", _fake_experiment())
    assert reproduce.run(_args(tmp_path)) == 0
    with pytest.raises(UserError, match="generative"):
        reproduce.run(_args(tmp_path, "--only", "slopes"))
    assert "generative/ok" in (tmp_path / "checks.json").read_text()  # the full report is still there
    assert reproduce.run(_args(tmp_path, "--only", "slopes", "--force")) == 0
    names = {c["name"] for c in json.loads((tmp_path / "checks.json").read_text())["checks"]}
    assert "slopes/ok" in names and "generative/ok" not in names


def test_update_docs_needs_an_existing_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="docs/figures"):
        reproduce.run(_args(tmp_path / "out", "--update-docs"))
    assert not (tmp_path / "out").exists()
    args = _args(tmp_path / "out", "--update-docs", str(tmp_path / "docs"))
    (tmp_path / "docs").mkdir()
    plan = reproduce._plan(args)
    png = tmp_path / "fig3_generative.png"
    png.write_bytes(b"\x89PNG fake")
    res = reproduce._Results(figures={"fig3_generative": png})
    reproduce._update_docs(plan, res)
    assert (tmp_path / "docs" / "fig3_generative.png").read_bytes() == b"\x89PNG fake"


# ---- the derivations child (issue 13)


def test_derivations_child_ignores_a_decoy_package_in_the_working_directory(tmp_path):
    decoy = tmp_path / "derivations"
    decoy.mkdir()
    marker = tmp_path / "HIJACKED"
    (decoy / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (decoy / "cli.py").write_text("def main(argv=None):\n    print('decoy')\n    return 0\n")
    (decoy / "__main__.py").write_text("from .cli import main\nmain()\n")
    res = subprocess.run(child_command(["--help"]), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert not marker.exists() and "decoy" not in res.stdout
    assert "Re-derive" in res.stdout  # our derivations' help
    # the decoy would have been imported by a plain `python -m derivations` from that folder
    plain = subprocess.run(
        [sys.executable, "-m", "derivations", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert marker.exists() and "decoy" in plain.stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


PARENT = textwrap.dedent(
    """
    import sys, time
    from adabayes import reproduce
    from adabayes.reproduce_derivations import DerivationsJob
    with reproduce._exit_on_signals():
        job = DerivationsJob([sys.executable, "-c", "import time; time.sleep(120)"]).start()
        try:
            print(job.proc.pid, flush=True)
            time.sleep(120)
        finally:
            job.stop()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; parent-death signal is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_derivations_child_dies_with_its_parent(tmp_path, sig):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(sig)
        parent.wait(timeout=60)
        for _ in range(200):  # up to 20 s for the kernel / the handler to take it down
            if not _alive(child):
                break
            time.sleep(0.1)
        assert not _alive(child), f"child {child} outlived its parent ({sig.name})"
        if sig == signal.SIGTERM:
            assert parent.returncode == 128 + signal.SIGTERM  # cleanup ran, then the conventional status
    finally:
        parent.kill()
        parent.wait()


def test_derivations_job_stop_kills_a_running_child():
    job = DerivationsJob([sys.executable, "-c", "import time; time.sleep(120)"]).start()
    pid = job.proc.pid
    assert job.proc.poll() is None
    job.stop()
    assert job.proc.poll() is not None and not _alive(pid)
    job.stop()  # twice is fine
    assert os.getpid() != pid


def test_stochastic_table_lists_every_prediction_per_decade():
    import numpy as np

    from adabayes.reproduce_report import STOCHASTIC_COLUMNS, _stochastic_table

    table = {key: np.array([0.1, 0.2]) for key, _ in STOCHASTIC_COLUMNS}
    table |= {"decade": np.array([-1, 3]), "n": np.array([16, 9]), "n_region": np.array([16, 0])}
    table |= {"noise": np.array([1e-4, np.nan]), "bound": np.array([5e-4, np.nan]), "lag1": np.array([0.0, 0.6])}
    lines = _stochastic_table("T", table)
    rows = [line for line in lines if line.startswith("| 1e")]
    assert rows[0].startswith("| 1e-1 – 1e0 | 16 (16) | 0.1 | 0.1 | 0.1 | 0.1 | 0.1 | 0.0001 | 0.0005 |")
    assert rows[1].startswith("| 1e3 – 1e4 | 9 (0) |") and "| — | — | 0.60 |" in rows[1]
    header = next(line for line in lines if line.startswith("| decade"))
    rule = lines[lines.index(header) + 1]
    assert header.count("|") == rule.count("|") == rows[0].count("|") == rows[1].count("|") == 11
