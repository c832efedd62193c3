"""Where a figure came from: the environment a run trained in, recorded once per run.

``environment(device)`` is stored in every training run's summary (``environment``) and in
runs logged with ``track``, so a report or a bundle says on what it was measured: Python,
torch and torchvision, CUDA or CPU and the device's name, the platform, this project's
version and its git commit where the package sits in a git checkout.
"""
from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
import torchvision

__all__ = ["environment", "project_version", "git_commit"]


@functools.cache
def project_version() -> str:
    try:
        return metadata.version("beta-core")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


@functools.cache
def git_commit() -> str | None:
    """The commit of the checkout this package sits in (``+dirty`` when it has changes), or None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str | torch.device | None = None) -> dict:
    """The software and hardware a run used (``device``: the one it trained on)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda if dev.type == "cuda" else None, "device": str(dev), "device_name": name,
            "platform": platform.platform(), "beta_core": project_version(), "git_commit": git_commit(),
            "threads": torch.get_num_threads(), "host": socket.gethostname()}
