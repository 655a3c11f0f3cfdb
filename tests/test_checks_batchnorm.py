"""Tests for course_utils.checks.check_batchnorm: the reference passes, each typical mistake gets
its own message."""

from __future__ import annotations

from course_utils.checks import check_batchnorm
from course_utils.layers import batch_norm


def reference(x, running_mean, running_var, weight, bias, training, momentum, eps):
    return batch_norm(x, running_mean, running_var, weight, bias, training=training,
                      momentum=momentum, eps=eps)


def _stats(x):
    dims = (0, *range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return dims, shape, x.numel() // x.shape[1]


def make(mistake):
    def student(x, running_mean, running_var, weight, bias, training, momentum, eps):
        dims, shape, n = _stats(x)
        if training:
            m, v = x.mean(dims), x.var(dims, unbiased=False)
            unbiased = v if mistake == "biased" else v * n / (n - 1)
            if mistake == "reversed":
                running_mean.mul_(momentum).add_((1 - momentum) * m)
                running_var.mul_(momentum).add_((1 - momentum) * unbiased)
            elif mistake != "frozen":
                running_mean.mul_(1 - momentum).add_(momentum * m)
                running_var.mul_(1 - momentum).add_(momentum * unbiased)
        if training or mistake == "eval_batch":
            if mistake == "per_position" and x.dim() == 4:
                dims = (0,)
            mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
            if mistake == "unbiased_norm":
                var = var * n / (n - 1)
        else:
            mean, var = running_mean.reshape(shape), running_var.reshape(shape)
        if mistake == "eps_outside":
            y = (x - mean) / (var.sqrt() + eps)
        else:
            y = (x - mean) / (var + eps).sqrt()
        if mistake == "no_affine":
            return y
        return y * weight.reshape(shape) + bias.reshape(shape)
    student.__name__ = f"student_{mistake}"
    return student


def test_reference_passes():
    result = check_batchnorm(reference)
    assert result.passed, result.message
    assert "BatchNorm2d" in result.message


def test_mistakes_get_their_hint():
    expected = {
        "biased": "UNBIASED",
        "reversed": "reversed",
        "frozen": "in place",
        "eps_outside": "inside the square root",
        "unbiased_norm": "BIASED batch variance",
        "per_position": "N*H*W",
        "eval_batch": "eval mode",
        "no_affine": "weight",
    }
    for mistake, hint in expected.items():
        result = check_batchnorm(make(mistake))
        assert not result.passed, mistake
        assert hint in result.message, (mistake, result.message)


def test_not_implemented_and_wrong_type():
    def stub(*args):
        raise NotImplementedError

    assert "not implemented" in check_batchnorm(stub).message
    assert "expected a tensor" in check_batchnorm(lambda *args: 0.0).message
