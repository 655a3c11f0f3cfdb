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
