"""The AR(2) likelihood kernel (:func:`filtering.likelihood.ar2_run`'s threaded build) on 1 and 2 threads.

python benchmarks/ar2_threads.py [--streams 16384] [--steps 1498]
    Each thread count runs in a fresh process (numba's thread count is set before the first call); prints the
    best of 5 calls, wall and CPU seconds. With the threaded build working, 2 threads take less wall time and
    about the same CPU time as 1; a build that runs serial code shows equal wall times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import time, numba, numpy as np
from filtering import likelihood as lik
numba.set_num_threads({threads})
rng = np.random.default_rng(0)
obs, h = rng.standard_normal(({steps}, {streams})), np.ones((1, {streams}))
coef = [np.full({streams}, v) for v in (0.5, 0.3, 0.1, 1.0, 0.0, 10.0)]
out = np.empty({streams})
lik._AR2_PARALLEL(obs[:5], h, *coef, 0, out)
wall = cpu = 1e9
for _ in range(5):
    t, c = time.perf_counter(), time.process_time()
    lik._AR2_PARALLEL(obs, h, *coef, 0, out)
    wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
print(f"{{wall * 1e3:.1f}} {{cpu * 1e3:.1f}}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=1498)
    args = parser.parse_args()
    for threads in (1, 2):
        code = CHILD.format(threads=threads, steps=args.steps, streams=args.streams)
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        wall, cpu = child.stdout.split()
        size = f"{args.streams} streams x {args.steps} steps"
        print(f"{size}, {threads} thread(s): best of 5 {wall} ms wall, {cpu} ms CPU")


if __name__ == "__main__":
    main()
