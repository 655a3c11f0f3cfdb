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
from course_utils.precision import Arm, arm_label, compare_training_steps, measure_training_step
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


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def measure_group(model, x, y, arms: list[Arm], *, rounds: int, repeats: int,
                  slow: bool = False) -> list[dict]:
    """Arms timed interleaved (``slow``: one arm alone, 1 warm-up + 3 steps), as dicts.

    A failure (e.g. a dtype the device does not support) is recorded, not hidden.
    """
    try:
        if slow:
            arm = arms[0]
            results = [measure_training_step(model, x, y, amp=arm.amp, channels_last=arm.channels_last,
                                             compile=arm.compile, warmup=1, repeats=3)]
        else:
            results = compare_training_steps(model, x, y, arms, rounds=rounds, warmup=3,
                                             repeats=repeats)
    except (RuntimeError, NotImplementedError) as err:
        for arm in arms:
            print(f"  {arm.label:<40} failed: {_error(err)}")
        return [{"label": arm.label, "error": _error(err)} for arm in arms]
    rows = []
    for result in results:
        memory = f"{result.memory.total_bytes / 2**20:8.1f} MiB est." if result.memory else ""
        print(f"  {result.label:<40} {result.images_per_s:>12,.0f} img/s  first step "
              f"{result.first_step_s:6.2f} s  {memory}", flush=True)
        rows.append(result.as_dict())
    return rows


def speed(device: torch.device, scale: int, x_all: torch.Tensor, y_all: torch.Tensor, *,
          compile: bool, rounds: int, repeats: int) -> dict:
    """Both models' arms; speed-ups against the fp32 arm timed in the same interleaved group."""
    features = cpu_features()
    fp16_slow = device.type == "cpu" and not (features["avx512_fp16"] or features["amx_fp16"])
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    bf16 = ["bf16"] if bf16_ok else []
    cases = {
        "small_cnn": (small_cnn(), 128 * scale,
                      [Arm(amp) for amp in (None, *bf16, "fp16")]
                      + [Arm(amp, channels_last=True) for amp in (None, *bf16)]),
        "wide_mlp": (mlp(hidden=(1024 * scale, 1024 * scale)), 256 * scale,
                     [Arm(amp) for amp in (None, *bf16)] + ([] if fp16_slow else [Arm("fp16")])),
    }
    out = {}
    for name, (model, batch_size, arms) in cases.items():
        x, y = x_all[:batch_size].to(device), y_all[:batch_size].to(device)
        print(f"{name}, batch {batch_size}:")
        main = measure_group(model, x, y, arms, rounds=rounds, repeats=repeats)
        base = main[0].get("images_per_s")
        rows = with_speedups(main, base)
        if name == "wide_mlp" and fp16_slow:  # 10-1000x slower: timed alone, with few steps
            rows += with_speedups(measure_group(model, x, y, [Arm("fp16")], rounds=1, repeats=3,
                                                slow=True), base)
        if name == "small_cnn" and compile:  # against its own fp32 arm, timed interleaved with it
            pair = measure_group(model, x, y, [Arm(), Arm(compile=True)], rounds=rounds,
                                 repeats=repeats)
            rows += with_speedups(pair[1:], pair[0].get("images_per_s"))
        if not bf16_ok:
            rows.append({"label": "bf16 autocast", "error": "skipped: this GPU does not support bf16"})
        out[name] = {"batch_size": batch_size, "parameters": sum(p.numel() for p in model.parameters()),
                     "arms": rows}
    return out


def with_speedups(rows: list[dict], base: float | None) -> list[dict]:
    """Add ``speedup_vs_fp32`` (throughput / ``base``) to every row that was measured."""
    for row in rows:
        if base and "images_per_s" in row:
            row["speedup_vs_fp32"] = row["images_per_s"] / base
    return rows


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
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per arm and round")
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
                       rounds=args.rounds, repeats=args.repeats),
    }
    print(f"accuracy (mlp, {ACC_EPOCHS} epoch(s), seeds {ACC_SEEDS}):")
    values["accuracy"] = accuracy(device, train_set, val_set)
    path = save_results(f"precision_{device.type}", copy.deepcopy(values), device=device,
                        folder=args.out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
