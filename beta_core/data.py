"""Datasets as uint8 tensors, a checked on-disk cache, and a device-resident loader.

Sources (``DataConfig.dataset``):

* ``cifar10``   - torchvision's CIFAR-10, downloaded into ``data/`` where there is a network.
* ``folder``    - an ImageFolder tree or a ``.tar.gz`` of one (``train/<class>/*.jpg`` and
  ``test/<class>/*.jpg``), given by ``path`` or the ``BETA_DATA_PATH`` environment variable.
* ``synthetic`` - generated from a seed, needs nothing; always labelled "synthetic".
* ``auto``      - ``folder`` if a path is given, else ``cifar10`` if it is already in
  ``data/``, else ``synthetic``.

Real datasets are decoded once into ``data/cache/*.pt`` (uint8, N x 3 x 32 x 32, with a
CRC32 of the pixels); later loads take well under a second, and a corrupt or partial cache
is rebuilt, not trusted.

The loader keeps the whole split on the training device as uint8 (airbench's habit: it is
faster to move and augment uint8 than preprocessed floats), normalises and augments whole
batches there (random crop with 4-pixel reflect padding, horizontal flip), and draws batches
from a permutation that depends only on (seed, epoch), so every method in a comparison sees
the same data in the same order.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .env import settings
from .subconfigs import EXPECTED_TREE, SOURCES, DataConfig, DataSourceError, resolve_source

__all__ = ["SOURCES", "DataConfig", "Splits", "DataSourceError", "load_splits", "DeviceLoader",
           "resolve_source", "make_synthetic", "read_image_tree", "balanced_subset", "eval_loaders", "check_source",
           "val_size", "train_images"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CACHE_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PROGRESS_EVERY = 500  # images between reports of a first decode (60,000 CIFAR-10 JPEGs: ~80 s on 2 cores)
DecodeProgress = Callable[[int, "int | None"], None]  # (images done, total or None)


@dataclass
class Splits:
    train_x: torch.Tensor   # uint8, N x 3 x 32 x 32
    train_y: torch.Tensor   # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    name: str               # shown to users; contains "synthetic" for synthetic data
    synthetic: bool
    norm: tuple | None = None  # (mean, std) once computed; dataclasses.replace carries it over
    val_x: torch.Tensor | None = None  # validation split, carved from the training pool
    val_y: torch.Tensor | None = None
    origin: dict | None = None  # {"train": idx, "val": idx} into the source's training pool

    @property
    def mean_std(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training pixels, in [0, 1] units.

        Computed once, in chunks (a float copy of all of CIFAR-10 would be 600 MB), then kept.
        Splits derived with ``dataclasses.replace`` (surgery's training data) keep the
        parent's normalisation, so a repaired model sees inputs scaled as in training.
        """
        if self.norm is None:
            s = torch.zeros(3, dtype=torch.float64)
            sq = torch.zeros(3, dtype=torch.float64)
            for chunk in self.train_x.split(8192):
                c = chunk.double().div_(255)
                s += c.sum((0, 2, 3))
                sq += c.pow(2).sum((0, 2, 3))
            n = self.train_x.numel() // 3
            mean = s / n
            std = ((sq - n * mean ** 2) / (n - 1)).sqrt()
            self.norm = (mean.tolist(), std.tolist())
        return self.norm


