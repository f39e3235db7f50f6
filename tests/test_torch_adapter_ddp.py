"""AdaBayes / AdaBayesFP under DistributedDataParallel: 2 CPU processes, gloo backend on 127.0.0.1.

Under DDP each rank computes the mean loss over its shard and DDP *averages* the gradients across ranks, so
``p.grad`` is the gradient of the mean loss over the global batch: pass ``batch_size = global batch``
(per-rank batch x world size). Then training equals single-process training on the concatenated batch.
"""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from filtering.torch_adapter import AdaBayes, AdaBayesFP  # noqa: E402

WORLD = 2
PER_RANK = 6
GLOBAL_BATCH = WORLD * PER_RANK
STEPS = 5


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return (
        torch.randn(GLOBAL_BATCH, 4, generator=gen, dtype=torch.float64),
        torch.randn(GLOBAL_BATCH, 2, generator=gen, dtype=torch.float64),
    )


def _make_opt(name: str, params) -> torch.optim.Optimizer:
    cls = {"AdaBayes": AdaBayes, "AdaBayesFP": AdaBayesFP}[name]
    return cls(params, lr=3e-3, lr_sgd=0.5, batch_size=GLOBAL_BATCH, weight_decay=1e-3)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, rank: int | None) -> None:
    for step in range(STEPS):
        x, y = _data(step)
        if rank is not None:  # this rank's shard
            x, y = x[rank * PER_RANK : (rank + 1) * PER_RANK], y[rank * PER_RANK : (rank + 1) * PER_RANK]
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _worker(rank: int, port: int, name: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_model())
        _train(model, _make_opt(name, model.parameters()), rank)
        torch.save([p.detach() for p in model.module.parameters()], os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
@pytest.mark.parametrize("name", ["AdaBayes", "AdaBayesFP"])
def test_ddp_two_ranks_equal_each_other_and_single_process_on_global_batch(name: str, tmp_path) -> None:
    torch.multiprocessing.spawn(_worker, args=(_free_port(), name, str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    model = _model()
    _train(model, _make_opt(name, model.parameters()), None)
    for p0, p1, ref, init in zip(*ranks, model.parameters(), _model().parameters(), strict=True):
        assert torch.equal(p0, p1)  # DDP: identical parameters on every rank
        assert (p0 - init.detach()).abs().max() > 1e-4  # training moved them
        # mean of the two shard means vs the global mean: rounding-level differences only
        torch.testing.assert_close(p0, ref.detach(), rtol=1e-12, atol=1e-14)
