"""The machinery behind the filter optimisers of :mod:`filtering.torch_adapter` (private; imports torch).

:class:`BayesFilterOptimizer` is a ``torch.optim.Optimizer`` that validates a group once per step (cached), creates
each missing state entry lazily, hands the tensors to :func:`filtering.torch_functional.dispatch`, reads σ²_post and
⟨g²⟩ out (:class:`Readout`) and checks and upgrades state dicts. A subclass declares its kernel, state and group keys
and answers four questions (constants, state keys, initial values, σ²_post); it never sees the other subclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from . import torch_functional as F
from ._torch_kernels import ABConstants, ABTensors, FPConstants, FPTensors, KernelCache
from .torch_functional import Hyperparameters
from .validation import check_positive

__all__ = ["BayesFilterOptimizer", "Readout"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_COMPLEX = (torch.complex64, torch.complex128)


def _state_dtype(p: Tensor) -> torch.dtype:
    """fp32 for fp16 / bf16 parameters, the parameter's own dtype otherwise (complex stays complex)."""
    return torch.float32 if p.dtype in _LOW_PRECISION else p.dtype


def _real(t: Tensor) -> Tensor:
    """A complex tensor as real pairs (a view), a real one as it is."""
    return torch.view_as_real(t) if t.is_complex() else t


def entries(t: Tensor, index: Tensor | None) -> Tensor:
    """``t`` (as real pairs), all of it or its flat entries ``index``."""
    r = _real(t)
    return r if index is None else r.reshape(-1)[index]


def _filled(p: Tensor, index: Tensor | None, value: float) -> Tensor:
    """A new tensor shaped like ``entries(state tensor of p, index)``, filled with ``value``."""
    dtype = _state_dtype(p)
    shape = tuple(index.shape) if index is not None else tuple(_real(p).shape)
    return torch.full(shape, value, dtype=dtype.to_real() if dtype.is_complex else dtype, device=p.device)


def _times_scale(c: float, x: Tensor) -> Tensor:
    """``c · x`` with ``0 · inf = 0``: at lr = 0 the learning rate is 0 even where σ²_post = inf (lr_sgd = inf)."""
    return x * c if c != 0.0 else torch.zeros_like(x)


def _step_count(state: dict[str, Any]) -> int:
    """Steps taken (0 before the first); ``state["step"]`` is a tensor, or an int in state dicts saved before."""
    return int(state["step"]) if "step" in state else 0


class Readout(NamedTuple):
    """What :meth:`AdaBayes.readout` returns for one parameter, in the paper's summed-gradient units.

    Attributes
    ----------
    var_post : Tensor, shape ``p.shape`` (``p.shape + (2,)`` for complex ``p``) or ``index.shape``, state dtype
        The learning rate multiplying ⟨g⟩ in Eq. 19b: ``c σ²_post`` with ``c = lr / eta`` (σ²_post itself at
        constant lr). Before the first step ``c σ²``. 0 at ``lr = 0``, also where σ²_post = inf.
    g2 : Tensor or None
        ⟨g²⟩ = ``B² v / (1 - β2^t)`` (Eq. 4), zeros before the first step; ``None`` when the group keeps no ⟨g²⟩ EMA
        (``AdaBayes(track_g2=False)``).
    step : int
        Steps taken.
    lr : float
        The group's current lr (η·c): the x-axis of Fig. 3 is ``lr / sqrt(g2)``.
    sigma2 : float
        ``c σ²`` (0 at ``lr = 0``): the SGD line of Fig. 3 under the current schedule.
    """

    var_post: Tensor
    g2: Tensor | None
    step: int
    lr: float
    sigma2: float


class _GroupSetup(NamedTuple):
    """A validated group: its hyperparameters, the kernel's constants and the initial value of each state tensor."""

    hp: Hyperparameters
    const: ABConstants | FPConstants
    fills: dict[str, float]


_PLAIN_TYPES = frozenset({float, int, bool, str, type(None)})


def _plain(value: object) -> bool:
    """Whether ``value`` is an immutable plain value whose repr identifies it (no tensor, no array)."""
    if type(value) is tuple:
        return all(type(v) in _PLAIN_TYPES for v in value)
    return type(value) in _PLAIN_TYPES


