"""The speed-run harness: recipes, the training clock, time-to-accuracy, FLOPs and the peak probe."""

import pytest
import torch

from course_utils.speedrun import (
    Recipe,
    RunResult,
    SpeedrunData,
    budget_rows,
    matmul_peak,
    run_recipe,
    stack,
    summarize,
    tips_for,
    training_flops,
)


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (256,), generator=generator)
    x = torch.rand(256, 1, 12, 12, generator=generator) * 0.2
    x[torch.arange(256), 0, y * 3, :] += 0.8  # a bright row that gives the class away
    return SpeedrunData(x[:192], y[:192], x[192:], y[192:], (float(x.mean()),), (float(x.std()),))


def test_recipe_refuses_unknown_choices():
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        Recipe("x", optimizer="rmsprop")
    with pytest.raises(ValueError, match="schedule"):
        Recipe("x", schedule="cyclic")
    with pytest.raises(ValueError, match="lr and epochs"):
        Recipe("x", lr=float("inf"))


def test_but_changes_one_field_and_the_name():
    base = Recipe("base", batch_size=64)
    bigger = base.but("bigger", batch_size=256)
    assert bigger.batch_size == 256 and bigger.name == "bigger" and base.batch_size == 64


@pytest.mark.parametrize("recipe", [
    Recipe("baseline", epochs=3),
    Recipe("stack", normalize=True, norm="batch", loader="tensor", batch_size=32, optimizer="nesterov",
           lr=0.05, schedule="one_cycle", label_smoothing=0.1, channels_last=True, tta_flip=True, epochs=3),
    Recipe("adam", normalize=True, loader="tensor", optimizer="adam", lr=3e-3, schedule="warmup_cosine",
           epochs=3),
])
def test_runs_learn_and_record_a_clock(data, recipe):
    result = run_recipe(recipe, data, seed=0, evals_per_epoch=2)
    assert len(result.test_acc) == len(result.train_seconds) >= 3
    assert result.train_seconds == sorted(result.train_seconds)  # the clock only moves forward
    assert result.images == 3 * len(data.train_y)
    assert max(result.test_acc) > 0.5  # chance is 0.25
    assert result.total_train_seconds == result.train_seconds[-1]


def test_same_seed_same_run(data):
    recipe = Recipe("r", normalize=True, loader="tensor", batch_size=32, epochs=1)
    first, second = (run_recipe(recipe, data, seed=3) for _ in range(2))
    assert first.test_acc == second.test_acc


def test_stop_at_ends_early(data):
    recipe = Recipe("r", normalize=True, norm="batch", loader="tensor", batch_size=16, optimizer="nesterov",
                    lr=0.05, epochs=10)
    result = run_recipe(recipe, data, seed=0, stop_at=0.5)
    assert result.test_acc[-1] >= 0.5 and result.images < 10 * len(data.train_y)


def test_time_to_and_summary():
    result = RunResult("r", 0, train_seconds=[1.0, 2.0, 3.0], test_acc=[0.5, 0.8, 0.7], images=300,
                       total_train_seconds=3.0)
    assert result.time_to(0.8) == 2.0 and result.time_to(0.9) is None and result.final_acc == 0.7
    assert result.images_per_s == 100.0
    summary = summarize([result], targets=(0.8, 0.9))
    assert summary["time_to"] == {"0.80": [2.0], "0.90": [None]} and summary["best_acc"] == [0.8]


def test_flops_match_a_hand_count():
    data = SpeedrunData(torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long), torch.rand(8, 1, 4, 4),
                        torch.zeros(8, dtype=torch.long), (0.5,), (0.2,))
    flops = training_flops(Recipe("r", width=1), data, batch_size=8)
    # multiply-adds per image: conv1 1->1 on 4x4 (16*9), conv2 1->2 on 2x2 (4*9*2), linear 32->10;
    # 2 FLOPs each; backward = weight gradients (1x) + input gradients (1x), except conv1's input
    conv1, conv2, linear = 2 * 16 * 9, 2 * 4 * 9 * 2, 2 * 32 * 10
    assert flops == (conv1 + conv1) + 3 * conv2 + 3 * linear


def test_matmul_peak_is_positive_and_finite():
    peak = matmul_peak("cpu", size=128, repeats=2)
    assert 1e6 < peak < 1e15


def test_budget_rows_change_only_the_epochs():
    final = stack(epochs=4)[-1]
    rows = budget_rows(final)
    assert [r.epochs for r in rows] == [1, 2, 8] and rows[0].name == "full recipe, 1 epoch"
    assert all(r.but(epochs=4, name=final.name) == final for r in rows)
    with pytest.raises(ValueError, match="positive"):
        budget_rows(final, (0,))


