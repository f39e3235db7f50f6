"""Names and paper defaults of the training experiments, importable without torch.

The command line builds its parsers from these tables, so ``adabayes train --help`` never imports torch;
:mod:`~simulations.training.models` and :mod:`~simulations.training.optimizers` re-export them.

======================  =====================================================================================
optimiser               paper defaults (§4, following Luo et al., 2019)
======================  =====================================================================================
``sgd``                 lr 0.1, momentum 0.9, L2 weight decay 5e-4 (coupled, torch ``weight_decay``)
``adam``                lr 1e-3, betas (0.9, 0.999), L2 weight decay 5e-4 (coupled, as in Luo et al.)
``amsgrad``             as ``adam`` with ``amsgrad=True``
``adamw``               lr = η = 1e-3, decoupled λ = 5e-5 per step
``adabayes``            lr = η = 1e-3, lr_sgd = η_SGD = 0.1, λ = 5e-5 per step
``adabayes_fp``         same hyperparameters
======================  =====================================================================================
"""

from __future__ import annotations

from typing import Any

from filtering.validation import check_scalar

__all__ = [
    "ADAPTIVE",
    "DATASETS",
    "DECOUPLED",
    "DEFAULTS",
    "DISPLAY",
    "MODELS",
    "OPTIMIZERS",
    "canonical_optimizer",
    "default_model",
    "drop_epoch",
    "hyperparameters",
]

DATASETS = ("mnist1d", "mnist", "digits", "cifar10", "cifar100")

#: model name -> number of input dimensions after the channel axis it accepts (None: any)
MODELS: dict[str, int | None] = {"mlp": None, "resnet1d": 1, "cnn": 2, "resnet34": 2, "densenet121": 2}

#: the model used for a data set when none is named
DEFAULT_MODEL = {
    "mnist1d": "resnet1d",
    "mnist": "cnn",
    "digits": "cnn",
    "cifar10": "resnet34",
    "cifar100": "resnet34",
}

#: paper defaults per optimiser (the weight-decay conventions are in :mod:`~simulations.training.optimizers`)
DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.1, "weight_decay": 5e-4},
    "adam": {"lr": 1e-3, "weight_decay": 5e-4},
    "amsgrad": {"lr": 1e-3, "weight_decay": 5e-4},
    "adamw": {"lr": 1e-3, "weight_decay": 5e-5},
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

# the spelling a user may type, with case, "-" and "_" removed -> the canonical name
_SPELLINGS = {name.replace("_", ""): name for name in OPTIMIZERS}


def canonical_optimizer(name: str) -> str:
    """The canonical optimiser name, ignoring case, ``-`` and ``_`` (``AdaBayesFP`` -> ``adabayes_fp``).

    Raises
    ------
    ValueError
        For a name that is none of :data:`OPTIMIZERS` under any of those spellings.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in _SPELLINGS:
        raise ValueError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)} (case, '-' and '_' do not matter), got {name!r}"
        )
    return _SPELLINGS[key]


def default_model(dataset: str) -> str:
    """The model ``adabayes train`` uses for a data set when ``--model`` is not given."""
    return DEFAULT_MODEL.get(dataset, "mlp")


#: optimisers whose weight decay is DESIGN's decoupled λ per step, p <- (1 - λ) p, so λ must lie in [0, 1)
DECOUPLED = ("adamw", "adabayes", "adabayes_fp")


def hyperparameters(
    name: str, lr: float | None = None, weight_decay: float | None = None, lr_sgd: float | None = None
) -> dict[str, float]:
    """The paper defaults of optimiser ``name`` with the given overrides, each checked.

    Ranges: ``lr`` in (0, inf); ``lr_sgd`` in (0, inf] (inf is the σ² -> ∞ limit) and only for AdaBayes and
    AdaBayes-FP; ``weight_decay`` in [0, 1) for the decoupled λ of AdamW/AdaBayes/AdaBayes-FP, in [0, inf)
    for the coupled L2 coefficient of SGD/Adam/AMSGrad. ``lr`` 0 and -1 fail with the same message.

    Returns
    -------
    dict
        ``lr``, ``weight_decay`` and, for AdaBayes/AdaBayes-FP, ``lr_sgd``, as floats.
    """
    key = canonical_optimizer(name)
    hp: dict[str, Any] = dict(DEFAULTS[key])
    if lr_sgd is not None and "lr_sgd" not in hp:
        raise ValueError(f"lr_sgd applies to adabayes and adabayes_fp only, not optimizer={key!r}")
    overrides = {"lr": lr, "weight_decay": weight_decay, "lr_sgd": lr_sgd}
    hp.update({k: v for k, v in overrides.items() if v is not None})
    hp["lr"] = check_scalar("lr", hp["lr"], lower=0.0)
    upper = 1.0 if key in DECOUPLED else None
    hp["weight_decay"] = check_scalar("weight_decay", hp["weight_decay"], lower=0.0, upper=upper, allow_equal=True)
    if "lr_sgd" in hp:
        hp["lr_sgd"] = check_scalar("lr_sgd", hp["lr_sgd"], lower=0.0, allow_inf=True)
    return hp


def drop_epoch(epochs: int, milestone: float = 0.75) -> int | None:
    """0-based epoch from which the learning rate is divided, ``max(1, int(milestone * epochs))``.

    ``None`` when there is no drop within the run: ``milestone >= 1``, or the drop would fall at or after
    ``epochs`` (e.g. ``epochs=1``). Epoch 0 is never the drop, so no run trains entirely at the reduced rate.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not 0.0 < milestone:
        raise ValueError(f"milestone must be > 0, got {milestone!r}")
    if milestone >= 1.0:
        return None
    first = max(1, int(milestone * epochs))
    return first if first < epochs else None
