"""Fault injection for the training commands (issue 13): each scenario that lost data, ran code or crashed with a
traceback, replayed so that it stays fixed.

Covered here (the training/run/data part; other packages keep theirs in their own test files):

* a malicious CIFAR pickle is refused and nothing in it runs (restricted unpickler; MD5 of official files);
* concurrent writers of one run folder: the second gets a one-line error naming the holder's pid;
* writes go through unique temporary names, are fsynced before the rename, and leave no temporary behind;
* a sweep over lr, lr_sgd or batch size gets one default run folder per point;
* checkpoints are verified on ``--resume``: flipped byte (payload and header), truncated, empty, text, the old
  format, another run's checkpoint, epoch -1, a short history, a missing checkpoint beside a log, a payload that
  would unpickle a foreign object; a full disk (``RLIMIT_FSIZE``) keeps the previous checkpoint;
* a SIGKILLed run resumes bit for bit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adabayes.cli import main  # noqa: E402
from simulations.training import records  # noqa: E402
from simulations.training.cifar_files import OFFICIAL_MD5, file_md5, read_batch  # noqa: E402
from simulations.training.datasets import load_cifar  # noqa: E402
from simulations.training.loop import TrainConfig, train  # noqa: E402
from simulations.training.records import (  # noqa: E402
    CheckpointError,
    RunFolderBusy,
    RunWriteError,
    atomic_write,
    load_checkpoint,
    run_lock,
    save_checkpoint,
)
from simulations.training.synthetic import write_synthetic_cifar  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--n-train", "64", "--n-test", "32", "--batch-size", "32", "--width", "2"]
TINY += ["--no-progress", "--device", "cpu", "--threads", "1", "--optimizer", "sgd"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _tiny_config(**kw) -> TrainConfig:
    base = dict(dataset="digits", model="mlp", optimizer="sgd", epochs=3, batch_size=32, width=2, n_train=64, n_test=32)
    return TrainConfig(**{**base, **kw})


def _only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------------------------------------------
# data files: nothing executed


class _Evil:
    """Pickles to a call that creates ``marker`` (what a hostile batch file would do with a shell command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _write_evil_cifar(root: Path, marker: Path, nested: bool) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        evil = _Evil(marker)
        payload = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, evil]} if nested else evil
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
    return folder


@pytest.mark.parametrize("nested", [False, True])
def test_malicious_cifar_pickle_runs_nothing(tmp_path, nested):
    marker = tmp_path / "PWNED"
    folder = _write_evil_cifar(tmp_path / "data", marker, nested)
    # the check that matters: the unpickler itself (MD5 verification off)
    with pytest.raises(ValueError, match=r"not a safe CIFAR batch: it refers to (builtins|__builtin__)\.exec,") as info:
        load_cifar("cifar10", tmp_path / "data", verify=False)
    assert "nothing was run" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    # pickle.load on the same file does run it: the test file is really hostile
    with (folder / "test_batch").open("rb") as handle:
        pickle.load(handle)  # the point of this test
    assert marker.exists()


def test_malicious_cifar_pickle_through_the_cli_is_one_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    _write_evil_cifar(tmp_path / "data", marker, nested=False)
    argv = ["train", "--dataset", "cifar10", "--data", str(tmp_path / "data"), "--epochs", "1", "--no-progress"]
    for extra in ([], ["--no-verify"]):  # MD5 stops it first; without MD5 the unpickler does
        assert main([*argv, *extra, "--out", str(tmp_path / "r")]) == 2
        line = _only_line(capsys.readouterr().err)
        assert line.startswith("adabayes train: error: ")
        assert ("MD5" in line) if not extra else ("not a safe CIFAR batch" in line)
        assert not marker.exists()


def test_official_names_are_checked_against_the_official_md5(tmp_path, monkeypatch):
    write_synthetic_cifar(tmp_path, "cifar10", n_train=10, n_test=2)
    with pytest.raises(
        ValueError,
        match=r"data_batch_1: MD5 [0-9a-f]{32} is not the official "
        r"c99cafc152244af753f735de768cd75f.*--no-verify",
    ):
        load_cifar("cifar10", tmp_path)
    assert load_cifar("cifar10", tmp_path, verify=False).x_train.shape == (10, 3, 32, 32)
    # files whose MD5 is the official one pass the check (the table is consulted per folder and file name)
    folder = tmp_path / "cifar-10-batches-py"
    table = {("cifar-10-batches-py", p.name): file_md5(p) for p in folder.iterdir()}
    monkeypatch.setattr("simulations.training.cifar_files.OFFICIAL_MD5", table)
    assert load_cifar("cifar10", tmp_path).x_test.shape == (2, 3, 32, 32)
    assert file_md5(folder / "test_batch") == hashlib.md5((folder / "test_batch").read_bytes()).hexdigest()
    assert len(OFFICIAL_MD5) == 8 and all(len(v) == 32 for v in OFFICIAL_MD5.values())


