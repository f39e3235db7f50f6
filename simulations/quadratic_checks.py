"""The checks of the quadratic experiment (Eqs. 6-15), declared as data.

Each :class:`~simulations.checks.Spec` reads one number of :func:`simulations.quadratic_measure.measure`.
Tolerances of the Monte-Carlo checks are 4 standard deviations of the estimator, computed in the same run from
the noise correlation (see :func:`~simulations.quadratic_measure.eq11_check`).
"""

from __future__ import annotations

from collections.abc import Mapping

from .checks import AtMost, Equals, Spec, Within

__all__ = ["QUADRATIC_SPECS", "tuned_specs"]

QUADRATIC_SPECS: list[Spec] = [
    Spec("quadratic/eigenvalue_decades", "", "eig_decades", detail="decades spanned by eig(H)"),
    Spec("quadratic/g2_decades", "", "g2_decades", detail="decades of ⟨g²⟩ (AdaBayes reference run)"),
    Spec(
        "quadratic/eq11_identity",
        "Eqs. 9-11",
        "identity_err",
        AtMost(1e-10, "<= 1e-10 (algebraic identity)"),
        "identity",
        "max |g - B H_ii (w* - μ) - noise| / max|g| along the run (Eqs. 9-11): true by construction",
    ),
    Spec(
        "quadratic/eq11_fd_mean",
        "Eqs. 6, 10, 11",
        "mc_fd_mean_rel_err",
        AtMost(1e-8, "<= 1e-8 (algebraic identity)"),
        "identity",
        "noise-free gradient of Eq. 6's summed loss by central differences of its values vs Eq. 11's "
        "B H_ii (w*_i - μ_i) with w* from Eq. 10, relative to max |Eq. 11|: guards the code",
    ),
    Spec(
        "quadratic/eq11_mc_z_mean",
        "Eq. 11",
        "mc_z_mean",
        Within(0.0, "mc_z_mean_tol"),
        detail="mean over i of z_i = (ḡ_i - Eq. 11)/sqrt(B H_ii/M), ḡ over M = {mc_n_batches} minibatches of B "
        "datapoints with ξ_α drawn per datapoint; tolerance 4 s.d. = 4 sqrt(1ᵀC1)/n with C the noise "
        "correlation D^-½ H D^-½",
    ),
    Spec(
        "quadratic/eq11_mc_whitened_var",
        "Eqs. 8, 12",
        "mc_white_var",
        Within(1.0, "mc_white_var_tol"),
        detail="variance over i of the residual ḡ - Eq. 11 whitened by H^-½ sqrt(M/B): 1 if the minibatch noise "
        "covariance is B H (Eqs. 8, 12); tolerance 4 sqrt(2/(n-1))",
    ),
    Spec(
        "quadratic/eq11_mc_var_ratio",
        "Eq. 12",
        "mc_var_ratio_mean",
        Within(1.0, "mc_var_ratio_tol"),
        detail="mean over i of Var_M(g_i) / (B H_ii) (Eq. 12's variance); tolerance 4 sqrt(2/(M-1) ΣC²)/n",
    ),
    Spec(
        "quadratic/reference_columns_diverged",
        "",
        "n_reference_diverged",
        Equals(0),
        detail="reference columns (Fig. 3 and slopes) that diverged: {reference_diverged}",
    ),
    Spec(
        "quadratic/ou_implied_eta2_over_lr2_median",
        "Eq. 14",
        "ou_eta2_over_lr2",
        detail="median over i of Var Δw*_i / η² (η = AdaBayes lr): the OU noise AdaBayes assumes vs measured",
    ),
    Spec(
        "quadratic/ou_implied_over_eq15_printed_median",
        "Eq. 15",
        "ou_over_eq15_printed",
        detail="median Var Δw*_i / (η_μ² H_{{-i,i}}ᵀH_{{-i,i}}) (Eq. 15 as printed)",
    ),
    Spec(
        "quadratic/ou_implied_over_eq15_independent_median",
        "Eq. 10",
        "ou_over_eq15_independent",
        detail="median Var Δw*_i / (Σ_j H_ji² Var Δμ_j / H_ii²) (Eq. 10 with independent increments)",
    ),
    Spec(
        "quadratic/ou_increment_ac1_median",
        "Eq. 14",
        "ou_ac1",
        detail="median lag-1 autocorrelation of Δw*_i (OU: ≈ 0)",
    ),
    Spec(
        "quadratic/ou_reversion_median",
        "Eq. 14",
        "ou_reversion",
        detail="median regression slope of Δw*_i on w*_i (Eq. 14: -η²/(2σ²) = {ou_reversion_paper:.2g})",
    ),
    Spec("quadratic/diverged_grid_points", "", "n_diverged", detail="grid points that diverged (frozen)"),
]


def tuned_specs(tuned: Mapping[str, Mapping]) -> tuple[list[Spec], dict[str, float | str]]:
    """One informational spec per tuned rule, and the measurements it reads (final loss, hyperparameters, edges).

    Parameters
    ----------
    tuned : dict rule -> {"hyper", "final_excess_loss", "grid_edges", ...}
    """
    specs, measured = [], {}
    for rule, t in tuned.items():
        edge = f"; AT GRID EDGE: {', '.join(t['grid_edges'])} -- the optimum may lie beyond" if t["grid_edges"] else ""
        measured[f"tuned_{rule}"] = t["final_excess_loss"]
        measured[f"tuned_{rule}_what"] = f"½ μᵀHμ, last 10 % of a fresh-seed run at the tuned {t['hyper']}{edge}"
        specs.append(
            Spec(f"quadratic/tuned_final_loss_{rule}", "Eq. 6", f"tuned_{rule}", detail=f"{{tuned_{rule}_what}}")
        )
    return specs, measured
