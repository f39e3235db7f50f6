"""AdaBayes (Alg. 1) and AdaBayes-FP (Alg. 2) as ``torch.optim.Optimizer`` classes.

Thin wrappers around the functional steps of :mod:`filtering.torch_functional`: the classes keep the state, validate
each group once per step and read per-parameter quantities out. Conventions (DESIGN.md):

- ``p.grad`` is the gradient of the *mean* loss over ``batch_size`` examples, so the paper's summed ascent
  gradient is ``g = -batch_size * p.grad``; the optimisers never modify ``p.grad``.
- σ² = ``lr_sgd / batch_size`` (Eq. 23); η = ``lr`` (Eq. 25); ``weight_decay`` is λ of Eq. 19a, applied per step
  as ``p <- (1 - λ) p`` (torch's ``AdamW(weight_decay=λ / lr)``).
- The update descends the loss: ``p <- (1 - λ) p + σ²_post ⟨g⟩`` with ``⟨g⟩ = -B · (debiased EMA of p.grad)``.
- State is kept in the parameter's dtype, or fp32 for fp16 / bf16 parameters; ``state["step"]`` is a 0-d float32
  tensor (on the parameter's device with ``capturable=True``), as in ``torch.optim.Adam``.

Per-parameter quantities in the paper's units are read with :meth:`AdaBayes.readout` (σ²_post and ⟨g²⟩ together),
or :meth:`~AdaBayes.learning_rates` and :meth:`~AdaBayes.mean_squared_gradients`; :class:`LearningRateRecorder`
samples them during training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from typing_extensions import override

from . import torch_functional as F
from ._torch_kernels import ABConstants, ABTensors, FPConstants, FPTensors
from ._torch_optimizer import IMPLEMENTATION_DEFAULTS, BayesFilterOptimizer, Readout, entries
from .recording import LearningRateRecorder
from .torch_functional import Hyperparameters
from .validation import check_flag

__all__ = ["AdaBayes", "AdaBayesFP", "LearningRateRecorder", "Readout"]


def _betas_tuple(betas: object) -> object:
    """``betas`` as a tuple if it is a sequence; anything else is left for the validation to reject by name."""
    return tuple(betas) if isinstance(betas, Sequence) and not isinstance(betas, (str, bytes)) else betas


def _approx_precision(g2: Tensor, eta: float, sigma2: float) -> Tensor:
    """1/σ²_post by Eq. 21 for a tensor ⟨g²⟩: the torch twin of :func:`filtering.fixed_point.approx_precision`
    (which converts to float64 NumPy arrays), in the state dtype and on the state's device."""
    half = 0.5 / sigma2
    return half + torch.hypot(torch.full_like(g2, half), g2.sqrt() / eta)  # Eq. 21 (hypot: no overflow)


