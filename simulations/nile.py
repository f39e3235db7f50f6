"""A classic anchor nobody here wrote: the Nile local-level model fitted with this toolkit's filter.

Data: annual flow of the Nile at Aswan, 1871-1970 (100 values, 10⁸ m³), as shipped in ``statsmodels``
(``statsmodels.api.datasets.nile``). Model (Durbin & Koopman, *Time Series Analysis by State Space Methods*,
ch. 2): ``y(t) = α(t) + ε(t)``, ``ε ~ N(0, σ²_ε)``; ``α(t+1) = α(t) + ξ(t)``, ``ξ ~ N(0, σ²_η)``.

Mapping onto the paper's model (Eqs. 12, 14) with the observation-noise scale r of
:mod:`filtering.likelihood`: the level α is the latent w*, each flow value is a pseudo-observation
``y = h w* + N(0, r h)`` with ``h = 1`` (gradients "taken at μ = 0"), so ``r = σ²_ε``; the latent is a random
walk, i.e. the OU step with σ² = ∞ (``a = 1``), so ``η² = σ²_η``. Initialisation: exact diffuse (the first
observation has an infinite prior variance; its term is ``-½ log 2π``, Durbin & Koopman's diffuse
log-likelihood as statsmodels computes it with ``use_exact_diffuse=True``). A fixed (known) initialisation is
also compared, at the same parameters.

Published values (Durbin & Koopman, §2.10): σ²_ε = 15099, σ²_η = 1469.1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from filtering import likelihood
from filtering.estimation import fit

__all__ = [
    "PUBLISHED",
    "compare",
    "load_nile",
    "our_loglik",
    "ours",
    "statsmodels_fit",
    "statsmodels_local_level",
    "statsmodels_loglik",
    "statsmodels_stderr",
    "table",
]

PUBLISHED = {
    "sigma2_eps": 15099.0,
    "sigma2_eta": 1469.1,
    "source": "Durbin & Koopman, Time Series Analysis by State "
    "Space Methods, section 2.10 (maximum likelihood, diffuse initialisation)",
}
FIXED_INIT = (1000.0, 1.0e4)  # (mean0, var0) at t = -1 for the fixed-initialisation comparison


def load_nile() -> tuple[np.ndarray, np.ndarray]:
    """``(years, flow)``, each of shape (100,), from ``statsmodels.api.datasets.nile``."""
    from statsmodels.datasets import nile  # data only; statsmodels is an optional dependency

    data = nile.load_pandas().data
    return data["year"].to_numpy(dtype=np.float64), data["volume"].to_numpy(dtype=np.float64)


def ours(flow: np.ndarray) -> dict[str, Any]:
    """Maximum likelihood with this toolkit: random walk (σ² = ∞), h = 1, r = σ²_ε, exact diffuse start."""
    res = fit(flow[:, None], 1.0, model="random_walk", init="diffuse")
    return {
        "sigma2_eps": float(res.params["noise_scale"][0]),
        "sigma2_eta": float(res.params["eta2"][0]),
        "se_sigma2_eps": float(res.stderr["noise_scale"][0]),
        "se_sigma2_eta": float(res.stderr["eta2"][0]),
        "ci95_sigma2_eps": [float(res.ci_low["noise_scale"][0]), float(res.ci_high["noise_scale"][0])],
        "ci95_sigma2_eta": [float(res.ci_low["eta2"][0]), float(res.ci_high["eta2"][0])],
        "loglik": float(res.loglik[0]),
        "converged": bool(res.converged[0]),
    }


def our_loglik(flow: np.ndarray, sigma2_eps: float, sigma2_eta: float, init: str = "diffuse") -> float:
    """Our log-likelihood at given variances; ``init`` is "diffuse" or "fixed" (:data:`FIXED_INIT`)."""
    mean0, var0 = (0.0, np.inf) if init == "diffuse" else FIXED_INIT
    res = likelihood.ar1_loglik(
        flow[:, None], 1.0, 1.0, sigma2_eta, mu=0.0, noise_scale=sigma2_eps, mean0=mean0, var0=var0
    )
    return float(res.loglik[0])


def statsmodels_local_level(flow: np.ndarray, init: str = "diffuse"):
    """statsmodels' ``UnobservedComponents(flow, "local level")`` with the same initialisation (the peer).

    ``init="diffuse"``: ``use_exact_diffuse=True``; ``"fixed"``: ``initialization="known"`` with the prior of
    the first observation, which is :data:`FIXED_INIT` after one random-walk step (mean ``mean0``, variance
    ``var0 + σ²_η`` -- parameter-dependent, so only log-likelihoods at given parameters are compared).
    """
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    return UnobservedComponents(flow, "local level", use_exact_diffuse=init == "diffuse")


def statsmodels_loglik(flow: np.ndarray, sigma2_eps: float, sigma2_eta: float, init: str = "diffuse") -> float:
    """statsmodels' log-likelihood at given variances, with the same initialisation as :func:`our_loglik`."""
    model = statsmodels_local_level(flow, init)
    if init == "fixed":
        mean0, var0 = FIXED_INIT
        model.ssm.initialize_known(np.array([mean0]), np.array([[var0 + sigma2_eta]]))
        model.loglikelihood_burn = 0  # statsmodels skips the first term unless told otherwise
    return float(model.loglike(np.array([sigma2_eps, sigma2_eta])))


