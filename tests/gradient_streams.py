"""Gradient streams shared by the kernel tests (fused CPU, kernel paths, optax): one recipe, seeded.

Not a test module (no ``test_`` prefix); the test files import it by name (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def gradient_stream(shapes: Sequence[tuple[int, ...]], seed: int, steps: int) -> list[list[np.ndarray]]:
    """Mean-loss gradients from 1e-4 to 1e2 with exact zeros: one entry per tensor never sees a gradient, 5 % are 0.

    Returns ``steps`` lists, one array per shape.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        gs = []
        for s in shapes:
            scale = 10.0 ** rng.uniform(-4, 2, size=s)
            g = rng.standard_normal(s) * scale + 0.3 * scale
            g.reshape(-1)[0] = 0.0
            g[rng.random(s) < 0.05] = 0.0
            gs.append(g)
        out.append(gs)
    return out


def initial_params(shapes: Sequence[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    """Standard-normal starting parameters, one array per shape (seeded apart from the gradients)."""
    rng = np.random.default_rng(seed + 1000)
    return [rng.standard_normal(s) for s in shapes]
