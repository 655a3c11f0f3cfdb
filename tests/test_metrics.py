"""Tests for course_utils.metrics: exact counts, recall, calibration, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_utils.metrics import (
    confusion_matrix,
    expected_calibration_error,
    per_class_recall,
    predict_proba,
)


def test_confusion_matrix_counts_rows_true_columns_predicted():
    y_true = torch.tensor([0, 0, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    torch.testing.assert_close(confusion_matrix(y_true, y_pred, 3), expected)


def test_confusion_matrix_agrees_with_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    y_true, y_pred = (torch.randint(0, 5, (200,), generator=generator) for _ in range(2))
    expected = torch.as_tensor(sklearn_metrics.confusion_matrix(y_true, y_pred, labels=range(5)))
    torch.testing.assert_close(confusion_matrix(y_true, y_pred, 5), expected.long())


def test_per_class_recall_and_empty_class_is_nan():
    matrix = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    recall = per_class_recall(matrix)
    assert recall[0].item() == pytest.approx(0.75)
    assert math.isnan(recall[1].item())
    assert recall[2].item() == pytest.approx(0.5)


@pytest.mark.parametrize("args, error", [
    ((torch.tensor([0, 1]), torch.tensor([0]), 2), ValueError),
    ((torch.tensor([0, 3]), torch.tensor([0, 1]), 3), ValueError),
    ((torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2), ValueError),
    (([0, 1], torch.tensor([0, 1]), 2), TypeError),
    ((torch.tensor([0, 1]), torch.tensor([0, 1]), 0), ValueError),
])
def test_confusion_matrix_bad_input(args, error):
    with pytest.raises(error):
        confusion_matrix(*args)


def test_per_class_recall_bad_input():
    with pytest.raises(ValueError, match="square"):
        per_class_recall(torch.zeros(2, 3))
    with pytest.raises(TypeError):
        per_class_recall([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="non-negative"):
        per_class_recall(torch.tensor([[1, -1], [0, 1]]))


def test_ece_is_zero_when_confidence_equals_accuracy_and_exact_otherwise():
    # confidence 1 and always right: perfectly calibrated
    probs = torch.eye(3)
    assert expected_calibration_error(probs, torch.arange(3)) == 0.0
    # all at confidence 0.8, half right: gap 0.3
    probs = torch.tensor([[0.8, 0.2]] * 4)
    y = torch.tensor([0, 0, 1, 1])
    assert expected_calibration_error(probs, y, num_bins=10) == pytest.approx(0.3)


def test_ece_bad_input():
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(torch.eye(2), torch.arange(2), num_bins=0)
    with pytest.raises(ValueError, match="probs"):
        expected_calibration_error(torch.ones(3), torch.arange(3))


def test_predict_proba_rows_sum_to_one_and_restores_mode():
    model = nn.Linear(4, 3)
    model.train()
    loader = [(torch.randn(5, 4), torch.arange(5) % 3), (torch.randn(2, 4), torch.tensor([0, 1]))]
    probs, labels = predict_proba(model, loader)
    assert probs.shape == (7, 3) and labels.tolist() == [0, 1, 2, 0, 1, 0, 1]
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
    assert model.training
    with pytest.raises(ValueError, match="no batches"):
        predict_proba(model, [])
    with pytest.raises(TypeError):
        predict_proba(lambda x: x, loader)
