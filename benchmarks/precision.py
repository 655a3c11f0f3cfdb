"""Mixed precision, TF32, channels_last and torch.compile, measured on whatever device is present.

The same experiments as notebook 11, with the same course_utils code and the same sizes (the
course's size policy: the 2-core-CPU sizes at scale 1; on a CUDA GPU 4x the batches and 2x the
widths of the MLP and the ResNet; ``COURSE_SCALE`` overrides):

- training-step throughput and memory of every arm of three models, timed interleaved in one
  process, with ratios against each model's fp32 arm: the course's small CNN (fp32, bf16, fp16,
  channels_last), a wide MLP (fp32, TF32, bf16, fp16) and a small ResNet (``small_resnet``) on
  synthetic 3x32x32 images (fp32, and in channels_last fp32, TF32, bf16, fp16). "fp32" means
  TF32 off: this script switches it off, and on only in the TF32 arms, and restores PyTorch's
  settings afterwards;
- ``torch.compile`` of the small CNN against an fp32 reference timed in the same rounds;
- validation accuracy of the course's MLP after the same steps in each precision, 5 seeds.

fp16 on a CPU without fp16 arithmetic is 10-1000x slower, so it is timed alone with few steps.
On a CUDA GPU the allocator's peak and the bytes one step adds are recorded too. The result goes
to ``notebooks/results/precision_<device>.json`` (``..._fallback`` on the fallback data) with
the device name, torch version, date and the exact command; notebook 11 shows it.

Run from the repository root: ``python benchmarks/precision.py [--no-compile] [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

from course_utils.data import course_split, get_dataset, normalization, tensor_loader
from course_utils.hardware import cpu_name, get_device, seed_everything
from course_utils.models import mlp, small_cnn, small_resnet
from course_utils.precision import Arm, arm_label, compare_training_steps
from course_utils.results import save_results
from course_utils.sizing import size_policy
from course_utils.train import train

RESULTS = Path(__file__).resolve().parent.parent / "notebooks" / "results"
VERSION = 2  # 2: TF32 arms, the ResNet, round medians, CUDA step bytes; 1: small CNN and wide MLP
AMPS = (None, "bf16", "fp16")
WARMUP = 1  # as notebook 11
# The accuracy experiment of notebook 11, section 9: identical settings.
ACC_LR = 0.05
ACC_EPOCHS = 1


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for fp32 matmuls and cuDNN convolutions on or off; PyTorch's settings restored on exit."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{cpu_name()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"


def command() -> str:
    """The exact command line, with the settings that change timings or sizes."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCHINDUCTOR_FORCE_DISABLE_CACHES", "COURSE_SCALE")
    env = [f"{key}={os.environ[key]}" for key in keys if key in os.environ]
    return " ".join([*env, "python", *sys.argv])


def cpu_features() -> dict[str, bool]:
    """The instruction sets that decide bf16/fp16 speed on a CPU."""
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    keys = ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16")
    return {key: bool(capabilities.get(key, False)) for key in keys}


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def measure_group(model, x, y, arms: list[Arm], *, rounds: int, repeats: int) -> list[dict]:
    """Arms timed interleaved under full fp32 (TF32 only inside TF32 arms), as dicts.

    A failure (e.g. a dtype the device does not support) is recorded, not hidden.
    """
    try:
        with tf32(False):
            results = compare_training_steps(model, x, y, arms, rounds=rounds, warmup=WARMUP,
                                             repeats=repeats)
    except (RuntimeError, NotImplementedError) as err:
        for arm in arms:
            print(f"  {arm.label:<36} failed: {_error(err)}")
        return [{"label": arm.label, "error": _error(err)} for arm in arms]
    rows = []
    for result in results:
        memory = f"{result.memory.total_bytes / 2**20:8.1f} MiB est." if result.memory else ""
        if result.cuda_step_bytes is not None:
            memory += f"  {result.cuda_step_bytes / 2**20:8.1f} MiB CUDA step"
        print(f"  {result.label:<36} {result.images_per_s:>12,.0f} img/s  first step "
              f"{result.first_step_s:6.2f} s  {memory}", flush=True)
        rows.append({**result.as_dict(), "round_median_s": list(result.round_median_s)})
    return rows


def with_speedups(rows: list[dict], base: float | None) -> list[dict]:
    """Add ``speedup_vs_fp32`` (throughput / ``base``) to every row that was measured."""
    for row in rows:
        if base and "images_per_s" in row:
            row["speedup_vs_fp32"] = row["images_per_s"] / base
    return rows


def cases(sizes, device, x_all, y_all, fp16_slow: bool) -> dict:
    """The three models of notebook 11 with their batches, arms and slow (alone-timed) arms."""
    tf32_on = partial(tf32, True)
    cnn_batch = sizes.count(128, name="CNN_BATCH", available=len(x_all))
    mlp_width = sizes.count(1024, name="MLP_WIDTH", power=0.5)
    mlp_batch = sizes.count(256, name="MLP_BATCH", available=len(x_all))
    resnet_width = sizes.count(16, name="RESNET_WIDTH", power=0.5)
    resnet_batch = sizes.count(64, name="RESNET_BATCH")
    generator = torch.Generator(device=device).manual_seed(0)
    x_res = torch.randn(resnet_batch, 3, 32, 32, device=device, generator=generator)
    y_res = torch.randint(0, 10, (resnet_batch,), device=device, generator=generator)
    seed_everything(0)
    fast = [] if fp16_slow else [Arm("fp16")]  # fp16 timed with the others, or alone (slow)
    fast_cl = [] if fp16_slow else [Arm("fp16", channels_last=True)]
    return {
        "small_cnn": (small_cnn(), x_all[:cnn_batch], y_all[:cnn_batch], "Fashion-MNIST (N, 1, 28, 28)",
                      [Arm(), Arm("bf16"), Arm("fp16"), Arm(channels_last=True),
                       Arm("bf16", channels_last=True)], []),
        "wide_mlp": (mlp(hidden=(mlp_width, mlp_width)), x_all[:mlp_batch], y_all[:mlp_batch],
                     "Fashion-MNIST (N, 1, 28, 28)",
                     [Arm(), Arm(context=tf32_on, name="TF32"), Arm("bf16"), *fast],
                     [Arm("fp16")] if fp16_slow else []),
        "small_resnet": (small_resnet(width=resnet_width), x_res, y_res, "synthetic (N, 3, 32, 32)",
                         [Arm(), Arm(channels_last=True),
                          Arm(channels_last=True, context=tf32_on, name="TF32 + channels_last"),
                          Arm("bf16", channels_last=True), *fast_cl],
                         [Arm("fp16", channels_last=True)] if fp16_slow else []),
    }


