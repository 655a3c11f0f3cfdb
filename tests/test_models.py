"""The course's MLP and small CNN (course_utils.models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.models import mlp, small_cnn


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mlp_output_shape(shape):
    c, h, w = shape
    model = mlp(in_features=c * h * w, hidden=(32, 16), num_classes=7)
    assert model(torch.randn(5, *shape)).shape == (5, 7)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [32, 16, 7]


def test_mlp_defaults_and_logistic_regression():
    assert mlp()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    logistic = mlp(in_features=784, hidden=())
    assert count(logistic, nn.Linear) == 1 and count(logistic, nn.ReLU) == 0
    assert logistic(torch.randn(3, 784)).shape == (3, 10)


@pytest.mark.parametrize("activation, kind", [("relu", nn.ReLU), ("tanh", nn.Tanh),
                                              ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU)])
def test_mlp_activation(activation, kind):
    assert count(mlp(hidden=(8, 8), activation=activation), kind) == 2


def test_mlp_dropout_adds_layers_only_when_asked():
    assert count(mlp(hidden=(8, 8)), nn.Dropout) == 0
    with_dropout = mlp(hidden=(8, 8), dropout=0.25)
    dropouts = [m for m in with_dropout if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(d.p == 0.25 for d in dropouts)
    assert not isinstance(list(with_dropout)[-1], nn.Dropout)  # none on the logits


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_small_cnn_output_shape(shape, norm):
    model = small_cnn(in_channels=shape[0], num_classes=10, width=8, norm=norm)
    assert model(torch.randn(4, *shape)).shape == (4, 10)


def test_small_cnn_batch_norm_after_every_conv_and_no_conv_bias():
    model = small_cnn(in_channels=3, width=8, norm="batch")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert convs and all(conv.bias is None for conv in convs)  # BatchNorm makes a bias redundant
    assert convs[0].in_channels == 3 and convs[0].out_channels == 8
    assert [n.num_features for n in norms] == [conv.out_channels for conv in convs]
    layers = list(model)
    for conv in convs:  # each conv is directly followed by its BatchNorm
        assert isinstance(layers[layers.index(conv) + 1], nn.BatchNorm2d)


def test_small_cnn_without_norm_has_biases_and_no_batch_norm():
    model = small_cnn(width=8, norm="none")
    assert count(model, nn.BatchNorm2d) == 0
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(conv.bias is not None for conv in convs)
    assert len(convs) == count(small_cnn(width=8, norm="batch"), nn.Conv2d)  # same network otherwise


def test_small_cnn_dropout_before_classifier():
    assert count(small_cnn(), nn.Dropout) == 0
    layers = list(small_cnn(dropout=0.5))
    assert isinstance(layers[-2], nn.Dropout) and layers[-2].p == 0.5
    assert isinstance(layers[-1], nn.Linear)


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "layer"}, "norm='layer'"),
    ({"norm": "Batch"}, "choose one of"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"dropout": -0.1}, "dropout must be"),
    ({"width": 0}, "must be positive"),
    ({"in_channels": 0}, "must be positive"),
    ({"num_classes": 0}, "must be positive"),
])
def test_small_cnn_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_cnn(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"activation": "swish"}, "activation='swish'; choose one of"),
    ({"dropout": 1.5}, "dropout must be"),
    ({"dropout": -0.5}, "dropout must be"),
    ({"hidden": (16, 0)}, "must be positive"),
    ({"in_features": 0}, "must be positive"),
    ({"num_classes": -1}, "must be positive"),
])
def test_mlp_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlp(**kwargs)
