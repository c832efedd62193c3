"""The training loop's extension points: a :class:`Hook` is called when a run is set up, at
the start of each epoch, after each optimizer step and after each epoch.

The loop (``engine``) knows only this interface. Each hook lives beside the maths it runs:
surgery's frozen groups and masks in ``surgery``, per-epoch attribution in ``attribution``,
curvature measurement and the beta-measured rule in ``curvature``.
"""
from __future__ import annotations

__all__ = ["Hook"]


class Hook:
    """Called by the training loop with the :class:`~beta_core.engine.Training` object; override
    what you need (the defaults do nothing)."""

    def setup(self, training) -> None:
        """Once, after the model is built and before the optimizer sees its parameters."""

    def start(self, training) -> None:
        """Once the optimizer and schedulers exist (``training.optimizer``, ``training.momentum``),
        before the first step."""

    def epoch_start(self, training, epoch: int) -> None:
        """After the model is put in train mode, before the epoch's first step."""

    def after_step(self, training) -> None:
        """After each optimizer step (before the LR and momentum schedulers step)."""

    def after_epoch(self, training, record: dict) -> None:
        """After evaluation; may add fields to the epoch record (they are stored as extras)."""
