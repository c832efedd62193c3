"""Run bundles: runs moved between stores (a GPU box to a lecture laptop) as one zip file.

A bundle holds, per run, its row (config, summary, status, sweep membership: ``parent``,
``group_id``, ``label``), its step and epoch records, its results (attribution, surgery, a
sweep's report) and, unless ``checkpoints=False``, its final weights; a sweep brings its member
runs. Ids are kept, so a sweep still finds its members. Unpacking is idempotent (a run already
there is skipped) and refuses a different run under an existing id before writing anything.

A bundle is data only, and what it says is never run. Unpacking checks before it writes:
members must be the bundle's own names (no absolute paths, no ``..``); each is inflated to disk
in 1 MB chunks inside a temporary folder of the store, refused when its header says more than
its cap or more than ``MAX_RATIO`` times its compressed size (a zip bomb is refused from the
header, in milliseconds, "too large" with its size), and a header that lies about the size fails
its CRC ("corrupt"); every ``run.json`` goes through one schema (``schemas``); a checkpoint
must be a weights-only state_dict no larger than the model its config names (built on the meta
device for built-in and torchvision models; code is never imported) and is opened memory-mapped.
A model spec that names code (a file or module) arrives as text: it is shown, never imported,
until the user trusts it here (``zoo``). Any refusal is one :class:`BundleError` naming the
member and the field, and nothing is written.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import torch

from . import zoo
from .attribution import AttributionConfig
from .config import TrainConfig
from .fieldtypes import SEED_MAX
from .models import build_model
from .records import train_config_of
from .schemas import RecordError, check_manifest, check_run_data
from .store import Store, StoreError
from .surgery import SurgeryConfig
from .sweeps import SweepPlan

__all__ = ["pack", "unpack", "BundleError", "FORMAT", "MAX_JSON_BYTES", "MAX_CHECKPOINT_BYTES"]

FORMAT, VERSION = "beta-core-bundle", 1
MAX_JSON_BYTES = 256 << 20        # one run's records: a 90-epoch ImageNet run logs ~450,000 steps (~110 MB)
MAX_CHECKPOINT_BYTES = 8 << 30    # weights of a model whose size cannot be known here (your own factory)
MAX_RATIO = 200                   # inflated / compressed: records ~5-15x, weights ~1.1x; a bomb ~1000x
CHUNK = 1 << 20
_MEMBER = re.compile(r"^runs/([A-Za-z0-9][A-Za-z0-9._-]{0,99})/(run\.json|final\.pt)$")


class BundleError(ValueError):
    """A bundle that is not one, or that holds what a bundle must not."""


def _with_members(store: Store, ids: list[str]) -> list[str]:
    out: list[str] = []
    for rid in ids:
        run = store.get_run(rid)
        members = [r["id"] for r in reversed(store.runs(parent=rid))] if run["kind"] == "sweep" else []
        for i in [rid, *members]:
            if i not in out:
                out.append(i)
    return out


def pack(store: Store, ids: list[str], out: str | os.PathLike, checkpoints: bool = True) -> dict:
    """Write the runs ``ids`` (a sweep with its members) to the zip ``out``; returns
    ``{"runs": n, "checkpoints": n, "bytes": size}``. Active runs are refused (finish or cancel)."""
    if not ids:
        raise BundleError("Nothing to pack (expected run or sweep ids)")
    runs = _with_members(store, ids)
    exported = {rid: store.export_run(rid) for rid in runs}  # refuses an active run before a file exists
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    n_ckpt = 0
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps({"format": FORMAT, "version": VERSION, "runs": runs,
                                                    "checkpoints": checkpoints}, indent=2))
            for rid, data in exported.items():
                z.writestr(f"runs/{rid}/run.json", json.dumps(data))
                path = store.checkpoint_path(rid)
                if checkpoints and path.exists():
                    z.write(path, f"runs/{rid}/final.pt")
                    n_ckpt += 1
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"Cannot write the bundle {str(out)!r}: {e.strerror or e}") from None
    return {"runs": len(runs), "checkpoints": n_ckpt, "bytes": out.stat().st_size}


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _cap(name: str) -> int:
    return 1 << 20 if name == "manifest.json" else MAX_CHECKPOINT_BYTES if name.endswith(".pt") else MAX_JSON_BYTES


def _sized(info: zipfile.ZipInfo, cap: int, path: str) -> None:
    """Refused from its header: more than ``cap`` bytes, or ``MAX_RATIO`` times its compressed size."""
    name = info.filename
    if info.file_size > cap:
        raise BundleError(f"Refused bundle {path!r}: {name} is too large: it inflates to {_mb(info.file_size)} "
                          f"(expected at most {_mb(cap)})")
    if info.file_size > CHUNK and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise BundleError(f"Refused bundle {path!r}: {name} is too large for its size in the zip: "
                          f"{_mb(info.compress_size)} inflates to {_mb(info.file_size)} ("
                          f"{info.file_size / max(info.compress_size, 1):,.0f}:1; expected at most {MAX_RATIO}:1)")


def _inflate(z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, dest: Path, path: str) -> Path:
    """The member ``info`` written to ``dest`` in chunks (its header checked first: :func:`_sized`);
    refused when its data disagree with its header."""
    name = info.filename
    _sized(info, cap, path)
    out = dest / name.replace("/", "__")
    try:  # zipfile reads no more than the header's size and checks the CRC: a lying header is corrupt
        with z.open(info) as src, open(out, "wb") as f:
            shutil.copyfileobj(src, f, CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise BundleError(f"Refused bundle {path!r}: {name} is corrupt ({e}; expected a zip written by "
                          "`beta-core runs pack`)") from None
    return out


def _check_kind(kind: str, config: dict, summary: dict) -> None:
    """The config a kind's job body reads, built here so a forged kind fails now, not in a job."""
    if kind == "train":
        TrainConfig.from_dict(config)
    elif kind == "surgery":
        TrainConfig.from_dict(config["train"])
        SurgeryConfig(**config["surgery"])
    elif kind == "sweep":
        SweepPlan.from_dict(config["sweep"])
    elif kind == "attribution":
        AttributionConfig(**config.get("attribution", {}))
    elif kind == "localise" and not isinstance(config.get("localise", {}), dict):
        raise ValueError("localise: expected a JSON object")
    elif kind == "imported" and not isinstance(config.get("source"), dict):
        raise ValueError("source: expected the tracker, store and run it was imported from")
    if kind in ("external", "imported"):
        seed = config.get("seed")
        if not isinstance(config.get("method"), str) or not (
                isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= SEED_MAX):
            raise ValueError(f"expected a method name and a seed in [0, {SEED_MAX}] "
                             f"(got {config.get('method')!r}, {seed!r})")
        if summary.get("model_spec") is not None and not isinstance(summary["model_spec"], str):
            raise ValueError("model_spec: expected a model spec string")


