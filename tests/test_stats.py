"""simulations.training.stats: bootstrap intervals (hand cases, scipy.stats.bootstrap as peer), paired
differences, sign-flip p-values, ranks and the per-run epoch selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from simulations.training.stats import (
    bootstrap_means,
    mean_interval,
    paired_difference,
    rank_probabilities,
    ranks,
    run_statistics,
    select_epoch,
    sign_flip_p,
)


def test_two_values_by_hand():
    # resamples of (0, 1): (0,0) (0,1) (1,0) (1,1) -> sorted means 0, .5, .5, 1; linear quantiles at
    # positions 0.025*3 = 0.075 and 0.975*3 = 2.925
    means, exact = bootstrap_means([0.0, 1.0])
    assert exact and sorted(means.tolist()) == [0.0, 0.5, 0.5, 1.0]
    iv = mean_interval([0.0, 1.0])
    assert iv.mean == 0.5 and iv.n == 2 and iv.method == "percentile exact"
    assert iv.low == pytest.approx(0.075 * 0.5) and iv.high == pytest.approx(0.5 + 0.925 * 0.5)
    # Student t with 1 degree of freedom: 0.5 ± 12.706 * 0.7071 / sqrt(2)
    assert iv.t_high == pytest.approx(0.5 + 12.7062047 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)


def test_one_value_and_equal_values():
    one = mean_interval([3.0])
    assert one.mean == 3.0 and one.low is None and one.high is None and one.t_low is None
    same = mean_interval([2.0, 2.0, 2.0])
    assert (same.low, same.high, same.t_low, same.t_high) == (2.0, 2.0, 2.0, 2.0)


def test_exact_enumeration_size_and_monte_carlo_beyond():
    means, exact = bootstrap_means([1.0, 2.0, 4.0, 8.0, 16.0])
    assert exact and means.size == 5**5
    assert means.mean() == pytest.approx(31 / 5)  # the bootstrap distribution of the mean is centred on it
    means, exact = bootstrap_means(np.arange(9.0), n_resamples=500, seed=1)
    assert not exact and means.size == 500
    again, _ = bootstrap_means(np.arange(9.0), n_resamples=500, seed=1)
    np.testing.assert_array_equal(means, again)  # seeded


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("n", [5, 9])
def test_against_scipy_bootstrap(method, n):
    rng = np.random.default_rng(n)
    x = rng.gamma(2.0, 1.0, size=n)  # skewed, so BCa differs from percentile
    ours = mean_interval(x, method=method, n_resamples=200_000, seed=3)
    peer = sps.bootstrap((x,), np.mean, method="BCa" if method == "bca" else "percentile", n_resamples=200_000, rng=4)
    lo, hi = peer.confidence_interval
    se = peer.standard_error
    assert ours.low == pytest.approx(lo, abs=0.03 * se)
    assert ours.high == pytest.approx(hi, abs=0.03 * se)
    t_lo, t_hi = sps.t.interval(0.95, n - 1, loc=x.mean(), scale=sps.sem(x))
    assert (ours.t_low, ours.t_high) == pytest.approx((t_lo, t_hi), rel=1e-12)


def test_bca_shifts_towards_the_long_tail():
    x = [0.0, 0.0, 0.1, 0.2, 5.0]
    pct, bca = mean_interval(x), mean_interval(x, method="bca")
    assert bca.high > pct.high and bca.low > pct.low


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="values must be a non-empty 1-D"):
        mean_interval([])
    with pytest.raises(ValueError, match="values must be finite"):
        mean_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="method must be one of"):
        mean_interval([1.0, 2.0], method="basic")
    with pytest.raises(ValueError, match="level must be in"):
        mean_interval([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="share at least one seed"):
        paired_difference({0: 1.0}, {1: 1.0})


def test_sign_flip_by_hand():
    assert sign_flip_p([1.0] * 5) == pytest.approx(2 / 32)  # the smallest two-sided p with 5 seeds
    assert sign_flip_p([1.0, -1.0]) == 1.0
    # ±3 ±1 ±2: sums 6 2 4 0 0 -4 -2 -6, observed 4 -> |sum| >= 4 in 4 of 8
    assert sign_flip_p([3.0, -1.0, 2.0]) == 0.5


def test_paired_difference_uses_shared_seeds_only():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 7: 100.0}
    b = {0: 2.0, 1: 2.5, 2: 3.5, 8: -100.0}
    d = paired_difference(a, b)
    assert d.seeds == [0, 1, 2]
    assert d.interval.mean == pytest.approx(-2.0 / 3.0)
    assert d.a_better == 3
    assert d.interval.high < 0  # every difference is negative, so is every resampled mean
    assert d.p_sign_flip == pytest.approx(2 / 8)


def test_ranks_with_ties_and_nan():
    assert ranks({"a": 1.0, "b": 2.0, "c": 1.0}) == {"a": 1.5, "b": 3.0, "c": 1.5}
    assert ranks({"a": math.nan, "b": 0.0}) == {"a": 2.0, "b": 1.0}


def test_rank_probabilities_by_hand():
    # a = (0, 3), b = (1, 1): a's resampled means 0, 1.5, 1.5, 3 against b's 1 -> a first in 1 of 4
    p = rank_probabilities({"a": {0: 0.0, 1: 3.0}, "b": {0: 1.0, 1: 1.0}})
    assert p == {"a": [0.25, 0.75], "b": [0.75, 0.25]}
    # equal optimisers share the ranks; probabilities sum to 1 over ranks and over optimisers
    p = rank_probabilities({"x": {0: 1.0, 1: 2.0}, "y": {0: 1.0, 1: 2.0}, "z": {0: 0.0, 1: 0.5}})
    assert p["z"] == [1.0, 0.0, 0.0]
    assert p["x"] == p["y"] == [0.0, 0.5, 0.5]
    table = np.array(list(p.values()))
    np.testing.assert_allclose(table.sum(axis=0), 1.0)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)


def _history(val, test_err, test_loss):
    return [
        {"epoch": i + 1, "val_loss": v, "val_error": 0.0, "test_error": e, "test_loss": t}
        for i, (v, e, t) in enumerate(zip(val, test_err, test_loss, strict=True))
    ]


def test_validation_selected_epoch_vs_papers_min_over_epochs():
    h = _history([0.9, 0.4, 0.4, 0.6], [0.30, 0.12, 0.10, 0.05], [0.8, 0.35, 0.30, 0.50])
    assert select_epoch(h) == 1  # first of the tied minima
    s = run_statistics(h)
    assert s["selected_epoch"] == 2
    assert s["test_error_pct"] == pytest.approx(12.0) and s["test_loss"] == 0.35 and s["val_loss"] == 0.4
    assert s["paper_min_test_error_pct"] == pytest.approx(5.0) and s["paper_min_test_loss"] == 0.30
    assert s["final_val_loss"] == 0.6 and s["epochs"] == 4 and not s["diverged"]


def test_diverged_run():
    h = _history([0.9, math.nan], [0.5, 0.9], [1.0, math.nan])
    h[-1]["diverged"] = True
    s = run_statistics(h)
    assert s["selected_epoch"] == 1 and s["diverged"] and s["paper_min_test_loss"] == 1.0
    none = run_statistics(_history([math.nan], [0.9], [math.nan]))
    assert none["selected_epoch"] is None and none["test_error_pct"] == 100.0 and math.isnan(none["test_loss"])


def _stats(err, loss, diverged=False):
    return {
        "test_error_pct": err,
        "test_loss": loss,
        "paper_min_test_error_pct": err - 1.0,
        "paper_min_test_loss": loss,
        "diverged": diverged,
    }


def test_summarise_protocol_by_hand():
    from simulations.training.stats import summarise_protocol

    runs = {
        "adam": {0: _stats(10.0, 0.5), 1: _stats(12.0, 0.6), 2: _stats(14.0, 0.7)},
        "adabayes": {0: _stats(9.0, 0.4), 1: _stats(11.0, 0.5), 2: _stats(13.0, 0.6)},
        "sgd": {0: _stats(8.0, math.nan, diverged=True), 1: _stats(20.0, 0.2)},
        "adamw": {},
    }
    s = summarise_protocol(runs)
    assert set(s["optimizers"]) == {"adam", "adabayes", "sgd"}  # no runs: left out
    assert s["optimizers"]["adam"]["test_error_pct"]["mean"] == 12.0
    assert s["optimizers"]["sgd"]["diverged"] == 1
    assert s["optimizers"]["sgd"]["test_loss"]["n"] == 1  # the diverged seed's NaN loss is not averaged
    assert s["ranks"]["test_error_pct"] == {"adam": 2.0, "adabayes": 1.0, "sgd": 3.0}
    diff = s["pairs"]["adabayes-adam"]["test_error_pct"]
    assert diff["interval"]["mean"] == -1.0 and diff["interval"]["low"] == diff["interval"]["high"] == -1.0
    assert diff["a_better"] == 3 and diff["seeds"] == [0, 1, 2]
    assert s["pairs"]["adabayes-sgd"]["test_error_pct"]["seeds"] == [0, 1]
    assert "adabayes_fp-adamw" not in s["pairs"]
    # shared seeds of all three: 0 and 1; adabayes (9, 11) vs adam (10, 12) vs sgd (8, 20)
    p = s["p_best"]["test_error_pct"]
    assert p["adam"] == 0.0 and p["adabayes"] + p["sgd"] == pytest.approx(1.0)
    assert p["sgd"] == pytest.approx(0.25)  # only the resample (seed 0, seed 0) puts sgd first


def test_early_training_statistic_and_stored_nulls():
    h = _history([0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1], [0.5, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1], [1.0] * 8)
    s = run_statistics(h)
    assert s["early_epoch"] == 2 and s["early_test_error_pct"] == pytest.approx(30.0)  # a quarter of 8 epochs
    assert run_statistics(h, planned_epochs=20)["early_epoch"] == 5
    short = run_statistics(h[:3], planned_epochs=20)  # stopped before epoch 5
    assert short["early_test_error_pct"] == 100.0 and math.isnan(short["early_test_loss"])
    stored = _history([0.9, None], [0.5, 0.9], [1.0, None])  # JSON null for a non-finite loss
    s = run_statistics(stored)
    assert s["selected_epoch"] == 1 and s["paper_min_test_loss"] == 1.0 and math.isnan(s["final_val_loss"])
