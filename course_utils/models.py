"""The course's small models: an MLP, a small CNN and a small ResNet, from plain ``nn`` layers.

Taught in notebook 00; BatchNorm and Dropout options are the subject of notebook 08; the
ResNet is the model of notebook 11 where tensor cores have enough work to matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
NORMS = ("batch", "none")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def mlp(in_features: int = 784, hidden: Sequence[int] = (256, 128), num_classes: int = 10, *,
        activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """A multilayer perceptron on flattened inputs: ``(N, ...) -> (N, num_classes)`` logits.

    Args:
        hidden: widths of the hidden layers (empty for logistic regression).
        activation: one of ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"``.
        dropout: dropout probability after each hidden activation (0 adds no layer).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}; choose one of {tuple(ACTIVATIONS)}")
    _check_dropout(dropout)
    if in_features < 1 or num_classes < 1 or any(width < 1 for width in hidden):
        raise ValueError("in_features, num_classes and every hidden width must be positive")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for out in hidden:
        layers += [nn.Linear(width, out), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = out
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, norm: str) -> list[nn.Module]:
    # A bias before BatchNorm is redundant (BN subtracts the mean), so it is dropped there.
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none")]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(c_out))
    return [*layers, nn.ReLU()]


def small_cnn(in_channels: int = 1, num_classes: int = 10, *, width: int = 16,
              norm: str = "batch", dropout: float = 0.0) -> nn.Sequential:
    """Two 3x3 conv blocks (``width``, ``2*width`` channels), each followed by 2x2 max-pooling,
    then a 4x4 adaptive average pool and a linear classifier.

    ``(N, in_channels, H, W) -> (N, num_classes)`` for any H, W >= 4 (28x28 and 32x32 alike).

    Args:
        norm: ``"batch"`` for BatchNorm after each convolution, ``"none"`` for none.
        dropout: dropout probability before the classifier (0 adds no layer).
    """
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; choose one of {NORMS}")
    _check_dropout(dropout)
    if in_channels < 1 or num_classes < 1 or width < 1:
        raise ValueError("in_channels, num_classes and width must be positive")
    layers = [
        *_conv_block(in_channels, width, norm), nn.MaxPool2d(2),
        *_conv_block(width, 2 * width, norm), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(2 * width * 16, num_classes))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + block(x)``: a skip connection around ``block`` (shapes must match)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def small_resnet(in_channels: int = 3, num_classes: int = 10, *, width: int = 16) -> nn.Sequential:
    """A ResNet-9 in the style of David Page's DAWNBench CIFAR-10 model (the ancestor of
    hlb-CIFAR10): channels ``width, 2w, 4w, 8w``, three 2x2 max-pools, two residual blocks of two
    conv-BatchNorm-ReLU layers, a global max-pool and a linear classifier.

    ``(N, in_channels, H, W) -> (N, num_classes)`` for any H, W >= 8 (3x32x32 CIFAR-sized images
    above all). ``width=64`` is Page's ResNet-9 (6.6 M parameters); the default 16 is its
    2-core-CPU size (0.4 M). Notebook 11.

    Raises:
        ValueError: a non-positive ``in_channels``, ``num_classes`` or ``width``.
    """
    if in_channels < 1 or num_classes < 1 or width < 1:
        raise ValueError("in_channels, num_classes and width must be positive")

    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return _conv_block(c_in, c_out, "batch")

    w = width
    return nn.Sequential(
        *conv(in_channels, w),
        *conv(w, 2 * w), nn.MaxPool2d(2),
        Residual(nn.Sequential(*conv(2 * w, 2 * w), *conv(2 * w, 2 * w))),
        *conv(2 * w, 4 * w), nn.MaxPool2d(2),
        *conv(4 * w, 8 * w), nn.MaxPool2d(2),
        Residual(nn.Sequential(*conv(8 * w, 8 * w), *conv(8 * w, 8 * w))),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(8 * w, num_classes),
    )
