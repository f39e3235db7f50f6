"""Prior comparison by marginal likelihood (simulations.prior_evidence), the `adabayes fit` module and its figure."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from filtering import estimation as est
from filtering import state_space as ss
from simulations import fit_cli
from simulations import prior_evidence as pe


def _streams(latent: np.ndarray, seed: int, name: str) -> pe.StreamSet:
    """Gradients of Eq. 12 (r = 1) taken at random points μ around a given latent path, h in [20, 80]."""
    rng = np.random.default_rng(seed)
    steps, n = latent.shape
    h = rng.uniform(20.0, 80.0, n)
    mu = latent + 0.1 * rng.standard_normal((steps, n))
    g = h * (latent - mu) + np.sqrt(h) * rng.standard_normal((steps, n))
    return pe.StreamSet(name, g, mu, h, np.array(["a"] * (n // 2) + ["b"] * (n - n // 2)))


def test_evidence_prefers_the_prior_that_generated_the_data():
    """OU latents: OU wins by BIC over the extra-parameter AR(2) and the random walk; smoothly drifting latents
    (increments with autocorrelation 0.9): the integrated AR(1) wins by a wide margin in log-likelihood."""
    steps, n = 600, 40
    rng = np.random.default_rng(30)
    ou_latent = ss.simulate_latent((n,), steps, 0.05, 0.02, rng)  # a = 1 - 0.0025/0.04 = 0.9375
    ev = pe.evidence(_streams(ou_latent, 31, "ou-data"))
    best = np.array(ev.models)[np.argmin(ev.bic, axis=0)]
    assert np.mean(best == "ou") >= 0.8, dict(zip(*np.unique(best, return_counts=True), strict=True))
    assert np.mean(best == "random_walk") <= 0.1
    drift = np.zeros((steps, n))
    inc = np.zeros(n)
    for t in range(1, steps):
        inc = 0.9 * inc + 0.01 * rng.standard_normal(n)
        drift[t] = drift[t - 1] + inc
    ev = pe.evidence(_streams(drift, 32, "drift"))
    summary = pe.summarise(_streams(drift, 32, "drift"), ev)
    assert summary["models"]["iar"]["dloglik_vs_ou_median"] > 5
    assert summary["models"]["iar"]["bic_best_fraction"] + summary["models"]["ar2"]["bic_best_fraction"] >= 0.8
    assert 0.8 < summary["iar_rho_median"] < 0.97  # the increments' autocorrelation that generated the data: 0.9
    # the nesting holds in the fits: a model is never below a model it contains (OU and the integrated AR(1) in
    # AR(2), the random walk in OU and in the integrated AR(1))
    i = {m: k for k, m in enumerate(ev.models)}
    for big, small in (("ar2", "ou"), ("ar2", "iar"), ("ou", "random_walk"), ("iar", "random_walk")):
        assert np.all(ev.loglik[i[big]] >= ev.loglik[i[small]] - 1e-5), (big, small)
    # the latent itself, observed without noise: the smooth drift is unmistakable
    with_latent = pe.StreamSet("drift", drift, np.zeros_like(drift), np.ones(n), np.array(["a"] * n), latent=drift)
    lat = pe.latent_evidence(with_latent)
    li = {m: k for k, m in enumerate(lat.models)}
    assert np.median(lat.loglik[li["iar"]] - lat.loglik[li["ou"]]) > 50
    np.testing.assert_allclose(np.median(lat.fits["iar"].params["rho"]), 0.9, atol=0.05)


def test_quadratic_streams_recover_the_exact_noise_scale():
    """On the quadratic h = B H_ii is exact, so the fitted r of Eq. 12 must be about 1."""
    streams = pe.quadratic_streams(quick=True, seed=0)
    assert (
        streams.g.shape == streams.mu.shape == streams.latent.shape and streams.g.shape[1] == streams.h.shape[0] == 160
    )
    # Eq. 11: g = B H_ii (w* - μ) + noise of variance B H_ii, so (g - h (w* - μ)) / sqrt(h) has variance ≈ 1
    resid = (streams.g - streams.h * (streams.latent - streams.mu)) / np.sqrt(streams.h)
    assert abs(np.var(resid) - 1.0) < 0.05
    fit = est.fit(streams.g, streams.h, mu=streams.mu, model="random_walk", init=(0.0, 1.0), burn=2)
    assert abs(np.median(fit.params["noise_scale"]) - 1.0) < 0.1


def test_network_streams_record_paper_unit_gradients():
    pytest.importorskip("torch")
    streams = pe.network_streams(steps=30, seed=1, entries_per_tensor=4)
    assert streams.g.shape[0] == 30 and streams.g.shape == streams.mu.shape
    assert set(streams.group) <= {f"net.{i}.{k}" for i in (1, 3, 5) for k in ("weight", "bias")}
    np.testing.assert_allclose(streams.h, np.mean(streams.g**2, axis=0))
    assert np.all(streams.h > 0)
    # μ moves between steps (the optimiser steps) and the gradients are not all equal
    assert np.all(np.any(np.diff(streams.mu, axis=0) != 0, axis=0))


def test_fit_cli_on_an_npz_input_writes_json_npz_and_figure(tmp_path):
    rng = np.random.default_rng(33)
    latent = ss.simulate_latent((12,), 200, 0.05, 0.02, rng)
    s = _streams(latent, 34, "x")
    path = tmp_path / "streams.npz"
    np.savez(path, g=s.g, h=s.h, mu=s.mu, group=s.group)
    parser = argparse.ArgumentParser()
    fit_cli.add_arguments(parser)
    args = parser.parse_args(["--input", str(path), "--out", str(tmp_path / "out"), "--models", "ou", "random_walk"])
    assert fit_cli.run(args) == 0
    data = json.loads((tmp_path / "out" / "fit_streams.json").read_text())
    assert set(data["models"]) == {"ou", "random_walk"}
    assert "| ou |" in data["table"]
    with np.load(tmp_path / "out" / "fit_streams.npz") as npz:
        assert npz["loglik"].shape == (2, 12)
    assert (tmp_path / "out" / "fit.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("arrays", "match"),
    [({"h": np.ones(3)}, "needs arrays"), ({"g": np.ones((20, 3)), "h": -np.ones(3)}, "finite and > 0")],
)
def test_fit_cli_rejects_bad_files(tmp_path, arrays, match):
    from adabayes.errors import UserError

    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    parser = argparse.ArgumentParser()
    fit_cli.add_arguments(parser)
    with pytest.raises(UserError, match=match):
        fit_cli.run(parser.parse_args(["--input", str(path), "--out", str(tmp_path / "o")]))


# ---------------------------------------------------------------------------------------------------------------
# the command line: adabayes fit


def test_fit_help_shows_every_default(capsys):
    from adabayes import cli

    module = __import__(cli._subcommands()["fit"][0], fromlist=["HELP"])
    parser = cli.subcommand_parser("fit", module)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._StoreTrueAction):
            continue
        text = formatter._get_help_string(action) % {"default": action.default}
        assert "default" in text, (action.option_strings, text)
    assert cli.main(["fit", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: results/fit)" in shown and "random_walk ou iar ar2" in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--noise-scale", "-1"], "--noise-scale must be finite and > 0, got -1.0"),
        (["--noise-scale", "nan"], "--noise-scale must be finite and > 0, got nan"),
        (["--steps", "5"], "--steps must be >= 20, got 5"),
        (["--entries", "0"], "--entries must be >= 1, got 0"),
        (["--models", "random_walk", "iar"], "--models must include ou"),
        (["--input", "no/such.npz"], "--input no/such.npz: no such file"),
        (["--source", "river"], "argument --source: invalid choice: 'river'"),
        (["--source", "nile", "--input", "x.npz"], "not allowed with argument"),
    ],
)
def test_fit_bad_options_are_one_line_errors_with_exit_2(tmp_path, capsys, argv, message):
    from adabayes import cli

    assert cli.main(["fit", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adabayes fit: error: ") and message in err[0], err
    assert not (tmp_path / "o").exists()  # nothing written before the options were checked


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"g": np.ones((20, 3)), "h": np.ones(4)}, "'h' must have shape"),
        ({"g": np.full((20, 3), np.nan), "h": np.ones(3)}, "'g' must be finite"),
        ({"g": np.ones((20, 3)), "h": np.ones(3), "mu": np.ones((19, 3))}, "'mu' must be finite with the shape"),
        ({"g": np.ones((20, 3)), "h": np.ones(3), "group": np.array(["a", "b"])}, "'group' must have shape"),
        ({"g": np.ones((5, 3)), "h": np.ones(3)}, "T >= 10"),
    ],
)
def test_fit_rejects_inconsistent_arrays(tmp_path, arrays, match):
    from adabayes.errors import UserError

    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    parser = argparse.ArgumentParser()
    fit_cli.add_arguments(parser)
    with pytest.raises(UserError, match=match):
        fit_cli.run(parser.parse_args(["--input", str(path), "--out", str(tmp_path / "o")]))


def test_fit_quadratic_source_writes_json_npz_figure_and_the_noise_scale_check(tmp_path, monkeypatch):
    """The quadratic's plumbing (streams swapped for a small OU set with r = 1): checks declared as data come out
    with the r check verified, and a failing check gives exit 1."""
    rng = np.random.default_rng(35)
    latent = ss.simulate_latent((16,), 300, 0.05, 0.02, rng)
    small = pe.StreamSet("quadratic", *_fields(_streams(latent, 36, "quadratic")), latent=latent)
    monkeypatch.setattr(fit_cli, "quadratic_streams", lambda *_a, **_k: small)
    parser = argparse.ArgumentParser()
    fit_cli.add_arguments(parser)
    args = parser.parse_args(["--source", "quadratic", "--out", str(tmp_path), "--models", "ou", "random_walk"])
    assert fit_cli.run(args) == 0
    data = json.loads((tmp_path / "fit_quadratic.json").read_text())
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["fit/quadratic_noise_scale_median"]["kind"] == "verified"
    assert checks["fit/quadratic_noise_scale_median"]["passed"] is True
    assert checks["fit/quadratic_dloglik_random_walk_vs_ou_median"]["kind"] == "info"
    assert "fit/quadratic_dloglik_ar2_vs_ou_median" not in checks  # AR(2) was not fitted
    assert data["latent"]["models"]["ou"]["dloglik_vs_ou_median"] == 0.0
    assert (tmp_path / "fit_quadratic.npz").exists() and (tmp_path / "fit.png").stat().st_size > 10_000
    # gradients with twice the noise: r = 2, the verified check fails and the command says so
    noisy = pe.StreamSet("quadratic", small.g + np.sqrt(small.h) * rng.standard_normal(small.g.shape), small.mu,
                         small.h, small.group, latent=latent)  # fmt: skip
    monkeypatch.setattr(fit_cli, "quadratic_streams", lambda *_a, **_k: noisy)
    assert fit_cli.run(args) == 1


def _fields(s: pe.StreamSet):
    return s.g, s.mu, s.h, s.group


def test_fit_nile_source_through_the_command(tmp_path, capsys):
    """``adabayes fit --source nile``: the anchor's checks pass, the table names the peer and the textbook."""
    pytest.importorskip("statsmodels")
    from adabayes import cli

    assert cli.main(["fit", "--source", "nile", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "fit_nile.json").read_text())
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["fit/nile_max_loglik_vs_statsmodels"]["passed"] is True
    assert checks["fit/nile_loglik_vs_statsmodels_same_params"]["value"] <= 1e-10
    assert "Durbin & Koopman" in data["table"] and "statsmodels" in capsys.readouterr().out
    assert not (tmp_path / "fit.png").exists()  # no streams: no figure


