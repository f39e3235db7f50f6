"""Optuna studies of the verdict: equal-budget tuning and the fixed runs, resumable, shared by several workers.

Every training run of ``adabayes table --protocol ...`` is an Optuna trial in one storage (an embedded SQLite
file ``OUT/study.db`` by default, or any Optuna RDB URL given as ``--storage``), in two kinds of study per
(task, optimiser):

``tune/TASK/OPT``
    The tuning study: ``trials`` trials (the same budget for every optimiser) of a seeded TPE sampler over the
    optimiser's own main hyperparameters (:data:`SPACES`, log-uniform). Trial 0 is the paper's configuration
    (enqueued), the next ones are random (:data:`STARTUP` in all), the rest TPE with the constant liar, so that
    parallel workers do not propose the same point. Every trial trains with the tuning seed and is scored by its
    validation loss at the validation-selected epoch; the test split is never read for it.
``runs/TASK/OPT``
    Fixed runs, one trial per :class:`~simulations.training.tasks.RunSpec` (paper and matched protocols, and the
    tuned protocol's final seeds with the best tuning trial's hyperparameters). A spec is identified by its key,
    so the matched protocol's SGD/Adam/AMSGrad runs *are* the paper's.

**Resuming and sharing.** Each running trial records its worker (``host:pid``) and a heartbeat after every
epoch. A trial whose worker is gone (same host, pid not alive) or silent for ``grace`` seconds is *stale*:
the next worker that looks marks it failed and enqueues its configuration again, so a killed sweep resumes
where it stopped and redoes only the interrupted trial. Completed trials are never repeated: a tuning study
stops at ``trials`` trials counted over complete and live ones (a worker that finds itself beyond the budget
gives its trial up before training), and a fixed spec runs again only if no live or complete trial holds it.
Ctrl-C fails the running trial and enqueues it again, like a kill.

The samplers are seeded by (tuning seed, study, trials present when the worker joins, worker index), so one
uninterrupted worker repeats its study exactly, and two workers never share a random stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .stats import run_statistics
from .tasks import RunSpec, Task

if TYPE_CHECKING:
    import optuna

    from .protocols import StudyConfig

__all__ = [
    "SPACES",
    "STARTUP",
    "Evaluate",
    "check_space",
    "collect",
    "compute_time",
    "default_evaluate",
    "fail_stale",
    "progress",
    "run_worker",
    "run_workers",
    "study_name",
    "suggest",
]

#: log-uniform search ranges per optimiser; weight_decay: coupled L2 (sgd, adam, amsgrad), λ per step (others)
SPACES: dict[str, dict[str, tuple[float, float]]] = {
    "sgd": {"lr": (1e-3, 1.0), "weight_decay": (1e-6, 1e-2)},
    "adam": {"lr": (1e-4, 2e-2), "weight_decay": (1e-6, 1e-2)},
    "amsgrad": {"lr": (1e-4, 2e-2), "weight_decay": (1e-6, 1e-2)},
    "adamw": {"lr": (1e-4, 2e-2), "weight_decay": (1e-7, 1e-3)},
    "adabayes": {"lr": (1e-4, 2e-2), "lr_sgd": (0.03, 10.0), "weight_decay": (1e-7, 1e-3)},
    "adabayes_fp": {"lr": (1e-4, 2e-2), "lr_sgd": (0.03, 10.0), "weight_decay": (1e-7, 1e-3)},
}
#: trials before TPE takes over: the paper's configuration, then random ones
STARTUP = 6
#: seconds without a heartbeat after which another machine's running trial counts as abandoned
GRACE_S = 900.0

#: evaluate(spec, on_epoch) -> per-epoch rows (see simulations.training.tasks.run_task)
Evaluate = Callable[[RunSpec, Callable[[dict[str, Any]], None]], list[dict[str, Any]]]

_HOST = socket.gethostname()


def check_space(optimizer: str, batch_size: int) -> None:
    """Check that every point of ``SPACES[optimizer]`` builds: AdaBayes's Eq. 17b needs η² < 2 η_SGD / B."""
    space = SPACES[optimizer]
    if optimizer == "adabayes":
        eta_max, sgd_min = space["lr"][1], space["lr_sgd"][0]
        if not eta_max**2 < 2.0 * sgd_min / batch_size:
            raise ValueError(
                f"batch_size must be < 2 lr_sgd_min / lr_max**2 = {2.0 * sgd_min / eta_max**2:.0f} for AdaBayes's "
                f"search space (Eq. 17b needs lr**2 < 2 lr_sgd / batch_size), got {batch_size}"
            )


