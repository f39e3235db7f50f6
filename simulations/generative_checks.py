"""The checks of the generative-model experiment (and of calibration, experiment 4), declared as data.

Each :class:`~simulations.checks.Spec` names the number it reads from :func:`simulations.generative_measure.measure`
(or :func:`~simulations.generative_measure.calibration_measure`), the bound it must meet, the equation it tests
and what it means. :func:`simulations.checks.evaluate` turns them into results. The bounds were fixed before the
results were looked at: 2 % for a median relative error, 4 standard errors for a Monte-Carlo mean.
"""

from __future__ import annotations

from .checks import INFO, AtLeast, AtMost, Spec, Within
from .generative_measure import CALIBRATION_TARGETS, MIN_REGION

__all__ = ["CALIBRATION_SPECS", "GENERATIVE_SPECS"]

REGIME_WORDS = {
    "sgd": "SGD regime ⟨g²⟩ < 0.01 (η/σ²)²",
    "crossover": "crossover 0.01 (η/σ²)² <= ⟨g²⟩ < 100 (η/σ²)²",
    "adam": "Adam regime ⟨g²⟩ >= 100 (η/σ²)²",
}


def _regional(name: str, key: str, what: str) -> list[Spec]:
    """Median |err| <= 2 % in each regime within the region, and per decade (max of the decade medians)."""
    specs = [
        Spec(
            f"{name}_{regime}",
            "Eq. 21",
            f"{key}_{regime}",
            AtMost(0.02),
            detail=f"median |{what} - 1| in the {words}, {{{key}_{regime}_n}} parameters with ⟨g²⟩ in "
            f"[{{{key}_{regime}_lo:.3g}}, {{{key}_{regime}_hi:.3g}}] (needs >= {MIN_REGION})",
        )
        for regime, words in REGIME_WORDS.items()
    ]
    specs.append(
        Spec(
            f"{name}_decade_max",
            "Eq. 21",
            f"{key}_decade_max",
            AtMost(0.02),
            detail=f"max over decades of ⟨g²⟩ of the median |{what} - 1| in the same region "
            f"({{{key}_decades}} decades with >= {MIN_REGION} parameters; worst 1e{{{key}_worst}})",
        )
    )
    return specs


