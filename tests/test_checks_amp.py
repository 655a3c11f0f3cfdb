"""Tests for check_amp_step (course_utils.checks): the right step passes, each mistake is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.checks import check_amp_step


def make_step(*, autocast=True, dtype=torch.float16, scale=True, unscale=True, clip=True, zero=True,
              update=True, result="loss"):
    def amp_step(model, x, y, optimizer, loss_fn, scaler, max_norm):
        with torch.autocast(x.device.type, dtype=dtype, enabled=autocast):
            loss = loss_fn(model(x), y)
        if zero:
            optimizer.zero_grad()
        if scale:
            scaler.scale(loss).backward()
            if unscale:
                scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if scale:
            scaler.step(optimizer)
            if update:
                scaler.update()
        else:
            optimizer.step()
        return loss.detach() if result == "loss" else None

    return amp_step


def test_the_right_step_passes():
    result = check_amp_step(make_step())
    assert result.passed and bool(result), result.message
    assert repr(result).startswith("PASSED")


@pytest.mark.parametrize("mistake, message", [
    ({"unscale": False}, "unscale_(optimizer) before clip_grad_norm_"),
    ({"scale": False}, "underflowed"),
    ({"autocast": False}, "did not run in fp16"),
    ({"dtype": torch.bfloat16}, "bfloat16"),
    ({"clip": False}, "not clipped"),
    ({"zero": False}, "zero_grad"),
    ({"update": False}, "raised RuntimeError"),
    ({"result": None}, "return the batch's loss"),
])
def test_each_mistake_gets_its_own_message(mistake, message):
    result = check_amp_step(make_step(**mistake))
    assert not result.passed
    assert message in result.message, result.message


def test_a_stub_is_reported_as_not_implemented():
    def my_amp_step(model, x, y, optimizer, loss_fn, scaler, max_norm):
        raise NotImplementedError

    result = check_amp_step(my_amp_step)
    assert not result and "not implemented" in result.message


def test_a_step_that_does_nothing_is_reported():
    def lazy(model, x, y, optimizer, loss_fn, scaler, max_norm):
        return loss_fn(model(x), y).detach()

    result = check_amp_step(lazy)
    assert not result and "did not change" in result.message
