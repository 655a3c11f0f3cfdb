"""Tests for course_utils.checks.check_accumulated_step: the right answer passes and each typical
mistake of gradient accumulation gets its own message."""

from __future__ import annotations

from course_utils.batching import accumulated_step
from course_utils.checks import check_accumulated_step


def reference(model, x, y, optimizer, loss_fn, micro_batch):
    return accumulated_step(model, x, y, optimizer=optimizer, loss_fn=loss_fn,
                            micro_batch=micro_batch)


def no_scaling(model, x, y, optimizer, loss_fn, micro_batch):
    optimizer.zero_grad()
    total = 0.0
    for xm, ym in zip(x.split(micro_batch), y.split(micro_batch), strict=True):
        loss = loss_fn(model(xm), ym)
        loss.backward()
        total += loss.detach() * len(xm) / len(x)
    optimizer.step()
    return total


def one_over_k(model, x, y, optimizer, loss_fn, micro_batch):
    optimizer.zero_grad()
    chunks = list(zip(x.split(micro_batch), y.split(micro_batch), strict=True))
    total = 0.0
    for xm, ym in chunks:
        loss = loss_fn(model(xm), ym) / len(chunks)
        loss.backward()
        total += loss.detach()
    optimizer.step()
    return total


def no_zero_grad(model, x, y, optimizer, loss_fn, micro_batch):
    total = 0.0
    for xm, ym in zip(x.split(micro_batch), y.split(micro_batch), strict=True):
        loss = loss_fn(model(xm), ym) * len(xm) / len(x)
        loss.backward()
        total += loss.detach()
    optimizer.step()
    return total


def step_every_micro_batch(model, x, y, optimizer, loss_fn, micro_batch):
    total = 0.0
    for xm, ym in zip(x.split(micro_batch), y.split(micro_batch), strict=True):
        optimizer.zero_grad()
        loss = loss_fn(model(xm), ym) * len(xm) / len(x)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return total


def no_return(model, x, y, optimizer, loss_fn, micro_batch):
    reference(model, x, y, optimizer, loss_fn, micro_batch)


def does_nothing(model, x, y, optimizer, loss_fn, micro_batch):
    return loss_fn(model(x), y)


def todo(model, x, y, optimizer, loss_fn, micro_batch):
    raise NotImplementedError


def crashes(model, x, y, optimizer, loss_fn, micro_batch):
    return model(x[:, :3])


def message(fn) -> str:
    result = check_accumulated_step(fn)
    assert not result.passed and not bool(result)
    return result.message


def test_reference_passes():
    result = check_accumulated_step(reference)
    assert result.passed, result.message
    assert "smaller last micro-batch" in result.message


def test_each_mistake_is_named():
    assert "3x too large" in message(no_scaling)
    assert "len(micro-batch) / len(batch)" in message(one_over_k)
    assert "zero_grad" in message(no_zero_grad)
    assert "optimizer.step() once" in message(step_every_micro_batch)
    assert "mean loss over the whole batch" in message(no_return)
    assert "did not change" in message(does_nothing)
    assert "not implemented" in message(todo)
    assert "raised RuntimeError" in message(crashes)
