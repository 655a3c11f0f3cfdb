"""Mixed precision, channels_last and torch.compile, measured on whatever device is present.

The same experiments as notebook 11, with the same course_utils code
(:func:`course_utils.precision.measure_training_step` for speed and memory,
:func:`course_utils.train.train` for accuracy):

- training-step throughput and memory of fp32 vs bf16 autocast vs fp16 autocast for the
  course's small CNN and a wide MLP (ratios against fp32, measured in this process);
- ``channels_last`` for the CNN, and ``torch.compile`` of the CNN (compile time separately);
- validation accuracy after the same number of steps in each precision, over 3 seeds.

On a CUDA GPU, batches and the MLP width are ``SCALE = 4`` times larger and the allocator's
peak memory is recorded as well. The result goes to ``notebooks/results/precision_<device>.json``
with the device name, torch version, date and the exact command; notebook 11 shows it.

Run from the repository root: ``python benchmarks/precision.py [--no-compile] [--repeats 10]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path

import torch

from course_utils.data import get_dataset, subset, tensor_loader, train_val_split
from course_utils.hardware import cpu_name, get_device, seed_everything
from course_utils.models import mlp, small_cnn
from course_utils.precision import arm_label, measure_training_step
from course_utils.results import save_results
from course_utils.train import train

RESULTS = Path(__file__).resolve().parent.parent / "notebooks" / "results"
AMPS = (None, "bf16", "fp16")
# The accuracy experiment of notebook 11, section 6: identical settings.
ACC_SEEDS = (0, 1, 2)
ACC_BATCH = 64
ACC_LR = 0.05
ACC_EPOCHS = 1


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"


def command() -> str:
    """The exact command line, with the thread settings that change CPU timings."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCHINDUCTOR_FORCE_DISABLE_CACHES")
    env = [f"{key}={os.environ[key]}" for key in keys if key in os.environ]
    return " ".join([*env, "python", *sys.argv])


def cpu_features() -> dict[str, bool]:
    """The instruction sets that decide bf16/fp16 speed on a CPU."""
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    keys = ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16")
    return {key: bool(capabilities.get(key, False)) for key in keys}


def measure(model, x, y, *, amp=None, channels_last=False, compile=False, repeats=10, warmup=3):
    """One arm as a dict; a failure (e.g. an unsupported dtype) is recorded, not hidden."""
    if x.device.type == "cpu" and amp == "fp16":
        warmup, repeats = 1, 3  # fp16 runs 10-1000x slower on CPUs without fp16 arithmetic
    try:
        result = measure_training_step(model, x, y, amp=amp, channels_last=channels_last,
                                       compile=compile, warmup=warmup, repeats=repeats)
    except (RuntimeError, NotImplementedError) as err:
        label = arm_label(amp, channels_last, compile)
        print(f"  {label:<40} failed: {type(err).__name__}: {str(err).splitlines()[0]}")
        return {"label": label, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    row = result.as_dict()
    memory = f"{result.memory.total_bytes / 2**20:8.1f} MiB est." if result.memory else ""
    print(f"  {result.label:<40} {result.images_per_s:>12,.0f} img/s  first step "
          f"{result.first_step_s:6.2f} s  {memory}", flush=True)
    return row


def speed(device: torch.device, scale: int, x_all: torch.Tensor, y_all: torch.Tensor, *,
          compile: bool, repeats: int) -> dict:
    cases = {
        "small_cnn": (small_cnn(), 128 * scale, [(amp, False) for amp in AMPS]
                      + [(None, True), ("bf16", True)]),
        "wide_mlp": (mlp(hidden=(1024 * scale, 1024 * scale)), 256 * scale,
                     [(amp, False) for amp in AMPS]),
    }
    out = {}
    for name, (model, batch_size, arms) in cases.items():
        x, y = x_all[:batch_size].to(device), y_all[:batch_size].to(device)
        print(f"{name}, batch {batch_size}:")
        rows = [measure(model, x, y, amp=amp, channels_last=cl, repeats=repeats) for amp, cl in arms]
        if name == "small_cnn" and compile:
            rows.append(measure(model, x, y, compile=True, repeats=repeats))
        base = rows[0].get("images_per_s")
        for row in rows:
            if base and "images_per_s" in row:
                row["speedup_vs_fp32"] = row["images_per_s"] / base
        out[name] = {"batch_size": batch_size, "parameters": sum(p.numel() for p in model.parameters()),
                     "arms": rows}
    return out


def accuracy(device: torch.device, train_set, val_set) -> dict:
    """Validation accuracy of mlp() after ACC_EPOCHS epochs, per precision and seed.

    Normalized inputs and a learning rate decaying linearly to 0 make the final accuracy
    stable from seed to seed, so a precision effect would not drown in noise.
    """
    x_train, _ = train_set.tensors()
    normalize = ((x_train.mean().item(),), (x_train.std().item(),))
    val_loader = tensor_loader(val_set, batch_size=1000, normalize=normalize, device=device)
    out = {}
    for amp in AMPS:
        accs = []
        for seed in ACC_SEEDS:
            seed_everything(seed)
            model = mlp().to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=ACC_LR, momentum=0.9)
            loader = tensor_loader(train_set, batch_size=ACC_BATCH, shuffle=True,
                                   normalize=normalize, device=device, seed=seed)
            scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0,
                                                          total_iters=ACC_EPOCHS * len(loader))
            history = train(model, loader, optimizer=optimizer, epochs=ACC_EPOCHS, amp=amp,
                            scheduler=scheduler, val_loader=val_loader, progress=False)
            accs.append(history.val_acc[-1])
        label = arm_label(amp)
        out[label] = {"val_acc": accs, "mean": statistics.mean(accs), "std": statistics.stdev(accs)}
        print(f"  {label:<15} {out[label]['mean']:.4f} ± {out[label]['std']:.4f}  {accs}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per arm")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON file")
    args = parser.parse_args()
    device = get_device()
    scale = 4 if device.type == "cuda" else 1
    print(f"device: {device_name(device)}; torch {torch.__version__}; SCALE = {scale}")
    full = get_dataset("fashion_mnist", train=True)
    rest, val_set = train_val_split(full, 5_000, seed=0)
    train_set = subset(rest, 12_000, seed=0)  # the split and subset of notebooks 00 and 11
    x_all, y_all = train_set.tensors()
    seed_everything(0)
    values = {
        "command": command(),
        "device_name": device_name(device),
        "scale": scale,
        "dataset_source": full.source,
        "cpu_features": cpu_features(),
        "memory_note": ("memory.* is an estimate (parameters + gradients + tensors saved for "
                        "backward); cuda_peak_bytes is the CUDA allocator's peak (GPU only)"),
        "speed": speed(device, scale, x_all, y_all, compile=not args.no_compile,
                       repeats=args.repeats),
    }
    print(f"accuracy (mlp, {ACC_EPOCHS} epoch(s), seeds {ACC_SEEDS}):")
    values["accuracy"] = accuracy(device, train_set, val_set)
    path = save_results(f"precision_{device.type}", copy.deepcopy(values), device=device,
                        folder=args.out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