def suggest(trial: optuna.Trial, optimizer: str) -> dict[str, float]:
    """Hyperparameters of ``optimizer`` drawn by ``trial`` from :data:`SPACES` (log scale)."""
    return {name: trial.suggest_float(name, lo, hi, log=True) for name, (lo, hi) in SPACES[optimizer].items()}


def _digest(obj: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def study_name(kind: str, task: Task, optimizer: str, tuning_seed: int | None = None) -> str:
    """``tune/TASK-HASH/OPT`` or ``runs/TASK-HASH/OPT``; the hash covers the task (and the search space)."""
    what: dict[str, Any] = {"task": task.to_dict()}
    if kind == "tune":
        what |= {"space": SPACES[optimizer], "startup": STARTUP, "tuning_seed": tuning_seed}
    return f"{kind}/{task.name}-{_digest(what)}/{optimizer}"


# ----------------------------------------------------------------------------------------------- storage


_STORAGES: dict[str, Any] = {}
_STUDIES: dict[tuple[str, str], Any] = {}


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    """Write-ahead log (readers never block the writer) and commits without a full fsync each: a killed
    process loses nothing that was committed; only a power cut could lose the last commits."""
    del record
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _storage(url: str) -> Any:
    """One RDB storage per URL and process (SQLite waits up to 10 min for a lock instead of failing)."""

    if url not in _STORAGES:
        kwargs = None
        if url.startswith("sqlite"):
            import sqlalchemy

            kwargs = {"connect_args": {"timeout": 600}}
            engine = sqlalchemy.create_engine(url, **kwargs)
            sqlalchemy.event.listen(engine, "connect", _sqlite_pragmas)
            with engine.connect():  # WAL is a property of the file: set before Optuna opens it
                pass
            engine.dispose()
        storage = _create_storage(url, kwargs)
        if url.startswith("sqlite"):
            import sqlalchemy

            sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
            storage.engine.dispose()  # connections opened from now on get the pragmas
        _STORAGES[url] = storage
    return _STORAGES[url]


def _create_storage(url: str, kwargs: dict[str, Any] | None, attempts: int = 20) -> Any:
    """``RDBStorage(url)``; retried while another process is creating the same schema (first use of a database)."""
    import optuna
    import sqlalchemy

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + 0.1 * attempt)
    raise AssertionError("unreachable")


