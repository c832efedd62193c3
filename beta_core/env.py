"""Environment variables the CLI and the app read, validated in one place.

=================  =========================================  ===========================
variable           meaning                                    accepted
=================  =========================================  ===========================
BETA_RUNS_DIR      the run store's folder (default ``runs``)  a folder path (made if absent)
BETA_DATA_DIR      datasets and their cache (``data``)        a folder path (made if absent)
BETA_DATA_PATH     an ImageFolder tree or .tar.gz             an existing file or folder
BETA_MAX_JOBS      jobs the app runs at once (1)              an integer in [1, 64]
BETA_POLL_SECONDS  live-chart refresh of the app              a number in [0.2, 3600]
BETA_THREADS       torch threads of a worker process          an integer in [1, 1024]
BETA_BACKEND       where the app's training runs execute      local | ray
BETA_RAY_ADDRESS   the Ray cluster of backend ray             HOST:PORT, ray://HOST:PORT or auto
                   (unset: a local Ray instance)
BETA_MAX_IMAGE_MB  bytes read per image file of a dataset     a number in [0.001, 4096]
                   (64): a bigger file is refused, not read
BETA_MODELS        model factories the app offers besides     comma-separated specs:
                   the built-in and torchvision models (the   file.py:factory,
                   app never imports code typed into a page)  package.module:factory,
                                                              torchvision:NAME, timm:NAME
BETA_MIRROR        every run our engine trains, also logged   tensorboard:DIR, mlflow or
                   to your tracker (``mirror``)               mlflow:TRACKING_URI
=================  =========================================  ===========================

``settings()`` reads them all and raises :class:`EnvError` for the first bad one, with one
message naming the variable, its value and what is expected.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EnvError", "RayBackendError", "Settings", "settings", "VARIABLES", "check_ray_address", "MIRROR_SPEC"]

VARIABLES = ("BETA_RUNS_DIR", "BETA_DATA_DIR", "BETA_DATA_PATH", "BETA_MAX_JOBS", "BETA_POLL_SECONDS",
             "BETA_THREADS", "BETA_BACKEND", "BETA_RAY_ADDRESS", "BETA_MAX_IMAGE_MB", "BETA_MODELS",
             "BETA_MIRROR")
MAX_IMAGE_MB = 64.0  # no real image of a classification dataset comes near; a bomb does
MIRROR_SPEC = re.compile(r"^(tensorboard:.+|mlflow(:.+)?)$")  # mirror.Mirror's trackers
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-]+:\d{1,5})$")
# The shape of a model spec (zoo.parse_spec has the full rules; whether it imports and builds
# is checked at launch, like a data path's images).
_MODEL_SPEC = re.compile(r"^((torchvision|timm):[A-Za-z_][\w.]*(\?weights=\w+)?|[^,:]+\.py:[A-Za-z_]\w*"
                         r"|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")


class EnvError(ValueError):
    """An environment variable holds a value we cannot use."""


class RayBackendError(RuntimeError):
    """The Ray cluster BETA_BACKEND=ray (or --backend ray) names cannot be used (not installed,
    unreachable). Here, beside the settings, so a page can say so without importing the backend."""


@dataclass(frozen=True)
class Settings:
    runs_dir: str = "runs"
    data_dir: str = "data"
    data_path: str | None = None
    max_jobs: int = 1
    poll_seconds: float | None = None   # None: the page's default for this machine
    threads: int | None = None          # None: torch's default
    backend: str = "local"              # local | ray
    ray_address: str | None = None      # None: a local Ray instance
    max_image_mb: float = MAX_IMAGE_MB  # bytes read per image file, in MB (10^6 bytes)
    mirror: str | None = None           # tensorboard:DIR, mlflow[:URI]: our runs also logged there
    models: tuple[str, ...] = ()        # model specs the app offers besides the built-in and torchvision ones


def _bad(name: str, value: str, expected: str) -> EnvError:
    return EnvError(f"Invalid environment variable {name}={value!r} (expected {expected})")


def _number(env, name: str, kind, lo, hi):
    text = env.get(name)
    if text is None or text.strip() == "":
        return None
    expected = f"{'an integer' if kind is int else 'a number'} in [{lo:g}, {hi:g}]"
    try:
        v = kind(text.strip())
    except ValueError:
        raise _bad(name, text, expected) from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise _bad(name, text, expected)
    return v


def _folder(env, name: str, default: str) -> str:
    text = env.get(name)
    if text is None:
        return default
    if text.strip() == "":
        raise _bad(name, text, "a folder path; unset it for the default")
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise _bad(name, text, "a folder, not a file")
    return str(p)


def _port_ok(address: str) -> bool:
    return address == "auto" or 1 <= int(address.rpartition(":")[2]) <= 65535


def check_ray_address(address: str | None, name: str = "--ray-address") -> str | None:
    """``address`` if it looks like a Ray address (HOST:PORT, ray://HOST:PORT, auto), else EnvError."""
    if address is None or (_ADDRESS.match(address) and _port_ok(address)):
        return address
    if _ADDRESS.match(address):
        raise EnvError(f"Invalid {name} {address!r}: invalid port (expected a port in [1, 65535])")
    raise EnvError(f"Invalid {name} {address!r} (expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto)")


def settings(env: dict | None = None) -> Settings:
    """The validated settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    data_path = env.get("BETA_DATA_PATH") or None
    if data_path is not None and not Path(data_path).expanduser().exists():
        raise _bad("BETA_DATA_PATH", data_path, "an existing ImageFolder tree or .tar.gz; unset it for the default")
    backend = env.get("BETA_BACKEND") or "local"
    if backend not in ("local", "ray"):
        raise _bad("BETA_BACKEND", backend, "local or ray")
    address = env.get("BETA_RAY_ADDRESS") or None
    if address is not None and not (_ADDRESS.match(address) and _port_ok(address)):
        raise _bad("BETA_RAY_ADDRESS", address, "HOST:PORT with a port in [1, 65535] (e.g. 10.0.0.5:6379), "
                                                "ray://HOST:PORT or auto")
    models = tuple(m.strip() for m in (env.get("BETA_MODELS") or "").split(",") if m.strip())
    for m in models:
        if not _MODEL_SPEC.match(m):
            raise _bad("BETA_MODELS", env["BETA_MODELS"], f"comma-separated model specs (file.py:factory, "
                                                          f"package.module:factory, torchvision:NAME, timm:NAME); "
                                                          f"{m!r} is none of these")
    mirror = env.get("BETA_MIRROR") or None
    if mirror is not None and not MIRROR_SPEC.match(mirror):
        raise _bad("BETA_MIRROR", mirror, "tensorboard:DIR, mlflow or mlflow:TRACKING_URI")
    return Settings(runs_dir=_folder(env, "BETA_RUNS_DIR", "runs"), data_dir=_folder(env, "BETA_DATA_DIR", "data"),
                    data_path=data_path, max_jobs=_number(env, "BETA_MAX_JOBS", int, 1, 64) or 1,
                    poll_seconds=_number(env, "BETA_POLL_SECONDS", float, 0.2, 3600),
                    threads=_number(env, "BETA_THREADS", int, 1, 1024), backend=backend, ray_address=address,
                    max_image_mb=_number(env, "BETA_MAX_IMAGE_MB", float, 0.001, 4096) or MAX_IMAGE_MB,
                    models=models, mirror=mirror)
