"""The three protocols of the optimiser verdict (issue 10) and the study presets that run them.

``paper``
    The paper's hyperparameters as printed (§4, from Luo et al., 2019): SGD lr 0.1, momentum 0.9, L2 5e-4;
    Adam/AMSGrad lr 1e-3, L2 5e-4; AdamW, AdaBayes, AdaBayes-FP η = 1e-3, decoupled λ = lr·wd = 5e-5 per step;
    AdaBayes(-FP) η_SGD = 0.1 (:data:`simulations.training.catalog.DEFAULTS`).
``matched``
    As ``paper``, but η_SGD and λ converted from the SGD baseline so that, in the SGD regime, AdaBayes steps and
    decays as torch's SGD does (:mod:`~simulations.training.conversion`): η_SGD = lr/(1 - β) = 1.0 and
    λ = lr·wd/(1 - β) = 5e-4. AdamW's λ was set by the paper with the same rule, so it is converted the same way:
    AdaBayes-FP − AdamW then compares two optimisers that differ only in σ² (Eq. 27). SGD, Adam and AMSGrad are
    unchanged (their runs are shared with ``paper``).
``tuned``
    Every optimiser gets the same budget of Optuna trials (:data:`TRIALS`, seeded TPE) over its own main
    hyperparameters (:data:`simulations.training.tuning.SPACES`), selected on the validation split, then its best
    configuration is re-run with fresh seeds (:data:`SEEDS`) and reported on the test set.

``paper`` and ``matched`` run the same seeds as ``tuned``'s final runs, so all three protocols and all
optimisers share initialisations and batch orders seed by seed (paired comparisons).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .catalog import DECOUPLED, DEFAULTS, OPTIMIZERS, canonical_optimizer
from .conversion import matched_decoupled_decay, matched_lr_sgd
from .tasks import QUICK, TASKS, RunSpec, Task

__all__ = [
    "PROTOCOLS",
    "SEEDS",
    "SGD_MOMENTUM",
    "TRIALS",
    "TUNING_SEED",
    "StudyConfig",
    "fixed_hparams",
    "fixed_specs",
    "study_config",
]

PROTOCOLS = ("paper", "matched", "tuned")
#: torch SGD's momentum in :func:`~simulations.training.optimizers.build_optimizer` (β1 of every other optimiser)
SGD_MOMENTUM = 0.9
#: final seeds of every protocol (and tuning trials per optimiser) of the full study and the quick variant
SEEDS = {"full": (0, 1, 2, 3, 4), "quick": (0, 1)}
TRIALS = {"full": 12, "quick": 2}
#: the seed of every tuning trial's run (fresh: not among the final seeds) and of the samplers
TUNING_SEED = 1000


def fixed_hparams(protocol: str, optimizer: str) -> dict[str, float]:
    """Hyperparameters of ``optimizer`` under the ``paper`` or ``matched`` protocol.

    Returns
    -------
    dict
        ``lr``, ``weight_decay`` and, for AdaBayes/AdaBayes-FP, ``lr_sgd`` (the conventions of
        :func:`~simulations.training.optimizers.build_optimizer`: λ per step for the decoupled optimisers).
    """
    key = canonical_optimizer(optimizer)
    if protocol not in ("paper", "matched"):
        raise ValueError(f"protocol must be 'paper' or 'matched' for fixed hyperparameters, got {protocol!r}")
    hp = dict(DEFAULTS[key])
    if protocol == "matched" and key in DECOUPLED:
        sgd = DEFAULTS["sgd"]
        hp["weight_decay"] = matched_decoupled_decay(sgd["lr"], SGD_MOMENTUM, sgd["weight_decay"])
        if "lr_sgd" in hp:
            hp["lr_sgd"] = matched_lr_sgd(sgd["lr"], SGD_MOMENTUM)
    return hp


@dataclass(frozen=True)
class StudyConfig:
    """What one ``adabayes table --protocol ...`` call runs.

    Attributes
    ----------
    protocols : tuple of str
        Among :data:`PROTOCOLS`.
    tasks : tuple of Task
    optimizers : tuple of str
    seeds : tuple of int
        Final seeds (all protocols).
    trials : int
        Tuning budget per (task, optimiser).
    out : Path
        Output folder (the SQLite study lives here unless ``storage`` is given).
    storage : str or None
        Optuna RDB URL shared by workers on several machines; ``None``: ``sqlite:///OUT/study.db``.
    quick : bool
        The CI variant.
    """

    protocols: tuple[str, ...]
    tasks: tuple[Task, ...]
    optimizers: tuple[str, ...]
    seeds: tuple[int, ...]
    trials: int
    out: Path
    storage: str | None = None
    quick: bool = False
    tuning_seed: int = TUNING_SEED

    def storage_url(self) -> str:
        """The Optuna storage URL."""
        return self.storage if self.storage else f"sqlite:///{(self.out / 'study.db').resolve()}"


def study_config(
    protocols: Sequence[str],
    *,
    quick: bool = False,
    tasks: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    seeds: Sequence[int] | None = None,
    trials: int | None = None,
) -> StudyConfig:
    """A checked :class:`StudyConfig` from the preset (``full`` or ``quick``) and overrides."""
    bad = [p for p in protocols if p not in PROTOCOLS]
    if not protocols or bad:
        raise ValueError(f"protocol must be among {', '.join(PROTOCOLS)}, got {list(protocols)}")
    preset = "quick" if quick else "full"
    table = QUICK if quick else TASKS
    names = list(tasks) if tasks else list(table)
    unknown = [t for t in names if t not in table]
    if unknown:
        raise ValueError(f"tasks must be among {', '.join(table)}, got {unknown}")
    opts = tuple(canonical_optimizer(o) for o in (optimizers or OPTIMIZERS))
    for label, values in (("tasks", names), ("optimizers", opts), ("seeds", list(seeds or ()))):
        if len(set(values)) != len(values):
            raise ValueError(f"{label} must be distinct, got {list(values)}")
    n_trials = TRIALS[preset] if trials is None else trials
    if n_trials < 1:
        raise ValueError(f"trials must be >= 1, got {n_trials}")
    final = tuple(SEEDS[preset] if seeds is None else seeds)
    if not final or min(final) < 0:
        raise ValueError(f"seeds must be non-negative integers, at least one, got {list(final)}")
    folder = Path(out) if out is not None else Path("runs") / ("verdict-quick" if quick else "verdict")
    ordered = tuple(p for p in PROTOCOLS if p in protocols)
    return StudyConfig(ordered, tuple(table[t] for t in names), opts, final, n_trials, folder, storage, quick)


def fixed_specs(config: StudyConfig, protocol: str, task: Task, optimizer: str) -> list[RunSpec]:
    """The runs of a fixed-hyperparameter protocol for one task and optimiser, one per final seed."""
    hp = fixed_hparams(protocol, optimizer)
    return [RunSpec.make(task, optimizer, hp, seed) for seed in config.seeds]
