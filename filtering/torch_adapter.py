"""AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2) as ``torch.optim.Optimizer`` classes.

The only module of :mod:`filtering` that imports torch. Conventions (DESIGN.md):

- ``p.grad`` is the gradient of the *mean* loss over ``batch_size`` examples, so the paper's summed ascent
  gradient is ``g = -batch_size * p.grad``; the optimisers never modify ``p.grad``.
- σ² = ``lr_sgd / batch_size`` (Eq. 23); η = ``lr`` (Eq. 25); ``weight_decay`` is λ of Eq. 19a, applied per step
  as ``p <- (1 - λ) p`` (torch's ``AdamW(weight_decay=λ / lr)``).
- The update descends the loss: ``p <- (1 - λ) p + σ²_post ⟨g⟩`` with ``⟨g⟩ = -B · (debiased EMA of p.grad)``.
- State is kept in the parameter's dtype, or fp32 for fp16 / bf16 parameters.

Per-parameter quantities in the paper's units are read with :meth:`AdaBayes.learning_rates` (σ²_post) and
:meth:`AdaBayes.mean_squared_gradients` (⟨g²⟩); :class:`LearningRateRecorder` samples them during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _torch_kernels as K
from .ou import variance_predict_coefficients
from .recording import LearningRateRecorder
from .validation import (
    check_batch_size,
    check_betas,
    check_ou_stable,
    check_positive,
    check_predict,
    check_unit_interval,
)

__all__ = ["AdaBayes", "AdaBayesFP", "LearningRateRecorder"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _state_dtype(p: Tensor) -> torch.dtype:
    """fp32 for fp16 / bf16 parameters, the parameter's own dtype otherwise."""
    return torch.float32 if p.dtype in _LOW_PRECISION else p.dtype


