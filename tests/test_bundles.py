"""Run bundles: pack a sweep with its members, unpack into another store, refuse hostile bundles."""
import json
import zipfile

import pytest
import torch
from helpers import finished_sweep

from beta_core import bundles
from beta_core.cli import main
from beta_core.store import Store, StoreError


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store with a finished two-method, two-seed sweep (members with checkpoints)."""
    root = tmp_path_factory.mktemp("bundle")
    store, sid = finished_sweep(root)
    return root, store, sid


def _show(runs_dir, rid, capsys) -> str:
    assert main(["--runs-dir", str(runs_dir), "runs", "show", rid]) == 0
    return capsys.readouterr().out


def test_pack_unpack_reproduces_runs_and_the_sweep_report(source, tmp_path, capsys):
    root, store, sid = source
    out = tmp_path / "b.zip"
    assert main(["--runs-dir", str(root / "runs"), "runs", "pack", sid, "--out", str(out)]) == 0
    assert "5 runs, 4 checkpoints" in capsys.readouterr().out
    dest = tmp_path / "other"
    assert main(["--runs-dir", str(dest), "runs", "unpack", str(out)]) == 0
    assert "5 runs added" in capsys.readouterr().out
    copy = Store(dest)
    assert sorted(r["id"] for r in copy.runs()) == sorted(r["id"] for r in store.runs())
    for r in store.runs():
        assert _show(dest, r["id"], capsys) == _show(root / "runs", r["id"], capsys)
        if r["kind"] == "train":
            a, b = store.load_checkpoint(r["id"]), copy.load_checkpoint(r["id"])
            assert all(torch.equal(a[k], b[k]) for k in a)
            assert store.steps(r["id"]).equals(copy.steps(r["id"]))
    assert copy.results(sid, "sweep") == store.results(sid, "sweep")
    again = bundles.unpack(copy, out)  # unpacking twice adds nothing
    assert again["added"] == [] and len(again["skipped"]) == 5 and len(copy.runs()) == 5


def test_unpack_twice_and_a_conflict(source, tmp_path):
    root, store, sid = source
    out = tmp_path / "b.zip"
    bundles.pack(store, [sid], out, checkpoints=False)
    dest = Store(tmp_path / "other")
    first = bundles.unpack(dest, out)
    assert len(first["added"]) == 5 and first["skipped"] == []
    assert bundles.unpack(dest, out) == {"added": [], "skipped": first["added"]}
    member = next(r for r in dest.runs() if r["kind"] == "train")
    dest.update_summary(member["id"], {"note": "changed here"})
    with pytest.raises(StoreError, match=f"Run {member['id']} is already in .* with other contents"):
        bundles.unpack(dest, out)


def _hostile(path, name, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": bundles.FORMAT, "version": 1, "runs": []}))
        z.writestr(name, data)


def test_hostile_bundles_are_refused_and_add_nothing(source, tmp_path, monkeypatch):
    root, store, sid = source
    dest = Store(tmp_path / "dest")
    _hostile(tmp_path / "trav.zip", "../../evil.py", b"print('x')")
    with pytest.raises(bundles.BundleError, match="unexpected member '../../evil.py'"):
        bundles.unpack(dest, tmp_path / "trav.zip")
    _hostile(tmp_path / "abs.zip", "/etc/passwd", b"x")
    with pytest.raises(bundles.BundleError, match="unexpected member"):
        bundles.unpack(dest, tmp_path / "abs.zip")
    # a pickle that is not weights (it would run code with weights_only=False)
    good = tmp_path / "good.zip"
    bundles.pack(store, [sid], good)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("final.pt"):
                import io
                buf = io.BytesIO()
                torch.save({"weights": torch.zeros(1), "hook": print}, buf)
                data = buf.getvalue()
            z.writestr(info.filename, data)
    with pytest.raises(bundles.BundleError, match="holds objects other than tensors"):
        bundles.unpack(dest, evil)
    # an oversized member, refused from its header
    monkeypatch.setattr(bundles, "MAX_JSON_BYTES", 100)
    with pytest.raises(bundles.BundleError, match="too large"):
        bundles.unpack(dest, good)
    assert dest.runs() == []  # nothing was added by any of them
    (tmp_path / "zip.txt").write_text("not a zip")
    with pytest.raises(bundles.BundleError, match="Not a bundle"):
        bundles.unpack(dest, tmp_path / "zip.txt")


def test_relaunch_with_an_override_and_diff(source, tmp_path, capsys):
    root, store, sid = source
    member = next(r for r in store.runs(kind="train"))
    base = ["--runs-dir", str(root / "runs"), "--data-dir", str(root / "data")]
    assert main([*base, "train", "--from", member["id"], "--set", "lr=0.02", "--quiet"]) == 0
    new = store.runs(kind="train")[0]
    assert new["id"] != member["id"] and new["config"]["lr"] == 0.02
    assert new["group_id"] is None and new["parent"] is None  # a sweep's member relaunched is not the sweep's
    assert {k: v for k, v in new["config"].items() if k != "lr"} == {k: v for k, v in member["config"].items()
                                                                      if k != "lr"}
    capsys.readouterr()
    assert main([*base, "runs", "diff", member["id"], new["id"]]) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if line.strip().startswith("*")]
    assert len(marked) == 1 and "lr" in marked[0] and "0.05" in marked[0] and "0.02" in marked[0]
    assert "1 field differ" in out
    assert main([*base, "train", "--from", member["id"], "--preset", "quick-cpu"]) == 2


# ------------------------------------------------------------------ safe doors (issue 29)
def _rewrite(good, out, edit=lambda name, data: data, extra=(), method=zipfile.ZIP_DEFLATED):
    """A copy of the bundle ``good`` with each member passed through ``edit`` (None drops it)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w", method) as z:
        for info in src.infolist():
            data = edit(info.filename, src.read(info))
            if data is not None:
                z.writestr(info.filename, data)
        for name, data in extra:
            z.writestr(name, data)
    return out


