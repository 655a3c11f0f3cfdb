"""Tests for course_utils.checks: right answers pass, each typical mistake gets its own message."""

from __future__ import annotations

import pytest
import torch

from course_utils.checks import (
    CheckResult,
    check_accuracy,
    check_mixup,
    check_shard_indices,
    check_train_step,
)

# --- check_accuracy ----------------------------------------------------------------------------


def accuracy(logits, y):
    return (logits.argmax(dim=1) == y).float().mean().item()


def accuracy_tensor(logits, y):
    return (logits.argmax(dim=1) == y).float().mean()  # a 0-d tensor


def accuracy_no_return(logits, y):
    (logits.argmax(dim=1) == y).float().mean()


def accuracy_percent(logits, y):
    return 100 * (logits.argmax(dim=1) == y).float().mean().item()


def accuracy_over_dim0(logits, y):
    return (logits.argmax(dim=0) == y).float().mean().item()


def accuracy_argmin(logits, y):
    return (logits.argmin(dim=1) == y).float().mean().item()


def accuracy_per_example(logits, y):
    return (logits.argmax(dim=1) == y).float()


def accuracy_todo(logits, y):
    raise NotImplementedError


def test_check_accuracy_passes_correct_implementations():
    for fn in (accuracy, accuracy_tensor):
        result = check_accuracy(fn)
        assert isinstance(result, CheckResult)
        assert result.passed, result.message
        assert bool(result)
        assert repr(result).startswith("PASSED")
        assert fn.__name__ in result.message


def failed(result: CheckResult) -> str:
    assert not result.passed
    assert not bool(result)
    assert repr(result).startswith("NOT YET")
    return result.message


def test_check_accuracy_missing_return():
    message = failed(check_accuracy(accuracy_no_return))
    assert "returned None" in message
    assert "return" in message


def test_check_accuracy_percentage():
    message = failed(check_accuracy(accuracy_percent))
    assert "percentage" in message
    assert "[0, 1]" in message


def test_check_accuracy_wrong_logic():
    message = failed(check_accuracy(accuracy_argmin))
    assert "expected" in message
    assert "argmax(dim=1)" in message
    assert "percentage" not in message


def test_check_accuracy_argmax_over_the_batch_dimension():
    # (8, 10) logits: argmax over dim 0 gives 10 values for 8 labels, so the comparison fails
    message = failed(check_accuracy(accuracy_over_dim0))
    assert "accuracy_over_dim0 raised RuntimeError" in message


def test_check_accuracy_not_averaged():
    message = failed(check_accuracy(accuracy_per_example))
    assert "shape (8,)" in message
    assert "average" in message


def test_check_accuracy_not_implemented():
    message = failed(check_accuracy(accuracy_todo))
    assert "not implemented" in message
    assert "accuracy_todo" in message


def test_check_accuracy_does_not_let_the_function_change_the_cases():
    def accuracy_in_place(logits, y):
        result = (logits.argmax(dim=1) == y).float().mean().item()
        logits.zero_()  # would change the expected value if the check passed its own tensors
        return result

    assert check_accuracy(accuracy_in_place).passed


# --- check_train_step --------------------------------------------------------------------------


