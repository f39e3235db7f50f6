"""Experiment 3: log-log slope of each rule's learning rate against ⟨g²⟩ in the high-⟨g²⟩ regime.

Theory: fading memory's rate is the mean-square normaliser λ_f/⟨g²⟩ (Eq. 31, slope -1); AdaBayes, AdaBayes-FP,
Adam(W) and the exact filter follow the root-mean-square normaliser η/sqrt(⟨g²⟩) (Eq. 24, slope -½); SGD is
flat (0) and VON is mean-square (-1 once ⟨g²⟩/α >> 1/σ²).

Two checks per asserted rule: (1) the issue's coarse one, the fitted slope within ±0.05 of the limit slope;
(2) a sharp one, the fitted slope against the local slope of the rule's own fixed-point curve fitted over the
same ⟨g²⟩ values (Eq. 21 for AdaBayes and AdaBayes-FP, whose local slope in the window is about -0.485, not
-0.5; Eq. 31 for fading memory; η/sqrt(⟨g²⟩) for Adam(W)), within 4 standard errors plus a floor of 0.01 (stated
in advance: the curvature of the curve inside the window and the Jensen gap of noisy g², ≈ 0.75 η sqrt(⟨g²⟩),
shift a local slope by up to about that much). The fit window is
``100 (η/σ²)² <= ⟨g²⟩ <= g2_max``, i.e. well inside the Adam regime (η/sqrt(⟨g²⟩) <= σ²/10) and below the
⟨g²⟩ where Eq. 21 leaves the exact fixed point by 2 % (:func:`filtering.fixed_point.eq21_validity_range`).
Reads the ``generative`` and ``quadratic`` outputs (run them first; ``adabayes reproduce`` does).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from filtering.fixed_point import approx_precision, eq21_validity_range, exact_precision

from .checks import INFO, Check, Spec, Within, evaluate, print_checks
from .common import DEFAULT_DATA, log_log_slope
from .io import load_json, load_npz, save_json
from .registry import help_for

__all__ = ["HELP", "LOCAL_FLOOR", "THEORY", "add_arguments", "fit_slopes", "local_curve", "run", "window"]

HELP = help_for("slopes")

THEORY = {
    "fading": -1.0,
    "adabayes": -0.5,
    "adabayes_fp": -0.5,
    "adam": -0.5,
    "adamw": -0.5,
    "kalman": -0.5,
    "sgd": 0.0,
    "von": -1.0,
}
ASSERTED = ("fading", "adabayes", "adabayes_fp", "adam", "adamw")
TOL = 0.05
LOCAL_SE = 4.0
LOCAL_FLOOR = 0.01


def local_curve(rule: str, g2: np.ndarray, eta: float, sigma2: float) -> np.ndarray | None:
    """The fixed-point curve whose local slope a rule's fitted slope is compared with (None: no such curve)."""
    if rule in ("adabayes", "adabayes_fp", "kalman"):
        return 1.0 / approx_precision(g2, eta, sigma2)  # Eq. 21
    if rule == "fading":
        return 1.0 / g2  # Eq. 31 up to the factor λ_f
    if rule in ("adam", "adamw"):
        return eta / np.sqrt(g2)  # Eq. 24
    return None


def window(eta: float, sigma2: float) -> tuple[float, float]:
    """The high-⟨g²⟩ fit window ``(100 (η/σ²)², upper end of Eq. 21's 2 % validity range)``."""
    lo = 100.0 * (eta / sigma2) ** 2
    rng = eq21_validity_range(eta, sigma2, 0.02)
    hi = rng[1] if rng else lo * 10
    if hi <= lo:
        raise ValueError(f"eta={eta}, sigma2={sigma2} leave no Adam regime to fit (window {lo:g}..{hi:g})")
    return lo, hi


def fit_slopes(rates: dict[str, tuple[np.ndarray, np.ndarray]], eta: float, sigma2: float) -> dict[str, dict]:
    """Fit ``log rate = a + s log ⟨g²⟩`` in the window for each rule.

    Parameters
    ----------
    rates : dict rule -> (g2, rate), each shape (N,)

    Returns
    -------
    dict rule -> {"slope", "stderr", "n", "intercept", "theory", "window", "local", "local_exact"}; ``local``
    is the OLS slope of :func:`local_curve` over the same ⟨g²⟩ values (NaN when the rule has none),
    ``local_exact`` that of the exact fixed point (AdaBayes rules only).
    """
    lo, hi = window(eta, sigma2)
    out = {}
    for rule, (g2, rate) in rates.items():
        sel = (g2 >= lo) & (g2 <= hi) & np.isfinite(rate) & (rate > 0)
        if sel.sum() < 3:
            out[rule] = {
                "slope": float("nan"),
                "stderr": float("nan"),
                "n": int(sel.sum()),
                "window": (lo, hi),
                "theory": THEORY.get(rule, float("nan")),
                "intercept": float("nan"),
                "local": float("nan"),
                "local_exact": float("nan"),
            }
            continue
        s, se, n = log_log_slope(g2[sel], rate[sel])
        curve = local_curve(rule, g2[sel], eta, sigma2)
        local = log_log_slope(g2[sel], curve)[0] if curve is not None else float("nan")
        local_exact = (
            log_log_slope(g2[sel], 1.0 / exact_precision(g2[sel], eta, sigma2))[0]
            if rule in ("adabayes", "adabayes_fp", "kalman")
            else float("nan")
        )
        intercept = float(np.mean(np.log10(rate[sel])) - s * np.mean(np.log10(g2[sel])))
        out[rule] = {
            "slope": s,
            "stderr": se,
            "n": n,
            "intercept": intercept,
            "window": (lo, hi),
            "theory": THEORY.get(rule, float("nan")),
            "local": local,
            "local_exact": local_exact,
        }
    return out


