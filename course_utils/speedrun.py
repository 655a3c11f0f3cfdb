"""Time to accuracy: train a recipe on the full data and record when test accuracy crosses targets.

The capstone (notebook 13) stacks the tips that held in notebooks 01-12, one at a time, and
measures each stack with :func:`run_recipe`; ``benchmarks/time_to_accuracy.py`` runs the same
rows headless. The training clock counts only training (and compiling, where a recipe
compiles): the periodic test evaluations are timed separately and excluded, as in
``History.time_to_accuracy``. :func:`matmul_peak` and :func:`training_flops` give the fraction
of the machine's fp32 matmul peak that a recipe's training reaches.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from course_utils.batch_transforms import random_hflip, random_shift
from course_utils.bench import synchronize
from course_utils.data import ImageDataset, normalization
from course_utils.models import small_cnn, small_resnet
from course_utils.schedules import make_scheduler, one_cycle, warmup_cosine
from course_utils.sizing import SizePolicy

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("constant", "one_cycle", "warmup_cosine")
LOADERS = ("dataloader", "tensor")
MODELS = ("small_cnn", "resnet9")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run of the speed-run, one field per tip."""

    name: str
    model: str = "small_cnn"           # or "resnet9": small_resnet, for 3x32x32 CIFAR-10 (11)
    normalize: bool = False            # inputs to mean 0 / std 1 (notebook 01)
    norm: str = "none"                 # "batch": BatchNorm after each convolution (notebook 08)
    width: int = 16                    # channels of the model's first conv block
    loader: str = "dataloader"         # "tensor": in-memory slicing instead of a DataLoader (03)
    batch_size: int = 64
    optimizer: str = "sgd"             # "nesterov": SGD + Nesterov momentum 0.9; "adam" (04)
    lr: float = 0.1                    # the peak LR for schedules
    weight_decay: float = 0.0
    schedule: str = "constant"         # "one_cycle" or "warmup_cosine" (05)
    label_smoothing: float = 0.0       # (06)
    channels_last: bool = False        # memory format (11)
    amp: str | None = None             # "bf16" autocast (11)
    compile: bool = False              # torch.compile, its compile time counted (11)
    flip: bool = False                 # mirror training images at random, on the device (02)
    shift: int = 0                     # shift training images by up to this many pixels (02)
    tta_flip: bool = False             # average with the mirrored view at evaluation (02)
    epochs: float = 2.0                # the budget; the schedule spans it

    def __post_init__(self) -> None:
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES),
                                     ("loader", self.loader, LOADERS), ("norm", self.norm, ("none", "batch")),
                                     ("model", self.model, MODELS),
                                     ("amp", self.amp, (None, "bf16", "fp16"))):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not allowed; choose one of {allowed}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not self.epochs > 0:
            raise ValueError(f"lr and epochs must be positive, got lr={self.lr!r}, epochs={self.epochs!r}")
        if not 0 <= self.label_smoothing < 1 or self.batch_size < 1 or self.width < 1:
            raise ValueError("label_smoothing must be in [0, 1); batch_size and width must be positive")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be a whole number of pixels >= 0, got {self.shift!r}")

    def but(self, name: str | None = None, **changes: object) -> Recipe:
        """A copy with ``changes`` applied (and a new ``name``)."""
        return dataclasses.replace(self, name=name or self.name, **changes)


@dataclass(frozen=True)
class SpeedrunData:
    """The full training and test sets as float tensors in [0, 1] on the device, and the
    training set's per-channel mean and std."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_datasets(cls, train: ImageDataset, test: ImageDataset,
                      device: torch.device | str) -> SpeedrunData:
        """Both sets moved to ``device`` whole, with the training set's normalization."""
        (x, y), (test_x, test_y) = train.tensors(), test.tensors()
        return cls(x.to(device), y.to(device), test_x.to(device), test_y.to(device), *normalization(train))


@dataclass
class RunResult:
    """One run: test accuracy at each evaluation, on the training clock, and the totals."""

    recipe: str
    seed: int
    train_seconds: list[float] = field(default_factory=list)  # training clock at each evaluation
    test_acc: list[float] = field(default_factory=list)
    images: int = 0
    total_train_seconds: float = 0.0
    compile_seconds: float = 0.0

    def time_to(self, target: float) -> float | None:
        """Training seconds until the test accuracy first reached ``target`` (None: never)."""
        return next((s for s, a in zip(self.train_seconds, self.test_acc, strict=True) if a >= target), None)

    @property
    def final_acc(self) -> float:
        return self.test_acc[-1]

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.total_train_seconds - self.compile_seconds, 1e-9)


