"""``adabayes reproduce --quick`` end to end: checks pass, files exist, exit status follows the checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_quick_reproduce_passes_and_writes_everything(tmp_path):
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "adabayes", "reproduce", "--out", str(tmp_path), "--quick", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    checks = json.loads((tmp_path / "checks.json").read_text())["checks"]
    failed = [c for c in checks if c["passed"] is False]
    assert not failed, failed
    names = {c["name"]: c for c in checks}
    # the acceptance numbers
    assert names["generative/adabayes_vs_eq21_median_valid"]["value"] <= 0.02
    assert names["generative/g2_decades"]["value"] >= 8
    for rule, theory in (("fading", -1.0), ("adabayes", -0.5), ("adam", -0.5)):
        for model in ("generative", "quadratic"):
            assert abs(names[f"slopes/{model}_{rule}"]["value"] - theory) <= 0.05
    for fig in ("fig3_generative", "fig3_quadratic", "slopes", "error_map", "calibration", "losses"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
    for data in ("generative", "quadratic", "factorised_vs_joint"):
        assert (tmp_path / "data" / f"{data}.npz").exists()
    report = (tmp_path / "report.md").read_text()
    assert "figures/fig3_generative.png" in report and "**FAIL**" not in report
    assert elapsed < 120  # --quick budget is 30 s on the 2-core dev machine; generous for CI runners


def test_failing_check_gives_nonzero_exit(tmp_path, monkeypatch):
    from adabayes import reproduce
    from simulations.checks import Check

    def fake_run(name, module_name, data, args):
        (data / "generative.json").write_text(json.dumps({"checks": [Check("x/y", 1.0, "<= 0", False).to_dict()]}))
        (data / "calibration.json").write_text(json.dumps({"checks": []}))
        return 1, 0.0

    monkeypatch.setattr(reproduce, "_run_experiment", fake_run)
    import argparse

    p = argparse.ArgumentParser()
    reproduce.add_arguments(p)
    args = p.parse_args(["--out", str(tmp_path), "--only", "generative", "--skip-derivations"])
    assert reproduce.run(args) == 1
    assert "**FAIL**" in (tmp_path / "report.md").read_text()


def test_unknown_experiment_is_a_value_error(tmp_path):
    import argparse

    from adabayes import reproduce

    p = argparse.ArgumentParser()
    reproduce.add_arguments(p)
    with pytest.raises(ValueError, match="--only"):
        reproduce.run(p.parse_args(["--out", str(tmp_path), "--only", "nope", "--skip-derivations"]))
