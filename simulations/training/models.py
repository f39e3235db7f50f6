"""Compact network definitions (no torchvision): MLP, 1-D ResNet, small CNN, CIFAR ResNet-34, DenseNet-121.

The CIFAR networks follow the variants used by Luo et al. (2019), whose protocol the paper adopts: a 3x3
stem without max-pooling, then ResNet-34's basic blocks ``[3, 4, 6, 3]`` (He et al., 2016) or DenseNet-121's
bottleneck dense blocks ``[6, 12, 24, 16]`` with growth rate 32 and compression 0.5 (Huang et al., 2017).
A ``width`` argument scales the channel counts so that the same architecture runs in CPU tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .catalog import MODELS, default_model

__all__ = [
    "MLP",
    "MODELS",
    "CifarDenseNet",
    "CifarResNet",
    "ResNet1D",
    "SmallCNN",
    "build_model",
    "default_model",
]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs.

    Parameters
    ----------
    in_features : int
        Number of input features after flattening.
    num_classes : int
        Number of output logits.
    width : int
        Hidden units per layer.
    depth : int
        Number of hidden layers.
    """

    def __init__(self, in_features: int, num_classes: int, width: int = 100, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = _check_positive_int("in_features", in_features)
        for _ in range(_check_positive_int("depth", depth)):
            layers += [nn.Linear(size, _check_positive_int("width", width)), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, _check_positive_int("num_classes", num_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, num_classes)``."""
        return self.net(x)


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3-tap (1-D) or 3x3 (2-D) convolutions with batch norm, projection shortcut when
    the shape changes. ``dims`` picks ``Conv1d``/``BatchNorm1d`` or ``Conv2d``/``BatchNorm2d``."""

    def __init__(self, c_in: int, c_out: int, stride: int, dims: int) -> None:
        super().__init__()
        conv, norm = {1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d)}[dims]
        self.conv1 = conv(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = norm(c_out)
        self.conv2 = conv(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False), norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _residual_stages(width: int, blocks: Sequence[int], dims: int) -> tuple[nn.Sequential, int]:
    """Stages of basic blocks, stage ``k`` with ``width * 2**k`` channels and stride 2 on entry (``k > 0``).

    Returns the stages and their output channels.
    """
    layers: list[nn.Module] = []
    c_in = width
    for stage, n in enumerate(blocks):
        c_out = width * 2**stage
        for i in range(_check_positive_int("blocks[i]", n)):
            layers.append(_BasicBlock(c_in, c_out, 2 if (i == 0 and stage > 0) else 1, dims=dims))
            c_in = c_out
    return nn.Sequential(*layers), c_in


class ResNet1D(nn.Module):
    """Small 1-D ResNet for MNIST-1D: 5-tap stem, stages of basic blocks (stride 2 between stages), pooling.

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels and output logits.
    width : int
        Channels of the first stage; each later stage doubles them.
    blocks : sequence of int
        Basic blocks per stage.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, blocks: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        _check_positive_int("width", width)
        self.stem = nn.Sequential(
            nn.Conv1d(_check_positive_int("in_channels", in_channels), width, 5, 1, 2, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
        )
        self.layers, c_out = _residual_stages(width, blocks, dims=1)
        self.fc = nn.Linear(c_out, _check_positive_int("num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs of shape ``(N, C, L)``."""
        return self.fc(self.layers(self.stem(x)).mean(dim=2))


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, max-pooling and a hidden linear layer (for 8x8 digits).

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels and output logits.
    width : int
        Channels of the first convolution (the second has twice as many).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        _check_positive_int("width", width)
        self.features = nn.Sequential(
            nn.Conv2d(_check_positive_int("in_channels", in_channels), width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * width * 16, 4 * width),
            nn.ReLU(),
            nn.Linear(4 * width, _check_positive_int("num_classes", num_classes)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs of shape ``(N, C, H, W)``."""
        return self.head(self.features(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet (3x3 stem, four stages, strides 1-2-2-2); ``blocks=(3, 4, 6, 3)`` is ResNet-34.

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels and output logits.
    width : int
        Channels of the first stage (64 in ResNet-34); stage ``k`` has ``width * 2**k``.
    blocks : sequence of int
        Basic blocks per stage.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 64, blocks: Sequence[int] = (3, 4, 6, 3)
    ) -> None:
        super().__init__()
        _check_positive_int("width", width)
        self.stem = nn.Sequential(
            nn.Conv2d(_check_positive_int("in_channels", in_channels), width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.layers, c_out = _residual_stages(width, blocks, dims=2)
        self.fc = nn.Linear(c_out, _check_positive_int("num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs of shape ``(N, C, H, W)``."""
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


class _DenseLayer(nn.Module):
    """DenseNet-B layer: BN-ReLU-1x1 conv (4k channels) then BN-ReLU-3x3 conv (k channels), concatenated."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class CifarDenseNet(nn.Module):
    """CIFAR DenseNet-BC; ``blocks=(6, 12, 24, 16)`` with growth 32 is DenseNet-121.

    Parameters
    ----------
    in_channels, num_classes : int
        Input channels and output logits.
    growth : int
        Growth rate k (channels each dense layer adds).
    blocks : sequence of int
        Dense layers per block; a transition (BN-ReLU-1x1 conv to half the channels, 2x2 average pool)
        follows every block but the last.
    """

    def __init__(
        self, in_channels: int, num_classes: int, growth: int = 32, blocks: Sequence[int] = (6, 12, 24, 16)
    ) -> None:
        super().__init__()
        _check_positive_int("growth", growth)
        channels = 2 * growth
        layers: list[nn.Module] = [
            nn.Conv2d(_check_positive_int("in_channels", in_channels), channels, 3, padding=1, bias=False)
        ]
        for b, n in enumerate(blocks):
            for _ in range(_check_positive_int("blocks[i]", n)):
                layers.append(_DenseLayer(channels, growth))
                channels += growth
            if b < len(blocks) - 1:
                out = channels // 2  # compression 0.5
                layers += [
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                    nn.Conv2d(channels, out, 1, bias=False),
                    nn.AvgPool2d(2),
                ]
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, _check_positive_int("num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs of shape ``(N, C, H, W)``."""
        return self.fc(self.features(x).mean(dim=(2, 3)))


def build_model(name: str, input_shape: Sequence[int], num_classes: int, width: int | None = None) -> nn.Module:
    """Construct a model by name for inputs of ``input_shape`` (channels first, no batch axis).

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    input_shape : sequence of int
        ``(C, L)`` for 1-D models, ``(C, H, W)`` for 2-D models; anything for the MLP.
    num_classes : int
        Number of output logits.
    width : int, optional
        Width override: hidden units (MLP), first-stage channels (ResNets, CNN) or growth rate (DenseNet).

    Returns
    -------
    torch.nn.Module
        The network, parameters drawn from torch's global RNG (seed it first).
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    shape = tuple(int(s) for s in input_shape)
    spatial = MODELS[name]
    if spatial is not None and len(shape) != spatial + 1:
        kind = "(C, L)" if spatial == 1 else "(C, H, W)"
        raise ValueError(f"model {name!r} needs inputs of shape {kind}, got input_shape={shape}")
    extra: dict[str, Any] = {} if width is None else {"growth" if name == "densenet121" else "width": width}
    if name == "mlp":
        in_features = 1
        for s in shape:
            in_features *= s
        return MLP(in_features, num_classes, **extra)
    if name == "resnet1d":
        return ResNet1D(shape[0], num_classes, **extra)
    if name == "cnn":
        return SmallCNN(shape[0], num_classes, **extra)
    if name == "resnet34":
        return CifarResNet(shape[0], num_classes, **extra)
    return CifarDenseNet(shape[0], num_classes, **extra)