def _cache_key(group: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """A key for the validation cache (``repr`` tells ``True`` from ``1``), or None if a value is not plain."""
    values = [group.get(k) for k in keys]
    return repr(values) if all(_plain(v) for v in values) else None


IMPLEMENTATION_DEFAULTS: dict[str, Any] = {"foreach": None, "fused": None, "maximize": False, "capturable": False}


class BayesFilterOptimizer(torch.optim.Optimizer):
    """Machinery shared by the filter optimisers: validation, lazy state, the call of the functional step, read-out
    and state-dict checks. A subclass declares its kernel, its state and its group keys (class attributes below)
    and answers four questions (:meth:`_constants`, :meth:`_state_keys`, :meth:`_state_fills`, :meth:`_var_post`)."""

    _kernel: ClassVar[str]  # key of filtering.torch_functional.KernelPath
    _tensors_type: ClassVar[type[ABTensors] | type[FPTensors]]
    _constants_type: ClassVar[type[ABConstants] | type[FPConstants]]
    _group_keys: ClassVar[frozenset[str]]  # hyperparameters every state dict of the class carries
    _format_defaults: ClassVar[dict[str, Any]]  # group keys added later, with the value older state dicts imply
    _state_key_options: ClassVar[frozenset[str]]  # every per-parameter state key the class may keep
    _family: ClassVar[dict[str, type[BayesFilterOptimizer]]] = {}  # every subclass by name (state-dict hints)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BayesFilterOptimizer._family[cls.__name__] = cls

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        check_positive("lr", defaults["lr"])
        self._setups: dict[str, _GroupSetup] = {}
        self._validate_group(dict(defaults, eta=defaults["lr"]))
        super().__init__(params, defaults)
        self._cache = KernelCache()

    # ---------------------------------------------------------------------------------------------------------
    # what a subclass answers

    def _constants(self, group: dict[str, Any], hp: Hyperparameters) -> ABConstants | FPConstants:
        """Validate the subclass's own group entries and return the kernel's constants."""
        raise NotImplementedError

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The state tensors (besides ``step``) a group's parameters keep, in the order of the tensors' fields."""
        raise NotImplementedError

    def _state_fills(self, group: dict[str, Any], hp: Hyperparameters) -> dict[str, float]:
        """Initial value of each state tensor of :meth:`_state_keys`."""
        raise NotImplementedError

    def _var_post(self, hp: Hyperparameters, state: dict[str, Any], g2: Tensor | None, index: Tensor | None) -> Tensor:
        """σ²_post (before the scheduler's factor c) of a parameter with complete state."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------------
    # hyperparameters

    def _hyperparameters(self, group: dict[str, Any]) -> Hyperparameters:
        return F.hyperparameters(
            lr=group["lr"],
            eta=group["eta"],
            lr_sgd=group["lr_sgd"],
            batch_size=group["batch_size"],
            betas=group["betas"],
            weight_decay=group["weight_decay"],
        )

    def _validate_group(self, group: dict[str, Any]) -> _GroupSetup:
        """Raise ValueError (TypeError for a non-number) naming the first bad entry; return what a step needs.

        Called at construction, for every added group, at every step and read-out, so a value made invalid later
        (e.g. by a scheduler) is caught too. Results for plain Python values are remembered per optimiser (a few
        µs instead of ~0.3 ms of checks per group and step).
        """
        key = _cache_key(group, self._validated_keys())
        setup = self._setups.get(key) if key is not None else None
        if setup is None:
            hp = self._hyperparameters(group)
            const = self._constants(group, hp)
            flags = ("foreach", "fused", "capturable", "maximize")
            F.check_flags(**{name: group[name] for name in flags})
            setup = _GroupSetup(hp, const, self._state_fills(group, hp))
            if key is not None:
                if len(self._setups) >= 64:  # e.g. a scheduler writing a new lr every step
                    self._setups.clear()
                self._setups[key] = setup
        return setup

    def _validated_keys(self) -> tuple[str, ...]:
        return tuple(sorted(self._group_keys | self._format_defaults.keys() | {"eta"}))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; its ``eta`` (η of the filter) defaults to its ``lr``. Validates all entries."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("eta", group["lr"])
        try:
            self._validate_group(group)
            for p in group["params"]:
                if not (p.is_floating_point() or p.dtype in _COMPLEX):
                    raise ValueError(f"params must be floating-point or complex64/128 tensors, got dtype {p.dtype}")
        except ValueError:
            self.param_groups.pop()
            raise

    # ---------------------------------------------------------------------------------------------------------
    # state

    def _init_state(self, p: Tensor, fills: dict[str, float], capturable: bool) -> dict[str, Any]:
        """Create every missing state entry of ``p`` (so wrappers that add their own keys first still work)."""
        state = self.state[p]
        step = state.get("step")
        device = p.device if capturable else torch.device("cpu")
        if not torch.is_tensor(step):  # missing, or an int from a state dict saved before steps were tensors
            state["step"] = torch.tensor(float(step or 0), dtype=torch.float32, device=device)
        elif capturable and step.device != p.device:
            state["step"] = step.to(p.device)
        missing = [key for key in fills if key not in state]
        if missing and _step_count(state) > 0:
            raise ValueError(
                f"the state of a parameter lacks {missing} after {_step_count(state)} steps and cannot be rebuilt: "
                "an option that adds state must be set before the first step"
            )
        for key in missing:
            fill = complex(fills[key], fills[key]) if p.is_complex() else fills[key]
            state[key] = torch.full_like(p, fill, dtype=_state_dtype(p), memory_format=torch.preserve_format)
        return state

    def _init_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], steps: list[Tensor], *lists: list
    ) -> tuple:
        """Fill the lists with the group's parameters that have a gradient, their gradients, steps and state
        tensors (in :meth:`_state_keys` order); return the validated constants as a plain tuple.

        ``torch.compile`` runs this method eagerly (not traced), so validation and state creation stay out of the
        graph, as for torch's own optimisers.
        """
        const, fills = self._validate_group(group)[1:]
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self._init_state(p, fills, group["capturable"])
            params.append(p)
            grads.append(p.grad)
            steps.append(state["step"])
            for lst, key in zip(lists, fills, strict=True):
                lst.append(state[key])
        return tuple(const)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step for every parameter with a gradient; returns ``closure()`` if given.

        Raises
        ------
        RuntimeError
            For a sparse gradient.
        ValueError
            For a hyperparameter made invalid after construction (e.g. ``group["lr"] < 0``).
        """
        self._accelerator_graph_capture_health_check()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            steps: list[Tensor] = []
            keys = self._state_keys(group)
            lists: list[list[Tensor]] = [[] for _ in keys]
            const = self._constants_type(*self._init_group(group, params, grads, steps, *lists))
            if not params:
                continue
            fields: dict[str, Any] = dict.fromkeys(self._tensors_type._fields)
            fields.update(params=params, grads=grads, **{f"{key}s": lst for key, lst in zip(keys, lists, strict=True)})
            F.dispatch(
                self._kernel,
                self._tensors_type(**fields),
                steps,
                const,
                maximize=group["maximize"],
                foreach=group["foreach"],
                fused=group["fused"],
                capturable=group["capturable"],
                cache=self._cache,
            )
        return loss

    # ---------------------------------------------------------------------------------------------------------
    # read-out

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise ValueError("p is not a parameter of this optimizer")

    @torch.no_grad()
    def readout(self, p: Tensor, index: Tensor | None = None) -> Readout:
        """σ²_post, ⟨g²⟩ and the group's lr and σ² for parameter ``p``, in the paper's units (see :class:`Readout`).

        Parameters
        ----------
        p : Tensor
            A parameter of this optimiser.
        index : Tensor of int64, optional
            Flat indices into ``p`` (into its real view for complex ``p``): read only those entries.

        Returns
        -------
        Readout
            New tensors (not views of the state), in the state dtype, on ``p``'s device.
        """
        group = self._group_of(p)
        hp, _, fills = self._validate_group(group)
        state = self.state.get(p, {})
        count = _step_count(state)
        g2 = None
        if "exp_avg_sq" in fills:
            has_g2 = count > 0 and "exp_avg_sq" in state
            g2 = self._g2(hp, state, count, index) if has_g2 else _filled(p, index, 0.0)
        if all(key in state for key in fills):
            var = self._var_post(hp, state, g2, index)
        else:  # before the first step: Alg. 1's initial σ², which is also Eq. 21 at ⟨g²⟩ = 0
            var = _filled(p, index, hp.sigma2)
        c = hp.lr_scale
        return Readout(_times_scale(c, var), g2, count, hp.lr, c * hp.sigma2 if c != 0.0 else 0.0)

    @staticmethod
    def _g2(hp: Hyperparameters, state: dict[str, Any], count: int, index: Tensor | None) -> Tensor:
        v = entries(state["exp_avg_sq"], index)
        return v * (hp.batch_size**2 / (1.0 - hp.beta2**count))  # Eq. 4 in summed units

    def learning_rates(self, p: Tensor) -> Tensor:
        """The per-entry learning rate multiplying ⟨g⟩ in Eq. 19b: ``readout(p).var_post`` (``c σ²_post``).

        At constant lr (``c = 1``) this is σ²_post itself: the state of Alg. 1 (Eqs. 17b, 18a), or the fixed
        point of Eq. 21 for AdaBayes-FP. Before the first step it is ``c σ²``. At ``lr = 0`` it is 0 everywhere.
        """
        return self.readout(p).var_post

    def mean_squared_gradients(self, p: Tensor) -> Tensor:
        """⟨g²⟩ of Eq. 4 for parameter ``p`` in the paper's summed-gradient units: ``readout(p).g2``.

        Raises
        ------
        ValueError
            If ``p``'s group keeps no ⟨g²⟩ EMA (``AdaBayes(track_g2=False)``).
        """
        g2 = self.readout(p).g2
        if g2 is None:
            raise ValueError(
                f"mean_squared_gradients: this {type(self).__name__} keeps no ⟨g²⟩ EMA for p (track_g2=False); "
                "construct it with track_g2=True (the default) to read ⟨g²⟩"
            )
        return g2

    # ---------------------------------------------------------------------------------------------------------
    # state dicts

    def _fill_group_defaults(self, group: dict[str, Any]) -> None:
        group.setdefault("eta", group["lr"])
        for key, value in self._format_defaults.items():
            group.setdefault(key, value)

    def _foreign_group_keys(self) -> frozenset[str]:
        own = self._group_keys | self._format_defaults.keys()
        others = (c._group_keys | c._format_defaults.keys() for c in self._family.values())
        return frozenset().union(*others) - own

    def _hint(self, group: dict[str, Any]) -> str:
        """Which other optimiser of the family a group looks like, e.g. "(a state dict of AdaBayesFP ...?)"."""
        keys = group.keys()
        family_keys = frozenset().union(*(c._group_keys | c._format_defaults.keys() for c in self._family.values()))
        names = [
            name
            for name, c in self._family.items()
            if c is not type(self)
            and c._group_keys <= keys
            and keys & family_keys <= c._group_keys | c._format_defaults.keys()
        ]
        return f"(a state dict of {' or '.join([*names, 'another optimizer'])}?)"

    def _group_problem(self, group: dict[str, Any]) -> str | None:
        missing = sorted(self._group_keys - group.keys())
        if missing:
            return f"lacks {missing}"
        foreign = sorted(group.keys() & self._foreign_group_keys())
        return f"has {foreign[0]!r}" if foreign else None

    def _state_problem(self, group: dict[str, Any], state: dict[str, Any]) -> str | None:
        missing = sorted({"step", *self._state_keys(group)} - state.keys())
        if missing:
            return f"lacks {missing}"
        others = frozenset().union(*(c._state_key_options for c in self._family.values()))
        foreign = sorted(state.keys() & (others - self._state_key_options))
        return f"has {foreign[0]!r}" if foreign else None

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ValueError if ``state_dict`` is not one of this class (e.g. AdaBayesFP's loaded into AdaBayes)."""
        bad = f"state_dict is not an {type(self).__name__} state dict:"
        for i, saved in enumerate(state_dict["param_groups"]):
            group = {**self._format_defaults, **saved}
            problem = self._group_problem(group)
            if problem:
                raise ValueError(f"{bad} param group {i} {problem} {self._hint(saved)}")
            for pid in group["params"]:
                state = state_dict["state"].get(pid)
                problem = None if state is None else self._state_problem(group, state)
                if problem:
                    raise ValueError(f"{bad} state of param {pid} {problem} {self._hint(saved)}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, keeping the state in fp32 for fp16/bf16 parameters.

        ``torch.optim.Optimizer.load_state_dict`` casts floating-point state to the parameter's dtype; this
        override restores this class's saved tensors at the state dtype afterwards (bit for bit), copies the step
        tensors (so two optimisers loaded from one dict do not share them), converts integer steps of state dicts
        saved before steps were tensors, and fills group keys added since with the values those dicts implied.

        Raises
        ------
        ValueError
            If ``state_dict`` is not a state dict of this class (e.g. an AdaBayesFP state dict loaded into
            AdaBayes: its groups lack ``predict`` and its state lacks ``var_post``), before anything is loaded.
        """
        self._check_state_dict(state_dict)
        saved_state = state_dict["state"]
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        upgraded = {pid: {k: _tensor_step(k, v) for k, v in s.items()} for pid, s in saved_state.items()}
        super().load_state_dict({**state_dict, "state": upgraded})
        for group in self.param_groups:
            self._fill_group_defaults(group)
        capturable = {id(p): group["capturable"] for group in self.param_groups for p in group["params"]}
        params = [p for g in self.param_groups for p in g["params"]]
        for pid, p in zip(saved_ids, params, strict=True):
            for key, value in upgraded.get(pid, {}).items():
                if key == "step":
                    device = p.device if capturable[id(p)] else value.device
                    self.state[p][key] = value.to(device=device, dtype=torch.float32, copy=True)
                elif key in self._state_key_options and torch.is_tensor(value):
                    self.state[p][key] = value.to(device=p.device, dtype=_state_dtype(p), copy=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling and ``copy.deepcopy``: a fresh kernel cache, group keys and tensor steps as today."""
        super().__setstate__(state)
        self._cache = KernelCache()
        self._setups = {}
        for group in self.param_groups:
            self._fill_group_defaults(group)
        for s in self.state.values():
            if "step" in s:
                s["step"] = _tensor_step("step", s["step"])


def _tensor_step(key: str, value: Any) -> Any:
    """An integer ``step`` (state dicts saved before steps were tensors) as a 0-d float32 tensor."""
    if key == "step" and not torch.is_tensor(value):
        return torch.tensor(float(value), dtype=torch.float32)
    return value
