"""Tests for checks.check_warmup_cosine: a right answer passes, each usual mistake is named."""

from __future__ import annotations

import math

import torch

from course_utils.checks import check_warmup_cosine


def warmup_cosine(step, lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return lr * (1 + math.cos(math.pi * progress)) / 2


def as_tensor(step, lr, warmup_steps, total_steps):
    return torch.tensor(warmup_cosine(step, lr, warmup_steps, total_steps), dtype=torch.float64)


def off_by_one(step, lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return warmup_cosine(step, lr, warmup_steps, total_steps)


def no_warmup(step, lr, warmup_steps, total_steps):
    return lr * (1 + math.cos(math.pi * step / total_steps)) / 2


def cosine_from_zero(step, lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return lr * step / warmup_steps
    return lr * (1 + math.cos(math.pi * step / total_steps)) / 2


def wrong_length(step, lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return lr * step / warmup_steps
    return lr * (1 + math.cos(math.pi * (step - warmup_steps) / total_steps)) / 2


def rising(step, lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return lr * (1 - math.cos(math.pi * progress)) / 2


def divides_by_warmup(step, lr, warmup_steps, total_steps):
    if step <= warmup_steps:  # step 0 with warmup_steps 0 divides by zero
        return lr * step / warmup_steps
    return warmup_cosine(step, lr, warmup_steps, total_steps)


def forgets_return(step, lr, warmup_steps, total_steps):
    warmup_cosine(step, lr, warmup_steps, total_steps)


def todo(step, lr, warmup_steps, total_steps):
    raise NotImplementedError


def message(fn) -> str:
    result = check_warmup_cosine(fn)
    assert not result.passed and repr(result).startswith("NOT YET")
    return result.message


def test_right_answers_pass():
    for fn in (warmup_cosine, as_tensor):
        result = check_warmup_cosine(fn)
        assert result.passed, result.message
        assert fn.__name__ in result.message


def test_off_by_one_warmup():
    text = message(off_by_one)
    assert "off by one" in text and "at step 0" in text


def test_missing_warmup():
    assert "no warm-up" in message(no_warmup)


def test_cosine_started_at_step_zero():
    assert "must start after the warm-up" in message(cosine_from_zero)


def test_decay_divided_by_the_wrong_length():
    assert "total_steps - warmup_steps" in message(wrong_length)


def test_rising_cosine():
    assert "wrong way" in message(rising)


def test_zero_warmup_is_reported():
    text = message(divides_by_warmup)
    assert "ZeroDivisionError" in text and "warmup_steps=0 means no warm-up" in text


def test_none_and_not_implemented():
    assert "returned None" in message(forgets_return)
    assert "not implemented" in message(todo)