def statsmodels_fit(flow: np.ndarray) -> dict[str, Any]:
    """statsmodels' own maximum-likelihood fit (exact diffuse, its default optimiser), with standard errors from
    its numerical Hessian of the log-likelihood (``cov_type="approx"``: the observed information)."""
    model = statsmodels_local_level(flow, "diffuse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(disp=False, cov_type="approx")
    return {
        "sigma2_eps": float(res.params[0]),
        "sigma2_eta": float(res.params[1]),
        "se_sigma2_eps": float(res.bse[0]),
        "se_sigma2_eta": float(res.bse[1]),
        "loglik": float(res.llf),
    }


def statsmodels_stderr(flow: np.ndarray, sigma2_eps: float, sigma2_eta: float) -> tuple[float, float]:
    """statsmodels' observed-information standard errors (numerical Hessian) at given variances."""
    model = statsmodels_local_level(flow, "diffuse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(start_params=np.array([sigma2_eps, sigma2_eta]), maxiter=0, disp=False, cov_type="approx")
    return float(res.bse[0]), float(res.bse[1])


def compare() -> dict[str, Any]:
    """Everything: our fit, statsmodels' fit, the published values, and log-likelihoods cross-evaluated.

    Returns
    -------
    dict with ``ours``, ``statsmodels``, ``published`` (each with σ²_ε, σ²_η, and log-likelihood where
    defined), ``loglik_rel_diff`` (|ours - statsmodels| / |statsmodels| for each initialisation at our ML
    parameters, and between the two maxima) and ``mapping`` (a sentence).
    """
    _, flow = load_nile()
    mine = ours(flow)
    peer = statsmodels_fit(flow)
    at_ours = (mine["sigma2_eps"], mine["sigma2_eta"])
    rel = {}
    for init in ("diffuse", "fixed"):
        a, b = our_loglik(flow, *at_ours, init=init), statsmodels_loglik(flow, *at_ours, init=init)
        rel[f"{init}_at_our_estimate"] = abs(a - b) / abs(b)
    rel["maxima"] = abs(mine["loglik"] - peer["loglik"]) / abs(peer["loglik"])
    peer["se_at_our_estimate"] = list(statsmodels_stderr(flow, *at_ours))
    published_ll = our_loglik(flow, PUBLISHED["sigma2_eps"], PUBLISHED["sigma2_eta"])
    return {
        "ours": mine,
        "statsmodels": peer,
        "published": {**PUBLISHED, "loglik_ours_at_published": published_ll},
        "loglik_rel_diff": rel,
        "initialisation": "exact diffuse (statsmodels use_exact_diffuse=True); 'fixed' also compared at our estimate "
        f"with (mean0, var0) = {FIXED_INIT} at t = -1",
        "mapping": "level = w*, h = 1, r = sigma2_eps (observation noise r h), random walk a = 1, eta2 = sigma2_eta",
    }


def table(result: dict[str, Any]) -> str:
    """A Markdown table of the comparison."""
    o, s, p = result["ours"], result["statsmodels"], result["published"]
    rows = [
        "| | σ²_ε | σ²_η | log-likelihood (exact diffuse) |",
        "|---|---:|---:|---:|",
        f"| adabayes (filtering.estimation.fit) | {o['sigma2_eps']:.1f} ± {o['se_sigma2_eps']:.0f} | "
        f"{o['sigma2_eta']:.1f} ± {o['se_sigma2_eta']:.0f} | {o['loglik']:.6f} |",
        f"| statsmodels UnobservedComponents | {s['sigma2_eps']:.1f} ± {s['se_sigma2_eps']:.0f} | "
        f"{s['sigma2_eta']:.1f} ± {s['se_sigma2_eta']:.0f} | {s['loglik']:.6f} |",
        f"| Durbin & Koopman (published) | {p['sigma2_eps']:.0f} | {p['sigma2_eta']:.1f} | "
        f"{p['loglik_ours_at_published']:.6f} (ours, at these values) |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    out = compare()
    print(table(out))
    print(json.dumps(out["loglik_rel_diff"], indent=2))
    if len(sys.argv) > 1:
        from .io import save_json

        save_json(sys.argv[1], out)