def test_numpy_pickles_of_protocols_2_to_5_are_read(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for protocol in (2, 4, 5):
        path = tmp_path / f"batch{protocol}"
        path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4], b"filenames": [b"a", b"b"]}, protocol))
        x, y = read_batch(path, b"labels")
        assert np.array_equal(x.reshape(2, 3072), data) and y.tolist() == [3, 4]


def test_non_cifar_pickles_are_one_line_errors(tmp_path):
    cases = {
        "text": b"hello\n",
        "empty": b"",
        "list": pickle.dumps([1, 2]),
        "float_data": pickle.dumps({b"data": np.zeros((1, 3072)), b"labels": [0]}),
        "object_array": pickle.dumps({b"data": np.array([None], dtype=object), b"labels": [0]}),
    }
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ValueError) as info:
            read_batch(path, b"labels")
        assert "\n" not in str(info.value) and str(path) in str(info.value), name


# ----------------------------------------------------------------------------------------------------------------
# concurrent writers, temporary names, fsync


def test_second_writer_gets_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "r"
    with run_lock(out):
        assert (out / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderBusy, match=rf"in use by another adabayes process \(pid {os.getpid()}\)"):
            train(_tiny_config(), out_dir=out, progress=False)
        assert main(["train", *TINY, "--out", str(out)]) == 2
        line = _only_line(capsys.readouterr().err)
        assert line.startswith("adabayes train: error: run folder") and f"(pid {os.getpid()})" in line
    assert not (out / "checkpoint.pt").exists()  # the refused writer wrote nothing
    assert train(_tiny_config(epochs=1), out_dir=out, progress=False).history  # free again