def test_checks_are_declared_as_data():
    from simulations.checks import INFO, Spec

    specs = (*fit_cli.STREAM_SPECS, *fit_cli.QUADRATIC_SPECS, *fit_cli.NILE_SPECS)
    assert all(isinstance(s, Spec) for s in specs)
    assert len({s.name for s in specs}) == len(specs)
    verified = {s.name for s in specs if s.bound is not INFO}
    assert {"fit/quadratic_noise_scale_median", "fit/nile_max_loglik_vs_statsmodels"} <= verified
    assert all(s.bound is INFO for s in fit_cli.STREAM_SPECS)  # the evidence itself is reported, not judged


def test_reproduce_declares_the_fit_experiment_with_the_files_its_default_sources_write():
    from adabayes import reproduce

    module, json_files = reproduce.EXPERIMENTS["fit"]
    assert module == "simulations.fit_cli"
    assert set(json_files) == {f"fit_{s}.json" for s in fit_cli.DEFAULT_SOURCES}
    assert set(json_files) | {"fit_quadratic.npz", "fit.png"} <= set(reproduce.OUTPUTS["fit"])
    assert reproduce.CHECK_PREFIXES["fit"] == ("fit/",)
    assert all(s.name.startswith("fit/") for s in (*fit_cli.STREAM_SPECS, *fit_cli.NILE_SPECS))