# ------------------------------------------------------------------ synthetic
def make_synthetic(n_train: int = 10000, n_test: int = 2000, seed: int = 0) -> Splits:
    """10 classes of 32x32x3 images: each class is a smooth random colour pattern; a sample is
    its class pattern, shifted up to 4 px, mixed with another class's pattern and noise.
    Learnable (a small CNN gets well above chance within an epoch) but not trivial (the
    distractor and noise keep it below 100% for a while)."""
    g = torch.Generator().manual_seed(seed)
    protos = F.interpolate(torch.rand(10, 3, 4, 4, generator=g), size=(40, 40), mode="bicubic", align_corners=False)
    centred = protos[:, :, 4:36, 4:36].contiguous()

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 10
        y = y[torch.randperm(n, generator=g)]
        other = (y + torch.randint(1, 10, (n,), generator=g)) % 10
        dx, dy = torch.randint(0, 9, (2, n), generator=g)
        own = torch.empty(n, 3, 32, 32)
        for a in range(9):  # 81 slices of a shift each: far faster than one big gather
            for b in range(9):
                sel = torch.nonzero((dx == a) & (dy == b)).squeeze(1)
                own[sel] = protos[:, :, b:b + 32, a:a + 32].contiguous()[y[sel]]
        w = 0.35 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)  # distractor weight
        x = own.mul_(1 - w).add_(centred[other].mul_(w))
        x.add_(torch.randn(n, 3, 32, 32, generator=g).mul_(0.12))
        lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
        return x.sub_(lo).div_(hi - lo).mul_(255).round_().to(torch.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return Splits(train_x, train_y, test_x, test_y, tuple(f"class{i}" for i in range(10)),
                  f"synthetic (data seed {seed})", True)


# ------------------------------------------------------------------ image trees
MAX_PIXELS = 64_000_000  # decoded pixels per image (a 8000 x 8000 photo); Pillow's own guard is 179M


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image  # Pillow comes with torchvision

    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise DataSourceError(f"Image too large {where}: {img.width} x {img.height} pixels (expected at most "
                                  f"{MAX_PIXELS:,} pixels per image)")
        img = img.convert("RGB")
    except DataSourceError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error means the same thing here
        why = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "this file", str(e))  # Pillow names its buffer
        raise DataSourceError(f"Unreadable image {where}: {why} (expected a JPEG/PNG image file)") from None
    if img.size != (32, 32):
        img = img.resize((32, 32))
    return np.asarray(img, dtype=np.uint8)


def _size_check():
    """A check that refuses an image file larger than BETA_MAX_IMAGE_MB before it is read (a 9 MB
    archive can hold a 2 GB "image" of zeros); the cap is read once per walk, not per image."""
    cap = settings().max_image_mb * 1e6

    def check(size: int, where: str) -> None:
        if size > cap:
            raise DataSourceError(f"Image file too large {where}: {size / 1e6:,.0f} MB (expected at most "
                                  f"{cap / 1e6:g} MB per image; BETA_MAX_IMAGE_MB raises the cap)")
    return check


def _open_tar(path: Path) -> tarfile.TarFile:
    if zipfile.is_zipfile(path):
        raise DataSourceError(f"Unreadable archive {str(path)!r}: it is a zip file, not a tar (expected "
                              f"{EXPECTED_TREE}; unzip it and pass the folder)")
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        why = str(e).splitlines()[0].rstrip(":")  # tarfile lists every method it tried, one per line
        raise DataSourceError(f"Unreadable archive {str(path)!r}: {why} (expected {EXPECTED_TREE})") from None


def _corrupt(path: Path, e: Exception) -> DataSourceError:
    return DataSourceError(f"Corrupt archive {str(path)!r}: {type(e).__name__}: {e} (expected a complete "
                           ".tar or .tar.gz; was the download or copy cut short?)")


def _tar_files(path: Path):
    """(archive, member, path parts without a leading ".") for every file in a tar(.gz); a
    truncated or corrupt archive is one DataSourceError naming it."""
    with _open_tar(path) as tar:
        try:
            for m in tar:
                if m.isfile():
                    parts = Path(m.name).parts
                    yield tar, m, parts[1:] if parts[:1] == (".",) else parts
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise _corrupt(path, e) from None


def _layout(path: Path) -> tuple[str, dict[str, set[str]]]:
    """(dataset root, class folders of train/ and test/), read cheaply: folder listings or an
    archive's member names. The root is ``path`` or one level down; anything else is refused
    before a single image is read (``--data-path /`` must not walk the filesystem)."""
    not_dataset = DataSourceError(f"Not a dataset: {str(path)!r} has no train/ and test/ folders at its top or "
                                  f"one level down (expected {EXPECTED_TREE})")
    if path.is_dir():
        try:
            roots = [path, *sorted(d for d in path.iterdir() if d.is_dir())]
        except OSError as e:
            raise DataSourceError(f"Unreadable data path {str(path)!r}: {e.strerror or e}") from None
        for root in roots:
            if (root / "train").is_dir() and (root / "test").is_dir():
                return str(root), {s: {c.name for c in (root / s).iterdir() if c.is_dir()} for s in ("train", "test")}
        raise not_dataset
    roots, _ = _tar_listing(path)
    for root, found in sorted(roots.items()):
        if found["train"] and found["test"]:
            return root, found
    raise not_dataset


