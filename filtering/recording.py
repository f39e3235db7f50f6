"""Record per-parameter learning rates σ²_post and ⟨g²⟩ from a real network: the data of a Fig. 3.

:class:`LearningRateRecorder` samples a fixed, seeded subset of entries of every parameter tensor of an
:class:`filtering.torch_adapter.AdaBayes` / ``AdaBayesFP`` optimiser every ``every`` steps into a bounded
in-memory buffer and saves it as ``.npz``. With ``gradient_steps=K`` it also keeps, for the same entries, the
gradients of the last K optimiser steps in a ring buffer, and stores that window beside each sample: the empirical
gradient law from which :mod:`filtering.stochastic` predicts σ²_post (issue 9). Importing this module does not
import torch (it is imported lazily when a recorder is built), so ``import filtering`` stays torch-free.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

__all__ = ["LearningRateRecorder"]

_FIELDS = ("var_post", "g2", "adam_lr", "eta", "sigma2")
_INT_FIELDS = ("step", "tensor", "entry")


class LearningRateRecorder:
    """Sample ``(σ²_post, ⟨g²⟩, η/sqrt(⟨g²⟩))`` for fixed entries of each parameter tensor during training.

        Attached as a step post-hook of the optimiser: after every ``every``-th call of ``optimizer.step()`` it
        records, for each parameter tensor that has optimiser state, the entries chosen at construction. The
        buffer holds at most ``capacity`` samples; once full, the oldest samples are overwritten (the late,
        near-fixed-point samples matter most for Fig. 3) and :attr:`n_overwritten` counts them.

        Parameters
        ----------
        optimizer : AdaBayes or AdaBayesFP
            The optimiser to watch; the recorder uses only its public ``param_groups``, ``register_step_post_hook``
            and ``readout(p, index)`` (:class:`filtering.torch_adapter.Readout`), so any optimiser offering those
            works. Tensors are indexed in the order of ``optimizer.param_groups`` at construction; each tensor's
            read-out uses the group that holds it *when recording*, so changes by a scheduler and group dicts
            replaced by ``optimizer.load_state_dict`` are seen.
        every : int
            Record after every ``every``-th step (>= 1).
        entries_per_tensor : int
            Entries sampled per tensor (all of them for smaller tensors), without replacement (>= 1).
        seed : int
            Seed of the ``np.random.Generator`` that picks the entries.
        capacity : int
            Maximum number of samples kept (>= 1).
        attach : bool
            Register the post-step hook (otherwise call :meth:`record` yourself).
        gradient_steps : int
            K >= 0: keep the gradients ``g`` of the sampled entries over the last K steps (0: none). A second
            post-step hook, registered before the recording one and also when ``attach`` is false, calls
            :meth:`capture_gradients` after every step; each :meth:`record` stores the window beside its samples.

        Attributes
        ----------
        indices : list of ndarray of int64, shape (min(entries_per_tensor, numel_i),)
            The sampled flat indices of each tensor, sorted.
        n_overwritten : int
            Samples lost because the buffer was full.
        gradient_steps : int
            K.

        Notes
        -----
        Saved arrays (all of shape (N,), N <= capacity, in recording order), in the paper's summed-gradient units:
        ``var_post`` (the learning rate multiplying ⟨g⟩, i.e. σ²_post at constant lr, see
        ``AdaBayes.learning_rates``), ``g2`` (⟨g²⟩, Eq. 4 debiased), ``adam_lr`` (``η / sqrt(⟨g²⟩)``, inf where
        ⟨g²⟩ = 0; η is the group's current lr), ``eta`` and ``sigma2`` (the group's lr and ``c · lr_sgd / B``,
        the lines of Fig. 3), ``step`` (the tensor's step count), ``tensor`` (tensor index), ``entry`` (flat index
        within the tensor; within ``torch.view_as_real`` of a complex one); plus ``tensor_numel`` of shape (n_tensors,).
    With ``gradient_steps = K > 0`` also ``grad_window`` of shape (N, K), float32: row i holds the gradients
    ``g = -B p.grad`` (``+B p.grad`` for ``maximize``; the paper's summed ascent gradient that Alg. 1 squares) of the
    sample's entry at the K steps up to and including the recorded one, oldest first, NaN for steps not captured
    (before the recorder existed, or where ``p.grad`` was None).

        Examples
        --------
        >>> opt = AdaBayes(model.parameters(), batch_size=128)                        # doctest: +SKIP
        >>> rec = LearningRateRecorder(opt, every=50, entries_per_tensor=64, seed=0)  # doctest: +SKIP
        >>> for x, y in loader: ...; loss.backward(); opt.step(); opt.zero_grad()     # doctest: +SKIP
        >>> rec.save("fig3_resnet.npz"); rec.close()                                 # doctest: +SKIP

        Raises
        ------
        TypeError
            If ``optimizer`` has no ``readout`` method.
        ValueError
            For a bad ``every``, ``entries_per_tensor`` or ``capacity``, or if a group keeps no ⟨g²⟩
            (``AdaBayes(track_g2=False)``).
    """

    def __init__(
        self,
        optimizer: Any,
        every: int = 10,
        entries_per_tensor: int = 32,
        seed: int = 0,
        capacity: int = 1_000_000,
        attach: bool = True,
        gradient_steps: int = 0,
    ) -> None:
        import torch

        for name, value in (("every", every), ("entries_per_tensor", entries_per_tensor), ("capacity", capacity)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(gradient_steps, bool) or not isinstance(gradient_steps, (int, np.integer)) or gradient_steps < 0:
            raise ValueError(f"gradient_steps must be an integer >= 0, got {gradient_steps!r}")
        if not callable(getattr(optimizer, "readout", None)):
            raise TypeError("optimizer must have a readout(p, index) method, e.g. filtering.torch_adapter.AdaBayes")
        self.optimizer = optimizer
        self.every = int(every)
        self.capacity = int(capacity)
        rng = np.random.default_rng(seed)
        self._tensors: list[tuple[Any, Any]] = []  # (param, index on the param's device)
        self.indices: list[np.ndarray] = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                n = p.numel() * (2 if p.is_complex() else 1)  # complex: the entries of torch.view_as_real(p)
                idx = np.sort(rng.choice(n, size=min(int(entries_per_tensor), n), replace=False)).astype(np.int64)
                self.indices.append(idx)
                self._tensors.append((p, torch.as_tensor(idx, device=p.device)))
        for i, (p, idx) in enumerate(self._tensors):
            if optimizer.readout(p, idx).g2 is None:
                raise ValueError(
                    f"LearningRateRecorder needs ⟨g²⟩, but parameter tensor {i} has none: its group keeps no ⟨g²⟩ "
                    "EMA (AdaBayes(track_g2=False)); construct the optimizer with track_g2=True (the default)"
                )
        if gradient_steps and any("batch_size" not in group for group in optimizer.param_groups):
            raise ValueError(
                "gradient_steps > 0 needs every param group's batch_size (g = -batch_size * p.grad in the paper's "
                "units), e.g. filtering.torch_adapter.AdaBayes"
            )
        self._buf = {f: np.empty(self.capacity, dtype=np.float64) for f in _FIELDS}
        self._buf.update({f: np.empty(self.capacity, dtype=np.int64) for f in _INT_FIELDS})
        self._n = 0  # samples ever written
        self._calls = 0
        self.gradient_steps = int(gradient_steps)
        self._grads = _GradientRing(self._tensors, self.gradient_steps) if gradient_steps else None
        self._windows: list[tuple[int, np.ndarray]] = []  # (ordinal of the first sample, its rows of grad_window)
        self._grad_handle = (
            optimizer.register_step_post_hook(lambda *_: self.capture_gradients()) if gradient_steps else None
        )
        self._handle = optimizer.register_step_post_hook(self._hook) if attach else None

    def capture_gradients(self) -> None:
        """Store the current ``g = -B p.grad`` of the sampled entries as the newest step of the ring buffer.

        Called by the recorder's own post-step hook after every step when ``gradient_steps > 0``; call it yourself
        only for a step taken before the recorder existed (while ``p.grad`` still holds that step's gradient).
        """
        if self._grads is not None:
            self._grads.capture(self.optimizer)

    def _hook(self, _optimizer: Any, _args: Any, _kwargs: Any) -> None:
        self._calls += 1
        if self._calls % self.every == 0:
            self.record()

    def record(self) -> None:
        """Sample every tensor that has taken a step, through ``optimizer.readout(p, index)``.

        Raises
        ------
        ValueError
            If a tensor's group stopped keeping ⟨g²⟩ (``track_g2`` set to False after construction).
        """
        opt = self.optimizer
        # looked up now, not at construction: load_state_dict replaces the group dicts (the params stay)
        live = {id(p) for group in opt.param_groups for p in group["params"]}
        for i, (p, idx) in enumerate(self._tensors):
            if id(p) not in live:
                continue
            r = opt.readout(p, idx)
            if r.step == 0:
                continue
            if r.g2 is None:
                raise ValueError(f"LearningRateRecorder: parameter tensor {i} no longer keeps ⟨g²⟩ (track_g2=False)")
            var = r.var_post.double().cpu().numpy()
            g2 = r.g2.double().cpu().numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                adam_lr = np.where(g2 > 0, r.lr / np.sqrt(g2), np.inf)  # Eq. 24's x-axis: η / sqrt(⟨g²⟩)
            window = self._grads.window(i) if self._grads is not None else None
            self._append(
                window,
                var_post=var,
                g2=g2,
                adam_lr=adam_lr,
                eta=np.full(len(var), r.lr),
                sigma2=np.full(len(var), r.sigma2),
                step=np.full(len(var), r.step),
                tensor=np.full(len(var), i),
                entry=self.indices[i],
            )

    def _append(self, window: np.ndarray | None, **cols: np.ndarray) -> None:
        k = len(cols["var_post"])
        if k > self.capacity:  # keep the last `capacity` of this batch
            cols = {f: a[-self.capacity :] for f, a in cols.items()}
            window = None if window is None else window[-self.capacity :]
            self._n += k - self.capacity
            k = self.capacity
        pos = (self._n + np.arange(k)) % self.capacity
        for f, a in cols.items():
            self._buf[f][pos] = a
        if window is not None:
            self._windows.append((self._n, window))
        self._n += k
        oldest = self._n - len(self)  # windows whose samples were all overwritten are dropped
        self._windows = [(first, w) for first, w in self._windows if first + len(w) > oldest]

    @property
    def n_overwritten(self) -> int:
        """Samples lost because the buffer was full."""
        return max(0, self._n - self.capacity)

    def __len__(self) -> int:
        return min(self._n, self.capacity)

    def arrays(self) -> dict[str, np.ndarray]:
        """The recorded samples in recording order (see the class Notes for the keys)."""
        n = len(self)
        order = (self._n - n + np.arange(n)) % self.capacity
        out = {f: self._buf[f][order].copy() for f in (*_FIELDS, *_INT_FIELDS)}
        out["tensor_numel"] = np.array([p.numel() * (2 if p.is_complex() else 1) for p, _ in self._tensors], np.int64)
        if self.gradient_steps:
            out["grad_window"] = self._window_rows(self._n - n, n)
        return out

    def _window_rows(self, first: int, n: int) -> np.ndarray:
        """Rows of ``grad_window`` for the samples with ordinals ``first .. first + n - 1``."""
        rows = np.full((n, self.gradient_steps), np.nan, dtype=np.float32)
        for start, w in self._windows:
            lo, hi = max(start, first), min(start + len(w), first + n)
            if hi > lo:
                rows[lo - first : hi - first] = w[lo - start : hi - start]
        return rows

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`arrays` to ``path`` with ``np.savez_compressed``.

        Warns (``RuntimeWarning``) when no sample was recorded, e.g. ``every=50`` on a run shorter than 50 steps:
        the file then holds empty arrays.
        """
        if len(self) == 0:
            warnings.warn(
                f"LearningRateRecorder.save: no samples were recorded ({self._calls} optimizer steps seen, recording "
                f"after every {self.every}th), so {os.fspath(path)!r} holds empty arrays; lower `every` or call "
                "record() yourself",
                RuntimeWarning,
                stacklevel=2,
            )
        arrays: dict[str, Any] = self.arrays()
        np.savez_compressed(path, **arrays)

    def close(self) -> None:
        """Remove the post-step hooks (idempotent)."""
        for name in ("_handle", "_grad_handle"):
            handle = getattr(self, name)
            if handle is not None:
                handle.remove()
                setattr(self, name, None)


class _GradientRing:
    """The last K gradients of the sampled entries of every tensor, on each tensor's device (float32).

    Parameters
    ----------
    tensors : list of (param, index)
        The recorder's tensors and their sampled flat indices (as a device tensor).
    steps : int
        K.
    """

    def __init__(self, tensors: list[tuple[Any, Any]], steps: int) -> None:
        import torch

        self.tensors = tensors
        self.steps = steps
        self.rings = [
            torch.full((steps, len(idx)), float("nan"), dtype=torch.float32, device=p.device) for p, idx in tensors
        ]
        self.count = 0  # steps captured

    def capture(self, optimizer: Any) -> None:
        """Write ``g = -B p.grad`` (``+B p.grad`` for ``maximize``) of the sampled entries into slot count % K."""
        import torch

        groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        slot = self.count % self.steps
        for ring, (p, idx) in zip(self.rings, self.tensors, strict=True):
            group = groups.get(id(p))
            if group is None or p.grad is None:
                ring[slot] = float("nan")
                continue
            grad = torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad
            sign = 1.0 if group.get("maximize", False) else -1.0
            ring[slot] = (sign * float(group["batch_size"])) * grad.detach().reshape(-1)[idx].float()
        self.count += 1

    def window(self, i: int) -> np.ndarray:
        """Tensor ``i``'s window, shape (n_entries, K), oldest step first (NaN for steps not captured)."""
        ring = self.rings[i].cpu().numpy()
        order = (self.count + np.arange(self.steps)) % self.steps
        return np.ascontiguousarray(ring[order].T)