class AdaBayes(BayesFilterOptimizer):
    r"""AdaBayes (Alg. 1): a per-parameter scalar Kalman filter sets the learning rate σ²_post.

    Per step, with ``g = -B p.grad`` (the paper's summed ascent gradient), for each entry:

    - ``m <- β1 m + (1-β1) p.grad``; ``⟨g⟩ = -B m / (1-β1^t)`` (Eq. 2);
    - ``σ²_prior = (1 - η²/(2σ²))² σ²_post + η²`` (Eq. 17b; ``predict="exponential"``: factor ``exp(-η²/σ²)``,
      noise ``σ²(1 - exp(-η²/σ²))``);
    - ``σ²_post = 1 / (1/σ²_prior + g²)`` (Eq. 18a with H ≈ g²; the printed Alg. 1 drops the reciprocal);
    - ``p <- (1-λ) p + σ²_post ⟨g⟩`` (Eq. 19). Before the first step σ²_post = σ².

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups (each group may override any hyperparameter below). Real floating-point
        (fp16/bf16 keep fp32 state) or complex: a complex parameter is treated as a pair of real ones, exactly as
        running on ``torch.view_as_real(p)``.
    lr : float
        η = η_Adam > 0 (Eqs. 14, 25): OU process-noise s.d. and the high-data learning-rate scale.
    lr_sgd : float
        η_SGD in (0, inf]; σ² = lr_sgd / batch_size (Eq. 23). ``inf`` is the σ² → ∞ limit.
    batch_size : float
        B >= 1, the number of examples averaged in the loss. Under DistributedDataParallel pass the *global*
        batch (per-rank batch × world size): DDP averages the per-rank mean-loss gradients, so ``p.grad`` is
        the mean over the global batch.
    betas : (float, float)
        (β1, β2) in [0, 1): momentum (Eq. 2) and the ⟨g²⟩ EMA of Eq. 4 (``track_g2``, ``smooth_g2``).
    weight_decay : float
        λ in [0, 1) per step (Eq. 19a), i.e. ``torch.optim.AdamW(weight_decay=λ / lr)``.
    predict : {"paper", "exponential"}
        Variance prediction (Eq. 17b or the exponential OU discretisation of the author's code). ``"paper"``
        requires ``lr**2 < 2 lr_sgd / batch_size``.
    track_g2 : bool
        Keep ``v``, the β2-EMA of ``p.grad**2`` (Eq. 4), which Alg. 1 itself never uses. **Default True**, because
        ⟨g²⟩ is the x-axis of Fig. 3: :meth:`readout`, :meth:`mean_squared_gradients` and
        :class:`LearningRateRecorder` need it, and an EMA started late cannot be rebuilt. ``False`` saves one
        state tensor and its two passes: the step moves 28 instead of 36 bytes per fp32 parameter (p, grad, m,
        σ²_post, p written back, m and σ²_post written back); the ⟨g²⟩ read-outs then raise a ValueError that
        names this option. Fixed for a group once it has stepped.
    smooth_g2 : bool
        Off by default (Alg. 1 exactly). ``True`` replaces this step's g² in Eq. 18a by ⟨g²⟩, the debiased β2-EMA
        of Eq. 4 (needs ``track_g2``). The stationary fixed point is unchanged (it is Eq. 21's, which assumes
        g² ≈ ⟨g²⟩), but one gradient spike no longer sets the step: see the Notes.
    maximize : bool
        Maximise the objective (the step uses ``-p.grad``), as in ``torch.optim.AdamW``.
    foreach, fused : bool or None
        Implementation (``filtering.torch_functional.choose_path``); ``None`` chooses per step the fused kernel:
        numba on CPU (``filtering._fused_cpu``), Triton on CUDA (``filtering._triton_kernels``), where they
        import; otherwise the single-tensor loop on CPU and ``foreach`` on CUDA. ``fused=True`` runs the same
        fused kernels, falling back to a torch.compile multi-tensor step where they are missing;
        ``fused=False`` / ``foreach=True`` select the loop paths. ``single`` and ``foreach`` compute the same
        numbers bit for bit, the fused kernels up to fp rounding (contracted multiply-adds), see
        BENCHMARKS.md for their speed.
    capturable : bool
        Keep ``state["step"]`` on the parameter's device and compute the step's scalars there, so ``step()``
        never synchronises with the host and can be captured in a CUDA graph (the hyperparameters are then baked
        into the graph). Same numbers as the default path up to rounding.

    Notes
    -----
    **Changing lr (schedulers).** Each group remembers ``eta``, its ``lr`` when it was added. A scheduler that
    sets ``group["lr"] = c · eta`` multiplies the step of Eq. 19 -- both the learning rate σ²_post and the
    decay λ -- by ``c``, while the filter itself (η and σ² = lr_sgd/B in Eqs. 17b, 18a) keeps its prior
    model: σ² stays tied to ``lr_sgd`` only, and the schedule acts like torch's (lr → 0 stops the
    parameters at once; λ scales with lr like AdamW's ``lr · weight_decay``). At constant lr, ``c = 1``
    exactly and the updates are the paper's. Set ``group["eta"]`` to change η itself.

    **torch.compile.** ``torch.compile(opt.step)`` builds one graph for a fixed set of parameters with gradients
    (``state["step"]`` is a tensor, so a new step does not recompile); a new float ``lr`` recompiles, as for
    torch's AdamW.

    **Gradient spikes (Alg. 1 as printed).** σ²_post follows the *current* g² (Eq. 18a) while the momentum keeps a
    spike for ~1/(1-β1) steps, and after a spike σ²_post grows back by only about η² per step, so the step
    σ²_post ⟨g⟩ sums to ≈ -B (1-β1) g_spike η² β1/(1-β1)²: linear in the spike. Measured by
    ``python3 -m filtering.spike_response`` (B = 128, lr = 1e-3, lr_sgd = 0.1, betas = (0.9, 0.999); p.grad =
    0.01·N(0, 1) for 2000 steps, one step with p.grad = spike, 2000 more; the displacement of a weight caused by
    the spike, i.e. minus the same run without it, median of 64 weights, float64):

    ====================  ==========  ==========
    optimiser             spike 1e3   spike 1e5
    ====================  ==========  ==========
    AdaBayes              -1.14       -114
    AdaBayes smooth_g2    -0.011      -0.00457
    AdaBayes-FP           -0.034      -0.034
    AdamW (eps 1e-8)      -0.0365     -0.0365
    ====================  ==========  ==========

    ``smooth_g2=True`` bounds the response: the spike then enters the precision for as long as ⟨g²⟩ (and the
    momentum) remember it, as the denominators of AdamW and AdaBayes-FP do.

    **Numerics.** A zero ⟨g⟩ gives a zero step even when σ²_post = inf (lr_sgd = inf before any nonzero
    gradient), as in :func:`filtering.rules.adabayes`. Every path forms σ²_post·m before the step's scale, so
    gradients up to the dtype's maximum keep the parameters finite (σ²_post = 0 there). Gradients are not
    checked for NaN/inf (that would synchronise with the device every step); use ``torch.amp.GradScaler`` for
    fp16 training. With ``lr_sgd = inf`` the equations give σ²_post = 1/(B p.grad)² on the first step, so a
    step of about ``-1/(B p.grad)`` per entry: huge for a tiny gradient. In fp32 state, once σ²_post =
    1/(B p.grad)² overflows (|p.grad| B ≲ 5e-20, or the square underflows to 0) σ²_post is stored as inf and the
    step uses it clamped to the dtype's largest value (3.4e38): the step stays finite but huge. A gradient whose
    square overflows the state dtype (|p.grad| ≳ 1.8e19 in fp32) makes ``v`` (and so the recorded ⟨g²⟩) +inf
    from then on, as in torch's Adam; σ²_post of Alg. 1 recovers through the process noise.

    Examples
    --------
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = AdaBayes(model.parameters(), lr=1e-3, lr_sgd=0.1, batch_size=128)
    >>> sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    """

    _kernel = "adabayes"
    _tensors_type = ABTensors
    _constants_type = ABConstants
    _group_keys = frozenset({"lr", "lr_sgd", "batch_size", "betas", "weight_decay", "predict"})
    _format_defaults: ClassVar[dict[str, Any]] = {**IMPLEMENTATION_DEFAULTS, "track_g2": True, "smooth_g2": False}
    _state_key_options = frozenset({"step", "exp_avg", "exp_avg_sq", "var_post"})

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
        track_g2: bool = True,
        smooth_g2: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_sgd=lr_sgd,
            batch_size=batch_size,
            betas=_betas_tuple(betas),
            weight_decay=weight_decay,
            predict=predict,
            track_g2=track_g2,
            smooth_g2=smooth_g2,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    @override
    def _constants(self, group: dict[str, Any], hp: Hyperparameters) -> ABConstants:
        track = check_flag("track_g2", group["track_g2"])
        if check_flag("smooth_g2", group["smooth_g2"]) and not track:
            raise ValueError("smooth_g2=True needs track_g2=True (it uses the ⟨g²⟩ EMA in Eq. 18a)")
        return F.adabayes_constants(hp, predict=group["predict"], smooth_g2=group["smooth_g2"])

    @override
    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq", "var_post") if group["track_g2"] else ("exp_avg", "var_post")

    @override
    def _state_fills(self, group: dict[str, Any], hp: Hyperparameters) -> dict[str, float]:
        return {key: hp.sigma2 if key == "var_post" else 0.0 for key in self._state_keys(group)}  # Alg. 1: σ²_post = σ²

    @override
    def _var_post(self, hp: Hyperparameters, state: dict[str, Any], g2: Tensor | None, index: Tensor | None) -> Tensor:
        return entries(state["var_post"], index).clone()