def _checked_run(value, name: str, path: str) -> dict:
    """A run.json's data through the schema, then its config by its kind; one BundleError line."""
    try:
        data = check_run_data(value, name).model_dump()
        row = data["run"]
        try:
            _check_kind(row["kind"], json.loads(row["config"]), json.loads(row["summary"] or "{}"))
        except KeyError as e:
            raise RecordError(f"{name}: run.config: a {row['kind']} run's config has no {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:  # a config of the wrong shape: its class says how
            raise RecordError(f"{name}: run.config of a {row['kind']} run: {str(e)[:300]}") from None
    except RecordError as e:
        raise BundleError(f"Refused bundle {path!r}: {e}") from None
    return data


def _model_bytes(data: dict) -> int | None:
    """Bytes of the state_dict of the model a run's config names, built on the meta device
    (no memory, no code: None for a spec that names code, an external run or anything unbuildable)."""
    row = data["run"]
    if row["kind"] not in ("train", "surgery"):
        return None
    try:
        cfg = TrainConfig.from_dict(train_config_of({"kind": row["kind"], "config": json.loads(row["config"])}))
        if zoo.is_spec(cfg.model.name) and zoo.parse_spec(cfg.model.name).kind not in ("torchvision", "timm"):
            return None
        with torch.device("meta"):
            model = build_model(cfg.model, pretrained=False)
    except Exception:  # noqa: BLE001 - a config we cannot build a model from: the generic cap applies
        return None
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _checked_weights(file: Path, name: str, path: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise BundleError(f"Refused checkpoint {name} in {path}: it holds objects other than tensors (expected "
                          "weights only)") from None
    except Exception as e:  # noqa: BLE001 - truncated or random bytes: torch raises many types
        raise BundleError(f"Refused checkpoint {name} in {path}: not a torch weights file "
                          f"({type(e).__name__})") from None
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in state.items())):
        raise BundleError(f"Refused checkpoint {name} in {path}: not a state_dict (expected parameter names "
                          "mapped to tensors)")


