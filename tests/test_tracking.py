"""simulations.tracking: AdaBayes tracks w* below η sqrt(h) ~ 1 and loses it above; σ²_post predicted there from
the gradients the filter saw (filtering.stochastic on their empirical law), not from ⟨g²⟩."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations import tracking


@pytest.fixture(scope="module")
def table() -> dict[str, np.ndarray]:
    return tracking.run(tracking.TrackingConfig.quick(), seed=3)


def test_tracks_below_the_threshold(table):
    below = table["eta_sqrt_h"] <= 0.1
    assert below.sum() >= 3 and not table["lost_predicted"][below].any()
    assert np.all(table["g2_over_h"][below] < 1.2)  # g² is observation noise: <g²> ≈ h
    assert np.all(np.abs(table["z2"][below] - 1.0) < 0.25)  # calibrated posterior
    # σ²_post from the empirical gradient law matches the simulation (and so does Gaussian g with the same <g²>)
    rel = np.abs(table["pred_empirical"][below] / table["rate"][below] - 1.0)
    assert np.all(rel < np.maximum(4.0 * table["rate_se"][below] / table["rate"][below], 0.01))


def test_loses_w_star_above_the_threshold(table):
    above = table["eta_sqrt_h"] >= 3.0
    assert above.sum() >= 2 and table["lost_predicted"][above].all()
    assert np.all(table["g2_over_h"][above] > 1e3)  # the tracking error dominates g²
    assert np.all(table["z2"][above] > 1e6)
    assert np.all(table["err2_over_sigma2"][above] > 0.3)  # the error is as large as w* itself (variance σ²)


def test_lost_regime_rate_is_set_by_the_density_of_g_at_zero(table):
    """Where tracking is lost, the empirical-law prediction follows the simulation; Eq. 21, the exact fixed point and
    Gaussian g with the same <g²> do not (they read <g²>, which the tracking error inflates)."""
    lost = (table["eta_sqrt_h"] >= 3.0) & (table["pred_near_zero_count"] >= 50)
    assert lost.any()
    sim, se = table["rate"][lost], table["rate_se"][lost]
    emp = table["pred_empirical"][lost]
    assert np.all(np.abs(emp - sim) < 3.0 * se + 0.05 * sim)
    # π η p_g(0), p_g(0) counted from the same sample, agrees with the solver on that sample
    np.testing.assert_allclose(table["pred_density_at_zero"][lost], emp, rtol=0.2)
    for baseline in ("pred_eq21", "pred_exact", "pred_gaussian"):
        assert np.all(np.abs(np.log(emp / sim)) < np.abs(np.log(table[baseline][lost] / sim))), baseline


def test_tracking_condition_and_config_validation():
    np.testing.assert_array_equal(tracking.tracking_lost(1e-3, [1e4, 1e7]), [False, True])
    with pytest.raises(ValueError, match="burn_in"):
        tracking.TrackingConfig(steps=10, burn_in=10).validate()
    with pytest.raises(ValueError, match="eta"):
        tracking.TrackingConfig(eta=1.0, sigma2=0.1).validate()
    assert math.isclose(tracking.TrackingConfig().eta, 1e-3)