def _edit_run(kind, change):
    """An edit that applies ``change(run_json_dict)`` to the run.json of the first run of ``kind``."""
    done = []

    def edit(name, data):
        if name.endswith("run.json") and not done:
            d = json.loads(data)
            if d["run"]["kind"] == kind:
                done.append(name)
                change(d)
                return json.dumps(d).encode()
        return data
    return edit


@pytest.fixture(scope="module")
def good(source, tmp_path_factory):
    root, store, sid = source
    out = tmp_path_factory.mktemp("good") / "good.zip"
    bundles.pack(store, [sid], out)
    return out


def _config(change):
    def f(d):
        c = json.loads(d["run"]["config"])
        change(c)
        d["run"]["config"] = json.dumps(c)
    return f


@pytest.mark.parametrize("edit, fragment", [
    (lambda n, d: b"[1, 2]" if n == "manifest.json" else d, r"Not a bundle of this version: .* says \[1, 2\]"),
    (lambda n, d: json.dumps({"format": "beta-core-bundle", "version": 1, "runs": "x", "checkpoints": True}).encode()
     if n == "manifest.json" else d, r"manifest.json: runs: Input should be a valid list"),
    (_edit_run("train", lambda d: d.pop("steps")), r"run.json: steps: Field required"),
    (_edit_run("train", lambda d: d["run"].pop("config")), r"run.json: run.config: Field required"),
    (_edit_run("train", lambda d: d["run"].update(config="{not json")), r"run.config: .*expected a JSON object"),
    (_edit_run("sweep", _config(lambda c: c.pop("sweep"))), r"a sweep run's config has no 'sweep'"),
    (_edit_run("train", lambda d: d["run"].update(kind="sweep")), r"a sweep run's config has no 'sweep'"),
    (_edit_run("train", lambda d: d["run"].update(status="running")), r"run.status: Input should be"),
    (_edit_run("train", _config(lambda c: c.update(seed=2 ** 70))), r"Invalid seed"),
    (_edit_run("train", lambda d: d["steps"][0].update(step=-1)), r"steps.0.step: Input should be greater"),
    (_edit_run("train", lambda d: d["steps"][0].update(bogus=1)), r"steps.0.bogus: Extra inputs"),
])
def test_malformed_bundles_are_one_line_and_add_nothing(good, tmp_path, capsys, edit, fragment):
    bad = _rewrite(good, tmp_path / "bad.zip", edit)
    dest = tmp_path / "dest"
    assert main(["--runs-dir", str(dest), "runs", "unpack", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    import re
    assert re.search(fragment, err), err
    assert Store(dest).runs() == [] and [p.name for p in dest.iterdir()] == ["runs.db"]  # no folder, no temp files


def test_a_member_whose_header_lies_is_corrupt(good, tmp_path):
    bad = _rewrite(good, tmp_path / "stored.zip", method=zipfile.ZIP_STORED)
    with zipfile.ZipFile(bad) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("run.json"))
    raw = bytearray(bad.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    raw[start] ^= 0xFF  # the data no longer match the CRC the header gives
    bad.write_bytes(bytes(raw))
    dest = Store(tmp_path / "dest")
    with pytest.raises(bundles.BundleError, match=r"run.json is corrupt \(Bad CRC-32"):
        bundles.unpack(dest, bad)
    assert dest.runs() == []


def _bomb(path, size: int, name: str) -> None:
    """A bundle whose ``name`` inflates to ``size`` bytes of zeros (about size/1000 in the zip)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"format": bundles.FORMAT, "version": 1, "runs": ["r1"],
                                                "checkpoints": True}))
        with z.open(name, "w", force_zip64=True) as f:
            chunk = bytes(1 << 24)
            for _ in range(size // len(chunk)):
                f.write(chunk)


@pytest.mark.parametrize("name", ["runs/r1/final.pt", "runs/r1/run.json"])
def test_a_zip_bomb_is_refused_in_seconds_with_bounded_memory(tmp_path, name):
    import time
    import tracemalloc
    bomb = tmp_path / "bomb.zip"
    _bomb(bomb, 1 << 30, name)
    assert bomb.stat().st_size < 2_000_000
    dest = Store(tmp_path / "dest")
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(bundles.BundleError, match=r"too large\b.*1,073.7 MB.*expected at most"):
        bundles.unpack(dest, bomb)
    seconds, (_, peak) = time.perf_counter() - t, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 5 and peak < 20e6, (seconds, peak)
    assert dest.runs() == []


def test_a_checkpoint_larger_than_its_model_is_refused(good, tmp_path):
    import os as _os

    def edit(name, data):
        return _os.urandom(12 << 20) if name.endswith("final.pt") else data
    bad = _rewrite(good, tmp_path / "fat.zip", edit, method=zipfile.ZIP_STORED)
    dest = Store(tmp_path / "dest")
    with pytest.raises(bundles.BundleError, match=r"final.pt is too large: it inflates to 12.6 MB \(expected at most"):
        bundles.unpack(dest, bad)
    assert dest.runs() == []


def test_a_bundles_model_spec_is_shown_never_imported(good, tmp_path, capsys):
    """Defect 1: an unpacked run naming a planted factory ran its module code in `attribute`."""
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef net(num_classes):\n    raise SystemExit(10)\n")
    planted = _edit_run("train", _config(lambda c: c.update(model=f"{evil}:net", width=None)))
    bad = _rewrite(good, tmp_path / "evil.zip", planted)
    dest = tmp_path / "dest"
    base = ["--runs-dir", str(dest), "--data-dir", str(tmp_path / "data")]
    assert main([*base, "runs", "unpack", str(bad)]) == 0  # data only: it unpacks
    rid = next(r["id"] for r in Store(dest).runs(kind="train") if r["config"]["model"] == f"{evil}:net")
    capsys.readouterr()
    assert main([*base, "runs", "show", rid]) == 0 and f"{evil}:net" in capsys.readouterr().out  # shown
    for argv in (["attribute", rid], ["train", "--from", rid, "--quiet"], ["curvature", rid]):
        assert main([*base, *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--trust-model '{evil}:net'" in err and "never imported" in err
    assert not marker.exists()
    # the user asks for it, here: then (and only then) it is imported, and its sys.exit is one line, not an exit
    assert main([*base, "attribute", rid, "--trust-model", f"{evil}:net"]) == 2
    assert marker.exists() and "SystemExit: 10" in capsys.readouterr().err
