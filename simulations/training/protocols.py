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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "protocol_effects",
    "study_config",
    "summarise",
    "write_report",
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


def protocol_effects(collected: Mapping[str, Any], config: StudyConfig) -> dict[str, Any]:
    """Paired differences between protocols for the same optimiser (matched − paper, tuned − paper).

    Returns
    -------
    dict
        task -> optimiser -> "matched-paper" / "tuned-paper" -> metric -> paired-difference dict.
    """
    from .stats import METRICS, paired_difference

    effects: dict[str, Any] = {}
    for task in config.tasks:
        runs = collected["runs"].get(task.name, {})
        for opt in config.optimizers:
            paper = runs.get("paper", {}).get(opt, {})
            for other in ("matched", "tuned"):
                mine = runs.get(other, {}).get(opt, {})
                if not paper or not mine or other not in config.protocols:
                    continue
                entry = effects.setdefault(task.name, {}).setdefault(opt, {})
                for metric in METRICS:
                    a = {s: r["stats"][metric] for s, r in mine.items() if r["stats"][metric] is not None}
                    b = {s: r["stats"][metric] for s, r in paper.items() if r["stats"][metric] is not None}
                    if set(a) & set(b):
                        entry.setdefault(f"{other}-paper", {})[metric] = paired_difference(a, b).to_dict()
    return effects


def summarise(collected: Mapping[str, Any], config: StudyConfig) -> dict[str, Any]:
    """protocol -> task -> :func:`~simulations.training.stats.summarise_protocol` of the collected runs."""
    from .stats import summarise_protocol

    out: dict[str, Any] = {}
    for protocol in config.protocols:
        for task in config.tasks:
            runs = collected["runs"].get(task.name, {}).get(protocol, {})
            per_seed = {o: {s: r["stats"] for s, r in seeds.items()} for o, seeds in runs.items()}
            out.setdefault(protocol, {})[task.name] = summarise_protocol(per_seed)
    return out


def write_report(config: StudyConfig, folder: str | Path | None = None, command: str | None = None) -> dict[str, Path]:
    """Collect what ``config`` has trained so far and write ``verdict.md``, ``summary.json`` and the figures.

    ``command`` (the command line that ran the study) is stored in ``summary.json``.

    Returns
    -------
    dict
        name -> path written.
    """
    import json

    from . import verdict_plots as vp
    from .records import atomic_write
    from .tuning import collect, compute_time, progress

    out = Path(folder) if folder is not None else config.out
    out.mkdir(parents=True, exist_ok=True)
    collected = collect(config)
    summaries = summarise(collected, config)
    tasks = [t.name for t in config.tasks]
    compute = compute_time(config)
    header = _report_header(config, compute)
    text = vp.markdown_report(summaries, collected, tasks, config.optimizers, config.protocols, header)
    text += _effects_markdown(protocol_effects(collected, config))
    paths = {"markdown": out / "verdict.md", "json": out / "summary.json"}
    atomic_write(paths["markdown"], text.encode())
    record = {
        "command": command,
        "config": _config_record(config),
        "compute": compute,
        "progress": progress(config),
        "best": collected["best"],
        "hyperparameters": _hyperparameters(collected),
        "summaries": summaries,
        "effects": protocol_effects(collected, config),
        "trials": collected["trials"],
    }
    atomic_write(paths["json"], (json.dumps(record, indent=1, default=str) + "\n").encode())
    paths["curves_error"] = vp.save(
        vp.protocol_curves_figure(collected["runs"], tasks, config.protocols), out / "curves_error.png"
    )
    paths["curves_loss"] = vp.save(
        vp.protocol_curves_figure(collected["runs"], tasks, config.protocols, key="test_loss"), out / "curves_loss.png"
    )
    if "tuned" in config.protocols:
        paths["sensitivity"] = vp.save(vp.sensitivity_figure(collected["trials"], tasks), out / "sensitivity.png")
        paths["adabayes_map"] = vp.save(vp.adabayes_map_figure(collected["trials"], tasks), out / "adabayes_map.png")
    return paths


def _hyperparameters(collected: Mapping[str, Any]) -> dict[str, Any]:
    """protocol -> task -> optimiser -> the hyperparameters its runs used."""
    out: dict[str, Any] = {}
    for task, protocols in collected["runs"].items():
        for protocol, opts in protocols.items():
            for opt, seeds in opts.items():
                if seeds:
                    out.setdefault(protocol, {}).setdefault(task, {})[opt] = next(iter(seeds.values()))["hparams"]
    return out


def _config_record(config: StudyConfig) -> dict[str, Any]:
    return {
        "protocols": list(config.protocols),
        "tasks": [t.to_dict() for t in config.tasks],
        "optimizers": list(config.optimizers),
        "seeds": list(config.seeds),
        "trials": config.trials,
        "tuning_seed": config.tuning_seed,
        "storage": config.storage_url(),
        "quick": config.quick,
    }


def _report_header(config: StudyConfig, compute: Mapping[str, float]) -> str:
    lines = ["# Optimiser verdict" + (" (quick variant)" if config.quick else ""), ""]
    lines.append("| task | data | network | batch | epochs |")
    lines.append("|---|---|---|---|---|")
    for t in config.tasks:
        lines.append(f"| {t.name} | {t.title} | {t.model} width {t.width} | {t.batch_size} | {t.epochs} |")
    lines += [
        "",
        f"Final seeds {', '.join(map(str, config.seeds))} (every protocol); tuning: {config.trials} trials per "
        f"optimiser (seed {config.tuning_seed}). Compute so far: {int(compute['trials'])} runs, "
        f"{compute['wall_s']:.0f} s of run wall time (summed over runs), {compute['cpu_s']:.0f} CPU-seconds"
        + (
            f" ({int(compute['trials_without_cpu'])} runs recorded without CPU time)"
            if compute["trials_without_cpu"]
            else ""
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def _effects_markdown(effects: Mapping[str, Any]) -> str:
    from .catalog import DISPLAY

    lines = [
        "",
        "## Protocol effects (same optimiser, same seeds)\n",
        "| task | optimizer | comparison | Δ error (pp) [95 % CI] | better in | Δ loss [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for task, opts in effects.items():
        for opt, comparisons in opts.items():
            for name, metrics in comparisons.items():
                e, lo = metrics.get("test_error_pct"), metrics.get("test_loss")
                if not e:
                    continue
                err = _interval_text(e["interval"], 2)
                loss = _interval_text(lo["interval"], 4) if lo else "–"
                lines.append(
                    f"| {task} | {DISPLAY[opt]} | {name.replace('-', ' − ')} | {err} | "
                    f"{e['a_better']}/{len(e['seeds'])} | {loss} |"
                )
    return "\n".join(lines) + "\n"


def _interval_text(interval: Mapping[str, Any], digits: int) -> str:
    if interval.get("low") is None:
        return f"{interval['mean']:+.{digits}f}"
    return f"{interval['mean']:+.{digits}f} [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"
