"""Tests for course_utils.distributed and scripts/train_ddp.py (2 gloo processes on the CPU).

The launch test starts the real script with torchrun and checks what DDP promises: every rank
holds the same weights after a step, and that step equals one single-process step on the
concatenated batch. The rendezvous tests check that a peer that never comes gives a
TimeoutError within seconds instead of a hang.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils.checkpoint import load_checkpoint
from course_utils.distributed import (
    DistContext,
    device_for,
    gather_objects,
    print_on_main,
    read_torchrun_env,
    save_on_main,
    setup,
    state_fingerprint,
    teardown,
    torchrun_command,
)
from course_utils.models import small_cnn
from course_utils.train import train_step

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_ddp.py"
ENV = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def torchrun_env(monkeypatch):
    """This process pretends to be one of two torchrun processes; nobody else will come."""
    for name, value in {**ENV, "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    yield
    teardown()


# --- reading torchrun's variables ------------------------------------------------------------


def test_read_torchrun_env_parses_the_variables():
    env = read_torchrun_env({**ENV, "RANK": "1", "LOCAL_RANK": "1"})
    assert (env.rank, env.local_rank, env.world_size, env.local_world_size) == (1, 1, 2, 2)
    assert (env.master_addr, env.master_port) == ("127.0.0.1", 29500)


def test_read_torchrun_env_without_torchrun_says_how_to_launch():
    with pytest.raises(RuntimeError, match="torchrun") as err:
        read_torchrun_env({"RANK": "0"})
    assert "WORLD_SIZE" in str(err.value)


@pytest.mark.parametrize("change", [{"RANK": "zero"}, {"RANK": "2"}, {"LOCAL_RANK": "-1"},
                                    {"LOCAL_WORLD_SIZE": "3"}, {"MASTER_PORT": "http"}])
def test_read_torchrun_env_rejects_bad_values(change):
    with pytest.raises(ValueError):
        read_torchrun_env({**ENV, **change})


# --- device choice ---------------------------------------------------------------------------


def test_device_for_gloo_is_the_cpu_and_nccl_one_gpu_per_process():
    assert device_for("gloo", 1, 2, gpu_count=0) == torch.device("cpu")
    assert device_for("nccl", 1, 2, gpu_count=2) == torch.device("cuda", 1)


def test_device_for_rejects_more_processes_than_gpus():
    with pytest.raises(ValueError, match=r"2 processes.*only 1 GPU.*--nproc_per_node=1"):
        device_for("nccl", 0, 2, gpu_count=1)
    with pytest.raises(ValueError, match="gloo"):
        device_for("nccl", 0, 1, gpu_count=0)


def test_device_for_rejects_unknown_backends():
    with pytest.raises(ValueError, match="gloo.*nccl"):
        device_for("mpi", 0, 1, gpu_count=0)


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs fewer than 2 GPUs")
def test_setup_nccl_with_too_few_gpus_fails_before_the_rendezvous(torchrun_env):
    started = time.perf_counter()
    with pytest.raises(ValueError, match="GPU"):
        setup("nccl", timeout_s=30)
    assert time.perf_counter() - started < 5  # no waiting for peers


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan"), "5", True])
def test_setup_rejects_bad_timeouts(timeout_s):
    with pytest.raises(ValueError, match="timeout_s"):
        setup("gloo", timeout_s=timeout_s)


def test_setup_without_torchrun_raises(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        setup("gloo")


# --- an unreachable rendezvous fails fast and clearly -----------------------------------------


@pytest.mark.parametrize("rank", ["1", "0"])  # 1: nobody listens at MASTER_PORT; 0: rank 1 never comes
def test_unreachable_rendezvous_raises_timeout_error_quickly(torchrun_env, monkeypatch, rank):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"rendezvous at 127\.0\.0\.1:\d+ within 1 s"):
        setup("gloo", timeout_s=1)
    assert time.perf_counter() - started < 15
    assert not torch.distributed.is_initialized()


# --- rank-0-only printing and saving; fingerprints; the launch command ------------------------


def test_print_on_main_prints_on_rank_0_only(capsys):
    print_on_main(DistContext(1, 1, 2, "gloo", torch.device("cpu")), "hidden")
    print_on_main(DistContext(0, 0, 2, "gloo", torch.device("cpu")), "shown", 1)
    assert capsys.readouterr().out == "shown 1\n"


def test_save_on_main_writes_on_rank_0_only(tmp_path):
    state = {"model": nn.Linear(2, 1).state_dict(), "step": 3}
    assert not save_on_main(DistContext(1, 1, 2, "gloo", torch.device("cpu")), tmp_path / "a.ckpt", state)
    assert not (tmp_path / "a.ckpt").exists()
    assert save_on_main(DistContext(0, 0, 2, "gloo", torch.device("cpu")), tmp_path / "a.ckpt", state)
    assert load_checkpoint(tmp_path / "a.ckpt", model=nn.Linear(2, 1))["step"] == 3


def test_gather_objects_without_a_process_group():
    assert gather_objects(DistContext(0, 0, 1, "gloo", torch.device("cpu")), "x") == ["x"]
    with pytest.raises(RuntimeError, match="setup"):
        gather_objects(DistContext(0, 0, 2, "gloo", torch.device("cpu")), "x")


def test_state_fingerprint_sees_every_bit():
    model = small_cnn(norm="batch")  # BatchNorm adds buffers, one of them 0-d
    twin = copy.deepcopy(model)
    assert state_fingerprint(model) == state_fingerprint(twin)
    with torch.no_grad():
        twin[0].weight[0, 0, 0, 0] = torch.nextafter(twin[0].weight[0, 0, 0, 0], torch.tensor(1.0))
    assert state_fingerprint(model) != state_fingerprint(twin)


def test_torchrun_command():
    command = torchrun_command("train.py", ["--out", Path("r.json")], nproc_per_node=2)
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=2", "train.py", "--out", "r.json"]
    with pytest.raises(ValueError, match="nproc_per_node"):
        torchrun_command("train.py", nproc_per_node=0)
    with pytest.raises(TypeError, match="sequence"):
        torchrun_command("train.py", "--out r.json", nproc_per_node=1)


# --- the real thing: 2 gloo processes started by torchrun --------------------------------------


def load_script():
    spec = importlib.util.spec_from_file_location("train_ddp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torchrun_two_processes_agree_and_equal_one_big_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the processes import this checkout's package
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = ["--out", tmp_path / "report.json", "--checkpoint-dir", tmp_path, "--data", "synthetic",
            "--train-size", "96", "--val-size", "32", "--batch-size", "8", "--lr", "0.5",
            "--block-steps", "2", "--epochs", "2", "--seeds", "0", "1", "--backend", "gloo",
            "--timeout", "30"]
    result = subprocess.run(torchrun_command(SCRIPT, args, nproc_per_node=2), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    ranks = report["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert report["effective_batch_size"] == 16
    # two seeds, each 2 epochs of 48 // 8 = 6 steps per rank; 3 timed blocks per epoch, the
    # first block of each seed is the untimed warm-up
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert run["steps"] == 12 and len(run["loss"]) == 12 and len(run["val_acc"]) == 2
        assert len(run["images_per_s"]) == 5 and min(run["images_per_s"]) > 0
    assert report["runs"][0]["loss"] != report["runs"][1]["loss"]  # a different seed, a different run
    # every rank starts, steps and ends with bit-identical weights
    for key in ("fingerprint_initial", "fingerprint_step1", "fingerprint_final"):
        assert ranks[0][key] == ranks[1][key], key
    # the shards are disjoint; only rank 0 printed the per-seed lines
    assert not set(ranks[0]["first_batch"]) & set(ranks[1]["first_batch"])
    assert result.stdout.count("steps of 16 images") == 2

    # one single-process step on the concatenated batch gives the same weights
    parsed = load_script().parse_args([str(a) for a in args])
    x, y, _, _ = load_script().load_data(parsed)
    torch.manual_seed(0)
    model = small_cnn(in_channels=1, norm="none")
    assert state_fingerprint(model) == ranks[0]["fingerprint_initial"]
    index = torch.tensor(ranks[0]["first_batch"] + ranks[1]["first_batch"])
    train_step(model, x[index], y[index], optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
               loss_fn=nn.CrossEntropyLoss())
    saved = load_checkpoint(tmp_path / "step1.ckpt", model=small_cnn(in_channels=1, norm="none"))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["model"][name])
    final = load_checkpoint(tmp_path / "final.ckpt", model=small_cnn(in_channels=1, norm="none"))
    assert final["step"] == 12  # the first seed's last step


def test_script_rejects_sizes_below_one(tmp_path):
    with pytest.raises(SystemExit, match="must be >= 1"):
        load_script().main(["--out", str(tmp_path / "r.json"), "--epochs", "0"])
