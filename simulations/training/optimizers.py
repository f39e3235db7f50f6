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

``weight_decay`` given to :func:`build_optimizer` (``--weight-decay`` on the command line) is the coupled L2
coefficient for SGD/Adam/AMSGrad and DESIGN's decoupled λ per step (``p <- (1 - λ) p``) for AdamW, AdaBayes and
AdaBayesFP. For AdamW the factory passes torch ``weight_decay = λ / lr``, so λ stays what was asked for when
``lr`` is changed too.

Schedule: every learning rate is divided by 10 from epoch ``max(1, int(0.75 * epochs))`` on (the paper: epoch
150 of 200; never epoch 0, so a one-epoch run trains at the full rate) by setting each group's ``lr`` to
``factor * initial lr``, as torch's schedulers do. For AdaBayes/AdaBayesFP the adapter treats ``lr = c * eta``
as a multiplier ``c`` of the whole step of Eq. 19, with the filter's η and σ² unchanged: the gradient step
becomes ``c σ²_post <g>`` and the decoupled decay becomes ``p <- (1 - c λ) p``. For AdaBayes-FP the gradient
step is then exactly the one obtained by dividing η and η_SGD together by 10 (Alg. 2's σ²_post is homogeneous
of degree 1 in (η, σ²)); that alternative would leave λ alone, whereas the schedule also divides the decay
by 10, as torch's AdamW does with its ``lr * weight_decay``. ``lr_sgd`` is therefore not scheduled. For
AdaBayes (Alg. 1) the scaled step is not the same as rescaling η and η_SGD, since the filter's predict step
depends on η and σ² separately. The schedule is a pure function of the epoch, so resuming needs no scheduler
state.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from filtering.validation import check_int

from .catalog import (
    ADAPTIVE,
    DECOUPLED,
    DEFAULTS,
    DISPLAY,
    OPTIMIZERS,
    canonical_optimizer,
    drop_epoch,
    hyperparameters,
)

__all__ = [
    "ADAPTIVE",
    "DECOUPLED",
    "DEFAULTS",
    "DISPLAY",
    "OPTIMIZERS",
    "apply_schedule",
    "base_rates",
    "build_optimizer",
    "canonical_optimizer",
    "drop_epoch",
    "hyperparameters",
    "lr_factor",
]


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
        One of :data:`OPTIMIZERS`, in any case, with or without ``-``/``_`` (``AdaBayesFP``, ``adabayes-fp``).
    params : iterable of Parameter
        Parameters to optimise.
    batch_size : int
        Minibatch size B (AdaBayes uses σ² = lr_sgd / B, Eq. 23).
    lr, weight_decay, lr_sgd : float, optional
        Overrides of :data:`DEFAULTS`, checked by :func:`hyperparameters`; ``lr_sgd`` only applies to AdaBayes
        and AdaBayesFP. ``weight_decay`` is the coupled L2 coefficient for SGD/Adam/AMSGrad and the decoupled
        λ per step, in [0, 1), for AdamW (torch gets ``λ / lr``), AdaBayes and AdaBayesFP.

    Returns
    -------
    torch.optim.Optimizer
    """
    key = canonical_optimizer(name)
    check_int("batch_size", batch_size, lower=1)
    hp = hyperparameters(key, lr, weight_decay, lr_sgd)
    if key == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=0.9, weight_decay=hp["weight_decay"])
    if key in ("adam", "amsgrad"):
        return torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"], amsgrad=key == "amsgrad")
    if key == "adamw":
        # DESIGN's λ per step is torch's lr * weight_decay
        return torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"] / hp["lr"])
    from filtering import torch_adapter  # the AdaBayes optimisers, imported when asked for

    cls = torch_adapter.AdaBayes if key == "adabayes" else torch_adapter.AdaBayesFP
    return cls(params, lr=hp["lr"], lr_sgd=hp["lr_sgd"], batch_size=batch_size, weight_decay=hp["weight_decay"])


def lr_factor(epoch: int, epochs: int, milestone: float = 0.75, gamma: float = 0.1) -> float:
    """Learning-rate multiplier for 0-based ``epoch`` of ``epochs``: ``gamma`` from :func:`drop_epoch` on.

    With ``epochs=200`` the drop happens at epoch 150, as in the paper. ``milestone >= 1`` disables it, and
    the drop is never at epoch 0 (``epochs=1`` or ``milestone * epochs < 1`` train at the full rate).
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    first = drop_epoch(epochs, milestone)
    return gamma if first is not None and epoch >= first else 1.0


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
