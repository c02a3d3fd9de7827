"""Defender architectures: each is ``fc(encoder(x))`` so the Barlow-Twins term can read features."""

from __future__ import annotations

import torch
from torch import nn

from .config import MODELS, ConfigError, check_choice, check_range


class Classifier(nn.Module):
    """A model split into ``encoder`` (image -> feature vector) and ``fc`` (features -> logits)."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, arch: str):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(feature_dim, num_classes)
        self.arch = arch
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def _mlp(in_channels, image_size, hidden=(256, 256)):
    layers: list[nn.Module] = [nn.Flatten()]
    d = in_channels * image_size * image_size
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
        d = h
    return nn.Sequential(*layers), d


def _cnn(in_channels, image_size, width=32):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers = block(in_channels, width) + block(width, width)
    if image_size >= 16:
        layers.append(nn.MaxPool2d(2))
    layers += block(width, 2 * width)
    if image_size >= 8:
        layers.append(nn.MaxPool2d(2))
    layers += block(2 * width, 4 * width) + [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 4 * width


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _resnet18(in_channels, image_size):
    # CIFAR variant (as in Jia et al.): 3x3 stride-1 stem, no max-pool, 512-d features.
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 512


def build_model(name: str, num_classes: int, in_channels: int, image_size: int) -> Classifier:
    """Build ``mlp``, ``cnn`` or ``resnet18`` for inputs (in_channels, image_size, image_size)."""
    check_choice("model", name, MODELS)
    check_range("num_classes", num_classes, 2, integer=True)
    check_range("in_channels", in_channels, 1, integer=True)
    check_range("image_size", image_size, 1, integer=True)
    enc, d = {"mlp": _mlp, "cnn": _cnn, "resnet18": _resnet18}[name](in_channels, image_size)
    return Classifier(enc, d, num_classes, name)


def check_defender(model: nn.Module) -> None:
    """The unlearning code needs ``model.encoder`` and ``model.fc`` with ``model(x) == fc(encoder(x))``."""
    if not (hasattr(model, "encoder") and hasattr(model, "fc")):
        raise ConfigError(f"model of type {type(model).__name__} has no .encoder/.fc; build it with "
                          "advunlearn.core.models.build_model or give it encoder and fc submodules")


def model_signature(model: Classifier, dataset: str) -> dict:
    """What a checkpoint must match to be loaded into this model."""
    return {"arch": getattr(model, "arch", type(model).__name__), "num_classes": model.num_classes,
            "dataset": dataset, "params": sum(p.numel() for p in model.parameters())}


__all__ = ["Classifier", "build_model", "check_defender", "model_signature"]