def speed(device: torch.device, sizes, x_all: torch.Tensor, y_all: torch.Tensor, *,
          compile: bool, rounds: int, repeats: int) -> dict:
    """Every model's arms; speed-ups against the fp32 arm timed in the same interleaved group."""
    features = cpu_features()
    fp16_slow = device.type == "cpu" and not (features["avx512_fp16"] or features["amx_fp16"])
    out = {}
    for name, (model, x, y, inputs, arms, slow) in cases(sizes, device, x_all, y_all, fp16_slow).items():
        print(f"{name}, batch {len(x)}, {sum(p.numel() for p in model.parameters()):,} parameters:")
        main = measure_group(model, x, y, arms, rounds=rounds, repeats=repeats)
        base = main[0].get("images_per_s")
        rows = with_speedups(main, base)
        for arm in slow:  # 10-1000x slower: timed alone, with few steps
            rows += with_speedups(measure_group(model, x, y, [arm], rounds=1, repeats=2), base)
        if name == "small_cnn" and compile:  # against its own fp32 arm, timed interleaved with it
            pair = measure_group(model, x, y, [Arm(), Arm(compile=True)], rounds=4 * rounds,
                                 repeats=repeats)
            rows += with_speedups(pair[1:], pair[0].get("images_per_s"))
            rows[-1]["reference_round_median_s"] = pair[0].get("round_median_s")
        out[name] = {"batch_size": len(x), "inputs": inputs,
                     "parameters": sum(p.numel() for p in model.parameters()), "arms": rows}
    return out


def accuracy(device: torch.device, sizes, train_set, val_set) -> dict:
    """Validation accuracy of mlp() after ACC_EPOCHS epochs, per precision and seed (notebook 11)."""
    normalize = normalization(train_set)
    batch_size = sizes.count(64, name="ACC_BATCH")
    seeds = tuple(range(sizes.count(5, name="SEEDS", power=0)))
    val_loader = tensor_loader(val_set, batch_size=1000, normalize=normalize, device=device)
    out = {}
    for amp in AMPS:
        accs = []
        for seed in seeds:
            seed_everything(seed)
            model = mlp().to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=ACC_LR, momentum=0.9)
            loader = tensor_loader(train_set, batch_size=batch_size, shuffle=True,
                                   normalize=normalize, device=device, seed=seed)
            scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0,
                                                          total_iters=ACC_EPOCHS * len(loader))
            history = train(model, loader, optimizer=optimizer, epochs=ACC_EPOCHS, amp=amp,
                            scheduler=scheduler, val_loader=val_loader, progress=False)
            accs.append(history.val_acc[-1])
        label = arm_label(amp)
        out[label] = {"val_acc": accs, "mean": statistics.mean(accs), "std": statistics.stdev(accs),
                      "batch_size": batch_size, "steps": ACC_EPOCHS * len(loader)}
        print(f"  {label:<15} {out[label]['mean']:.4f} ± {out[label]['std']:.4f}  {accs}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per comparison")
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per arm and round")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON file")
    args = parser.parse_args()
    device = get_device()
    sizes = size_policy(device)
    print(f"device: {device_name(device)}; torch {torch.__version__}; {sizes}")
    full = get_dataset("fashion_mnist", train=True)
    train_set, val_set = course_split(full, train_size=12_000, sizes=sizes)  # as notebooks 00, 11
    loader = tensor_loader(train_set, batch_size=len(train_set), normalize=normalization(train_set),
                           device=device)
    x_all, y_all = next(iter(loader))  # the whole training subset, normalized, on the device
    values = {
        "benchmark_version": VERSION,
        "command": command(),
        "device_name": device_name(device),
        "scale": sizes.scale,
        "dataset_source": full.source,
        "cpu_features": cpu_features(),
        "fp32_means": "TF32 off (matmul precision 'highest', cudnn.allow_tf32 False) except in TF32 arms",
        "memory_note": ("memory.* is an estimate (parameters + gradients + tensors saved for "
                        "backward); cuda_peak_bytes is the CUDA allocator's peak during one step, "
                        "cuda_step_bytes what that step added to what was allocated (GPU only)"),
        "speed": speed(device, sizes, x_all, y_all, compile=not args.no_compile,
                       rounds=args.rounds, repeats=args.repeats),
    }
    print(f"accuracy (mlp, {ACC_EPOCHS} epoch(s)):")
    values["accuracy"] = accuracy(device, sizes, train_set, val_set)
    suffix = "_fallback" if full.is_fallback else ""
    path = save_results(f"precision_{device.type}{suffix}", copy.deepcopy(values), device=device,
                        folder=args.out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
