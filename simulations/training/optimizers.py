"""Optimisers with the paper's hyperparameters (§4, following Luo et al., 2019) and the step schedule.

======================  =====================================================================================
name                    defaults
======================  =====================================================================================
``sgd``                 lr 0.1, momentum 0.9, L2 weight decay 5e-4 (coupled, torch ``weight_decay``)
``adam``                lr 1e-3, betas (0.9, 0.999), L2 weight decay 5e-4 (coupled, as in Luo et al.)
``amsgrad``             as ``adam`` with ``amsgrad=True``
``adamw``               lr = η = 1e-3, decoupled λ = 5e-5 per step, i.e. torch ``weight_decay = λ / lr = 0.05``
``adabayes``            ``filtering.torch_adapter.AdaBayes``: lr = η = 1e-3, lr_sgd = 0.1, λ = 5e-5 per step
``adabayes_fp``         ``filtering.torch_adapter.AdaBayesFP``: same hyperparameters
======================  =====================================================================================

``weight_decay`` given on the command line is in each optimiser's own convention (coupled L2 for SGD/Adam/
AMSGrad, torch's ``λ / lr`` for AdamW, λ per step for AdaBayes/AdaBayesFP).

Schedule: every learning rate is divided by 10 at 75 % of the epochs (the paper: epoch 150 of 200) by
setting each group's ``lr`` to ``factor * initial lr``, as torch's schedulers do. For AdaBayes/AdaBayesFP the
adapter treats ``lr = c * eta`` as a multiplier ``c`` of the whole step of Eq. 19 (σ²_post and λ), with the
filter's η and σ² unchanged; for AdaBayes-FP that is exactly the same as dividing η and η_SGD together by 10
(Eq. 21 is homogeneous of degree 1 in (η, σ²)). ``lr_sgd`` is therefore not scheduled. torch's AdamW likewise
scales its decoupled decay ``lr * weight_decay`` with the schedule. The schedule is a pure function of the
epoch, so resuming needs no scheduler state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "ADAPTIVE",
    "DEFAULTS",
    "OPTIMIZERS",
    "apply_schedule",
    "base_rates",
    "build_optimizer",
    "canonical_optimizer",
    "lr_factor",
]

#: paper defaults per optimiser (see the module docstring for each weight-decay convention)
DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.1, "weight_decay": 5e-4},
    "adam": {"lr": 1e-3, "weight_decay": 5e-4},
    "amsgrad": {"lr": 1e-3, "weight_decay": 5e-4},
    "adamw": {"lr": 1e-3, "weight_decay": 5e-5 / 1e-3},
    "adabayes": {"lr": 1e-3, "lr_sgd": 0.1, "weight_decay": 5e-5},
    "adabayes_fp": {"lr": 1e-3, "lr_sgd": 0.1, "weight_decay": 5e-5},
}
OPTIMIZERS = tuple(DEFAULTS)
ADAPTIVE = ("adam", "amsgrad", "adamw", "adabayes", "adabayes_fp")
#: display names as in the paper's Table 1 (AdaBayes-FP is called AdaBayes-SS there)
DISPLAY = {
    "sgd": "SGD",
    "adam": "Adam",
    "amsgrad": "AMSGrad",
    "adamw": "AdamW",
    "adabayes": "AdaBayes",
    "adabayes_fp": "AdaBayes-FP",
}


def canonical_optimizer(name: str) -> str:
    """Normalise an optimiser name (case, ``-`` for ``_``); raise ``ValueError`` for unknown names."""
    key = str(name).lower().replace("-", "_")
    if key not in DEFAULTS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return key


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    batch_size: int,
    lr: float | None = None,
    weight_decay: float | None = None,
    lr_sgd: float | None = None,
) -> torch.optim.Optimizer:
    """Construct an optimiser with the paper's defaults, each overridable.

    Parameters
    ----------
    name : str
        One of :data:`OPTIMIZERS` (``adabayes-fp`` is accepted for ``adabayes_fp``).
    params : iterable of Parameter
        Parameters to optimise.
    batch_size : int
        Minibatch size B (AdaBayes uses σ² = lr_sgd / B, Eq. 23).
    lr, weight_decay, lr_sgd : float, optional
        Overrides of :data:`DEFAULTS`; ``lr_sgd`` only applies to AdaBayes and AdaBayesFP.

    Returns
    -------
    torch.optim.Optimizer
    """
    key = canonical_optimizer(name)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    hp: dict[str, Any] = dict(DEFAULTS[key])
    if lr is not None:
        hp["lr"] = lr
    if weight_decay is not None:
        hp["weight_decay"] = weight_decay
    if lr_sgd is not None:
        if "lr_sgd" not in hp:
            raise ValueError(f"lr_sgd applies to adabayes and adabayes_fp only, not optimizer={key!r}")
        hp["lr_sgd"] = lr_sgd
    for arg in ("lr", "weight_decay", "lr_sgd"):
        if arg in hp and not (hp[arg] >= 0.0):  # also rejects NaN
            raise ValueError(f"{arg} must be >= 0, got {hp[arg]!r}")
    if not hp["lr"] > 0.0:
        raise ValueError(f"lr must be > 0, got {hp['lr']!r}")
    if key == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=0.9, weight_decay=hp["weight_decay"])
    if key in ("adam", "amsgrad"):
        return torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"], amsgrad=key == "amsgrad")
    if key == "adamw":
        return torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    from filtering import torch_adapter  # imported lazily: written alongside this package

    cls = torch_adapter.AdaBayes if key == "adabayes" else torch_adapter.AdaBayesFP
    return cls(params, lr=hp["lr"], lr_sgd=hp["lr_sgd"], batch_size=batch_size, weight_decay=hp["weight_decay"])


def lr_factor(epoch: int, epochs: int, milestone: float = 0.75, gamma: float = 0.1) -> float:
    """Learning-rate multiplier for 0-based ``epoch`` of ``epochs``: ``gamma`` from ``int(milestone * epochs)`` on.

    With ``epochs=200`` the drop happens at epoch 150, as in the paper. ``milestone >= 1`` disables it.
    """
    if not 0.0 < milestone:
        raise ValueError(f"milestone must be > 0, got {milestone!r}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return gamma if epoch >= int(milestone * epochs) and milestone < 1.0 else 1.0


def apply_schedule(optimizer: torch.optim.Optimizer, base: list[dict[str, float]], factor: float) -> None:
    """Set each group's ``lr`` to ``factor`` times its base value.

    ``base`` is one dict per parameter group holding the initial values, as returned by :func:`base_rates`.
    """
    if len(base) != len(optimizer.param_groups):
        raise ValueError(
            f"base must have one entry per parameter group ({len(optimizer.param_groups)}), got {len(base)}"
        )
    for group, rates in zip(optimizer.param_groups, base, strict=True):
        for key, value in rates.items():
            group[key] = value * factor


def base_rates(optimizer: torch.optim.Optimizer) -> list[dict[str, float]]:
    """The scheduled rate (``lr``) of each parameter group, copied."""
    return [{"lr": float(g["lr"])} for g in optimizer.param_groups]
