"""Tags, notes and names: checked once, searchable, through the CLI, carried by bundles."""

import pytest

from beta_core import bundles, explorer
from beta_core.annotations import tags_of
from beta_core.store import Store, StoreError


def _run(store, **summary):
    rid = store.create_run({"method": "sgd-beta", "seed": 0}, kind="external", status="running")
    store.finish(rid, "done", {"final_test_acc": 0.5, **summary})
    return rid


def test_tags_notes_and_names_are_checked_and_kept(tmp_path):
    s = Store(tmp_path / "runs")
    rid = _run(s)
    assert s.tag(rid, add=["lecture", "cifar/v2", "lecture"]) == ["lecture", "cifar/v2"]
    assert s.tag(rid, remove=["cifar/v2"], add=["ok"]) == ["lecture", "ok"]
    s.note(rid, "  diverged once, rerun  ")
    s.rename(rid, "beta, first try")
    r = s.get_run(rid)
    assert tags_of(r) == ["lecture", "ok"] and r["note"] == "diverged once, rerun" and r["name"] == "beta, first try"
    for bad in (["two words"], [""], ["x" * 41], [3]):
        with pytest.raises(ValueError, match="Invalid tag"):
            s.tag(rid, add=bad)
    with pytest.raises(ValueError, match="at most 10,000"):
        s.note(rid, "x" * 10_001)
    with pytest.raises(ValueError, match="one line"):
        s.rename(rid, "a\nb")
    with pytest.raises(StoreError, match="Unknown run"):
        s.note("20260101-000000-x-abcdef", "hi")
    assert explorer.query(s, "tag = ok; name ~ first").total == 1


def test_the_cli_tags_notes_renames_and_lists_by_tag(tmp_path, capsys):
    from types import SimpleNamespace

    from beta_core.cli import main
    s = Store(tmp_path / "runs")
    a, b = _run(s), _run(s)

    def cli(*args):
        code = main(["--runs-dir", str(tmp_path / "runs"), "runs", *args])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    out = cli("tag", a, b, "--add", "lecture,week1")
    assert out.returncode == 0 and f"{a}: lecture, week1" in out.stdout
    assert cli("tag", b, "--remove", "week1").returncode == 0
    assert cli("note", a, "the one to show").returncode == 0 and cli("rename", a, "demo run").returncode == 0
    listed = cli("list", "--where", "tag = week1")
    assert a in listed.stdout and b not in listed.stdout
    shown = cli("show", a).stdout
    assert '"name": "demo run"' in shown and '"note": "the one to show"' in shown and '"week1"' in shown
    bad = cli("tag", a, "--add", "no spaces please")
    assert bad.returncode == 2 and "Invalid tag" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = cli("list", "--where", "seeed = 1")
    assert bad.returncode == 2 and "Unknown field 'seeed'" in bad.stderr


def test_bundles_carry_tags_notes_and_names(tmp_path):
    s = Store(tmp_path / "a")
    rid = _run(s)
    s.tag(rid, add=["lecture"])
    s.note(rid, "shared with the class")
    s.rename(rid, "the demo")
    bundles.pack(s, [rid], tmp_path / "b.zip")
    t = Store(tmp_path / "b")
    bundles.unpack(t, tmp_path / "b.zip")
    r = t.get_run(rid)
    assert tags_of(r) == ["lecture"] and r["note"] == "shared with the class" and r["name"] == "the demo"