def test_two_processes_on_one_folder_never_both_succeed(tmp_path):
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "adabayes", "train", "--epochs", "60", *TINY, "--out", str(out)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()) for _ in "ab"
    ]
    results = [(p.wait(timeout=600), p.communicate()[1]) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    line = _only_line(loser)
    assert "in use by another adabayes process (pid " in line or "already holds a run" in line
    saved = load_checkpoint(out)
    assert saved is not None and saved["epoch"] == 60


def test_temporary_names_are_unique_and_fsynced_before_the_rename(tmp_path, monkeypatch):
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(fd)))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(tmp_path / "checkpoint.pt", b"one")
    atomic_write(tmp_path / "checkpoint.pt", b"two")
    temps = [name for kind, name in calls if kind == "replace"]
    assert len(temps) == 2 and temps[0] != temps[1]
    assert all(Path(t).name.startswith(".checkpoint.pt.") and t.endswith(".tmp") for t in temps)
    for tmp in temps:  # the file's own fsync comes before its rename
        assert calls.index(("fsync", tmp)) < calls.index(("replace", tmp))
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "checkpoint.pt"
    atomic_write(path, b"old")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RunWriteError, match=r"could not write .*checkpoint\.pt: No space left on device \(disk full"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_the_lock_holder_removes_temporaries_a_killed_writer_left(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    stale = [out / ".checkpoint.pt.k1l2.tmp", out / ".history.json.x9.tmp", out / ".history.csv.y.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    kept = out / ".notes.tmp"  # not one of ours
    kept.write_text("user file")
    with run_lock(out):
        assert not [p for p in stale if p.exists()]
    assert kept.read_text() == "user file"


# ----------------------------------------------------------------------------------------------------------------
# run folder names


def test_default_run_folders_name_every_non_default_hyperparameter():
    from simulations.training.train_cli import default_run_dir

    assert str(default_run_dir(TrainConfig())) == "runs/mnist1d-resnet1d-sgd-s0"
    assert str(default_run_dir(TrainConfig(optimizer="adabayes"))) == "runs/mnist1d-resnet1d-adabayes-s0"
    sweep = [
        TrainConfig(optimizer="adabayes", lr=lr, lr_sgd=lr_sgd, batch_size=b)
        for lr in (1e-3, 1e-2)
        for lr_sgd in (0.1, 1.0)
        for b in (64, 128)
    ]
    names = [str(default_run_dir(c)) for c in sweep]
    assert len(set(names)) == len(names)
    assert str(default_run_dir(TrainConfig(optimizer="adabayes", lr=0.01, batch_size=64))) == (
        "runs/mnist1d-resnet1d-adabayes-s0-batch_size=64-lr=0.01"
    )
    for kw, suffix in (
        ({"epochs": 20}, "epochs=20"),
        ({"weight_decay": 1e-4}, "weight_decay=0.0001"),
        ({"lr_sgd": 1.0, "optimizer": "adabayes"}, "lr_sgd=1.0"),
        ({"width": 16}, "width=16"),
        ({"milestone": 0.5}, "milestone=0.5"),
        ({"n_train": 100}, "n_train=100"),
        ({"augment": True}, "augment=True"),
    ):
        assert str(default_run_dir(TrainConfig(**kw))).endswith("-s0-" + suffix), kw


def test_default_table_folder_names_what_differs():
    from simulations.training.table import default_table_dir

    assert str(default_table_dir(TrainConfig(epochs=20, width=16))) == "runs/table-mnist1d-resnet1d"
    assert str(default_table_dir(TrainConfig(epochs=60, width=16))) == "runs/table-mnist1d-resnet1d-epochs=60"


# ----------------------------------------------------------------------------------------------------------------
# checkpoints: every damaged, foreign or missing case is one line


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A run folder stopped after epoch 1 of 3 (a valid checkpoint to damage), and its config."""
    out = tmp_path_factory.mktemp("good") / "run"
    config = _tiny_config()
    train(config, out_dir=out, stop_after=1, progress=False)
    return out, config


def _copy(good: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for p in good.iterdir():
        if p.is_file():
            (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _flip(path: Path, where: str) -> None:
    """Flip the lowest bit of one byte: in the middle of the payload, or the seed digit in the header's config."""
    raw = bytearray(path.read_bytes())
    header_end = raw.index(b"\n", len(records.MAGIC))
    i = raw.index(b'"seed": ') + len(b'"seed": ') if where == "header" else (header_end + len(raw)) // 2
    raw[i] ^= 0x01
    path.write_bytes(bytes(raw))


def _craft(path: Path, state: dict) -> None:
    """A checkpoint with a valid hash around ``state`` (what a buggy or hostile writer could produce)."""
    save_checkpoint(path.parent, state)


DAMAGE = {
    "flipped_payload_byte": (lambda p, _s: _flip(p, "payload"), "is damaged: its SHA-256 does not match"),
    "flipped_header_byte": (lambda p, _s: _flip(p, "header"), "is damaged: its SHA-256 does not match"),
    "truncated": (lambda p, _s: os.truncate(p, p.stat().st_size * 2 // 3), "is truncated"),
    "truncated_in_header": (lambda p, _s: os.truncate(p, len(records.MAGIC) + 10), "header is unreadable"),
    "empty": (lambda p, _s: p.write_bytes(b""), "is empty (0 bytes"),
    "text": (lambda p, _s: p.write_text("hello, I am not a checkpoint\n"), "is not an adabayes checkpoint"),
    "old_format": (lambda p, s: torch.save(s, p), "older adabayes, without a content hash"),
    "epoch_minus_1": (lambda p, s: _craft(p, {**s, "epoch": -1}), "epoch -1 is not in [1, 3]"),
    "epoch_beyond_the_run": (lambda p, s: _craft(p, {**s, "epoch": 7}), "epoch 7 is not in [1, 3]"),
    "short_history": (lambda p, s: _craft(p, {**s, "epoch": 2}), "1 history rows for epoch 2"),
    "no_model_state": (lambda p, s: _craft(p, {k: v for k, v in s.items() if k != "model"}), "lacks model"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_checkpoint_is_refused_with_one_line(tmp_path, good_run, case, capsys):
    good, config = good_run
    out = _copy(good, tmp_path / case)
    state = torch.load(io.BytesIO(_payload(good / "checkpoint.pt")), weights_only=True)
    damage, message = DAMAGE[case]
    damage(out / "checkpoint.pt", state)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        train(config, out_dir=out, resume=True, progress=False)
    # the same through the command line: one line, exit 2, nothing trained
    before = (out / "checkpoint.pt").read_bytes()
    argv = ["train", "--dataset", "digits", "--model", "mlp", "--optimizer", "sgd", "--epochs", "3", "--width", "2"]
    argv += ["--batch-size", "32", "--n-train", "64", "--n-test", "32", "--no-progress", "--out", str(out), "--resume"]
    assert main(argv) == 2
    line = _only_line(capsys.readouterr().err)
    assert line.startswith("adabayes train: error: ") and message in line
    assert (out / "checkpoint.pt").read_bytes() == before


def _payload(path: Path) -> bytes:
    raw = path.read_bytes()
    return raw[raw.index(b"\n", len(records.MAGIC)) + 1 :]


def test_another_runs_checkpoint_is_refused_naming_the_difference(tmp_path, good_run):
    good, config = good_run
    other = tmp_path / "other"
    train(_tiny_config(seed=5), out_dir=other, stop_after=1, progress=False)
    out = _copy(good, tmp_path / "mine")
    (out / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"belongs to another run \(seed: 5 there, 0 now\)"):
        train(config, out_dir=out, resume=True, progress=False)


def test_missing_checkpoint_beside_a_log_is_refused(tmp_path, good_run):
    good, config = good_run
    out = _copy(good, tmp_path / "r")
    (out / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds history\.json but no checkpoint\.pt.*--overwrite"):
        train(config, out_dir=out, resume=True, progress=False)
    # an empty folder is a fresh start, as --resume's help says
    fresh = train(config, out_dir=tmp_path / "new", resume=True, stop_after=1, progress=False)
    assert fresh.resumed_from == 0 and len(fresh.history) == 1


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('executed')",))


def test_a_hash_valid_checkpoint_with_a_foreign_object_is_not_unpickled(tmp_path, good_run):
    """weights_only=True: a payload that names a callable is refused even with a correct hash."""
    good, config = good_run
    out = _copy(good, tmp_path / "r")
    state = torch.load(io.BytesIO(_payload(good / "checkpoint.pt")), weights_only=True)
    buffer = io.BytesIO()
    torch.save({**state, "extra": _Boom()}, buffer)
    payload = buffer.getvalue()
    header = {"format": 1, "size": len(payload), "epoch": 1, "config": config.to_dict()}
    digest = records._digest(header, payload)
    raw = records.MAGIC + json.dumps({**header, "sha256": digest}, sort_keys=True).encode() + b"\n" + payload
    (out / "checkpoint.pt").write_bytes(raw)
    with pytest.raises(CheckpointError, match=r"cannot be read by torch\.load"):
        train(config, out_dir=out, resume=True, progress=False)


def test_a_good_checkpoint_is_verified_and_resumes(tmp_path, good_run):
    good, config = good_run
    out = _copy(good, tmp_path / "r")
    saved = load_checkpoint(out, config.to_dict())
    assert saved is not None and saved["epoch"] == 1 and [r["epoch"] for r in saved["history"]] == [1]
    raw = (out / "checkpoint.pt").read_bytes()
    assert raw.startswith(records.MAGIC)
    header = json.loads(raw[len(records.MAGIC) : raw.index(b"\n", len(records.MAGIC))])
    assert header["config"] == config.to_dict() and header["epoch"] == 1 and len(header["sha256"]) == 64
    result = train(config, out_dir=out, resume=True, progress=False)
    assert result.resumed_from == 1 and len(result.history) == 3


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, good_run):
    """A file-size limit (RLIMIT_FSIZE) below the checkpoint's size: one line, exit 2, the old file intact."""
    import resource

    good, _ = good_run
    out = _copy(good, tmp_path / "r")
    before = (out / "checkpoint.pt").read_bytes()
    limit = 4 * (out / "history.json").stat().st_size  # the logs of 2 epochs and the lock fit
    assert limit < len(before)  # the checkpoint does not

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [sys.executable, "-m", "adabayes", "train", "--model", "mlp", "--epochs", "3", *TINY]
    done = subprocess.run(
        [*argv, "--out", str(out), "--resume"],
        capture_output=True,
        text=True,
        env=_env(),
        preexec_fn=limit_file_size,  # the test process is single-threaded
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    line = _only_line(done.stderr)
    assert line.startswith("adabayes train: error: could not write ") and "checkpoint.pt: File too large" in line
    assert "the previous checkpoint.pt (if any) is kept" in line
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------------------------------------
# SIGKILL: resume bit for bit


def _run_cli(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


def test_sigkilled_runs_resume_bit_for_bit(tmp_path):
    """Killed (SIGKILL) once right after the first checkpoint and once at a random moment, then resumed: the
    history and the weights equal those of an uninterrupted run."""
    argv = [sys.executable, "-m", "adabayes", "train", "--model", "cnn", "--epochs", "6", "--milestone", "0.5"]
    argv += [*TINY[:-2], "--optimizer", "adam"]
    _run_cli([*argv, "--out", str(tmp_path / "full")])
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    for kill in range(2):
        cmd = [*argv, "--out", str(out)] + (["--resume"] if kill else [])
        ckpt = out / "checkpoint.pt"
        seen = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        start = time.monotonic()
        # wait for a checkpoint written by this process, then kill at once or a random moment later
        while proc.poll() is None and time.monotonic() - start < 300:
            if ckpt.exists() and ckpt.stat().st_mtime_ns != seen:
                break
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.05)) if kill else 0.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _run_cli([*argv, "--out", str(out), "--resume"])
    full, resumed = load_checkpoint(tmp_path / "full"), load_checkpoint(out)
    strip = [{k: v for k, v in row.items() if k != "time_s"} for row in full["history"]]
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in resumed["history"]] == strip
    assert resumed["epoch"] == 6
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
