"""Model factories for tests/test_zoo.py: what a researcher's own file looks like."""
import torch
import torchvision
from torch import nn


def tiny_vit(num_classes, image_size=32):
    """A BatchNorm-free ViT small enough for a CPU test (torchvision's vit_b_16 has 86M parameters)."""
    return torchvision.models.VisionTransformer(image_size=image_size, patch_size=8, num_layers=4, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=num_classes)


def broken(num_classes):
    raise RuntimeError("this factory always fails")


def not_a_module(num_classes):
    return "a string"


def needs_64(num_classes):
    """Only runs on inputs of 64x64 or more (the pool's window)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(64), nn.Flatten(),
                         nn.Linear(8, num_classes))


class TwoPart(nn.Module):
    """Declares its own groups; the head's bias-free scale is left out, so it lands in 'other'."""

    def __init__(self, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, num_classes)
        self.temperature = nn.Parameter(torch.ones(()))

    def layer_groups(self):
        return {"front": [self.stem, self.body], "head": [self.head]}

    def forward(self, x):
        return self.head(self.body(self.stem(x))) / self.temperature


def two_part(num_classes):
    return TwoPart(num_classes)


def exits(num_classes):
    """Ends the process that builds it, as a segfault or the OOM killer would (tests/test_jobs.py)."""
    import os
    os._exit(3)
