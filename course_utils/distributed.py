"""Helpers for DistributedDataParallel scripts launched with ``torchrun``.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and tells each
one who it is through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`setup` turns those into a
process group and a device, with clear errors instead of hangs; the rest keeps printing and
checkpointing to rank 0. Used by ``scripts/train_ddp.py``; taught in notebook 12.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from course_utils.checkpoint import save_checkpoint

BACKENDS = ("gloo", "nccl")
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                      "MASTER_PORT")


@dataclass(frozen=True)
class TorchrunEnv:
    """What torchrun told this process about itself."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int


@dataclass(frozen=True)
class DistContext:
    """This process's place in the process group: rank, world size, backend and device."""

    rank: int
    local_rank: int
    world_size: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that prints and saves."""
        return self.rank == 0


def read_torchrun_env(environ: Mapping[str, str] | None = None) -> TorchrunEnv:
    """Read torchrun's variables from ``environ`` (default: ``os.environ``).

    Raises:
        RuntimeError: a variable is missing (the script was not started by torchrun).
        ValueError: a variable is not a valid number, or the ranks do not fit the world size.
    """
    environ = os.environ if environ is None else environ
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not set: start this script with torchrun, e.g. "
            "`python -m torch.distributed.run --standalone --nproc_per_node=2 script.py`")
    numbers = {}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT"):
        try:
            numbers[name] = int(environ[name])
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {environ[name]!r}") from None
    env = TorchrunEnv(numbers["RANK"], numbers["LOCAL_RANK"], numbers["WORLD_SIZE"],
                      numbers["LOCAL_WORLD_SIZE"], environ["MASTER_ADDR"], numbers["MASTER_PORT"])
    if not (0 <= env.rank < env.world_size and 0 <= env.local_rank < env.local_world_size
            <= env.world_size):
        raise ValueError(f"inconsistent torchrun variables: need 0 <= RANK < WORLD_SIZE and "
                         f"0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, got {env}")
    return env


def default_backend() -> str:
    """``"nccl"`` when CUDA GPUs are visible, else ``"gloo"`` (the CPU backend)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def device_for(backend: str, local_rank: int, local_world_size: int, gpu_count: int) -> torch.device:
    """The device of the process ``local_rank`` on this machine: the CPU for gloo, its own GPU for nccl.

    Raises:
        ValueError: an unknown backend; nccl without GPUs; more processes on this machine than
            GPUs (NCCL needs one GPU per process).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; choose one of {BACKENDS}")
    if backend == "gloo":
        return torch.device("cpu")
    if gpu_count < 1:
        raise ValueError("backend 'nccl' needs CUDA GPUs and none is visible here; "
                         "use backend 'gloo' to run the processes on the CPU")
    if local_world_size > gpu_count:
        raise ValueError(
            f"{local_world_size} processes on this machine but only {gpu_count} GPU(s) visible: "
            f"with nccl each process needs its own GPU; launch with --nproc_per_node={gpu_count} "
            "or fewer, or use backend 'gloo' on the CPU")
    return torch.device("cuda", local_rank)


def setup(backend: str | None = None, *, timeout_s: float = 60.0) -> DistContext:
    """Join the process group torchrun prepared and pick this process's device.

    Args:
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per process); None picks nccl when
            CUDA is available, else gloo.
        timeout_s: how long to wait for the other processes at the rendezvous (and, later, in
            any collective) before failing. PyTorch's default is 10-30 minutes, far too long
            to notice a mistake in a notebook.

    Raises:
        RuntimeError: not started by torchrun, or the rendezvous failed for another reason.
        ValueError: bad ``backend``/``timeout_s``, or more processes than GPUs for nccl.
        TimeoutError: the other processes did not join within ``timeout_s`` (for example an
            unreachable ``MASTER_ADDR:MASTER_PORT``).
    """
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    env = read_torchrun_env()
    backend = default_backend() if backend is None else backend
    device = device_for(backend, env.local_rank, env.local_world_size, torch.cuda.device_count())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, rank=env.rank, world_size=env.world_size,
                                timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    except dist.DistError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = (f"rank {env.rank} of {env.world_size} could not complete the rendezvous at "
                 f"{env.master_addr}:{env.master_port}")
        hint = (f"Check that all {env.world_size} processes were started and that "
                "MASTER_ADDR/MASTER_PORT point at rank 0 and are reachable.")
        if "timed out" in first_line.lower():
            raise TimeoutError(f"{where} within {timeout_s:g} s ({first_line}). {hint}") from err
        raise RuntimeError(f"{where}: {first_line}. {hint}") from err
    return DistContext(env.rank, env.local_rank, env.world_size, backend, device)


def teardown() -> None:
    """Leave the process group (does nothing if there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def print_on_main(ctx: DistContext, *values: object) -> None:
    """Print on rank 0 only (flushed, so torchrun's merged output stays in order)."""
    if ctx.is_main:
        print(*values, flush=True)


def save_on_main(ctx: DistContext, path: str | Path, state: Mapping[str, Any]) -> bool:
    """Rank 0 writes ``state`` with :func:`course_utils.checkpoint.save_checkpoint`; all wait.

    Every rank holds the same weights after a DDP step, so one copy is enough; the barrier
    stops the other ranks from reading the file before it exists. Returns True on the rank
    that wrote it. Save the inner model's ``state_dict()`` (not the DDP wrapper's, whose keys
    start with ``module.``) so that a plain model can load it.
    """
    if ctx.is_main:
        save_checkpoint(path, **dict(state))
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return ctx.is_main


def gather_objects(ctx: DistContext, value: object) -> list[object]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        if ctx.world_size != 1:
            raise RuntimeError("gather_objects needs the process group: call setup() first")
        return [value]
    values: list[object] = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def state_fingerprint(module: nn.Module) -> str:
    """A SHA-256 of every parameter and buffer, bit for bit: equal fingerprints, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def torchrun_command(script: str | Path, script_args: Sequence[str] = (), *,
                     nproc_per_node: int) -> list[str]:
    """The command that launches ``script`` on ``nproc_per_node`` local processes with torchrun.

    ``--standalone`` runs the rendezvous on this machine on a free port, so several launches
    can run side by side.
    """
    if not isinstance(nproc_per_node, int) or isinstance(nproc_per_node, bool) or nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be a positive int, got {nproc_per_node!r}")
    if isinstance(script_args, str):
        raise TypeError("script_args must be a sequence of strings, not one string")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc_per_node}", str(script), *map(str, script_args)]