def _study(url: str, name: str, sampler: Any = None) -> optuna.Study:
    """The study ``name`` (created if missing); without a sampler, one cached handle per process."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler is None and (url, name) in _STUDIES:
        return _STUDIES[url, name]
    study = optuna.create_study(
        storage=_storage(url), study_name=name, direction="minimize", load_if_exists=True, sampler=sampler
    )
    if sampler is None:
        _STUDIES[url, name] = study
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(trial: optuna.trial.FrozenTrial, now: float, grace: float) -> bool:
    owner = str(trial.user_attrs.get("owner", ""))
    host, _, pid = owner.rpartition(":")
    if host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
        return True
    start = trial.datetime_start.timestamp() if trial.datetime_start else now
    return now - float(trial.user_attrs.get("beat", start)) > grace


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Enqueue the configuration of a trial that did not finish, so that it is trained again."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k in ("spec", "spec_key", "paper")}
    study.enqueue_trial(dict(trial.params), user_attrs={**attrs, "retry_of": trial.number})


def _fail(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Mark a running trial failed with ``reason``; False when another process finished it first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "failed_as", reason)
        return bool(storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def fail_stale(study: optuna.Study, grace: float = GRACE_S) -> int:
    """Fail and re-enqueue the stale running trials of ``study``; returns how many."""
    from optuna.trial import TrialState

    now = time.time()
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_stale(trial, now, grace) and _fail(study, trial._trial_id, "stale"):
            _requeue(study, trial)
            count += 1
    return count


# ------------------------------------------------------------------------------------------- one trial


class _Heartbeat:
    """Marks a trial as owned by this process and records a heartbeat at most every ``every`` seconds."""

    def __init__(self, study: optuna.Study, trial_id: int, every: float = 60.0) -> None:
        self.storage, self.trial_id, self.every = study._storage, trial_id, every
        self.storage.set_trial_user_attr(trial_id, "owner", f"{_HOST}:{os.getpid()}")
        self.last = -math.inf
        self.beat()

    def beat(self, row: dict[str, Any] | None = None) -> None:
        """Called after every epoch (``row`` unused); writes only when ``every`` seconds have passed."""
        del row
        now = time.time()
        if now - self.last >= self.every:
            self.storage.set_trial_user_attr(self.trial_id, "beat", now)
            self.last = now


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _run_trial(study: optuna.Study, trial: optuna.Trial, spec: RunSpec, evaluate: Evaluate) -> None:
    """Train ``spec`` as ``trial``: record the history and statistics, tell the validation loss.

    An exception fails the trial (recorded); Ctrl-C fails it, enqueues it again and propagates.
    """
    beat = _Heartbeat(study, trial._trial_id)
    try:
        history = evaluate(spec, beat.beat)
    except KeyboardInterrupt:
        if _fail(study, trial._trial_id, "interrupted"):
            _requeue(study, study._storage.get_trial(trial._trial_id))
        raise
    except Exception as exc:  # a configuration that cannot train is a result, not a crash of the sweep
        _fail(study, trial._trial_id, f"error: {type(exc).__name__}: {exc}")
        print(f"tuning: {spec.optimizer} {spec.hp()} seed {spec.seed} failed: {exc}", file=sys.stderr)
        return
    stats = run_statistics(history)
    trial.set_user_attr("history", [{k: _clean(v) for k, v in row.items()} for row in history])
    trial.set_user_attr("stats", {k: _clean(v) for k, v in stats.items()})
    study.tell(trial, stats["val_loss"])


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    return _finite(value) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------- the units


@dataclass
class _Unit:
    """One study a worker advances a trial at a time; ``step`` returns "done", "busy" or "ran"."""

    config: StudyConfig
    task: Task
    optimizer: str
    worker: int
    grace: float

    def step(self, evaluate: Evaluate) -> str:
        """Advance by at most one trial."""
        raise NotImplementedError


class TuneUnit(_Unit):
    """The tuning study of one (task, optimiser)."""

    _handle: optuna.Study | None = None
    _done: bool = False

    def name(self) -> str:
        return study_name("tune", self.task, self.optimizer, self.config.tuning_seed)

    def study(self) -> optuna.Study:
        if self._handle is None:
            self._handle = self._open()
        return self._handle

    def _open(self) -> optuna.Study:
        """The study with this worker's sampler; a new study starts with the paper's configuration."""
        import optuna

        probe = _study(self.config.storage_url(), self.name())
        seed = int(_digest([self.config.tuning_seed, self.name(), len(probe.trials), self.worker]), 16) % 2**31
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(STARTUP, self.config.trials), multivariate=True
        )
        study = _study(self.config.storage_url(), self.name(), sampler)
        if not probe.trials:
            from .protocols import fixed_hparams

            paper = fixed_hparams("paper", self.optimizer)
            params = {k: paper[k] for k in SPACES[self.optimizer]}
            study.enqueue_trial(params, user_attrs={"paper": True}, skip_if_exists=True)
        return study

    def step(self, evaluate: Evaluate) -> str:
        from optuna.trial import TrialState

        if self._done:
            return "done"
        study = self.study()
        fail_stale(study, self.grace)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        complete = states.count(TrialState.COMPLETE)
        if complete >= self.config.trials:
            self._done = True
            return "done"
        if complete + states.count(TrialState.RUNNING) >= self.config.trials:
            return "busy"
        trial = study.ask()  # an enqueued (paper or retried) configuration first, else the sampler's
        if self._beyond_budget(study, trial.number):
            _fail(study, trial._trial_id, "surplus")
            return "busy"
        hp = suggest(trial, self.optimizer)
        _run_trial(study, trial, RunSpec.make(self.task, self.optimizer, hp, self.config.tuning_seed), evaluate)
        return "ran"

    def _beyond_budget(self, study: optuna.Study, number: int) -> bool:
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.RUNNING)
        ahead = [t.number for t in study.get_trials(deepcopy=False, states=states) if t.number < number]
        return len(ahead) >= self.config.trials

    def best(self) -> dict[str, float]:
        """Hyperparameters of the complete trial with the lowest validation loss (first on ties)."""
        return _best_params(_complete(self.config.storage_url(), self.name()))


def _best_params(trials: Sequence[optuna.trial.FrozenTrial]) -> dict[str, float]:
    best = min(trials, key=lambda t: (t.value if t.value is not None else math.inf, t.number))
    return dict(best.params)


class FixedUnit(_Unit):
    """Fixed runs of one (task, optimiser): the given specs, each trained once.

    The study is shared by the paper, matched and final units of the (task, optimiser): a worker runs whatever
    spec it is handed by ``ask()``, so no unit's queue is wasted on another's.
    """

    specs: Sequence[RunSpec] = ()
    _handle: optuna.Study | None = None
    _done: bool = False

    def study(self) -> optuna.Study:
        if self._handle is None:
            self._handle = _study(self.config.storage_url(), study_name("runs", self.task, self.optimizer))
        return self._handle

    def _status(self) -> dict[str, str]:
        """Spec key -> "done" (complete, or failed by an error), "running", "waiting" or "missing"."""
        from optuna.trial import TrialState

        rank = {"missing": 0, "waiting": 1, "running": 2, "done": 3}
        status = {s.key(): "missing" for s in self.specs}
        for t in self.study().get_trials(deepcopy=False):
            key = str(t.user_attrs.get("spec_key"))
            if key not in status:
                continue
            errored = t.state == TrialState.FAIL and str(t.user_attrs.get("failed_as", "")).startswith("error")
            state = {TrialState.COMPLETE: "done", TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
            now = "done" if errored else state.get(t.state, "missing")
            if rank[now] > rank[status[key]]:
                status[key] = now
        return status

    def step(self, evaluate: Evaluate) -> str:
        if self._done:
            return "done"
        study = self.study()
        fail_stale(study, self.grace)
        status = self._status()
        for spec in self.specs:
            if status[spec.key()] == "missing":
                study.enqueue_trial({}, user_attrs={"spec": spec.to_dict(), "spec_key": spec.key()})
                status[spec.key()] = "waiting"
        if all(v == "done" for v in status.values()):
            self._done = True
            return "done"
        if "waiting" not in status.values():
            return "busy"
        trial = study.ask()
        record = trial.user_attrs.get("spec")
        if record is None or self._taken(str(trial.user_attrs.get("spec_key")), trial.number):
            _fail(study, trial._trial_id, "surplus")  # an empty trial (nothing was waiting) or a duplicate
            return "busy"
        _run_trial(study, trial, RunSpec.from_dict(record), evaluate)
        return "ran"

    def _taken(self, key: str, number: int) -> bool:
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.RUNNING)
        return any(
            t.user_attrs.get("spec_key") == key and t.number < number
            for t in self.study().get_trials(deepcopy=False, states=states)
        )


class FinalUnit(FixedUnit):
    """The tuned protocol's final seeds of one (task, optimiser), once its tuning study is complete."""

    tune: TuneUnit | None = None

    def step(self, evaluate: Evaluate) -> str:
        assert self.tune is not None
        status = self.tune.step(evaluate)
        if status != "done":
            return status
        if not self.specs:
            hp = self.tune.best()
            self.specs = [RunSpec.make(self.task, self.optimizer, hp, s) for s in self.config.seeds]
        return super().step(evaluate)