def _model(recipe: Recipe, channels: int, device: torch.device) -> nn.Module:
    if recipe.model == "resnet9":  # BatchNorm is part of the ResNet's design: norm does not apply
        model = small_resnet(channels, width=recipe.width).to(device)
    else:
        model = small_cnn(channels, norm=recipe.norm, width=recipe.width).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                           momentum=0.9 if recipe.optimizer == "nesterov" else 0.0,
                           nesterov=recipe.optimizer == "nesterov")


def _schedule(recipe: Recipe, optimizer: torch.optim.Optimizer, total_steps: int):
    if recipe.schedule == "one_cycle":
        return make_scheduler(optimizer, lambda s: one_cycle(s, max_lr=recipe.lr, total_steps=total_steps))
    if recipe.schedule == "warmup_cosine":
        warmup = max(1, total_steps // 10)
        return make_scheduler(optimizer, lambda s: warmup_cosine(
            s, lr=recipe.lr, warmup_steps=warmup, total_steps=total_steps, start_factor=0.1))
    return None


def _batches(recipe: Recipe, x: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if recipe.loader == "dataloader":  # the per-sample path: index, collate, stack on the host
        # as notebook 00 does it: the dataset lives in host memory and each batch is copied to
        # the device (indexing one sample at a time on a GPU would launch a kernel per image)
        host = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=recipe.batch_size, shuffle=True,
                          generator=generator)
        for xb, yb in host:
            yield xb.to(x.device, non_blocking=True), yb.to(x.device, non_blocking=True)
        return
    order = torch.randperm(len(x), generator=generator).to(x.device)
    stop = len(x) - len(x) % recipe.batch_size if recipe.compile else len(x)  # no recompile
    for start in range(0, stop, recipe.batch_size):
        index = order[start:start + recipe.batch_size]
        yield x[index], y[index]


def _augment(recipe: Recipe, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Notebook 02's batch augmentations, on the batch's device, in the recipe's memory format."""
    if recipe.shift:
        x = random_shift(x, recipe.shift, generator=generator)
    if recipe.flip:
        x = random_hflip(x, generator=generator)
    return x.contiguous(memory_format=torch.channels_last) if recipe.channels_last else x


@torch.no_grad()
def _accuracy(model: nn.Module, recipe: Recipe, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), 1000):
        batch = x[start:start + 1000]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=recipe.amp == "bf16"):
            scores = model(batch).float().softmax(-1)
            if recipe.tta_flip:
                scores = scores + model(batch.flip(-1)).float().softmax(-1)
        correct += (scores.argmax(1) == y[start:start + 1000]).sum()
    model.train()
    return correct.item() / len(y)


