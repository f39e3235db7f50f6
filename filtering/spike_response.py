"""How far one gradient spike moves a weight: Alg. 1's spike sensitivity against AdamW and AdaBayes-FP.

Run ``python3 -m filtering.spike_response`` (about 10 s on 2 cores). Protocol, per optimiser (defaults of the paper:
lr = η = 1e-3, lr_sgd = 0.1, B = 128, betas = (0.9, 0.999), no weight decay): ``seeds`` independent scalar weights
start at 0 and see ``p.grad = noise · N(0, 1)`` for ``burn_in`` steps, then one step with ``p.grad = spike``, then
``after`` more noise steps. The same run without the spike (same noise) is subtracted, so the number is the
displacement *caused by the spike*; the table gives its median over the weights (float64).

For AdaBayes (Alg. 1) the spike sets σ²_post ≈ 1/(B spike)² for one step, after which σ²_post grows back by about η²
per step while the momentum still holds (1-β1)·spike·β1^k, so the displacement is ≈ -B (1-β1) spike η² β1/(1-β1)²:
linear in the spike (-1.15 for a spike of 1e3). AdamW and AdaBayes-FP normalise by sqrt(⟨g²⟩), which remembers the
spike as long as the momentum does. ``AdaBayes(smooth_g2=True)`` puts ⟨g²⟩ into Eq. 18a and is bounded the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .torch_adapter import AdaBayes, AdaBayesFP

__all__ = ["OPTIMIZERS", "spike_displacement", "spike_table"]

BATCH_SIZE = 128
LR = 1e-3
LR_SGD = 0.1

OptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "AdaBayes": lambda ps: AdaBayes(ps, lr=LR, lr_sgd=LR_SGD, batch_size=BATCH_SIZE),
    "AdaBayes smooth_g2": lambda ps: AdaBayes(ps, lr=LR, lr_sgd=LR_SGD, batch_size=BATCH_SIZE, smooth_g2=True),
    "AdaBayes-FP": lambda ps: AdaBayesFP(ps, lr=LR, lr_sgd=LR_SGD, batch_size=BATCH_SIZE),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.0),
}
"""The optimisers compared, at the paper's defaults (AdamW: torch's eps = 1e-8)."""


def spike_displacement(
    make_optimizer: OptimizerFactory,
    spike: float,
    *,
    noise: float = 0.01,
    burn_in: int = 2000,
    after: int = 2000,
    seeds: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """Displacement of each of ``seeds`` weights caused by one gradient spike (see the module docstring).

    Returns
    -------
    ndarray, shape (seeds,)
        ``w_with_spike - w_without_spike`` after ``burn_in + 1 + after`` steps.
    """
    gen = torch.Generator().manual_seed(seed)
    noise_steps = noise * torch.randn(burn_in + 1 + after, seeds, generator=gen, dtype=torch.float64)
    spiked = torch.zeros(seeds, dtype=torch.float64, requires_grad=True)
    plain = torch.zeros(seeds, dtype=torch.float64, requires_grad=True)
    opts = [make_optimizer([spiked]), make_optimizer([plain])]
    for t, g in enumerate(noise_steps):
        spiked.grad = torch.full_like(g, spike) if t == burn_in else g.clone()
        plain.grad = g.clone()
        for opt in opts:
            opt.step()
    return (spiked - plain).detach().numpy()


def spike_table(spikes: Sequence[float] = (1e3, 1e5), *, seeds: int = 64) -> dict[str, list[float]]:
    """Median displacement per optimiser of :data:`OPTIMIZERS` and spike (defaults of :func:`spike_displacement`)."""
    return {
        name: [float(np.median(spike_displacement(make, s, seeds=seeds))) for s in spikes]
        for name, make in OPTIMIZERS.items()
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=float, nargs="+", default=[1e3, 1e5])
    parser.add_argument("--seeds", type=int, default=64)
    args = parser.parse_args(argv)
    table = spike_table(args.spikes, seeds=args.seeds)
    print("| optimiser | " + " | ".join(f"spike {s:g}" for s in args.spikes) + " |")
    print("|---" * (len(args.spikes) + 1) + "|")
    for name, values in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.3g}" for v in values) + " |")


if __name__ == "__main__":
    main()