def _units(config: StudyConfig, worker: int, grace: float) -> list[_Unit]:
    from .protocols import fixed_specs

    units: list[_Unit] = []
    for task in config.tasks:
        for opt in config.optimizers:
            for protocol in config.protocols:
                if protocol == "tuned":
                    check_space(opt, task.batch_size)
                    final = FinalUnit(config, task, opt, worker, grace)
                    final.tune = TuneUnit(config, task, opt, worker, grace)
                    units.append(final)
                else:
                    fixed = FixedUnit(config, task, opt, worker, grace)
                    fixed.specs = fixed_specs(config, protocol, task, opt)
                    units.append(fixed)
    return units


def run_worker(
    config: StudyConfig,
    evaluate: Evaluate,
    *,
    worker: int = 0,
    grace: float = GRACE_S,
    poll_s: float = 2.0,
    log: Callable[[str], None] | None = None,
) -> int:
    """Advance every study of ``config`` until all are complete; returns the number of trials trained here.

    Units are visited in order (task, optimiser, protocol) and each visit trains at most one trial, so two
    workers spread over the same studies. When every remaining trial is running elsewhere the worker waits.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    units = _units(config, worker, grace)
    trained = 0
    while True:
        statuses = []
        for unit in units:
            status = unit.step(evaluate)
            statuses.append(status)
            if status == "ran":
                trained += 1
                break
        if all(s == "done" for s in statuses) and len(statuses) == len(units):
            return trained
        if "ran" not in statuses:
            if log is not None:
                log(f"worker {worker}: waiting for trials running elsewhere")
            time.sleep(poll_s)


def default_evaluate(device: str = "cpu") -> Evaluate:
    """The evaluator of real runs: :func:`simulations.training.tasks.run_task` on ``device``."""
    from .tasks import run_task

    def evaluate(spec: RunSpec, on_epoch: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
        return run_task(spec, on_epoch=on_epoch, device=device)

    return evaluate


def _worker_main(config: StudyConfig, worker: int, device: str, threads: int | None) -> int:
    from .train_cli import set_threads

    set_threads(threads)
    with contextlib.suppress(KeyboardInterrupt):
        return run_worker(config, default_evaluate(device), worker=worker)
    return -1


def run_workers(config: StudyConfig, jobs: int, device: str = "cpu", threads: int | None = 1) -> list[int]:
    """Run ``jobs`` local worker processes (spawned) on ``config``; returns each one's trained-trial count."""
    if jobs == 1:
        return [_worker_main(config, 0, device, threads)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    config.out.mkdir(parents=True, exist_ok=True)
    _study(config.storage_url(), "_init")  # create the schema once, before the workers race for it
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_worker_main, config, i, device, threads) for i in range(jobs)]
        return [f.result() for f in futures]


