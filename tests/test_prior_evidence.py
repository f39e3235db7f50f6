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
