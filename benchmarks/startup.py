"""Start-up: `import filtering.state_space` + kalman_filter calls in fresh processes, on each path of
filtering._filter_choice (warm numba cache).

python benchmarks/startup.py [--calls N]
    For each path (auto = the ski-rental choice, compiled, numpy) and each workload -- one call of 100 x 10, and
    N calls (default 3000) of 100 x 10 -- a fresh process reports the wall time of import + calls, and whether
    numba was imported. Prints one line per run and the ratios auto / compiled, auto / best.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import time
t0 = time.perf_counter()
import sys
import numpy as np
from filtering.state_space import kalman_filter
t1 = time.perf_counter()
g = np.random.default_rng(0).standard_normal((100, 10))
h = np.ones_like(g)
for _ in range({calls}):
    kalman_filter(g, h, 1e-3, 0.1)
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{'numba' in sys.modules}}")
"""


def measure(path: str, calls: int) -> tuple[float, float, bool]:
    env = dict(os.environ, ADABAYES_FILTER_PATH=path)
    out = subprocess.run([sys.executable, "-c", CHILD.format(calls=calls)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    imp, run, numba = out.stdout.split()
    return float(imp), float(run), numba == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    measure("compiled", 1)  # warm numba's disk cache for the kernel
    for calls in (1, args.calls):
        totals = {}
        for path in ("auto", "compiled", "numpy"):
            imp, run, numba = measure(path, calls)
            totals[path] = imp + run
            print(
                f"{calls:5d} call(s) of 100x10, {path:8s}: import {imp:.2f} s + calls {run:.2f} s = "
                f"{imp + run:.2f} s (numba imported: {numba})"
            )
        best = min(totals["compiled"], totals["numpy"])
        print(
            f"      auto / compiled {totals['auto'] / totals['compiled']:.2f}x, auto / best in hindsight "
            f"{totals['auto'] / best:.2f}x"
        )


if __name__ == "__main__":
    main()