# ------------------------------------------------------------------------------------------------ results


def _complete(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return _study(url, name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def collect(config: StudyConfig) -> dict[str, Any]:
    """Everything trained for ``config``, as plain data.

    Returns
    -------
    dict
        ``runs[task][protocol][optimizer][seed]`` -> {"stats", "history", "hparams"}; ``trials[task][optimizer]``
        -> list of tuning trials {"number", "params", "value", "stats", "paper"}; ``best[task][optimizer]`` ->
        the tuned hyperparameters. Missing entries mean not trained (yet).
    """
    from .protocols import fixed_specs

    url = config.storage_url()
    out: dict[str, Any] = {"runs": {}, "trials": {}, "best": {}}
    for task in config.tasks:
        runs = out["runs"].setdefault(task.name, {})
        for opt in config.optimizers:
            by_key = {str(t.user_attrs.get("spec_key")): t for t in _complete(url, study_name("runs", task, opt))}
            specs: dict[str, list[RunSpec]] = {}
            for protocol in config.protocols:
                if protocol != "tuned":
                    specs[protocol] = fixed_specs(config, protocol, task, opt)
            if "tuned" in config.protocols:
                tuning = _complete(url, study_name("tune", task, opt, config.tuning_seed))
                out["trials"].setdefault(task.name, {})[opt] = [_trial_record(t) for t in tuning]
                if len(tuning) >= config.trials:
                    best = _best_params(tuning)
                    out["best"].setdefault(task.name, {})[opt] = best
                    specs["tuned"] = [RunSpec.make(task, opt, best, s) for s in config.seeds]
            for protocol, protocol_specs in specs.items():
                found = runs.setdefault(protocol, {}).setdefault(opt, {})
                for spec in protocol_specs:
                    if spec.key() in by_key:
                        t = by_key[spec.key()]
                        found[spec.seed] = {  # statistics recomputed from the stored rows (today's definitions)
                            "stats": run_statistics(t.user_attrs["history"], task.epochs),
                            "history": t.user_attrs["history"],
                            "hparams": spec.hp(),
                        }
    return out


def _trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number,
        "params": dict(t.params),
        "value": _clean(t.value) if t.value is not None else None,
        "stats": t.user_attrs.get("stats", {}),
        "paper": bool(t.user_attrs.get("paper", False)),
    }


def progress(config: StudyConfig) -> dict[str, Mapping[str, int]]:
    """Complete trials per study name (for logs and the resume report)."""
    url = config.storage_url()
    report: dict[str, Mapping[str, int]] = {}
    for task in config.tasks:
        for opt in config.optimizers:
            names = [study_name("runs", task, opt)]
            if "tuned" in config.protocols:
                names.append(study_name("tune", task, opt, config.tuning_seed))
            report[f"{task.name}/{opt}"] = {n.split("/")[0]: len(_complete(url, n)) for n in names}
    return report


def compute_time(config: StudyConfig) -> dict[str, float]:
    """Compute spent on ``config``'s studies: trials, wall seconds (start to finish of each trial, summed) and
    CPU seconds (from the rows' ``cpu_s``; trials recorded without it are counted in ``trials_without_cpu``)."""
    from optuna.trial import TrialState

    url = config.storage_url()
    totals = {"trials": 0.0, "wall_s": 0.0, "cpu_s": 0.0, "trials_without_cpu": 0.0}
    names = {study_name("runs", t, o) for t in config.tasks for o in config.optimizers}
    if "tuned" in config.protocols:
        names |= {study_name("tune", t, o, config.tuning_seed) for t in config.tasks for o in config.optimizers}
    for name in sorted(names):
        for trial in _study(url, name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            totals["trials"] += 1
            if trial.datetime_start and trial.datetime_complete:
                totals["wall_s"] += (trial.datetime_complete - trial.datetime_start).total_seconds()
            rows = trial.user_attrs.get("history") or [{}]
            cpu = rows[-1].get("cpu_s")
            if cpu is None:
                totals["trials_without_cpu"] += 1
            else:
                totals["cpu_s"] += float(cpu)
    return totals
