"""Tests for course_utils.checks.check_log_softmax: the stable answer passes, each typical
mistake gets its own message."""

from __future__ import annotations

import torch

from course_utils.checks import check_log_softmax


def stable(z):
    m = z.amax(-1, keepdim=True)
    return z - m - (z - m).exp().sum(-1, keepdim=True).log()


def naive(z):
    return (z.exp() / z.exp().sum(-1, keepdim=True)).log()


def forgot_max(z):
    m = z.amax(-1, keepdim=True)
    return z - (z - m).exp().sum(-1, keepdim=True).log()


def wrong_dim(z):
    m = z.amax(0, keepdim=True)
    return z - m - (z - m).exp().sum(0, keepdim=True).log()


def stub(z):
    raise NotImplementedError


def test_stable_version_passes():
    assert check_log_softmax(stable)
    assert check_log_softmax(lambda z: torch.log_softmax(z, -1))


def test_naive_version_is_caught_as_overflow():
    result = check_log_softmax(naive)
    assert not result and "overflow" in result.message


def test_forgetting_the_max_is_named():
    result = check_log_softmax(forgot_max)
    assert not result and "add m back" in result.message


def test_wrong_dimension_is_named():
    result = check_log_softmax(wrong_dim)
    assert not result and "dimension" in result.message


def test_stub_and_non_tensor():
    assert "not implemented" in check_log_softmax(stub).message
    assert "must return a tensor" in check_log_softmax(lambda z: 1.0).message