GENERATIVE_SPECS: list[Spec] = [
    Spec(
        "generative/g2_decades",
        "",
        "g2_decades",
        AtLeast(8, ">= 8 (by construction)"),
        "identity",
        "decades of ⟨g²⟩ spanned (exact filter's own gradients): a design property, h spans {h_decades:g} decades",
    ),
    Spec(
        "generative/adabayes_vs_eq21_median_valid",
        "Eq. 21",
        "eq21_median_valid",
        AtMost(0.02),
        detail="median |σ²_post(Alg. 1, time avg) / Eq. 21(⟨g²⟩) - 1| where Eq. 21's Taylor step and g²→⟨g²⟩ "
        "each cost <= 1 % ({n_valid} parameters, all regimes pooled: mostly SGD regime)",
    ),
    *_regional("generative/adabayes_vs_eq21", "eq21", "σ²_post(Alg. 1) / Eq. 21(⟨g²⟩)"),
    Spec(
        "generative/adabayes_vs_jensen_median",
        "Eqs. 17b, 18a, 45",
        "jensen_median",
        AtMost(0.02),
        detail="median |σ²_post(Alg. 1) / second-order χ²₁ Jensen estimate - 1| for η sqrt(⟨g²⟩) <= 0.1",
    ),
    Spec(
        "generative/adabayes_fp_vs_eq21_median",
        "Eq. 21",
        "fp_median",
        AtMost(0.02),
        detail="median |σ²_post(Alg. 2, time avg) / Eq. 21(⟨g²⟩) - 1| where Eq. 21 is within 2 % of exact, pooled",
    ),
    *_regional("generative/adabayes_fp_vs_eq21", "fp", "σ²_post(Alg. 2) / Eq. 21(⟨g²⟩)"),
    Spec(
        "generative/kalman_vs_exact_max",
        "Eqs. 17b, 18a",
        "kal_exact_max",
        AtMost("kal_tol"),
        detail="max |σ²_post(T) of the exact Kalman filter (known h) / exact fixed point(h) - 1|; bound = "
        "linearised convergence 2|σ²/σ²* - 1| φ'^T",
    ),
    Spec(
        "generative/fading_vs_eq31_median",
        "Eq. 31",
        "fade_median",
        AtMost(0.02),
        detail="median |σ²_post(fading memory) / (λ_f/⟨g²⟩) - 1| (Eq. 31) over the {fade_n} of {fade_size} "
        "parameters where its assumptions hold: start 1/σ² decayed by burn-in and g² dominated by observation "
        "noise (⟨g²⟩/h <= 1.1)",
    ),
    Spec(
        "generative/fading_vs_eq31_decade_max",
        "Eq. 31",
        "fade_decade_max",
        AtMost(0.02),
        detail="max over decades of ⟨g²⟩ of the median of the same ratio in the same region "
        f"(>= {MIN_REGION} per decade)",
    ),
    Spec("generative/fading_vs_eq31_median_outside", "Eq. 31", "fade_outside_median", detail="{fade_outside_what}"),
    Spec(
        "generative/fading_eq31_breaks_10pct_g2",
        "Eq. 31",
        "fade_break_10",
        detail="⟨g²⟩ above which fading memory's σ²_post stays > 10 % from Eq. 31 (running median)",
    ),
    Spec(
        "generative/kalman_vs_eq21_median_valid",
        "Eq. 21",
        "kal_eq21_median_valid",
        detail="median |σ²_post(exact Kalman) / Eq. 21(h) - 1| where Eq. 21 is within 1 % of exact: follows from "
        "kalman_vs_exact_max and that region's definition, not an independent result",
    ),
    Spec(
        "generative/adabayes_vs_eq21_max_valid",
        "Eq. 21",
        "eq21_max_valid",
        detail="max of the same ratio where Eq. 21's assumptions hold",
    ),
    Spec(
        "generative/adabayes_vs_eq21_adam_valid_upper_g2",
        "Eq. 21",
        "adam_valid_upper_g2",
        detail="largest ⟨g²⟩ where Eq. 21's assumptions hold in the Adam regime (the Jensen gap 0.75 η√⟨g²⟩ "
        "reaches 1 % near ⟨g²⟩ = 178 at η = 1e-3)",
    ),
    Spec(
        "generative/adabayes_vs_iid_chi2_median",
        "Eqs. 17b, 18a",
        "mc_median",
        detail="median |σ²_post(Alg. 1) / mean of the recursion under i.i.d. ⟨g²⟩χ²₁ - 1|, all parameters",
    ),
    Spec(
        "generative/eq21_breaks_2pct_g2",
        "Eq. 21",
        "break_2",
        detail="⟨g²⟩ above which Alg. 1's σ²_post stays > 2 % from Eq. 21 (running median)",
    ),
    Spec(
        "generative/eq21_breaks_10pct_g2",
        "Eq. 21",
        "break_10",
        detail="⟨g²⟩ above which Alg. 1's σ²_post stays > 10 % from Eq. 21 (running median)",
    ),
    Spec(
        "generative/eq21_vs_exact_valid_upper_g2",
        "Eqs. 21, 47",
        "validity_upper",
        detail="eq21_validity_range(η, σ², 2 %): deterministic Taylor-step limit of Eq. 21",
    ),
    Spec(
        "generative/kalman_g2_over_h_max",
        "Eq. 42",
        "kal_g2_over_h_max",
        detail="max ⟨g²⟩/h for the exact filter: g² estimates h only near the optimum (Eq. 42)",
    ),
]

_Z_LABELS = {
    "z_mean": "mean of z = (w* - μ_post)/σ_post",
    "z_var": "variance of z",
    "cover68": "fraction |z| <= 1",
    "cover95": "fraction |z| <= 1.96",
}

CALIBRATION_SPECS: list[Spec] = [
    *(
        Spec(
            f"calibration/kalman_{key}",
            "Eqs. 16-18",
            f"kalman_{key}",
            Within(f"kalman_{key}_target", f"kalman_{key}_tol", "{target:.3g} ± {tol:.2g} (4 s.e.)"),
            detail=f"{_Z_LABELS[key]}, exact filter with known h; s.e. from the spread over independent parameters",
        )
        for key in CALIBRATION_TARGETS
    ),
    Spec(
        "calibration/adabayes_z_var",
        "Eq. 42",
        "adabayes_z_var",
        detail="variance of z under Alg. 1's posterior (g² for H_ii), all",
    ),
    Spec(
        "calibration/adabayes_z_var_eq21_valid",
        "Eq. 42",
        "adabayes_z_var_eq21_valid",
        detail="mean z² under Alg. 1 where Eq. 21 is within 2 % (η²⟨g²⟩ small)",
    ),
    Spec("calibration/adabayes_cover68", "Eq. 42", "adabayes_cover68", INFO, detail="fraction |z| <= 1, Alg. 1"),
    Spec("calibration/adabayes_cover95", "Eq. 42", "adabayes_cover95", INFO, detail="fraction |z| <= 1.96, Alg. 1"),
]
