"""Tests for course_utils.checks.check_freeze: right, wrong and unfinished answers."""

from __future__ import annotations

import torch

from course_utils.checks import check_freeze
from course_utils.transfer import freeze


def good(model, until):
    for index, child in enumerate(model):
        for param in child.parameters():
            param.requires_grad = index >= until
    return model


def only_freezes(model, until):
    for param in model[:until].parameters():
        param.requires_grad = False
    return model


def off_by_one(model, until):
    return good(model, until + 1) if until < len(model) else good(model, until)


def no_return(model, until):
    good(model, until)


def weights_only(model, until):
    good(model, 0)
    for child in model[:until]:
        if hasattr(child, "weight"):
            child.weight.requires_grad = False
    return model


def zeroes_weights(model, until):
    with torch.no_grad():
        model[0].weight.zero_()
    return good(model, until)


def unfinished(model, until):
    raise NotImplementedError


def test_reference_and_good_pass():
    assert check_freeze(freeze)
    result = check_freeze(good)
    assert result and "PASSED" in repr(result)


def test_mistakes_are_named():
    assert "trainable again" in check_freeze(only_freezes).message
    assert "off by one" in check_freeze(off_by_one).message
    assert "return the model" in check_freeze(no_return).message
    assert "partly frozen" in check_freeze(weights_only).message
    assert "changed" in check_freeze(zeroes_weights).message
    assert "not implemented" in check_freeze(unfinished).message