EQUATION = {"fading": "Eq. 31", "adam": "Eq. 24", "adamw": "Eq. 24"}  # others: Eqs. 21, 24


def _specs(model: str, fits: dict[str, dict]) -> tuple[list[Spec], dict[str, Any]]:
    """Declared checks of one model's fits and the numbers they read (two checks per asserted rule)."""
    specs: list[Spec] = []
    measured: dict[str, Any] = {}
    for rule, f in fits.items():
        key, eq = f"{model}_{rule}", EQUATION.get(rule, "Eqs. 21, 24")
        measured[key] = f["slope"]
        measured[f"{key}_what"] = (
            f"d log σ²_post / d log ⟨g²⟩ = {f['slope']:.4f} ± {f['stderr']:.4f} (s.e., {f['n']} parameters, "
            f"⟨g²⟩ in [{f['window'][0]:.3g}, {f['window'][1]:.3g}]); limit slope {f['theory']:g}"
        )
        if rule not in ASSERTED:
            specs.append(Spec(f"slopes/{key}", eq, key, INFO, detail=f"{{{key}_what}}"))
            continue
        measured[f"{key}_theory"] = f["theory"]
        measured[f"{key}_diff"] = f["slope"] - f["local"]
        measured[f"{key}_tol"] = LOCAL_SE * f["stderr"] + LOCAL_FLOOR
        exact = f" (exact fixed point: {f['local_exact']:.4f})" if np.isfinite(f.get("local_exact", np.nan)) else ""
        measured[f"{key}_local_what"] = (
            f"fitted slope {f['slope']:.4f} minus the local slope {f['local']:.4f} of its own fixed-point "
            f"curve over the same ⟨g²⟩{exact}"
        )
        specs += [
            Spec(f"slopes/{key}", eq, key, Within(f"{key}_theory", TOL), detail=f"{{{key}_what}}"),
            Spec(
                f"slopes/{key}_vs_local",
                eq,
                f"{key}_diff",
                Within(0.0, f"{key}_tol", f"0 ± {{tol:.2g}} ({LOCAL_SE:g} s.e. + {LOCAL_FLOOR:g})"),
                detail=f"{{{key}_local_what}}",
            ),
        ]
    return specs, measured


def _checks(model: str, fits: dict[str, dict]) -> list[Check]:
    specs, measured = _specs(model, fits)
    return evaluate(specs, measured)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adabayes slopes``."""
    parser.add_argument(
        "--out",
        default=DEFAULT_DATA,
        help="data folder holding the generative/quadratic outputs; slopes.json is written there "
        "(default: %(default)s, where those experiments write by default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="unused (no randomness); accepted for uniformity")
    parser.add_argument("--quick", action="store_true", help="unused; accepted for uniformity")
    parser.add_argument("--no-progress", action="store_true", help="unused; accepted for uniformity")


def _rates(data: dict[str, np.ndarray], rules_here: tuple[str, ...] | list[str], prefix: str = "") -> dict:
    return {r: (data[f"{prefix}{r}_g2"], data[f"{prefix}{r}_rate"]) for r in rules_here}


def run(args: argparse.Namespace) -> int:
    """Fit the slopes on whichever of generative/quadratic exist; write ``slopes.json``.

    Raises
    ------
    FileNotFoundError
        Neither ``generative.npz`` nor ``quadratic.npz`` is in ``--out`` (the message says what to run).
    """
    data = Path(args.out)
    result: dict = {"tolerance": TOL, "local_floor": LOCAL_FLOOR, "theory": THEORY, "fits": {}, "checks": []}
    checks: list[Check] = []
    if (data / "generative.npz").exists():
        g = load_npz(data / "generative.npz")
        cfg = load_json(data / "generative.json")["config"]
        rates = _rates(g, ("adabayes", "adabayes_fp", "fading", "adamw", "kalman"))
        result["fits"]["generative"] = fit_slopes(rates, cfg["eta"], cfg["sigma2"])
        checks += _checks("generative", result["fits"]["generative"])
    if (data / "quadratic.npz").exists():
        q = load_npz(data / "quadratic.npz")
        meta = load_json(data / "quadratic.json")
        rules_here = [k[len("fig3_") : -len("_rate")] for k in q if k.startswith("fig3_") and k.endswith("_rate")]
        result["fits"]["quadratic"] = fit_slopes(
            _rates(q, rules_here, "fig3_"), meta["fig3"]["eta"], meta["fig3"]["sigma2"]
        )
        checks += _checks("quadratic", result["fits"]["quadratic"])
    if not result["fits"]:
        raise FileNotFoundError(
            f"no generative.npz or quadratic.npz in {str(data)!r}; run 'adabayes generative' or 'adabayes "
            "quadratic' first (they write to the same default folder), or pass their --out here"
        )
    result["checks"] = [c.to_dict() for c in checks]
    save_json(data / "slopes.json", result)
    return print_checks(checks)
