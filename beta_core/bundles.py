"""Run bundles: runs moved between stores (a GPU box to a lecture laptop) as one zip file.

A bundle holds, per run, its row (config, summary, status, sweep membership: ``parent``,
``group_id``, ``label``), its step and epoch records, its results (attribution, surgery, a
sweep's report) and, unless ``checkpoints=False``, its final weights; a sweep brings its member
runs. Ids are kept, so a sweep still finds its members. Unpacking is idempotent (a run already
there is skipped) and refuses a different run under an existing id before writing anything.

A bundle is data only, checked like a dataset archive: members must be the bundle's own names
(no absolute paths, no ``..``), each within a size cap read from the zip's header and enforced
while reading, and checkpoints are loaded ``weights_only`` (a pickle with code is refused).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from .store import Store, StoreError

__all__ = ["pack", "unpack", "BundleError", "FORMAT", "MAX_JSON_BYTES", "MAX_CHECKPOINT_BYTES"]

FORMAT, VERSION = "beta-core-bundle", 1
MAX_JSON_BYTES = 1 << 30          # 1 GB of records per run: far past any run of ours (a 100-epoch run: ~20 MB)
MAX_CHECKPOINT_BYTES = 8 << 30    # 8 GB of weights: a ViT-H is 2.5 GB
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


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, path: str) -> bytes:
    """A member's bytes, refused when its header says more than ``cap`` or it inflates past it."""
    if info.file_size > cap:
        raise BundleError(f"Bundle member too large in {path}: {info.filename} is {info.file_size / 1e6:,.0f} MB "
                          f"(expected at most {cap / 1e6:,.0f} MB)")
    with z.open(info) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise BundleError(f"Bundle member too large in {path}: {info.filename} inflates past {cap / 1e6:,.0f} MB")
    return data


def _checked_weights(data: bytes, name: str, path: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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


def unpack(store: Store, path: str | os.PathLike) -> dict:
    """Add the bundle's runs to ``store``; returns ``{"added": [...], "skipped": [...]}``.
    Everything is read and checked first, then written: a bad bundle adds nothing."""
    path = str(path)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"Not a bundle: {path!r} ({e}; expected a zip written by `beta-core runs pack`)") from None
    with z:
        infos = {i.filename: i for i in z.infolist()}
        if "manifest.json" not in infos:
            raise BundleError(f"Not a bundle: {path!r} has no manifest.json (expected a zip written by "
                              "`beta-core runs pack`)")
        bad = [n for n in infos if n != "manifest.json" and not _MEMBER.match(n)]
        if bad:
            raise BundleError(f"Refused bundle {path!r}: unexpected member {bad[0]!r} (expected only "
                              "manifest.json and runs/ID/run.json, runs/ID/final.pt)")
        try:
            manifest = json.loads(_read(z, infos["manifest.json"], MAX_JSON_BYTES, path))
        except json.JSONDecodeError:
            raise BundleError(f"Refused bundle {path!r}: manifest.json is not JSON") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise BundleError(f"Not a bundle of this version: {path!r} says {manifest.get('format')!r} version "
                              f"{manifest.get('version')!r} (expected {FORMAT} version {VERSION})")
        runs = []
        for rid in manifest.get("runs", []):
            name = f"runs/{rid}/run.json"
            if not isinstance(rid, str) or name not in infos:
                raise BundleError(f"Refused bundle {path!r}: the manifest lists {rid!r} but it has no {name}")
            try:
                data = json.loads(_read(z, infos[name], MAX_JSON_BYTES, path))
            except json.JSONDecodeError:
                raise BundleError(f"Refused bundle {path!r}: {name} is not JSON") from None
            if not isinstance(data, dict) or data.get("run", {}).get("id") != rid:
                raise BundleError(f"Refused bundle {path!r}: {name} does not hold run {rid}")
            ckpt = None
            if f"runs/{rid}/final.pt" in infos:
                ckpt = _read(z, infos[f"runs/{rid}/final.pt"], MAX_CHECKPOINT_BYTES, path)
                _checked_weights(ckpt, f"runs/{rid}/final.pt", path)
            runs.append((data, ckpt))
    for data, _ in runs:  # conflicts first (a StoreError), so a refused bundle writes nothing
        store.holds(data["run"])
    added, skipped = [], []
    for data, ckpt in runs:
        (added if store.import_run(data, ckpt) else skipped).append(data["run"]["id"])
    return {"added": added, "skipped": skipped}
