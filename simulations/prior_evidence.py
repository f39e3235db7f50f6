"""Is the OU prior right? Marginal-likelihood evidence for the paper's prior on w* against its alternatives.

The paper models each optimal weight as an OU process (Eqs. 13-14) and each gradient as ``N(h (w* - μ), h)``
(Eq. 12). Given recorded gradient streams ``g_i(t)``, the points ``μ_i(t)`` where they were taken and a
curvature ``h_i``, each parameter's stream is fitted by maximum marginal likelihood
(:func:`filtering.estimation.fit`) under four priors on w*:

* ``random_walk`` -- σ² = ∞: ``w*(t+1) = w*(t) + N(0, η²)``  (2 parameters with r)
* ``ou``          -- Eq. 14: ``w*(t+1) = (1 - η²/(2σ²)) w*(t) + N(0, η²)``  (3)
* ``iar``         -- integrated AR(1): ``Δw*(t+1) = ρ Δw*(t) + N(0, η²)``, a smoothly drifting optimum  (3)
* ``ar2``         -- any stationary AR(2): ``w*(t+1) = φ1 w*(t) + φ2 w*(t-1) + N(0, η²)``  (4)

each with the observation-noise scale r of ``Var[g | w*] = r h`` free (Eq. 12 says r = 1). All models start
from the same fixed prior ``w*(-1), w*(-2) ~ N(0, V0)`` (V0 = 10 E[(y/h)²] per stream, so OU and the random
walk are exactly the ``φ2 = 0`` and ``ρ = 0`` members of the second-order families) and their log-likelihoods
count the steps from t = 2 on, i.e. are conditional on the first two gradients. Reported per stream:
ΔlogL against OU, BIC ``= -2 logL + k log T``, and the fitted η (OU) with its 95 % interval, against ⟨g²⟩.

Two sources of streams:

* :func:`quadratic_streams` -- the coupled quadratic of Eqs. 6-11 (:mod:`simulations.quadratic`) optimised by
  AdaBayes at the paper's defaults; ``h_i = B H_ii`` is known exactly, so ``r`` should come out at 1.
* :func:`network_streams` -- a small MLP on MNIST-1D trained for a few hundred steps, recording per-step
  gradients of sampled entries of every tensor; ``h_i`` is the time average of ``g_i²`` (the paper's Eq. 42,
  averaged), so r absorbs how far that is from the true curvature.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from filtering.estimation import FitResult, fit
from filtering.likelihood import ar1_loglik

from .common import decade_of, log_log_slope

__all__ = [
    "MODELS",
    "PAPER_ETA",
    "Evidence",
    "StreamSet",
    "evidence",
    "latent_evidence",
    "markdown_table",
    "network_streams",
    "paper_prior_loglik",
    "quadratic_streams",
    "summarise",
]

MODELS = ("random_walk", "ou", "iar", "ar2")
PAPER_ETA = 1e-3  # the paper's η = η_Adam (§4)
BURN = 2  # every log-likelihood is conditional on the first two gradients
V0_FACTOR = 10.0


@dataclass(frozen=True)
class StreamSet:
    """Gradient streams of N parameters over T steps.

    Attributes
    ----------
    name : str
    g, mu : ndarray, shape (T, N)
        Gradients of the summed log-likelihood (paper sign) and the points where they were taken.
    h : ndarray, shape (N,)
        Curvature used in Eq. 12 (known, or estimated as ⟨g²⟩).
    group : ndarray of str, shape (N,)
        Label of each stream (decade of H_ii, or the tensor it belongs to).
    meta : dict
        How the streams were made.
    latent : ndarray, shape (T, N), optional
        The true w*(t) where it is known (the quadratic's Eq. 10).
    """

    name: str
    g: np.ndarray
    mu: np.ndarray
    h: np.ndarray
    group: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    latent: np.ndarray | None = None

    @property
    def g2(self) -> np.ndarray:
        """⟨g²⟩ per stream, shape (N,)."""
        return np.mean(self.g**2, axis=0)


# --------------------------------------------------------------------------------------------------------------
# sources


def quadratic_streams(quick: bool = False, seed: int = 0, show_progress: bool = False) -> StreamSet:
    """Gradients of the coupled quadratic (Eqs. 6-11) along AdaBayes's path at the paper's defaults.

    ``h_i = B H_ii``: Eq. 11 makes ``g_i = B H_ii (w*_i - μ_i) + noise`` with noise variance ``B H_ii`` (Eq. 12
    with r = 1 exactly, the noise correlated across parameters but not in time).
    """
    from .hessian import make_hessian
    from .quadratic import QuadraticConfig, grid, simulate_quadratic

    cfg = QuadraticConfig.quick() if quick else QuadraticConfig()
    rng = np.random.default_rng(seed)
    hess = make_hessian(cfg.n, cfg.log10_diag, rng, cfg.hessian, cfg.mixing)
    column = next(c for c in grid(cfg) if c.rule == "adabayes" and c.reference)
    res = simulate_quadratic(cfg, [column], hess, rng, track=0, show_progress=show_progress)
    h = cfg.batch_size * np.diag(hess[0])
    group = np.array([f"H_ii in 1e{d}" for d in decade_of(np.diag(hess[0]))])
    meta = {
        "config": {"n": cfg.n, "steps": cfg.steps, "batch_size": cfg.batch_size, "tracked_from": cfg.average_from},
        "rule": f"adabayes {column.hyper}",
        "h": "B H_ii (exact)",
        "seed": seed,
        "paper_prior": {"eta": cfg.eta, "sigma2": cfg.lr_sgd / cfg.batch_size},  # Eq. 23
    }
    return StreamSet("quadratic", res["g_track"], res["mu_track"], h, group, meta, latent=res["wstar_track"])


def network_streams(
    steps: int = 600,
    seed: int = 0,
    entries_per_tensor: int = 48,
    batch_size: int = 128,
    width: int = 100,
    optimizer: str = "adam",
    lr: float = 1e-3,
) -> StreamSet:
    """Train an MLP (40-width-width-10) on MNIST-1D and record g and μ of sampled entries of every tensor.

    Gradients are in the paper's units: ``g = -B ∂(mean loss)/∂w`` (the gradient of the summed log-likelihood,
    DESIGN's sign convention); μ is the entry's value when its gradient was taken. Streams whose gradient is
    zero at every step (dead units) are dropped. ``h = ⟨g²⟩`` per stream (Eq. 42, time-averaged).
    """
    import torch
    from torch.nn import functional as F

    from .training.datasets import load_mnist1d
    from .training.models import MLP

    data = load_mnist1d()
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train)
    torch.manual_seed(seed)
    model = MLP(int(np.prod(data.input_shape)), data.num_classes, width=width, depth=2)
    opt = _optimizer(optimizer, model.parameters(), lr)
    rng = np.random.default_rng(seed)
    named = list(model.named_parameters())
    picks = [np.sort(rng.choice(p.numel(), min(entries_per_tensor, p.numel()), replace=False)) for _, p in named]
    g_rec = np.empty((steps, sum(len(i) for i in picks)))
    mu_rec = np.empty_like(g_rec)
    order = rng.permutation(len(y))
    cursor = 0
    for t in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(y)), 0
        idx = torch.as_tensor(order[cursor : cursor + batch_size])
        cursor += batch_size
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        col = 0
        for (_, p), pick in zip(named, picks, strict=True):
            sel = torch.as_tensor(pick)
            g_rec[t, col : col + len(pick)] = (-batch_size * p.grad.detach().reshape(-1)[sel]).numpy()
            mu_rec[t, col : col + len(pick)] = p.detach().reshape(-1)[sel].numpy()
            col += len(pick)
        opt.step()
    labels = np.concatenate([[name] * len(pick) for (name, _), pick in zip(named, picks, strict=True)])
    alive = np.any(g_rec != 0.0, axis=0)
    meta = {
        "model": f"MLP 40-{width}-{width}-10 (MNIST-1D, 4000 training examples)",
        "optimizer": f"{optimizer} lr={lr}",
        "steps": steps,
        "batch_size": batch_size,
        "entries_per_tensor": entries_per_tensor,
        "seed": seed,
        "dropped_dead_streams": int((~alive).sum()),
        "h": "time average of g² (Eq. 42)",
        "paper_prior": {"eta": PAPER_ETA, "sigma2": 0.1 / batch_size},  # Eq. 23 with the paper's lr_sgd = 0.1
    }
    g_rec, mu_rec = g_rec[:, alive], mu_rec[:, alive]
    return StreamSet("network", g_rec, mu_rec, np.mean(g_rec**2, axis=0), labels[alive], meta)


def _optimizer(name: str, params, lr: float):
    import torch

    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adabayes":
        from filtering.torch_adapter import AdaBayes

        return AdaBayes(params, lr=lr, batch_size=128)
    raise ValueError(f"optimizer must be one of adam, sgd, adabayes, got {name!r}")


# --------------------------------------------------------------------------------------------------------------
# evidence


@dataclass(frozen=True)
class Evidence:
    """Fits of every model to every stream.

    Attributes
    ----------
    models : tuple of str
    fits : dict of str -> FitResult
    loglik, bic : ndarray, shape (M, N)
    n_params : ndarray of int, shape (M,)
    steps : int
        Terms in each log-likelihood (T - 2).
    """

    models: tuple[str, ...]
    fits: dict[str, FitResult]
    loglik: np.ndarray
    bic: np.ndarray
    n_params: np.ndarray
    steps: int


def evidence(streams: StreamSet, models: tuple[str, ...] = MODELS, noise_scale: float | None = None) -> Evidence:
    """Fit every model to every stream (:func:`filtering.estimation.fit`, one vectorised fit per model)."""
    y = streams.g + streams.h * streams.mu  # Eq. 41's pseudo-observations
    v0 = V0_FACTOR * np.mean((y / streams.h) ** 2, axis=0) + 1e-300
    init = (np.zeros_like(v0), v0)
    fits: dict[str, FitResult] = {}
    for m in models:  # nested models also start from the optima of the models they contain
        fits[m] = fit(
            streams.g, streams.h, mu=streams.mu, model=m, init=init, burn=BURN, noise_scale=noise_scale,
            extra_starts=_nested_starts(m, fits),
        )  # fmt: skip
    loglik = np.stack([fits[m].loglik for m in models])
    k = np.array([fits[m].n_params for m in models])
    steps = streams.g.shape[0] - BURN
    return Evidence(tuple(models), fits, loglik, -2.0 * loglik + k[:, None] * np.log(steps), k, steps)


def _nested_starts(model: str, fits: dict[str, FitResult]) -> list[dict[str, np.ndarray]]:
    """Starting points for ``model`` at the optima of the fitted models it contains (so its maximum is no lower)."""

    def r(f: FitResult) -> dict[str, np.ndarray]:
        return {"noise_scale": f.params["noise_scale"]} if "noise_scale" in f.params else {}

    starts = []
    if model == "ou" and "random_walk" in fits:  # σ² → ∞: a = 1 - η²/(2σ²) within 1e-8 of the walk's 1
        rw = fits["random_walk"]
        starts.append({"eta2": rw.params["eta2"], "sigma2": 0.5e8 * rw.params["eta2"], **r(rw)})
    if model == "iar" and "random_walk" in fits:  # ρ = 0
        rw = fits["random_walk"]
        starts.append({"eta2": rw.params["eta2"], "rho": np.zeros_like(rw.params["eta2"]), **r(rw)})
    if model == "ar2" and "ou" in fits:  # φ2 = 0, φ1 = a (Eq. 14)
        ou = fits["ou"]
        a = 1.0 - ou.params["eta2"] / (2.0 * ou.params["sigma2"])
        starts.append({"eta2": ou.params["eta2"], "phi1": a, "phi2": np.zeros_like(a), **r(ou)})
    if model == "ar2" and "iar" in fits:  # φ1 = 1 + ρ, φ2 = -ρ
        iar = fits["iar"]
        starts.append(
            {"eta2": iar.params["eta2"], "phi1": 1.0 + iar.params["rho"], "phi2": -iar.params["rho"], **r(iar)}
        )
    return starts


def paper_prior_loglik(streams: StreamSet, eta: float, sigma2: float) -> np.ndarray:
    """Log-likelihood of every stream under the paper's own prior: OU with its η and σ² (Eq. 14), r = 1 (Eq. 12),
    with the same start and burn-in as :func:`evidence` (no parameter fitted)."""
    y = streams.g + streams.h * streams.mu
    v0 = V0_FACTOR * np.mean((y / streams.h) ** 2, axis=0) + 1e-300
    a = 1.0 - eta**2 / (2.0 * sigma2)  # Eq. 14
    res = ar1_loglik(streams.g, streams.h, a, eta**2, mu=streams.mu, mean0=0.0, var0=v0, burn=BURN)
    return res.loglik


def latent_evidence(streams: StreamSet, models: tuple[str, ...] = MODELS) -> Evidence | None:
    """The same comparison on the true w*(t) itself (where known), observed almost without noise.

    Each w*_i is divided by the standard deviation of its increments and observed with h = 1 and a fixed tiny
    noise scale r = 1e-4, so the fits are those of the latent's own dynamics; the scaling shifts every model's
    log-likelihood by the same constant, so differences between models are unchanged.
    """
    if streams.latent is None:
        return None
    scale = np.std(np.diff(streams.latent, axis=0), axis=0) + 1e-300
    z = streams.latent / scale
    exact = StreamSet(f"{streams.name}-latent", z, np.zeros_like(z), np.ones(z.shape[1]), streams.group)
    return evidence(exact, models, noise_scale=1e-4)


def summarise(streams: StreamSet, ev: Evidence, latent: Evidence | None = None) -> dict[str, Any]:
    """Numbers for the report: per model ΔlogL and ΔBIC against OU, BIC wins; fitted η (OU) per group vs 1e-3."""
    ref = ev.models.index("ou")
    out: dict[str, Any] = {
        "source": streams.name,
        "streams": int(streams.g.shape[1]),
        "steps": ev.steps,
        "meta": streams.meta,
        "models": {},
    }
    best = np.argmin(ev.bic, axis=0)
    for i, m in enumerate(ev.models):
        dll = ev.loglik[i] - ev.loglik[ref]
        out["models"][m] = {
            "k": int(ev.n_params[i]),
            "converged_fraction": float(np.mean(ev.fits[m].converged)),
            "dloglik_vs_ou_median": float(np.median(dll)),
            "dloglik_vs_ou_mean": float(np.mean(dll)),
            "dloglik_vs_ou_total": float(np.sum(dll)),
            "dbic_vs_ou_median": float(np.median(ev.bic[i] - ev.bic[ref])),
            "bic_best_fraction": float(np.mean(best == i)),
        }
    ou = ev.fits["ou"]
    eta = np.sqrt(ou.params["eta2"])
    low, high = np.sqrt(ou.ci_low["eta2"]), np.sqrt(ou.ci_high["eta2"])
    finite = np.isfinite(low) & np.isfinite(high)
    out["ou"] = {
        "eta_median": float(np.median(eta)),
        "eta_quantiles_10_50_90": np.quantile(eta, [0.1, 0.5, 0.9]).tolist(),
        "excludes_paper_eta_fraction": float(np.mean(finite & ((high < PAPER_ETA) | (low > PAPER_ETA)))),
        "sigma2_median": float(np.median(ou.params["sigma2"])),
        "noise_scale_median": float(np.median(ou.params["noise_scale"])) if "noise_scale" in ou.params else 1.0,
        "eta_vs_g2_loglog_slope": list(log_log_slope(streams.g2, eta)[:2]),
        "per_group": {
            str(gname): {
                "streams": int(np.sum(streams.group == gname)),
                "eta_median": float(np.median(eta[streams.group == gname])),
            }
            for gname in dict.fromkeys(streams.group.tolist())
        },
    }
    if "iar" in ev.fits:
        out["iar_rho_median"] = float(np.median(ev.fits["iar"].params["rho"]))
    if "paper_prior" in streams.meta:
        paper = paper_prior_loglik(streams, **streams.meta["paper_prior"])
        out["paper_prior"] = {
            **streams.meta["paper_prior"],
            "dloglik_vs_ou_fit_median": float(np.median(paper - ev.loglik[ref])),
            "dloglik_vs_ou_fit_total": float(np.sum(paper - ev.loglik[ref])),
        }
    if streams.latent is not None:
        dw = np.diff(streams.latent, axis=0)
        dwc = dw - dw.mean(axis=0)
        out["latent"] = {
            "increment_var_median": float(np.median(np.var(dw, axis=0))),
            "increment_ac1_median": float(np.median((dwc[1:] * dwc[:-1]).mean(axis=0) / (dwc**2).mean(axis=0))),
            "ou_eta2_over_increment_var_median": float(np.median(ou.params["eta2"] / np.var(dw, axis=0))),
        }
    if latent is not None:
        ref_l = latent.models.index("ou")
        best_l = np.argmin(latent.bic, axis=0)
        out.setdefault("latent", {})["models"] = {
            m: {
                "dloglik_vs_ou_median": float(np.median(latent.loglik[i] - latent.loglik[ref_l])),
                "bic_best_fraction": float(np.mean(best_l == i)),
            }
            for i, m in enumerate(latent.models)
        }
        if "iar" in latent.fits:
            out["latent"]["iar_rho_median"] = float(np.median(latent.fits["iar"].params["rho"]))
    return out


def arrays(streams: StreamSet, ev: Evidence) -> dict[str, np.ndarray]:
    """Per-stream arrays for the figure and the npz: ⟨g²⟩, OU's η with its interval, logL and BIC per model."""
    ou = ev.fits["ou"]
    return {
        "g2": streams.g2,
        "h": streams.h,
        "group": streams.group.astype(str),
        "eta_ou": np.sqrt(ou.params["eta2"]),
        "eta_ou_low": np.sqrt(ou.ci_low["eta2"]),
        "eta_ou_high": np.sqrt(ou.ci_high["eta2"]),
        "models": np.array(ev.models),
        "loglik": ev.loglik,
        "bic": ev.bic,
        "converged": np.stack([ev.fits[m].converged for m in ev.models]),
    }


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per model: k, median ΔlogL and ΔBIC per parameter against OU, share of streams where it wins."""
    rows = [
        f"{summary['source']}: {summary['streams']} parameters x {summary['steps']} steps",
        "",
        "| prior on w* | k | median ΔlogL vs OU | mean ΔlogL vs OU | median ΔBIC vs OU | best by BIC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, s in summary["models"].items():
        rows.append(
            f"| {m} | {s['k']} | {s['dloglik_vs_ou_median']:+.2f} | {s['dloglik_vs_ou_mean']:+.2f} | "
            f"{s['dbic_vs_ou_median']:+.2f} | {100 * s['bic_best_fraction']:.0f} % |"
        )
    ou = summary["ou"]
    q10, q50, q90 = ou["eta_quantiles_10_50_90"]
    rows += [
        "",
        f"OU fit: η median {q50:.3g} (10-90 %: {q10:.3g} to {q90:.3g}) vs the paper's {PAPER_ETA:g}; the 95 % interval "
        f"excludes {PAPER_ETA:g} for {100 * ou['excludes_paper_eta_fraction']:.0f} % of parameters; "
        f"r median {ou['noise_scale_median']:.3g}; slope of log η on log ⟨g²⟩ {ou['eta_vs_g2_loglog_slope'][0]:.2f} "
        f"± {ou['eta_vs_g2_loglog_slope'][1]:.2f}.",
    ]
    paper = summary.get("paper_prior")
    if paper is not None:
        rows += [
            f"The paper's prior itself (η = {paper['eta']:g}, σ² = {paper['sigma2']:g}, r = 1, nothing fitted): median "
            f"ΔlogL {paper['dloglik_vs_ou_fit_median']:+.1f} per parameter against the fitted OU.",
        ]
    lat = summary.get("latent")
    if lat is not None:
        rows += [
            "",
            f"True w*: increments' lag-1 autocorrelation median {lat['increment_ac1_median']:.2f}; fitted η² / Var Δw* "
            f"median {lat['ou_eta2_over_increment_var_median']:.3g}.",
        ]
        if "models" in lat:
            rows += [
                "Same priors fitted to w* itself (observed without noise): "
                + ", ".join(
                    f"{m} ΔlogL {v['dloglik_vs_ou_median']:+.1f} (best {100 * v['bic_best_fraction']:.0f} %)"
                    for m, v in lat["models"].items()
                )
                + (f"; ρ median {lat['iar_rho_median']:.2f}." if "iar_rho_median" in lat else "."),
            ]
    return "\n".join(rows)


def with_groups(streams: StreamSet, group: np.ndarray) -> StreamSet:
    """The same streams with other labels."""
    return replace(streams, group=np.asarray(group))