def _json(file: Path, name: str, path: str):
    try:
        return json.loads(file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BundleError(f"Refused bundle {path!r}: {name} is not JSON") from None


def _open(real: str, path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(real)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise BundleError(f"Not a bundle: {path!r} ({e}; expected a zip written by `beta-core runs pack`)") from None


def unpack(store: Store, path: str | os.PathLike, shown: str | None = None) -> dict:
    """Add the bundle's runs to ``store``; returns ``{"added": [...], "skipped": [...]}``.
    Everything is inflated to disk and checked first, then written: a bad bundle adds nothing.
    ``shown``: the bundle's name in messages (an upload's own name, not its temporary file)."""
    real, path = str(path), shown or str(path)
    with _open(real, path) as z, tempfile.TemporaryDirectory(dir=store.dir, prefix=".unpack-") as tmp:
        infos = {i.filename: i for i in z.infolist()}
        if "manifest.json" not in infos:
            raise BundleError(f"Not a bundle: {path!r} has no manifest.json (expected a zip written by "
                              "`beta-core runs pack`)")
        bad = [n for n in infos if n != "manifest.json" and not _MEMBER.match(n)]
        if bad:
            raise BundleError(f"Refused bundle {path!r}: unexpected member {bad[0]!r} (expected only "
                              "manifest.json and runs/ID/run.json, runs/ID/final.pt)")
        for info in infos.values():  # every header first: a bomb is refused before a byte is inflated
            _sized(info, _cap(info.filename), path)
        need = sum(i.file_size for i in infos.values())
        free = shutil.disk_usage(tmp).free
        if need > free:
            raise BundleError(f"Refused bundle {path!r}: too large for this disk: it inflates to {_mb(need)}, "
                              f"{_mb(free)} free in {str(store.dir)!r}")
        dest = Path(tmp)
        raw = _json(_inflate(z, infos["manifest.json"], _cap("manifest.json"), dest, path), "manifest.json", path)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("version") != VERSION:
            what = raw if not isinstance(raw, dict) else f"{raw.get('format')!r} version {raw.get('version')!r}"
            raise BundleError(f"Not a bundle of this version: {path!r} says {str(what)[:80]} (expected {FORMAT} "
                              f"version {VERSION})")
        try:
            manifest = check_manifest(raw)
        except RecordError as e:
            raise BundleError(f"Refused bundle {path!r}: {e}") from None
        runs = []  # (run.json on disk, row, checkpoint on disk): one run's records in memory at a time
        for rid in dict.fromkeys(manifest.runs):
            name = f"runs/{rid}/run.json"
            if name not in infos:
                raise BundleError(f"Refused bundle {path!r}: the manifest lists {rid!r} but it has no {name}")
            file = _inflate(z, infos[name], MAX_JSON_BYTES, dest, path)
            data = _checked_run(_json(file, name, path), name, path)
            if data["run"]["id"] != rid:
                raise BundleError(f"Refused bundle {path!r}: {name} does not hold run {rid}")
            ckpt = None
            if f"runs/{rid}/final.pt" in infos:
                cname = f"runs/{rid}/final.pt"
                expected = _model_bytes(data)  # fp32 weights, twice for other dtypes, plus pickle's overhead
                cap = MAX_CHECKPOINT_BYTES if expected is None else min(MAX_CHECKPOINT_BYTES, 2 * expected + (4 << 20))
                ckpt = _inflate(z, infos[cname], cap, dest, path)
                _checked_weights(ckpt, cname, path)
            runs.append((file, data["run"], ckpt))
        try:
            for _, row, _ in runs:  # conflicts first (a StoreError), so a refused bundle writes nothing
                store.holds(row)
        except ValueError as e:
            raise BundleError(f"Refused bundle {path!r}: {e}") from None
        added, skipped = [], []
        for file, row, ckpt in runs:
            data = check_run_data(json.loads(file.read_bytes()), file.name).model_dump()  # checked above: as read
            (added if store.import_run(data, ckpt) else skipped).append(row["id"])
    return {"added": added, "skipped": skipped}
