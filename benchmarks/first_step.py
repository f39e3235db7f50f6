"""First optimiser step on the default CPU path (numba) in a fresh process: import + first step wall time.

python benchmarks/first_step.py {AdaBayes|AdaBayesFP} {small|resnet50} THREADS
Prints: seconds for `import filtering.torch_adapter` (torch already imported), then the first opt.step()
(state allocation + numba import + cache load), then the second step.
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
cls_name, set_name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
from optimizer_step import SETS, make_params  # noqa: E402

params = make_params(SETS["cpu"][set_name](), torch.device("cpu"))
c0 = time.process_time()
t0 = time.perf_counter()
import filtering.torch_adapter as ta  # noqa: E402

t1 = time.perf_counter()
opt = getattr(ta, cls_name)(params, lr=1e-3, lr_sgd=0.1, batch_size=128)
opt.step()
t2 = time.perf_counter()
c2 = time.process_time()
opt.step()
t3 = time.perf_counter()
from filtering import torch_functional as TF  # noqa: E402

path = TF.choose_path(torch.device("cpu"), foreach=None, fused=None, capturable=False)
print(
    f"{cls_name} {set_name} threads={threads} path={path}: import {t1 - t0:.2f} s, first step {t2 - t1:.2f} s, "
    f"second step {1e3 * (t3 - t2):.1f} ms (CPU of import + first step {c2 - c0:.2f} s)"
)