def _prepare(data: SpeedrunData, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    train_x, test_x = data.train_x, data.test_x
    if recipe.normalize:
        mean = torch.tensor(data.mean, device=train_x.device).reshape(1, -1, 1, 1)
        std = torch.tensor(data.std, device=train_x.device).reshape(1, -1, 1, 1)
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    if recipe.channels_last:
        train_x, test_x = (t.contiguous(memory_format=torch.channels_last) for t in (train_x, test_x))
    return train_x, test_x


def run_recipe(recipe: Recipe, data: SpeedrunData, *, seed: int, evals_per_epoch: int = 4,
               stop_at: float | None = None) -> RunResult:
    """Train ``recipe`` from scratch (seeded) and evaluate on the test set ``evals_per_epoch``
    times per epoch, off the training clock.

    Args:
        stop_at: stop as soon as the test accuracy reaches this (None: train the whole budget).
    """
    device = data.train_x.device
    train_x, test_x = _prepare(data, recipe)
    torch.manual_seed(seed)
    model = _model(recipe, train_x.shape[1], device)
    optimizer = _optimizer(recipe, model)
    steps_per_epoch = math.ceil(len(train_x) / recipe.batch_size)
    total_steps = max(2, round(recipe.epochs * steps_per_epoch))
    scheduler = _schedule(recipe, optimizer, total_steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    result = RunResult(recipe.name, seed)
    forward = model
    clock = time.perf_counter()
    if recipe.compile:
        forward = torch.compile(model)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.amp == "bf16"):
            forward(train_x[:recipe.batch_size]).sum().backward()  # compile forward and backward
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        result.compile_seconds = time.perf_counter() - clock
    eval_every = max(1, steps_per_epoch // evals_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    augment = torch.Generator().manual_seed(seed + 1_000_003)  # its own stream: the order is unchanged
    step, elapsed = 0, time.perf_counter() - clock
    while step < total_steps:
        clock = time.perf_counter()
        for x, y in _batches(recipe, train_x, data.train_y, generator):
            if recipe.flip or recipe.shift:
                x = _augment(recipe, x, augment)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.amp == "bf16"):
                loss = loss_fn(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            result.images += len(y)
            if step % eval_every == 0 or step == total_steps:
                synchronize(device)
                elapsed += time.perf_counter() - clock
                result.train_seconds.append(elapsed)
                result.test_acc.append(_accuracy(forward, recipe, test_x, data.test_y))
                if step == total_steps or (stop_at is not None and result.test_acc[-1] >= stop_at):
                    result.total_train_seconds = elapsed
                    return result
                clock = time.perf_counter()
        synchronize(device)
        elapsed += time.perf_counter() - clock
    result.total_train_seconds = elapsed
    return result


def training_flops(recipe: Recipe, data: SpeedrunData, batch_size: int = 64) -> float:
    """FLOPs of one training step (forward and backward) per image, counted by PyTorch's
    ``FlopCounterMode`` (matmuls and convolutions; 2 FLOPs per multiply-add)."""
    model = _model(recipe, data.train_x.shape[1], data.train_x.device)
    x, y = _prepare(data, recipe)[0][:batch_size], data.train_y[:batch_size]
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch_size


def matmul_peak(device: torch.device | str, *, size: int = 1024, repeats: int = 10,
                dtype: torch.dtype = torch.float32) -> float:
    """This machine's matmul throughput in FLOP/s: the best of ``repeats`` timed
    ``size x size`` matrix products (2·size³ FLOPs each) after a warm-up."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def summarize(results: Sequence[RunResult], targets: Sequence[float]) -> dict[str, object]:
    """Per-target lists of seconds (None where a seed never got there), final accuracies and
    images/s over the seeds of one row."""
    return {
        "seeds": [r.seed for r in results],
        "time_to": {f"{t:.2f}": [r.time_to(t) for r in results] for t in targets},
        "final_acc": [r.final_acc for r in results],
        "best_acc": [max(r.test_acc) for r in results],
        "images_per_s": [r.images_per_s for r in results],
        "train_seconds": [r.total_train_seconds for r in results],
        "compile_seconds": [r.compile_seconds for r in results],
        "curves": [list(zip(r.train_seconds, r.test_acc, strict=True)) for r in results],
    }


# The tips of the course, in the order the capstone stacks them: (label, notebook, claim,
# changes to the previous row). LRs were chosen on the validation split (5,000 held-out
# training images) by ``benchmarks/time_to_accuracy.py --tune``, never on the test set, 2 seeds
# each (notebooks/results/time_to_accuracy_tuning_cpu.json): Nesterov's constant LR from 0.02,
# 0.04, 0.08 (0.04 and 0.08 tie; 0.04 kept); the one-cycle peak from 0.1-1.6 (0.4 and 0.8 tie
# within 0.15 points and 1.6 collapses to about 80%, so 0.4, a factor 2 away from the cliff:
# the same LR also serves the shorter and longer budgets of ``budget_rows``).
TIPS: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    ("normalized inputs", "01", "C1", {"normalize": True}),
    ("BatchNorm", "08", "C19", {"norm": "batch"}),
    ("in-memory batches", "03", "C5", {"loader": "tensor"}),
    ("batch 256, LR x4 (linear scaling)", "03", "C6", {"batch_size": 256, "lr": 0.4}),
    ("SGD + Nesterov momentum 0.9", "04", "C9", {"optimizer": "nesterov", "lr": 0.04}),
    ("one-cycle schedule", "05", "C12", {"schedule": "one_cycle", "lr": 0.4}),
    ("label smoothing 0.1", "06", "C14", {"label_smoothing": 0.1}),
    ("channels_last", "11", "C23", {"channels_last": True}),
)
# Not stacked: notebook 02's test-time augmentation. Its crops were inconclusive there, and its
# mirrored view costs a model trained without mirrors about ten points (tried here: one epoch of
# the full recipe, 86.7% test accuracy without ``tta_flip``, 74.1% with it). It stays a field.
# Stacked on a CUDA GPU only, after the others: on this course's 2-core CPU bf16 autocast is
# slower (no bf16 matrix units) and compiling takes longer than a 4-epoch budget's training.
GPU_TIPS: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    ("bf16 autocast", "11", "C23", {"amp": "bf16"}),
    ("torch.compile", "11", "C23", {"compile": True}),
)
BASELINE = Recipe("baseline (notebook 00's recipe)")


def tips_for(device: torch.device | str) -> tuple[tuple[str, str, str, dict[str, object]], ...]:
    """The tips the capstone stacks on ``device``: :data:`TIPS`, plus :data:`GPU_TIPS` on CUDA."""
    return TIPS + GPU_TIPS if torch.device(device).type == "cuda" else TIPS


def budget_epochs(sizes: SizePolicy) -> int:
    """The epoch budget of every row: 4 at scale 1, growing with the square root of the scale."""
    return sizes.count(4, name="EPOCHS", power=0.5)


def stack(baseline: Recipe = BASELINE, tips: Sequence[tuple] = TIPS, **final: object) -> list[Recipe]:
    """The cumulative rows: the baseline, then each row = the previous one + one tip.

    ``final`` changes every row alike (e.g. ``epochs=4``: the same budget for all rows).
    """
    rows = [baseline.but(**final)]
    for label, *_, changes in tips:
        rows.append(rows[-1].but(f"+ {label}", **changes))
    return rows


def ablations(rows: Sequence[Recipe], tips: Sequence[tuple] = TIPS) -> list[Recipe]:
    """The last row with one tip removed at a time: the tip's fields go back to the values they
    had before the tip was added, unless a later tip changed them again (then they stay)."""
    final = rows[-1]
    out = []
    for k, (label, *_, changes) in enumerate(tips):
        later = {key for *_, c in tips[k + 1:] for key in c}
        before = rows[k]  # the row before tip k was added
        revert = {key: getattr(before, key) for key in changes if key not in later}
        if revert:
            out.append(final.but(f"- {label}", **revert))
    return out


def budget_rows(final: Recipe, factors: Sequence[float] = (0.25, 0.5, 2.0)) -> list[Recipe]:
    """The full recipe at other epoch budgets (``factors`` times its own): a goal such as
    "90% in 5 s" is judged on the budget that suits it, since a schedule that spans a long
    budget reaches a low target later than one sized for it. The LR stays the tuned one."""
    if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors):
        raise ValueError(f"factors must be positive and finite, got {factors!r}")
    epochs = [final.epochs * f for f in factors]
    return [final.but(f"full recipe, {e:g} epoch{'' if e == 1 else 's'}", epochs=e) for e in epochs]


# The CIFAR-10 variant (issue "capstone": 94% in <= 10 s on one H100-class GPU, the range of
# hlb-CIFAR10's 9.7 s and airbench's 3.3 s on an A100). The course's own tips carried over to
# 3x32x32 images: a ResNet-9 (notebook 11's ``small_resnet``), normalized inputs, in-memory
# batches, Nesterov SGD with a one-cycle schedule, label smoothing, channels_last, random flips
# and shifts of the training batches with the mirrored view at test time (notebook 02), and on a
# CUDA GPU bf16 autocast and torch.compile. NOT yet measured on the real data: CIFAR-10 cannot be
# downloaded where this course is built, so its LR and budget are starting points to tune with
# ``benchmarks/time_to_accuracy.py --dataset cifar10 --tune ...`` on the validation split.
CIFAR10_TARGETS = (0.90, 0.93, 0.94)


def cifar10_recipe(device: torch.device | str, *, epochs: float = 10.0) -> Recipe:
    """The CIFAR-10 variant's full recipe for ``device`` (width 64 and bf16 + compile on CUDA;
    width 16 in fp32 elsewhere, a size a CPU trains in minutes rather than hours)."""
    cuda = torch.device(device).type == "cuda"
    return Recipe(f"CIFAR-10: ResNet-9 width {64 if cuda else 16}, every tip", model="resnet9",
                  width=64 if cuda else 16, normalize=True, loader="tensor", batch_size=512,
                  optimizer="nesterov", lr=0.2, weight_decay=5e-4, schedule="one_cycle",
                  label_smoothing=0.2, channels_last=True, flip=True, shift=2, tta_flip=True,
                  amp="bf16" if cuda else None, compile=cuda, epochs=epochs)


def matches_record(recipe: Recipe, recorded: dict[str, object]) -> bool:
    """True when a recorded recipe (``Recipe.__dict__`` as stored in JSON) is ``recipe``: every
    recorded field equal, and every field added since the record was made at its default (a
    default leaves the run unchanged)."""
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
    current = json.loads(json.dumps(recipe.__dict__))
    return all(recorded[k] == v if k in recorded else v == defaults[k] for k, v in current.items()) \
        and set(recorded) <= set(current)