_TAR_LISTINGS: dict[tuple, tuple] = {}  # (path, size, mtime) -> what one pass over its headers found


def _tar_listing(path: Path) -> tuple[dict, dict]:
    """An archive's candidate roots (class folders of train/ and test/) and images per (root,
    split), from one pass over its member headers (3 s for CIFAR-10's 60,000 JPEGs in a
    .tar.gz), kept per file version: a launch checks the layout, counts the training images of
    each run and a decode counts its total, all from this one pass."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _TAR_LISTINGS:
        roots: dict[str, dict[str, set[str]]] = {}
        counts: dict[tuple[str, str], int] = {}
        check_size = _size_check()
        for _, m, parts in _tar_files(path):
            image = Path(m.name).suffix.lower() in IMAGE_SUFFIXES
            if image:  # the header says it: refused before a byte is inflated
                check_size(m.size, f"{path}:{m.name}")
            if len(parts) in (3, 4) and parts[-3] in ("train", "test"):
                roots.setdefault("/".join(parts[:-3]), {"train": set(), "test": set()})[parts[-3]].add(parts[-2])
            if image and len(parts) >= 3 and parts[-3] in ("train", "test"):
                k = ("/".join(parts[:-3]), parts[-3])
                counts[k] = counts.get(k, 0) + 1
        _TAR_LISTINGS.clear()  # one archive at a time is what a launch reads
        _TAR_LISTINGS[key] = roots, counts
    return _TAR_LISTINGS[key]


def _check_classes(path: Path, found: dict[str, set[str]]) -> list[str]:
    classes = sorted(found["train"])
    if sorted(found["test"]) != classes:
        raise DataSourceError(f"Class folders differ between train/ {classes} and test/ {sorted(found['test'])} "
                              f"in {str(path)!r} (expected the same classes in both)")
    if len(classes) < 2:
        raise DataSourceError(f"One class ({', '.join(classes)}) in {str(path)!r}: a classifier needs at least two "
                              f"class folders (expected {EXPECTED_TREE})")
    return classes


def _iter_tree(path: Path, root: str, count: bool = False):
    """(split, class, where, read, total) for every image under ``root``'s train/ and test/;
    ``total``: the images it holds (a tar's only with ``count``: one more pass over its headers)."""
    check_size = _size_check()
    if path.is_dir():
        files = [f for split in ("train", "test") for f in sorted((Path(root) / split).rglob("*"))
                 if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        for f in files:
            check_size(f.stat().st_size, str(f))
            yield f.relative_to(root).parts[0], f.parent.name, str(f), f.read_bytes, len(files)
        return
    total = _count_images(path, root, ("train", "test")) if count else None
    for tar, m, parts in _tar_files(path):
        if (len(parts) >= 3 and parts[-3] in ("train", "test") and "/".join(parts[:-3]) == root
                and Path(m.name).suffix.lower() in IMAGE_SUFFIXES):
            check_size(m.size, f"{path}:{m.name}")
            try:
                data = tar.extractfile(m).read()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise _corrupt(path, e) from None
            yield parts[-3], parts[-2], f"{path}:{m.name}", (lambda d=data: d), total


def read_image_tree(path: str | os.PathLike, on_progress: DecodeProgress | None = None) -> Splits:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` from a folder or a tar(.gz).
    ``on_progress(done, total)`` every :data:`PROGRESS_EVERY` images; an exception it raises
    stops the decode (a cancel)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataSourceError(f"Data path not found: {str(p)!r} (expected {EXPECTED_TREE})")
    root, layout = _layout(p)
    classes = _check_classes(p, layout)
    found: dict[str, dict[str, list[np.ndarray]]] = {"train": {}, "test": {}}
    done, total = 0, None
    for split, cls, where, read, total in _iter_tree(p, root, count=on_progress is not None):
        found[split].setdefault(cls, []).append(_decode(read(), where))
        done += 1
        if on_progress is not None and done % PROGRESS_EVERY == 0:
            on_progress(done, total)
    if on_progress is not None:
        on_progress(done, total)
    empty = [f"{s}/{c}" for s in found for c in classes if not found[s].get(c)]
    if empty:
        raise DataSourceError(f"No images in {', '.join(empty[:3])} of {str(p)!r} (expected {EXPECTED_TREE})")
    out = []
    for split in ("train", "test"):
        xs = [x for c in classes for x in found[split][c]]
        ys = [i for i, c in enumerate(classes) for _ in found[split][c]]
        out += [torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys)]
    return Splits(*out, tuple(classes), p.name, False)


# ------------------------------------------------------------------ torchvision CIFAR-10
def _torchvision_cifar10(data_dir: Path, download: bool) -> Splits:
    import torchvision

    try:
        tr = torchvision.datasets.CIFAR10(str(data_dir), train=True, download=download)
        te = torchvision.datasets.CIFAR10(str(data_dir), train=False, download=download)
    except Exception as e:  # network and integrity errors alike
        raise DataSourceError(
            f"CIFAR-10 is not available: {e}. Either allow the download into {str(data_dir)!r} "
            f"(it puts cifar-10-batches-py/ there), copy cifar-10-batches-py/ there yourself, or point "
            f"--data-path / BETA_DATA_PATH at an ImageFolder tree or .tar.gz (train/<class>/, test/<class>/)") from e
    conv = lambda d: torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return Splits(conv(tr), torch.tensor(tr.targets), conv(te), torch.tensor(te.targets),
                  CIFAR10_CLASSES, "CIFAR-10", False)


# ------------------------------------------------------------------ cache
def _crc(*ts: torch.Tensor) -> int:
    crc = 0
    for t in ts:
        crc = zlib.crc32(t.contiguous().numpy().tobytes(), crc)  # ~1 GB/s: 0.2 s for CIFAR-10
    return crc


def _remove_stale_temps(file: Path) -> None:
    """Temp files of saves whose process died (a kill mid-save leaves one, often 150 MB)."""
    for old in file.parent.glob(f"{file.stem}.tmp*"):
        pid = old.suffix.removeprefix(".tmp")
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            old.unlink(missing_ok=True)


def _save_cache(splits: Splits, file: Path) -> None:
    _remove_stale_temps(file)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    blob = {"version": CACHE_VERSION, "train_x": splits.train_x, "train_y": splits.train_y,
            "test_x": splits.test_x, "test_y": splits.test_y, "classes": list(splits.classes),
            "name": splits.name, "crc": _crc(splits.train_x, splits.train_y, splits.test_x, splits.test_y)}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, tmp)
        os.replace(tmp, file)  # atomic: a reader never sees a half-written cache
    except (OSError, RuntimeError):  # a full disk or a read-only folder costs the cache, not the run
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _load_cache(file: Path) -> Splits | None:
    """The cached splits, or None if the file is absent, partial, corrupt or stale."""
    try:
        b = torch.load(file, weights_only=True)
        xs = (b["train_x"], b["train_y"], b["test_x"], b["test_y"])
        ok = (b["version"] == CACHE_VERSION and all(x.dtype == torch.uint8 for x in xs[::2])
              and xs[0].shape[1:] == (3, 32, 32) and len(xs[0]) == len(xs[1])
              and len(xs[2]) == len(xs[3]) and b["crc"] == _crc(*xs))
    except Exception:  # noqa: BLE001 - any failure to read means "rebuild"
        return None
    return Splits(*xs, tuple(b["classes"]), b["name"], False) if ok else None


def _cache_file(data_dir: Path, key: str) -> Path:
    return data_dir / "cache" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def _cached(data_dir: Path, key: str, build) -> Splits:
    file = _cache_file(data_dir, key)
    splits = _load_cache(file) if file.exists() else None
    if splits is None:
        splits = build()
        _save_cache(splits, file)
    return splits


# ------------------------------------------------------------------ entry point
def _tree_key(p: Path) -> str:
    st = p.stat()
    return f"folder:{p}:{st.st_size}:{st.st_mtime_ns}"


def _count_images(path: Path, root: str, splits=("train",)) -> int:
    """Images of an image tree's ``splits``, from its listing (a folder) or its member names (a
    tar: :func:`_tar_listing`)."""
    if path.is_dir():
        return sum(1 for s in splits for f in (Path(root) / s).rglob("*")
                   if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    return sum(_tar_listing(path)[1].get((root, s), 0) for s in splits)


def check_source(cfg: DataConfig, data_dir: str | os.PathLike = "data", decode: bool = True) -> str:
    """A check, before any run is created, that ``cfg``'s data can be read; returns the
    concrete source. For a folder or archive: the path exists, it is (or holds, one level
    down) train/ and test/ with the same two or more class folders, no image is over the size
    bound, and with ``decode`` every image decodes (a corrupt image, an empty class folder is
    refused here) and the decoded tree goes into the cache, so the runs read it from there: a
    path already decoded passes at once. Without ``decode`` (the app: runs exist at once and
    show their own "preparing data" progress) only the listing is read; a corrupt image then
    fails the run that decodes it, with the same message."""
    source, path = resolve_source(cfg, data_dir)
    if source != "folder":
        return source
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataSourceError(f"Data path not found: {str(p)!r} (expected {EXPECTED_TREE})")
    if decode:
        _cached(Path(data_dir), _tree_key(p), lambda: read_image_tree(p))
    else:
        root, layout = _layout(p)
        _check_classes(p, layout)
        if p.is_dir():  # an archive's sizes were read from its headers by _layout
            check_size = _size_check()
            for f in Path(root).rglob("*"):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    check_size(f.stat().st_size, str(f))
    return source


def train_images(cfg: DataConfig, data_dir: str | os.PathLike = "data") -> int:
    """How many training images a run of ``cfg`` gets (validation taken out, subset applied),
    known before a run exists: a folder's count comes from its listing, not its pixels."""
    source, path = resolve_source(cfg, data_dir)
    if source == "synthetic":
        pool = cfg.synthetic_train
    elif source == "cifar10":
        pool = 50_000
    else:
        p = Path(path).expanduser().resolve()
        pool = _count_images(p, _layout(p)[0])
    rest = pool - val_size(cfg, pool)
    return min(cfg.train_subset, rest) if cfg.train_subset else rest


def balanced_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` samples, as equal per class as the data allows, chosen by ``seed``."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    rank = torch.empty_like(y)  # position of each sample within its class, in random order
    for c in y.unique():
        members = perm[y[perm] == c]
        rank[members] = torch.arange(len(members))
    # Round-robin over classes: all rank-0 samples first, then rank 1, ...
    return torch.argsort(rank * (int(y.max()) + 1) + y)[:n].sort().values


def val_size(cfg: DataConfig, pool: int) -> int:
    """Validation images: ``val_fraction`` of the training images (the subset if one is asked
    for, else the pool), at most ``val_max``, and never more than half the pool."""
    if cfg.val_fraction == 0 or cfg.val_max == 0:
        return 0
    n_train = min(cfg.train_subset or pool, pool)
    return max(1, min(cfg.val_max, round(cfg.val_fraction * n_train), pool // 2))


def load_splits(cfg: DataConfig, data_dir: str | os.PathLike = "data",
                on_progress: DecodeProgress | None = None) -> Splits:
    """Load the dataset ``cfg`` describes, through the cache, with subsets applied;
    ``on_progress``: see :func:`read_image_tree` (the first decode of an image tree)."""
    data_dir = Path(data_dir)
    source, path = resolve_source(cfg, data_dir)
    if source == "synthetic":
        key = f"synthetic:{cfg.synthetic_train}:{cfg.synthetic_test}:{cfg.data_seed}"
        s = _cached(data_dir, key, lambda: make_synthetic(cfg.synthetic_train, cfg.synthetic_test, cfg.data_seed))
        s.synthetic = True
    elif source == "cifar10":
        s = _cached(data_dir, "cifar10-torchvision", lambda: _torchvision_cifar10(data_dir, True))
    else:
        p = Path(path).expanduser().resolve()
        if not p.exists():
            raise DataSourceError(f"Data path not found: {str(p)!r} (expected {EXPECTED_TREE})")
        s = _cached(data_dir, _tree_key(p), lambda: read_image_tree(p, on_progress))
        if s.name != p.name:
            s.name = p.name
    pool = torch.arange(len(s.train_y))
    n_val = val_size(cfg, len(s.train_y))
    val = torch.empty(0, dtype=torch.long)
    if n_val:
        # Validation first, class-balanced and fixed by data_seed; training images come from the rest.
        val = balanced_subset(s.train_y, n_val, cfg.data_seed + 2)
        keep = torch.ones(len(pool), dtype=torch.bool)
        keep[val] = False
        pool = pool[keep]
    if cfg.train_subset and cfg.train_subset < len(pool):
        pool = pool[balanced_subset(s.train_y[pool], cfg.train_subset, cfg.data_seed)]
    s.origin = {"train": pool, "val": val}
    if n_val:
        s.val_x, s.val_y = s.train_x[val], s.train_y[val]
    s.train_x, s.train_y = s.train_x[pool], s.train_y[pool]
    if cfg.test_subset and cfg.test_subset < len(s.test_y):
        i = balanced_subset(s.test_y, cfg.test_subset, cfg.data_seed + 1)
        s.test_x, s.test_y = s.test_x[i], s.test_y[i]
    return s


# ------------------------------------------------------------------ loader
class DeviceLoader:
    """Batches from a uint8 split held on ``device``; augmentation batched on the device.

    >>> x, y = torch.zeros(300, 3, 32, 32, dtype=torch.uint8), torch.arange(300) % 10
    >>> loader = DeviceLoader(x, y, 128, [0.5] * 3, [0.25] * 3, train=True, seed=0)
    >>> [tuple(xb.shape) for xb, yb in loader.epoch(0)]
    [(128, 3, 32, 32), (128, 3, 32, 32), (44, 3, 32, 32)]
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, mean, std, train: bool,
                 seed: int = 0, device: str | torch.device = "cpu", channels_last: bool = False,
                 pad: int = 4, flip: bool = True) -> None:
        if not isinstance(batch_size, int) or not 1 <= batch_size <= len(y):
            raise ValueError(f"Invalid batch_size: {batch_size!r} (expected an integer in [1, {len(y)}], "
                             f"the number of {'training' if train else 'test'} images)")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.pad, self.flip, self.channels_last = pad, flip, channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.padded = None
        if train and pad:
            # Pad the whole split once, as uint8 (airbench's habit): each batch is then a
            # pure gather. Reflect padding of integers through float is exact.
            self.padded = torch.cat([F.pad(c.float(), (pad,) * 4, mode="reflect").to(torch.uint8)
                                     for c in self.x.split(4096)])

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def _crop_flip(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, p = len(idx), self.pad
        if p:
            # Random crop as two gathers with broadcast (expanded, not copied) index tensors.
            off = torch.randint(0, 2 * p + 1, (2, n), generator=g).to(self.device)
            ar = torch.arange(32, device=self.device)
            src = self.padded[idx]
            rows = (off[0][:, None] + ar).view(n, 1, 32, 1).expand(n, 3, 32, src.shape[3])
            src = src.gather(2, rows)
            cols = (off[1][:, None] + ar).view(n, 1, 1, 32).expand(n, 3, 32, 32)
            xb = src.gather(3, cols)
        else:
            xb = self.x[idx]
        if self.flip:
            mask = (torch.rand(n, generator=g) < 0.5).to(self.device)
            xb = torch.where(mask[:, None, None, None], xb.flip(3), xb)
        return xb

    def epoch(self, epoch: int = 0):
        """Yield (images float32 normalised, labels) for one pass; order fixed by (seed, epoch)."""
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        n = len(self.y)
        order = torch.randperm(n, generator=g).to(self.device) if self.train else torch.arange(n, device=self.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            # Augment as uint8 (4x less memory traffic), convert and normalise last.
            yield self.normalise(self._crop_flip(idx, g) if self.train else self.x[idx]), self.y[idx]

    def normalise(self, xb: torch.Tensor) -> torch.Tensor:
        """uint8 images on the device -> normalised float32 in the loader's memory format."""
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        return xb.to(memory_format=mf).float().sub_(self.mean).div_(self.std)


def eval_loaders(splits: Splits, device, channels_last: bool, batch: int = 1024) -> dict[str, DeviceLoader]:
    """Loaders for diagnosis: eval-order ``test``, ``train_eval`` and (when the splits have one)
    ``val`` (no augmentation), and a shuffled, augmented ``train`` loader (batch 128) for the
    retrain-one-group probe."""
    mean, std = splits.mean_std

    def plain(x, y):
        return DeviceLoader(x, y, min(batch, len(y)), mean, std, False, 0, device, channels_last)

    out = {"test": plain(splits.test_x, splits.test_y), "train_eval": plain(splits.train_x, splits.train_y),
           "train": DeviceLoader(splits.train_x, splits.train_y, min(128, len(splits.train_y)), mean, std, True, 0,
                                 device, channels_last)}
    if splits.val_y is not None and len(splits.val_y):
        out["val"] = plain(splits.val_x, splits.val_y)
    return out
