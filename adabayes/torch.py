"""The PyTorch side of adabayes, under one name: ``from adabayes.torch import AdaBayes, AdaBayesFP``.

- :class:`AdaBayes` (Alg. 1) and :class:`AdaBayesFP` (Alg. 2): ``torch.optim.Optimizer`` classes
  (:mod:`filtering.torch_adapter`), with :class:`Readout` from their ``readout(p)``;
- :func:`adabayes_step` and :func:`adabayes_fp_step`: the same steps as functions (:mod:`filtering.torch_functional`);
- :class:`LearningRateRecorder`: samples σ²_post and ⟨g²⟩ during training for a Fig. 3 (:mod:`filtering.recording`).

Needs PyTorch (``pip install "adabayes[torch]"``); importing this module without it raises an ImportError that says so.
"""

from __future__ import annotations

try:
    from filtering.recording import LearningRateRecorder
    from filtering.torch_adapter import AdaBayes, AdaBayesFP, Readout
    from filtering.torch_functional import adabayes_fp_step, adabayes_step
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess without torch
    if exc.name != "torch":
        raise
    raise ImportError(
        "adabayes.torch (AdaBayes, AdaBayesFP, LearningRateRecorder) needs PyTorch: pip install 'adabayes[torch]'"
    ) from exc

__all__ = ["AdaBayes", "AdaBayesFP", "LearningRateRecorder", "Readout", "adabayes_fp_step", "adabayes_step"]