def test_gpu_tips_only_on_cuda():
    assert tips_for("cpu") == tips_for(torch.device("cpu"))
    assert [t[0] for t in tips_for("cuda")][-2:] == ["bf16 autocast", "torch.compile"]
    assert len(tips_for("cuda")) == len(tips_for("cpu")) + 2


def test_from_datasets_moves_both_sets_whole_with_the_training_normalization():
    from course_utils.data import ImageDataset, normalization

    generator = torch.Generator().manual_seed(0)
    train = ImageDataset(torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8, generator=generator),
                         torch.arange(20) % 3, ("a", "b", "c"), name="toy", source="test")
    test = ImageDataset(torch.full((5, 1, 4, 4), 255, dtype=torch.uint8), torch.zeros(5, dtype=torch.long),
                        ("a", "b", "c"), name="toy", source="test")
    data = SpeedrunData.from_datasets(train, test, "cpu")
    assert data.train_x.shape == (20, 1, 4, 4) and data.train_x.dtype == torch.float32
    assert torch.equal(data.train_x, train.images.float() / 255) and torch.equal(data.train_y, train.targets)
    assert torch.equal(data.test_x, torch.ones(5, 1, 4, 4)) and len(data.test_y) == 5
    assert (data.mean, data.std) == tuple(normalization(train))  # the training set's, not the test set's


def cifar_like(n=96, generator_seed=0):
    """Synthetic data of CIFAR-10's shape: 3x32x32 images whose class is a bright column block."""
    generator = torch.Generator().manual_seed(generator_seed)
    y = torch.randint(0, 10, (n,), generator=generator)
    x = torch.rand(n, 3, 32, 32, generator=generator) * 0.3
    for c in range(10):
        x[y == c, :, 3 * c:3 * c + 3, :] += 0.6  # rows: survive flips and 2-pixel shifts mostly
    return SpeedrunData(x[:64], y[:64], x[64:], y[64:], (0.35,) * 3, (0.25,) * 3)


def test_the_cifar10_recipe_trains_a_resnet9_on_augmented_32x32_batches():
    from course_utils.speedrun import CIFAR10_TARGETS, cifar10_recipe

    recipe = cifar10_recipe("cpu")
    assert (recipe.model, recipe.flip, recipe.shift, recipe.tta_flip, recipe.amp, recipe.compile) == \
        ("resnet9", True, 2, True, None, False)
    assert cifar10_recipe("cuda").amp == "bf16" and cifar10_recipe("cuda").width == 64
    small = recipe.but(width=4, batch_size=16, epochs=2)
    result = run_recipe(small, cifar_like(), seed=0)
    assert result.images == 2 * 64 and len(result.test_acc) == 2 * 4  # 4 evaluations per epoch
    assert all(0 <= a <= 1 for a in result.test_acc)
    summary = summarize([result], CIFAR10_TARGETS)
    assert list(summary["time_to"]) == ["0.90", "0.93", "0.94"]
    assert training_flops(small, cifar_like()) > 0


def test_batch_augmentation_keeps_shape_and_layout_and_changes_the_images():
    from course_utils.speedrun import _augment

    x = cifar_like().train_x[:8].contiguous(memory_format=torch.channels_last)
    recipe = Recipe("aug", flip=True, shift=2, channels_last=True)
    out = _augment(recipe, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(out, x)
    same = _augment(recipe, x, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)  # seeded: the same draws


def test_recipe_refuses_unknown_models_and_bad_shifts():
    with pytest.raises(ValueError, match="model='vit'"):
        Recipe("x", model="vit")
    for shift in (-1, 1.5, True):
        with pytest.raises(ValueError, match="shift must be a whole number of pixels"):
            Recipe("x", shift=shift)


def test_a_record_made_before_a_field_existed_still_matches_at_its_default():
    from course_utils.speedrun import matches_record

    recipe = Recipe("r", lr=0.2)
    old = {k: v for k, v in recipe.__dict__.items() if k not in ("flip", "shift", "model")}
    assert matches_record(recipe, old)
    assert not matches_record(recipe.but(flip=True), old)  # a new field away from its default
    assert not matches_record(recipe, {**old, "lr": 0.4})
    assert not matches_record(recipe, {**recipe.__dict__, "retired_field": 1})


def test_the_gpu_tips_run_on_the_cpu_too(data):
    """bf16 autocast and torch.compile are stacked on CUDA only, but their code path (compiling
    forward and backward on the clock, autocast in training and evaluation) runs anywhere."""
    recipe = stack(tips=tips_for("cuda"), epochs=4)[-1].but(batch_size=64)
    assert (recipe.amp, recipe.compile, recipe.channels_last) == ("bf16", True, True)
    result = run_recipe(recipe, data, seed=0)
    assert result.compile_seconds > 0 and result.total_train_seconds >= result.compile_seconds
    assert result.images == 4 * 192 and len(result.test_acc) == 4 * 3  # 3 full batches per epoch
    assert all(0 <= a <= 1 for a in result.test_acc)