class AdaBayesFP(BayesFilterOptimizer):
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
    params, lr, lr_sgd, batch_size, betas, weight_decay, maximize, foreach, fused, capturable
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
    as torch's AdamW; parameters stay finite. A gradient spike moves a weight about as much as it moves AdamW's
    (see :class:`AdaBayes`).
    """

    _kernel = "adabayes_fp"
    _tensors_type = FPTensors
    _constants_type = FPConstants
    _group_keys = frozenset({"lr", "lr_sgd", "batch_size", "betas", "weight_decay"})
    _format_defaults: ClassVar[dict[str, Any]] = dict(IMPLEMENTATION_DEFAULTS)
    _state_key_options = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        lr_sgd: float = 0.1,
        *,
        batch_size: float,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_sgd=lr_sgd,
            batch_size=batch_size,
            betas=_betas_tuple(betas),
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    @override
    def _constants(self, group: dict[str, Any], hp: Hyperparameters) -> FPConstants:
        return F.adabayes_fp_constants(hp)

    @override
    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    @override
    def _state_fills(self, group: dict[str, Any], hp: Hyperparameters) -> dict[str, float]:
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    @override
    def _var_post(self, hp: Hyperparameters, state: dict[str, Any], g2: Tensor | None, index: Tensor | None) -> Tensor:
        assert g2 is not None  # AdaBayes-FP always keeps exp_avg_sq
        return _approx_precision(g2, hp.eta, hp.sigma2).reciprocal()  # Eq. 21; 1/0 = inf for σ² = inf, ⟨g²⟩ = 0
