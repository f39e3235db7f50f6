"""simulations.training.protocols: the paper and matched hyperparameters and the study presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.training.catalog import DEFAULTS, OPTIMIZERS
from simulations.training.protocols import (
    PROTOCOLS,
    fixed_hparams,
    fixed_specs,
    study_config,
)


def test_paper_is_the_catalog_and_matched_converts_the_decoupled_optimisers():
    for opt in OPTIMIZERS:
        assert fixed_hparams("paper", opt) == DEFAULTS[opt]
    for opt in ("sgd", "adam", "amsgrad"):
        assert fixed_hparams("matched", opt) == DEFAULTS[opt]
    for opt in ("adabayes", "adabayes_fp"):
        hp = fixed_hparams("matched", opt)
        assert hp["lr"] == 1e-3
        assert hp["lr_sgd"] == pytest.approx(0.1 / (1 - 0.9))  # 1.0
        assert hp["weight_decay"] == pytest.approx(0.1 * 5e-4 / (1 - 0.9))  # 5e-4, the paper's is 5e-5
    assert fixed_hparams("matched", "adamw") == pytest.approx({"lr": 1e-3, "weight_decay": 5e-4})
    with pytest.raises(ValueError, match="protocol must be 'paper' or 'matched'"):
        fixed_hparams("tuned", "sgd")


def test_presets():
    full = study_config(["tuned", "paper"])
    assert full.protocols == ("paper", "tuned")  # canonical order
    assert full.seeds == (0, 1, 2, 3, 4) and full.trials == 12 and not full.quick
    assert [t.name for t in full.tasks] == ["mnist1d", "mnist", "digits"]
    assert full.out == Path("runs/verdict") and full.storage_url().endswith("runs/verdict/study.db")
    quick = study_config(PROTOCOLS, quick=True, tasks=["digits"], optimizers=["SGD", "AdaBayes-FP"])
    assert quick.seeds == (0, 1) and quick.trials == 2 and quick.tasks[0].epochs == 2
    assert quick.optimizers == ("sgd", "adabayes_fp") and quick.out == Path("runs/verdict-quick")
    server = study_config(["paper"], storage="postgresql://db/optuna")
    assert server.storage_url() == "postgresql://db/optuna"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocols": ["best"]}, "protocol must be among paper, matched, tuned"),
        ({"protocols": []}, "protocol must be among"),
        ({"protocols": ["paper"], "tasks": ["cifar10"]}, "tasks must be among mnist1d, mnist, digits"),
        ({"protocols": ["paper"], "optimizers": ["sgd", "SGD"]}, "optimizers must be distinct"),
        ({"protocols": ["paper"], "optimizers": ["adagrad"]}, "optimizer must be one of"),
        ({"protocols": ["paper"], "trials": 0}, "trials must be >= 1"),
        ({"protocols": ["paper"], "seeds": [1, 1]}, "seeds must be distinct"),
        ({"protocols": ["paper"], "seeds": [-1]}, "seeds must be non-negative"),
    ],
)
def test_bad_configurations_name_the_argument(kwargs, message):
    protocols = kwargs.pop("protocols")
    with pytest.raises(ValueError, match=message):
        study_config(protocols, **kwargs)


def test_matched_shares_runs_with_paper_only_where_nothing_changes():
    config = study_config(["paper", "matched"], quick=True, tasks=["digits"])
    task = config.tasks[0]
    for opt in OPTIMIZERS:
        paper = [s.key() for s in fixed_specs(config, "paper", task, opt)]
        matched = [s.key() for s in fixed_specs(config, "matched", task, opt)]
        assert (paper == matched) == (opt in ("sgd", "adam", "amsgrad"))
        assert [s.seed for s in fixed_specs(config, "paper", task, opt)] == [0, 1]
