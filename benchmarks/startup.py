"""Start-up: import filtering + the first kalman_filter call (warm numba cache), in this fresh process.

python benchmarks/startup.py  -> prints import s, first call s, process CPU s
"""

import time

t0 = time.perf_counter()
c0 = time.process_time()
import numpy as np  # noqa: E402

import filtering  # noqa: E402, F401 (the package import is what is timed)
from filtering.state_space import kalman_filter  # noqa: E402

t1 = time.perf_counter()
rng = np.random.default_rng(0)
g = rng.standard_normal((100, 10))
kalman_filter(g, np.ones_like(g), 1e-3, 0.1)
t2 = time.perf_counter()
print(
    f"import filtering + state_space {t1 - t0:.2f} s, first kalman_filter {t2 - t1:.2f} s, "
    f"together {t2 - t0:.2f} s (CPU {time.process_time() - c0:.2f} s)"
)