def _check_flag(name: str, value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be None, True or False, got {value!r}")
    return value


def _is_pair(betas: object) -> bool:
    return isinstance(betas, Sequence) and not isinstance(betas, (str, bytes))


def _betas_tuple(betas: object) -> object:
    """``betas`` as a tuple if it is a sequence; anything else is left for the validation to reject by name."""
    return tuple(betas) if _is_pair(betas) else betas


def _sigma2(lr_sgd: float, batch_size: float) -> float:
    """The prior variance σ² = η_SGD / B (Eq. 23); ``inf`` for ``lr_sgd = inf``."""
    return lr_sgd / batch_size  # Eq. 23


def _approx_precision(g2: Tensor, eta: float, sigma2: float) -> Tensor:
    """1/σ²_post by Eq. 21 for a tensor ⟨g²⟩: the torch twin of :func:`filtering.fixed_point.approx_precision`
    (which converts to float64 NumPy arrays), in the state dtype and on the state's device."""
    half = 0.5 / sigma2
    return half + torch.hypot(torch.full_like(g2, half), g2.sqrt() / eta)  # Eq. 21 (hypot: no overflow)


def _times_scale(c: float, x: Tensor) -> Tensor:
    """``c · x`` with ``0 · inf = 0``: at lr = 0 the learning rate is 0 even where σ²_post = inf (lr_sgd = inf)."""
    return x * c if c != 0.0 else torch.zeros_like(x)


class _Hyper(NamedTuple):
    """A group's hyperparameters, validated and as Python floats (a numpy or 0-d tensor lr becomes a float)."""

    lr: float
    eta: float
    c: float  # the scheduler's factor lr / eta (exactly 1.0 at constant lr)
    lr_sgd: float
    batch_size: float
    sigma2: float  # Eq. 23
    beta1: float
    beta2: float
    weight_decay: float


def _fused_available(device: torch.device) -> bool:
    """Whether the compiled (``fused``) path can run on ``device``: CUDA with Triton importable."""
    if device.type != "cuda":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


class _BayesFilterOptimizer(torch.optim.Optimizer):
    """Shared machinery of :class:`AdaBayes` and :class:`AdaBayesFP` (validation, state, path choice, readout)."""

    _has_var: bool  # AdaBayes keeps σ²_post as state; AdaBayes-FP computes it from v (Eq. 21)

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        check_positive("lr", defaults["lr"])
        self._hyper(dict(defaults, eta=defaults["lr"]))
        super().__init__(params, defaults)

    # ---------------------------------------------------------------------------------------------------------
    # hyperparameters

    def _hyper(self, group: dict[str, Any]) -> _Hyper:
        """Validate ``group`` and return its hyperparameters as floats.

        Raises ValueError (TypeError for a non-number, e.g. a bool) naming the first bad hyperparameter. Called at
        construction, for every added group and at every step and read-out, so a value made invalid later (e.g.
        by a scheduler) is caught too.
        """
        lr = check_positive("lr", group["lr"], allow_zero=True)
        eta = check_positive("eta (η of the filter: the group's lr when it was added)", group["eta"])
        lr_sgd = check_positive("lr_sgd", group["lr_sgd"], allow_inf=True)
        batch_size = check_batch_size(group["batch_size"])
        sigma2 = _sigma2(lr_sgd, batch_size)
        betas = group["betas"]
        if not _is_pair(betas):
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        beta1, beta2 = check_betas(betas)
        weight_decay = check_unit_interval("weight_decay", group["weight_decay"])
        if "predict" in group:
            check_predict(group["predict"])
            if group["predict"] == "paper":
                check_ou_stable(eta, sigma2)
        foreach = _check_flag("foreach", group["foreach"])
        fused = _check_flag("fused", group["fused"])
        if foreach and fused:
            raise ValueError("foreach and fused cannot both be True")
        return _Hyper(lr, eta, lr / eta, lr_sgd, batch_size, sigma2, beta1, beta2, weight_decay)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; its ``eta`` (η of the filter) defaults to its ``lr``. Validates all entries."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("eta", group["lr"])
        try:
            self._hyper(group)
            for p in group["params"]:
                if not p.is_floating_point():
                    raise ValueError(f"params must be real floating-point tensors, got dtype {p.dtype}")
        except ValueError:
            self.param_groups.pop()
            raise

    # ---------------------------------------------------------------------------------------------------------
    # state

    def _init_state(self, p: Tensor, h: _Hyper) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            dtype = _state_dtype(p)
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            if self._has_var:  # Alg. 1: σ²_post = σ² before step 1
                state["var_post"] = torch.full_like(p, h.sigma2, dtype=dtype, memory_format=torch.preserve_format)
        return state

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ValueError if ``state_dict`` is not one of this class (e.g. AdaBayesFP's loaded into AdaBayes)."""
        name = type(self).__name__
        other = "AdaBayesFP" if self._has_var else "AdaBayes"
        hint = f"(a state dict of {other} or another optimizer?)"
        bad = f"state_dict is not an {name} state dict:"
        group_keys = {k for k in self.defaults if k not in ("foreach", "fused")}
        state_keys = {"step", "exp_avg", "exp_avg_sq"} | ({"var_post"} if self._has_var else set())
        for i, group in enumerate(state_dict["param_groups"]):
            missing = sorted(group_keys - group.keys())
            if missing:
                raise ValueError(f"{bad} param group {i} lacks {missing} {hint}")
            if not self._has_var and "predict" in group:
                raise ValueError(f"{bad} param group {i} has 'predict' {hint}")
        for pid, state in state_dict["state"].items():
            missing = sorted(state_keys - state.keys())
            if missing:
                raise ValueError(f"{bad} state of param {pid} lacks {missing} {hint}")
            if not self._has_var and "var_post" in state:
                raise ValueError(f"{bad} state of param {pid} has 'var_post' {hint}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, keeping the state in fp32 for fp16/bf16 parameters.

        ``torch.optim.Optimizer.load_state_dict`` casts floating-point state to the parameter's dtype; this
        override restores the saved tensors at the state dtype afterwards, so nothing is lost in a round trip.

        Raises
        ------
        ValueError
            If ``state_dict`` is not a state dict of this class (e.g. an AdaBayesFP state dict loaded into
            AdaBayes: its groups lack ``predict`` and its state lacks ``var_post``), before anything is loaded.
        """
        self._check_state_dict(state_dict)
        saved_state = state_dict["state"]
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for pid, p in zip(saved_ids, params, strict=True):
            for key, value in saved_state.get(pid, {}).items():
                if torch.is_tensor(value):
                    self.state[p][key] = value.to(device=p.device, dtype=_state_dtype(p), copy=True)
        for group in self.param_groups:
            group.setdefault("eta", group["lr"])
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    # ---------------------------------------------------------------------------------------------------------
    # stepping

    def _choose_path(self, group: dict[str, Any], params: list[Tensor]) -> str:
        """``"fused"``, ``"foreach"`` or ``"single"`` for one group (like torch/optim/adam.py, chosen per step).

        Defaults: fused on CUDA when Triton is importable; otherwise foreach on CUDA and the single-tensor loop
        elsewhere (on this project's 2-core CPU the loop is faster than foreach, see BENCHMARKS.md).
        """
        fused, foreach = group["fused"], group["foreach"]
        devices = {p.device for p in params}
        if fused:
            bad = [d for d in devices if d.type not in ("cuda", "cpu")]
            if bad:
                raise RuntimeError(f"fused=True supports CUDA and CPU tensors only, got {bad[0]}")
            return "fused"
        if fused is None and foreach is None and all(_fused_available(d) for d in devices):
            return "fused"
        if foreach is None:
            foreach = all(d.type == "cuda" for d in devices)
        return "foreach" if foreach else "single"

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
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            h = self._hyper(group)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            path = self._choose_path(group, params)
            buckets: dict[tuple[torch.device, torch.dtype, int], list[Tensor]] = {}
            for p in params:
                count = self._init_state(p, h)["step"] + 1
                buckets.setdefault((p.device, p.dtype, count), []).append(p)
            for (_, _, count), ps in buckets.items():
                self._step_bucket(group, h, ps, count, path)
                for p in ps:  # only once the step has run: a failed step can be retried with the same count
                    self.state[p]["step"] = count
        return loss

    def _step_bucket(self, group: dict[str, Any], h: _Hyper, params: list[Tensor], count: int, path: str) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------------
    # read-out

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise ValueError("p is not a parameter of this optimizer")

    @torch.no_grad()
    def mean_squared_gradients(self, p: Tensor) -> Tensor:
        """⟨g²⟩ of Eq. 4 for parameter ``p`` in the paper's summed-gradient units.

        ``⟨g²⟩ = B² v / (1 - β2^t)`` where ``v`` is the EMA of ``p.grad**2``; zeros before the first step.

        Returns
        -------
        Tensor, shape ``p.shape``, state dtype
            A new tensor (not a view of the state).
        """
        h = self._hyper(self._group_of(p))
        state = self.state.get(p, {})
        if not state or state["step"] == 0:
            return torch.zeros_like(p, dtype=_state_dtype(p))
        return self._g2_from(h, state["step"], state["exp_avg_sq"])

    def _g2_from(self, h: _Hyper, count: int, v: Tensor) -> Tensor:
        bc2 = 1.0 - h.beta2**count
        return v * (h.batch_size**2 / bc2)  # Eq. 4 in summed units

    @torch.no_grad()
    def learning_rates(self, p: Tensor) -> Tensor:
        """The per-entry learning rate multiplying ⟨g⟩ in Eq. 19b: ``c σ²_post`` with ``c = lr / eta``.

        At constant lr (``c = 1``) this is σ²_post itself: the state of Alg. 1 (Eqs. 17b, 18a), or the fixed
        point of Eq. 21 for AdaBayes-FP. Before the first step it is ``c σ²`` (Alg. 1's initial value, and the
        ⟨g²⟩ = 0 limit of Eq. 21). At ``lr = 0`` it is 0 everywhere, also where σ²_post = inf (``lr_sgd = inf``):
        the step is then 0.

        Returns
        -------
        Tensor, shape ``p.shape``, state dtype
        """
        h = self._hyper(self._group_of(p))
        state = self.state.get(p, {})
        if not state:
            return _times_scale(h.c, torch.full_like(p, h.sigma2, dtype=_state_dtype(p)))
        return self._rates_from(h, state, None)

    def _rates_from(self, h: _Hyper, state: dict[str, Any], index: Tensor | None) -> Tensor:
        """``c σ²_post`` for all entries (``index=None``, shape of p) or the flat entries ``index`` (1-D)."""
        raise NotImplementedError


class AdaBayes(_BayesFilterOptimizer):
    r"""AdaBayes (Alg. 1): a per-parameter scalar Kalman filter sets the learning rate σ²_post.

    Per step, with ``g = -B p.grad`` (the paper's summed ascent gradient), for each entry:

    - ``m <- β1 m + (1-β1) p.grad``; ``⟨g⟩ = -B m / (1-β1^t)`` (Eq. 2);
    - ``σ²_prior = (1 - η²/(2σ²))² σ²_post + η²`` (Eq. 17b; ``predict="exponential"``: factor ``exp(-η²/σ²)``,
      noise ``σ²(1 - exp(-η²/σ²))``);
    - ``σ²_post = 1 / (1/σ²_prior + g²)`` (Eq. 18a with H ≈ g²; the printed Alg. 1 drops the reciprocal);
    - ``p <- (1-λ) p + σ²_post ⟨g⟩`` (Eq. 19). Before the first step σ²_post = σ².

    It also keeps ``v``, the β2-EMA of ``p.grad**2`` (Eq. 4), which Alg. 1 does not use: it costs one state
    tensor and two elementwise passes per step and lets :meth:`mean_squared_gradients` and
    :class:`LearningRateRecorder` report ⟨g²⟩ for Fig. 3 at any time.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (each group may override any hyperparameter below).
    lr : float
        η = η_Adam > 0 (Eqs. 14, 25): OU process-noise s.d. and the high-data learning-rate scale.
    lr_sgd : float
        η_SGD in (0, inf]; σ² = lr_sgd / batch_size (Eq. 23). ``inf`` is the σ² → ∞ limit.
    batch_size : float
        B >= 1, the number of examples averaged in the loss. Under DistributedDataParallel pass the *global*
        batch (per-rank batch × world size): DDP averages the per-rank mean-loss gradients, so ``p.grad`` is
        the mean over the global batch.
    betas : (float, float)
        (β1, β2) in [0, 1): momentum (Eq. 2) and the ⟨g²⟩ EMA kept for recording (Eq. 4).
    weight_decay : float
        λ in [0, 1) per step (Eq. 19a), i.e. ``torch.optim.AdamW(weight_decay=λ / lr)``.
    predict : {"paper", "exponential"}
        Variance prediction (Eq. 17b or the exponential OU discretisation of the author's code). ``"paper"``
        requires ``lr**2 < 2 lr_sgd / batch_size``.
    foreach, fused : bool or None
        Implementation; ``None`` chooses per step: ``fused`` (a ``torch.compile``-d multi-tensor step) on CUDA
        when Triton is available, else ``foreach`` on CUDA and the single-tensor loop on CPU (faster than
        foreach on small CPUs, see BENCHMARKS.md). ``fused=True`` also runs on CPU through inductor's C++
        backend (needs a C++ compiler; compiles on the first step). All paths compute the same numbers;
        ``single`` and ``foreach`` bit for bit, ``fused`` up to fp rounding (contracted multiply-adds).

    Notes
    -----
    **Changing lr (schedulers).** Each group remembers ``eta``, its ``lr`` when it was added. A scheduler that
    sets ``group["lr"] = c · eta`` multiplies the step of Eq. 19 -- both the learning rate σ²_post and the
    decay λ -- by ``c``, while the filter itself (η and σ² = lr_sgd/B in Eqs. 17b, 18a) keeps its prior
    model: σ² stays tied to ``lr_sgd`` only, and the schedule acts like torch's (lr → 0 stops the
    parameters at once; λ scales with lr like AdamW's ``lr · weight_decay``). At constant lr, ``c = 1``
    exactly and the updates are the paper's. Set ``group["eta"]`` to change η itself.

    **Numerics.** A zero ⟨g⟩ gives a zero step even when σ²_post = inf (lr_sgd = inf before any nonzero
    gradient), as in :func:`filtering.rules.adabayes`. Gradients are not checked for NaN/inf (that would
    synchronise with the device every step); use ``torch.amp.GradScaler`` for fp16 training. With
    ``lr_sgd = inf`` the equations give σ²_post = 1/(B p.grad)² on the first step, so a step of about
    ``-1/(B p.grad)`` per entry: huge for a tiny gradient. In fp32 state, once σ²_post = 1/(B p.grad)²
    overflows (|p.grad| B ≲ 5e-20, or the square underflows to 0) σ²_post is stored as inf and the step uses
    it clamped to the dtype's largest value (3.4e38): the step stays finite but huge (from p = 1, a first
    p.grad of 1e-25 with B = 1 moves p to about -3.4e13, where the equations say -1e25). Likewise a gradient
    whose square overflows the state dtype (|p.grad| ≳ 1.8e19 in fp32) makes ``v`` (and so the recorded
    ⟨g²⟩) +inf from then on, as in torch's Adam; σ²_post of Alg. 1 recovers through the process noise.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = AdaBayes(model.parameters(), lr=1e-3, lr_sgd=0.1, batch_size=128)
    >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    """

    _has_var = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        lr_sgd: float = 0.1,
        *,
        batch_size: float,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        predict: str = "paper",
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_sgd=lr_sgd,
            batch_size=batch_size,
            betas=_betas_tuple(betas),
            weight_decay=weight_decay,
            predict=predict,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _scalars(self, h: _Hyper, predict: str, count: int, dtype: torch.dtype) -> K.ABScalars:
        factor, noise = variance_predict_coefficients(h.eta, h.sigma2, predict)  # Eq. 17b
        batch = h.batch_size
        return K.ABScalars(
            w1=1.0 - h.beta1,
            beta2=h.beta2,
            w2=1.0 - h.beta2,
            factor=float(factor),
            noise=float(noise),
            b2=batch * batch,
            rate_max=torch.finfo(dtype).max if math.isinf(h.sigma2) else math.inf,
            decay=1.0 - h.c * h.weight_decay,
            scale=-h.c * batch / (1.0 - h.beta1**count),
        )

    def _step_bucket(self, group: dict[str, Any], h: _Hyper, params: list[Tensor], count: int, path: str) -> None:
        states = [self.state[p] for p in params]
        s = self._scalars(h, group["predict"], count, states[0]["exp_avg"].dtype)
        kernel = {"single": K.ab_single, "foreach": K.ab_foreach, "fused": K.ab_fused}[path]
        kernel(
            params,
            [p.grad for p in params],
            [st["exp_avg"] for st in states],
            [st["exp_avg_sq"] for st in states],
            [st["var_post"] for st in states],
            s,
        )

    def _rates_from(self, h: _Hyper, state: dict[str, Any], index: Tensor | None) -> Tensor:
        var = state["var_post"] if index is None else state["var_post"].reshape(-1)[index]
        return _times_scale(h.c, var)


class AdaBayesFP(_BayesFilterOptimizer):
    r"""AdaBayes-FP (Alg. 2): σ²_post set to the fixed point of Eq. 21 from the ⟨g²⟩ EMA.

    Per step, with ``g = -B p.grad``: ``⟨g⟩ = -B m/(1-β1^t)``, ``⟨g²⟩ = B² v/(1-β2^t)`` (Eqs. 2, 4) where m, v
    are the EMAs of ``p.grad`` and ``p.grad**2``;
    ``1/σ²_post = 1/(2σ²) + sqrt(1/(4σ⁴) + ⟨g²⟩/η²)`` (Eq. 21; the printed Alg. 2 line 11 omits the
    reciprocal); ``p <- (1-λ) p + σ²_post ⟨g⟩`` (Eq. 19). With ``lr_sgd = inf`` this is exactly
    ``torch.optim.AdamW(lr, betas, eps=0, weight_decay=λ/lr)`` (Eq. 27).

    In ``p.grad`` units the step is an AdamW step whose ε is replaced by the prior:
    ``Δp = -η m̂ / (k + sqrt(k² + v̂))`` with ``k = η / (2 lr_sgd)``.

    Parameters
    ----------
    params, lr, lr_sgd, batch_size, betas, weight_decay, foreach, fused
        As for :class:`AdaBayes` (β2 enters Eq. 21 here).

    Notes
    -----
    **Changing lr (schedulers).** As for :class:`AdaBayes`: ``group["lr"] = c · eta`` multiplies σ²_post and λ
    by ``c``. For AdaBayes-FP this is *exactly* the same as scaling η and σ² (i.e. lr and lr_sgd) together by
    ``c``, because Eq. 21 is homogeneous: σ²_post(cη, cσ²) = c σ²_post(η, σ²). Both limits (SGD, Eq. 22;
    Adam, Eq. 24) therefore follow the schedule, and ``lr_sgd = inf`` stays AdamW under any scheduler.

    **Numerics.** The denominator ``k + sqrt(k² + v̂)`` is at least ``2k > 0``, so a zero ⟨g⟩ gives a zero step;
    with ``lr_sgd = inf`` (k = 0) it is clamped to the smallest normal number, which only matters when every
    gradient so far was 0 (then the step is 0) or underflowed when squared. A gradient whose square overflows
    the state dtype (|p.grad| ≳ 1.8e19 in fp32) makes ``v`` +inf, and that entry's step 0 from then on, exactly
    as torch's AdamW; parameters stay finite.
    """

    _has_var = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        lr_sgd: float = 0.1,
        *,
        batch_size: float,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_sgd=lr_sgd,
            batch_size=batch_size,
            betas=_betas_tuple(betas),
            weight_decay=weight_decay,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _scalars(self, h: _Hyper, count: int, dtype: torch.dtype) -> K.FPScalars:
        k = h.eta / (2.0 * h.lr_sgd)  # = η / (2 σ² B), Eqs. 21, 23
        bc2 = 1.0 - h.beta2**count
        sqrt_bc2 = math.sqrt(bc2)
        kbc = k * sqrt_bc2
        return K.FPScalars(
            w1=1.0 - h.beta1,
            beta2=h.beta2,
            w2=1.0 - h.beta2,
            k2bc2=k * k * bc2,
            kbc=kbc,
            tiny=torch.finfo(dtype).tiny if kbc < torch.finfo(dtype).tiny else 0.0,
            decay=1.0 - h.c * h.weight_decay,
            scale=-h.c * h.eta * sqrt_bc2 / (1.0 - h.beta1**count),
        )

    def _step_bucket(self, group: dict[str, Any], h: _Hyper, params: list[Tensor], count: int, path: str) -> None:
        states = [self.state[p] for p in params]
        s = self._scalars(h, count, states[0]["exp_avg"].dtype)
        kernel = {"single": K.fp_single, "foreach": K.fp_foreach, "fused": K.fp_fused}[path]
        kernel(
            params, [p.grad for p in params], [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states], s
        )

    def _rates_from(self, h: _Hyper, state: dict[str, Any], index: Tensor | None) -> Tensor:
        v = state["exp_avg_sq"] if index is None else state["exp_avg_sq"].reshape(-1)[index]
        g2 = self._g2_from(h, state["step"], v) if state["step"] else torch.zeros_like(v)
        return _times_scale(h.c, _approx_precision(g2, h.eta, h.sigma2).reciprocal())  # 1/0 = inf, then c·inf
