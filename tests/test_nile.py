"""The Nile local-level model (simulations.nile): our filter and fit against statsmodels and Durbin & Koopman."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("statsmodels")

from simulations import nile


@pytest.fixture(scope="module")
def result():
    return nile.compare()


def test_data_is_the_classic_series():
    years, flow = nile.load_nile()
    assert flow.shape == (100,) and years[0] == 1871 and years[-1] == 1970
    assert flow[:3].tolist() == [1120.0, 1160.0, 963.0]


def test_loglik_equals_statsmodels_at_the_same_parameters(result):
    """Same initialisation, same parameters: the two filters' log-likelihoods agree to rounding."""
    rel = result["loglik_rel_diff"]
    assert rel["diffuse_at_our_estimate"] <= 1e-12
    assert rel["fixed_at_our_estimate"] <= 1e-12
    _, flow = nile.load_nile()
    for eps, eta in ((15099.0, 1469.1), (5000.0, 10000.0), (40000.0, 50.0)):
        for init in ("diffuse", "fixed"):
            ours, theirs = nile.our_loglik(flow, eps, eta, init), nile.statsmodels_loglik(flow, eps, eta, init)
            assert abs(ours / theirs - 1) <= 1e-12, (eps, eta, init)


def test_maximum_likelihood_matches_statsmodels_and_the_textbook(result):
    ours, peer, published = result["ours"], result["statsmodels"], result["published"]
    assert ours["converged"]
    # the two maxima agree to 1e-6 relative, and ours is not below statsmodels' (it is the maximum)
    assert result["loglik_rel_diff"]["maxima"] <= 1e-6
    assert ours["loglik"] >= peer["loglik"] - 1e-9
    # Durbin & Koopman print σ²_ε = 15099 and σ²_η = 1469.1 (rounded)
    assert abs(ours["sigma2_eps"] - published["sigma2_eps"]) <= 1.0
    assert abs(ours["sigma2_eta"] - published["sigma2_eta"]) <= 0.15
    # observed-information standard errors: ours (log space, delta method) = statsmodels' numerical Hessian
    np.testing.assert_allclose([ours["se_sigma2_eps"], ours["se_sigma2_eta"]], peer["se_at_our_estimate"], rtol=1e-3)
    lo, hi = ours["ci95_sigma2_eta"]
    assert lo < ours["sigma2_eta"] < hi


def test_table_lists_all_three(result):
    text = nile.table(result)
    assert "statsmodels" in text and "Durbin & Koopman" in text and "15099" in text