def train_step(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def step_without_zero_grad(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def step_without_step(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    return loss


def step_without_return(model, x, y, optimizer, loss_fn):
    loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def step_returning_loss_after_update(model, x, y, optimizer, loss_fn):
    train_step(model, x, y, optimizer, loss_fn)
    return loss_fn(model(x), y)


def step_with_doubled_loss(model, x, y, optimizer, loss_fn):
    loss = 2 * loss_fn(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss / 2


def step_todo(model, x, y, optimizer, loss_fn):
    raise NotImplementedError("write the training step")


def test_check_train_step_passes_a_correct_step():
    result = check_train_step(train_step)
    assert result.passed, result.message
    assert "train_step" in result.message


def test_check_train_step_missing_zero_grad():
    message = failed(check_train_step(step_without_zero_grad))
    assert "zero_grad" in message
    assert "step 2" in message  # step 1 is right: the gradients start empty


def test_check_train_step_missing_optimizer_step():
    message = failed(check_train_step(step_without_step))
    assert "did not change" in message
    assert "optimizer.step()" in message


def test_check_train_step_returning_none():
    message = failed(check_train_step(step_without_return))
    assert "returned None" in message
    assert "loss" in message


def test_check_train_step_returning_a_different_loss():
    message = failed(check_train_step(step_returning_loss_after_update))
    assert "step 1 returned" in message
    assert "expected" in message


def test_check_train_step_wrong_update():
    message = failed(check_train_step(step_with_doubled_loss))
    assert "after step 1" in message
    assert "differs" in message
    assert "zero_grad" not in message


def test_check_train_step_not_implemented():
    message = failed(check_train_step(step_todo))
    assert "not implemented" in message


def test_check_train_step_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    check_train_step(train_step)
    assert torch.equal(torch.get_rng_state(), state)


# --- check_shard_indices -----------------------------------------------------------------------


def shuffled_order(num_samples, seed, epoch):
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def shard_indices(num_samples, rank, world_size, seed, epoch):
    order = shuffled_order(num_samples, seed, epoch)
    per_rank = -(-num_samples // world_size)
    while len(order) < per_rank * world_size:
        order += order[:per_rank * world_size - len(order)]
    return order[rank::world_size]


def shard_indices_tensor(num_samples, rank, world_size, seed, epoch):
    return torch.tensor(shard_indices(num_samples, rank, world_size, seed, epoch))


def shard_no_padding(num_samples, rank, world_size, seed, epoch):
    order = shuffled_order(num_samples, seed, epoch)
    return order[:num_samples // world_size * world_size][rank::world_size]


def shard_no_shuffle(num_samples, rank, world_size, seed, epoch):
    per_rank = -(-num_samples // world_size)
    order = (list(range(num_samples)) * per_rank * world_size)[:per_rank * world_size]
    return order[rank::world_size]


def shard_blocks(num_samples, rank, world_size, seed, epoch):
    per_rank = -(-num_samples // world_size)
    order = (shuffled_order(num_samples, seed, epoch) * per_rank * world_size)[:per_rank * world_size]
    return order[rank * per_rank:(rank + 1) * per_rank]


def shard_ignores_epoch(num_samples, rank, world_size, seed, epoch):
    return shard_indices(num_samples, rank, world_size, seed, 0)


def shard_todo(num_samples, rank, world_size, seed, epoch):
    raise NotImplementedError


def test_check_shard_indices_passes_correct_implementations():
    for fn in (shard_indices, shard_indices_tensor):
        result = check_shard_indices(fn)
        assert result.passed, result.message


@pytest.mark.parametrize(("fn", "hint"), [
    (shard_no_padding, "pad"), (shard_no_shuffle, "randperm"), (shard_blocks, "rank::world_size"),
    (shard_ignores_epoch, "seed + epoch"), (shard_todo, "not implemented"),
])
def test_check_shard_indices_names_the_mistake(fn, hint):
    assert hint in failed(check_shard_indices(fn))


def test_check_shard_indices_rejects_non_lists():
    assert "list of int" in failed(check_shard_indices(lambda n, r, w, s, e: None))
    assert "list of int" in failed(check_shard_indices(lambda n, r, w, s, e: [0.5]))
# --- check_mixup (notebook 02) -----------------------------------------------------------------


def _one_hot(y, num_classes):
    return torch.nn.functional.one_hot(y, num_classes).float()


def mixup_right(x, y, lam, num_classes):
    t = _one_hot(y, num_classes)
    return lam * x + (1 - lam) * x.roll(1, 0), lam * t + (1 - lam) * t.roll(1, 0)


def mixup_swapped(x, y, lam, num_classes):
    return mixup_right(x, y, 1 - lam, num_classes)


def mixup_wrong_roll(x, y, lam, num_classes):
    t = _one_hot(y, num_classes)
    return lam * x + (1 - lam) * x.roll(-1, 0), lam * t + (1 - lam) * t.roll(-1, 0)


def mixup_hard_labels(x, y, lam, num_classes):
    return mixup_right(x, y, lam, num_classes)[0], y


def mixup_targets_unrolled(x, y, lam, num_classes):
    return mixup_right(x, y, lam, num_classes)[0], _one_hot(y, num_classes)


def mixup_targets_not_normalized(x, y, lam, num_classes):
    t = _one_hot(y, num_classes)
    return mixup_right(x, y, lam, num_classes)[0], t + t.roll(1, 0)


def mixup_todo(x, y, lam, num_classes):
    raise NotImplementedError


def test_check_mixup_passes_the_reference():
    result = check_mixup(mixup_right)
    assert result.passed, result.message


@pytest.mark.parametrize(("fn", "words"), [
    (mixup_swapped, "swapped"),
    (mixup_wrong_roll, "roll(1, 0)"),
    (mixup_hard_labels, "soft labels"),
    (mixup_targets_not_normalized, "sum to 1"),
    (mixup_targets_unrolled, "same roll"),
    (mixup_todo, "not implemented"),
])
def test_check_mixup_explains_each_mistake(fn, words):
    message = failed(check_mixup(fn))
    assert words in message
