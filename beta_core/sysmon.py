"""The machine while a run trains: CPU and memory (psutil), GPU memory and utilisation (torch,
NVML where installed), sampled every ``interval`` seconds on a thread, so a slow run can be
told from a busy machine. A sample is a dict of numbers; the job body stores them as the run's
``system`` results."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psutil

__all__ = ["sample", "Sampler", "INTERVAL", "device_label"]

INTERVAL = 10.0  # seconds between samples: about 360 an hour, nothing next to a training step


def sample(process: psutil.Process, started: float, device: str | None = None) -> dict:
    """One reading: seconds since the run started, this process's and the machine's CPU
    (percent of one core, so 200 on two busy cores) and memory, and the GPU's where there is one."""
    vm = psutil.virtual_memory()
    out = {"time": time.monotonic() - started, "cpu_process": process.cpu_percent(),
           "cpu_machine": psutil.cpu_percent() * psutil.cpu_count(), "cpus": psutil.cpu_count(),
           "rss_mb": process.memory_info().rss / 2 ** 20, "mem_used_mb": (vm.total - vm.available) / 2 ** 20,
           "mem_total_mb": vm.total / 2 ** 20}
    if device and device.startswith("cuda"):
        import torch
        out["gpu_mem_mb"] = torch.cuda.memory_allocated() / 2 ** 20
        try:
            out["gpu_util"] = float(torch.cuda.utilization())  # NVML (nvidia-ml-py) where installed
        except (ModuleNotFoundError, RuntimeError):
            pass
    return out


class Sampler:
    """``with Sampler(on_sample, device):`` calls ``on_sample(sample)`` at the start and every
    ``interval`` seconds until the block ends (a failing callback stops the sampling, never the run)."""

    def __init__(self, on_sample: Callable[[dict], None], device: str | None = None,
                 interval: float = INTERVAL) -> None:
        self.on_sample, self.device, self.interval = on_sample, device, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="sysmon")

    def _loop(self) -> None:
        process, started = psutil.Process(os.getpid()), time.monotonic()
        process.cpu_percent()  # the first reading of a process is 0: start its clock
        psutil.cpu_percent()
        wait = min(1.0, self.interval)  # the first reading after a second: CPU percent needs an interval
        while not self.stop.wait(wait):
            wait = self.interval
            try:
                self.on_sample(sample(process, started, self.device))
            except Exception:  # noqa: BLE001 - the machine's picture is an extra; the run goes on without it
                return

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=2)


def device_label() -> str:
    """What a run started now trains on, in words (``GPU NVIDIA H100``, ``Apple GPU (mps)``,
    ``CPU (2 cores)``). torch answers when this process has loaded it; before that (the app's
    first page, which must not wait 8 s for torch), ``nvidia-smi`` and the platform do."""
    if "torch" in sys.modules:
        import torch
        if torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)}"
        if torch.backends.mps.is_available():
            return "Apple GPU (mps)"
        return f"CPU ({os.cpu_count()} cores)"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=5).stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError):
            out = []
        if out and out[0].strip():
            return f"GPU {out[0].strip()}"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "Apple GPU (mps)"
    return f"CPU ({os.cpu_count()} cores)"
