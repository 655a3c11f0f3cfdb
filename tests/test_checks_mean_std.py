"""Tests for course_utils.checks.check_mean_std (notebook 01): right answers pass, each typical
mistake gets its own message, bad input raises."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from course_utils.checks import CheckResult, check_mean_std
from course_utils.data import mean_std_streaming


def failed(result: CheckResult) -> str:
    assert isinstance(result, CheckResult)
    assert not result.passed
    assert repr(result).startswith("NOT YET")
    return result.message


def mean_std(dataset, batch_size):
    total = total_sq = 0
    count = 0
    for x, _ in DataLoader(dataset, batch_size=batch_size):
        x = x.double()
        total = total + x.sum(dim=(0, 2, 3))
        total_sq = total_sq + (x**2).sum(dim=(0, 2, 3))
        count += x.numel() // x.shape[1]
    mean = total / count
    return mean, ((total_sq - count * mean**2) / (count - 1)).sqrt()


def mean_std_welford(dataset, batch_size):
    """Chan et al.'s parallel update in float32: numerically safe without float64."""
    count, mean, m2 = 0, None, None
    for x, _ in DataLoader(dataset, batch_size=batch_size):
        pixels = x.transpose(0, 1).reshape(x.shape[1], -1)
        n_b, mean_b = pixels.shape[1], pixels.mean(dim=1)
        m2_b = ((pixels - mean_b[:, None]) ** 2).sum(dim=1)
        if mean is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        delta, total = mean_b - mean, count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    return mean, (m2 / (count - 1)).sqrt()


def mean_std_one_batch(dataset, batch_size):
    images, _ = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    return images.double().mean(dim=(0, 2, 3)).tolist(), images.double().std(dim=(0, 2, 3)).tolist()


def test_correct_implementations_pass():
    for fn in (mean_std, mean_std_welford, mean_std_one_batch, mean_std_streaming):
        result = check_mean_std(fn)
        assert result.passed, (fn.__name__, result.message)
        assert fn.__name__ in result.message


def test_not_implemented():
    def todo(dataset, batch_size):
        raise NotImplementedError("your code here")

    assert "not implemented" in failed(check_mean_std(todo))


def test_missing_return_and_wrong_types():
    assert "returned None" in failed(check_mean_std(lambda dataset, batch_size: None))
    assert "pair (mean, std)" in failed(check_mean_std(lambda dataset, batch_size: 0.5))
    message = failed(check_mean_std(lambda dataset, batch_size: ("a", "b")))
    assert "the mean is a str" in message


def test_one_number_for_three_channels():
    def pooled(dataset, batch_size):
        images = torch.stack([x for x, _ in dataset]).double()
        return images.mean(), images.std()

    message = failed(check_mean_std(pooled))
    assert "colour" in message
    assert "one number for 3 channels" in message
    assert "dims 0, 2, 3" in message


def test_wrong_shape():
    def per_pixel(dataset, batch_size):
        images = torch.stack([x for x, _ in dataset]).double()
        return images.mean(dim=0), images.std(dim=0)

    assert "expected (1,)" in failed(check_mean_std(per_pixel))


def test_average_of_batch_means():
    def batch_average(dataset, batch_size):
        means, stds = [], []
        for x, _ in DataLoader(dataset, batch_size=batch_size):
            means.append(x.double().mean(dim=(0, 2, 3)))
            stds.append(x.double().std(dim=(0, 2, 3)))
        return torch.stack(means).mean(0), torch.stack(stds).mean(0)

    message = failed(check_mean_std(batch_average))
    assert "per-batch means" in message
    assert "last batch is smaller" in message


def test_average_of_batch_stds():
    def batch_stds(dataset, batch_size):
        mean, _ = mean_std(dataset, batch_size)
        stds = [x.double().std(dim=(0, 2, 3)) for x, _ in DataLoader(dataset, batch_size=batch_size)]
        return mean, torch.stack(stds).mean(0)

    assert "average of per-batch stds" in failed(check_mean_std(batch_stds))


def test_variance_instead_of_std():
    def variance(dataset, batch_size):
        mean, std = mean_std(dataset, batch_size)
        return mean, std**2

    assert "square root" in failed(check_mean_std(variance))


def test_biased_std():
    def biased(dataset, batch_size):
        images = torch.stack([x for x, _ in dataset]).double()
        return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3), correction=0)

    assert "Bessel" in failed(check_mean_std(biased))


def test_float32_cancellation():
    def float32_sums(dataset, batch_size):
        total = total_sq = 0
        count = 0
        for x, _ in DataLoader(dataset, batch_size=batch_size):
            total = total + x.sum(dim=(0, 2, 3))
            total_sq = total_sq + (x**2).sum(dim=(0, 2, 3))
            count += x.numel() // x.shape[1]
        mean = total / count
        return mean, ((total_sq - count * mean**2) / (count - 1)).clamp_min(0).sqrt()

    message = failed(check_mean_std(float32_sums))
    assert "near 1000" in message
    assert "float64" in message


def test_exceptions_in_the_students_code_are_reported():
    def broken(dataset, batch_size):
        return dataset.images.mean()

    assert "broken raised AttributeError" in failed(check_mean_std(broken))


def test_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    check_mean_std(mean_std)
    assert torch.equal(torch.get_rng_state(), state)


def test_not_a_function():
    with pytest.raises(TypeError, match="fn\\(dataset, batch_size\\)"):
        check_mean_std("mean_std")
