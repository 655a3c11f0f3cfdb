"""Tests for course_utils.checks.check_adam_step: right, wrong and unfinished Adam answers."""

from __future__ import annotations

import torch

from course_utils.checks import CheckResult, check_adam_step
from course_utils.optim import Adam


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_without_bias_correction(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return param - lr * m / (v.sqrt() + eps), m, v


def adam_uncorrected_v(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return param - lr * (m / (1 - beta1**t)) / (v.sqrt() + eps), m, v


def adam_uphill(param, grad, m, v, t, lr, beta1, beta2, eps):
    new_param, m, v = adam_step(param, grad, m, v, t, lr, beta1, beta2, eps)
    return 2 * param - new_param, m, v


def adam_zero_based_t(param, grad, m, v, t, lr, beta1, beta2, eps):
    return adam_step(param, grad, m, v, t - 1, lr, beta1, beta2, eps)


def adam_returns_corrected_m(param, grad, m, v, t, lr, beta1, beta2, eps):
    new_param, m, v = adam_step(param, grad, m, v, t, lr, beta1, beta2, eps)
    return new_param, m / (1 - beta1**t), v


def adam_v_from_grad(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad.abs()
    return param - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps), m, v


def adam_returns_param_only(param, grad, m, v, t, lr, beta1, beta2, eps):
    return adam_step(param, grad, m, v, t, lr, beta1, beta2, eps)[0]


def adam_todo(param, grad, m, v, t, lr, beta1, beta2, eps):
    raise NotImplementedError("your code here")


class AdamTodo(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def step(self, closure=None):
        raise NotImplementedError


class AdamNoBiasCorrection(Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr, betas, eps=eps, bias_correction=False)


class AdamWithoutBetas(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})


def failed(result: CheckResult) -> str:
    assert isinstance(result, CheckResult)
    assert not result.passed and repr(result).startswith("NOT YET")
    return result.message


def test_right_answers_pass_as_function_and_class():
    for student in (adam_step, Adam, torch.optim.Adam):
        result = check_adam_step(student)
        assert result.passed, result.message
        assert "5 steps" in result.message


def test_missing_bias_correction_is_named_with_step_and_parameter():
    for student in (adam_without_bias_correction, AdamNoBiasCorrection):
        message = failed(check_adam_step(student))
        assert "step 1, parameter 'weight'" in message
        assert "WITHOUT bias correction" in message
        assert "expected" in message


def test_partly_missing_bias_correction():
    message = failed(check_adam_step(adam_uncorrected_v))
    assert "not v" in message and "step 1" in message


def test_wrong_sign():
    assert "uphill" in failed(check_adam_step(adam_uphill))


def test_zero_based_step_gives_non_finite_values():
    message = failed(check_adam_step(adam_zero_based_t))
    assert "NaN/Inf" in message and "1-based" in message


def test_wrong_moments_are_reported():
    assert "returned m is wrong" in failed(check_adam_step(adam_returns_corrected_m))
    assert "returned v is wrong" in failed(check_adam_step(adam_v_from_grad))


def test_wrong_return_value():
    assert "must return (param, m, v)" in failed(check_adam_step(adam_returns_param_only))


def test_not_implemented_function_and_class():
    assert "adam_todo is not implemented yet" in failed(check_adam_step(adam_todo))
    assert "AdamTodo is not implemented yet" in failed(check_adam_step(AdamTodo))


def test_class_with_the_wrong_signature():
    message = failed(check_adam_step(AdamWithoutBetas))
    assert "raised TypeError" in message and "betas" in message


def test_check_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    check_adam_step(adam_step)
    assert torch.equal(torch.get_rng_state(), state)
