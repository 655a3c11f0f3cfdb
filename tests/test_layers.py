"""Oracle tests for course_utils.layers: from-scratch dropout and batch norm against torch.nn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.layers import batch_norm, dropout


@pytest.mark.parametrize("shape", [(1000,), (8, 3, 5, 5)])
def test_dropout_matches_nn_dropout_with_the_same_seed(shape):
    x = torch.randn(*shape)
    torch.manual_seed(3)
    want = nn.Dropout(0.3)(x)
    got = dropout(x, 0.3, training=True, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want)


def test_dropout_eval_and_conventions():
    x = torch.randn(50)
    assert dropout(x, 0.4, training=False) is x
    torch.testing.assert_close(dropout(x, 0.4, training=False, inverted=False), x * 0.6)
    mask_seed = torch.Generator().manual_seed(1)
    plain = dropout(x, 0.4, training=True, inverted=False, generator=mask_seed)
    inverted = dropout(x, 0.4, training=True, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(inverted, plain / 0.6)
    assert set(torch.unique(plain / x).tolist()) <= {0.0, 1.0}


def test_dropout_expectation_equals_eval_output():
    x = torch.full((200_000,), 2.0)
    generator = torch.Generator().manual_seed(0)
    for inverted in (True, False):
        mean = dropout(x, 0.5, training=True, inverted=inverted, generator=generator).mean()
        want = dropout(x[:1], 0.5, training=False, inverted=inverted)[0]
        assert abs(mean - want) < 0.02


@pytest.mark.parametrize("p", [-0.1, 1.0, "0.5", True])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(torch.ones(3), p, training=True)


@pytest.mark.parametrize(("shape", "layer"), [((16, 5), nn.BatchNorm1d), ((6, 5, 7), nn.BatchNorm1d),
                                              ((4, 5, 3, 3), nn.BatchNorm2d)])
def test_batch_norm_matches_nn_in_train_and_eval(shape, layer):
    torch.manual_seed(0)
    reference = layer(5, momentum=0.2)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.normal_()
    weight = reference.weight.detach().clone().requires_grad_()
    bias = reference.bias.detach().clone().requires_grad_()
    running_mean, running_var = torch.zeros(5), torch.ones(5)
    for _ in range(3):
        x = torch.randn(*shape) * 3 + 1
        got = batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.2)
        want = reference(x)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(running_mean, reference.running_mean)
        torch.testing.assert_close(running_var, reference.running_var)
    (got * x).sum().backward()
    (want * x).sum().backward()
    torch.testing.assert_close(weight.grad, reference.weight.grad)
    torch.testing.assert_close(bias.grad, reference.bias.grad)
    reference.eval()
    before = running_mean.clone()
    torch.testing.assert_close(batch_norm(x, running_mean, running_var, weight, bias, training=False),
                               reference(x))
    assert torch.equal(running_mean, before)


def test_batch_norm_without_affine():
    x = torch.randn(10, 4)
    got = batch_norm(x, torch.zeros(4), torch.ones(4), training=True)
    torch.testing.assert_close(got, nn.BatchNorm1d(4, affine=False)(x))


@pytest.mark.parametrize(("x", "kwargs", "match"), [
    (torch.randn(4), {}, "2, 3 or 4 dimensions"),
    (torch.randn(4, 3), {}, "channels"),
    (torch.randn(1, 5), {}, "more than 1 value"),
    (torch.randn(4, 5), {"momentum": 1.5}, "momentum"),
    (torch.randn(4, 5), {"eps": 0.0}, "eps"),
])
def test_batch_norm_bad_input(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch_norm(x, torch.zeros(5), torch.ones(5), training=True, **kwargs)


def test_batch_norm_running_shapes_must_agree():
    with pytest.raises(ValueError, match="running_var"):
        batch_norm(torch.randn(4, 5), torch.zeros(5), torch.ones(4), training=True)
