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
    assert {k: v for k, v in new["config"].items() if k != "lr"} == {k: v for k, v in member["config"].items()
                                                                      if k != "lr"}
    capsys.readouterr()
    assert main([*base, "runs", "diff", member["id"], new["id"]]) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if line.strip().startswith("*")]
    assert len(marked) == 1 and "lr" in marked[0] and "0.05" in marked[0] and "0.02" in marked[0]
    assert "1 field differ" in out
    assert main([*base, "train", "--from", member["id"], "--preset", "quick-cpu"]) == 2
