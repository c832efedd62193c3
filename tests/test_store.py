import errno
import subprocess
import sys

import pytest
import torch

from beta_core.store import Store, StoreError, validate_run_id


def _cfg(**kw):
    return {"method": "sgd-beta", "model": "small_cnn", "dataset": "synthetic", **kw}


def test_create_list_get_finish(store):
    rid = store.create_run(_cfg(seed=3), status="running")
    run = store.get_run(rid)
    assert run["status"] == "running" and run["config"]["seed"] == 3
    store.finish(rid, "done", {"best_test_acc": 0.5, "final_test_acc": 0.4})
    newest = store.runs()[0]
    assert newest["id"] == rid and newest["summary"]["best_test_acc"] == 0.5 and newest["status"] == "done"
    assert (store.dir / rid / "config.json").exists()


def test_metrics_round_trip(store):
    rid = store.create_run(_cfg())
    steps = [{"step": i, "epoch": 0, "lr": 0.1, "momentum": 0.37, "zeta": 1.0, "eff_lr": 0.16, "loss": 2.0 - i,
              "acc": 0.1, "time": i * 0.1} for i in range(5)]
    store.add_steps(rid, steps)
    store.add_epoch(rid, {"epoch": 0, "step": 5, "train_loss": 1.0, "train_acc": 0.2, "test_loss": 1.1,
                          "test_acc": 0.3, "regime": "critical", "zeta_median": 1.0, "lr": 0.1, "momentum": 0.37,
                          "time": 0.5, "group_scores": {"fc": 1.0}})
    df = store.steps(rid)
    assert df["loss"].tolist() == [2.0, 1.0, 0.0, -1.0, -2.0]
    assert store.steps(rid, since=3)["step"].tolist() == [3, 4]
    ep = store.epochs(rid)
    assert ep.loc[0, "regime"] == "critical" and ep.loc[0, "extra"]["group_scores"]["fc"] == 1.0


def test_checkpoint_round_trip_weights_only(store):
    rid = store.create_run(_cfg())
    sd = torch.nn.Linear(3, 2).state_dict()
    store.save_checkpoint(rid, sd)
    back = store.load_checkpoint(rid)
    assert all(torch.equal(sd[k], back[k]) for k in sd)
    other = store.create_run(_cfg())
    with pytest.raises(StoreError, match="no checkpoint"):
        store.load_checkpoint(other)


def test_disk_full_checkpoint_fails_cleanly(store, monkeypatch):
    rid = store.create_run(_cfg())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    from pathlib import Path

    monkeypatch.setattr(Path, "write_bytes", full)  # the write, after serialising in memory
    with pytest.raises(StoreError, match="No space left on device .expected free space"):
        store.save_checkpoint(rid, {"w": torch.zeros(2)})
    assert not list((store.dir / rid).glob("*.pt")) and not list((store.dir / rid).glob("*.tmp"))
    assert store.get_run(rid)["id"] == rid


def test_dead_owner_reads_interrupted(store):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    rid = store.create_run(_cfg(), status="running", pid=p.pid)
    run = store.get_run(rid)
    assert run["status"] == "interrupted" and "exited" in run["error"]
    live = store.create_run(_cfg(), status="running")  # owned by this (live) process
    assert store.get_run(live)["status"] == "running"
    # reading never writes; reap() records what readers see
    with store._db() as db:
        assert db.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0] == "running"
    assert store.reap() == [rid] and store.reap() == []
    with store._db() as db:
        assert db.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0] == "interrupted"
    assert store.get_run(rid)["error"] == run["error"]


def test_delete_refuses_active_and_removes_files(store):
    rid = store.create_run(_cfg(), status="running")
    with pytest.raises(StoreError, match="cancel it before deleting"):
        store.delete(rid)
    store.finish(rid, "done")
    store.add_steps(rid, [{"step": 0, "epoch": 0, "lr": 0.1, "momentum": 0.3, "zeta": 1, "eff_lr": 0.1,
                           "loss": 1, "acc": 0, "time": 0}])
    store.delete(rid)
    assert store.runs() == [] and store.steps(rid).empty and not (store.dir / rid).exists()


def test_cancel_queued_and_running(store):
    q = store.create_run(_cfg(), status="queued")
    store.request_cancel(q)
    assert store.get_run(q)["status"] == "cancelled"
    r = store.create_run(_cfg(), status="running")
    store.request_cancel(r)
    assert store.cancel_requested(r) and store.get_run(r)["status"] == "running"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 101, "a..b"])
def test_run_ids_validated(store, bad):
    with pytest.raises(ValueError, match="Invalid run id"):
        validate_run_id(bad)
    with pytest.raises(ValueError, match="Invalid run id"):
        store.get_run(bad)


def test_unknown_run(store):
    with pytest.raises(StoreError, match="Unknown run: 'nope'"):
        store.get_run("nope")


def test_unwritable_store(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="expected a writable folder"):
        Store(f / "runs")


def test_listing_filters_and_pages_in_sql(store):
    ids = [store.create_run({**_cfg(), "method": m}) for m in ("sgd-beta", "adam", "sgd-beta", "sgd-constant")]
    for i in ids:
        store.finish(i, "done")
    store.finish(ids[1], "failed", error="boom")
    assert [r["id"] for r in store.runs(limit=2)] == [r["id"] for r in store.runs()][:2]
    assert [r["id"] for r in store.runs(limit=2, offset=2)] == [r["id"] for r in store.runs()][2:4]
    assert {r["id"] for r in store.runs(search="sgd-beta")} == {ids[0], ids[2]}
    assert store.count_runs() == 4 and store.count_runs(status="done") == 3 and store.count_runs(search="adam") == 1
    store.add_result(ids[3], "attribution", {"x": 1})
    assert store.with_results("attribution") == {ids[3]}


def test_status_filter_in_sql_still_reads_dead_owners(store):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = store.create_run(_cfg(), status="running", pid=p.pid)
    live = store.create_run(_cfg(), status="running")
    assert [r["id"] for r in store.runs(status="running")] == [live]        # the dead one is not running
    assert [r["id"] for r in store.runs(status="interrupted")] == [dead]    # it reads interrupted
    assert {r["id"] for r in store.runs(status=("queued", "running"))} == {live}


def test_writer_sends_the_first_step_at_once_then_batches(store):
    from beta_core.store import MetricWriter
    rid = store.create_run(_cfg(), status="running")
    w = MetricWriter(store, rid, interval=3600)
    rec = {"kind": "step", "epoch": 0, "lr": 0.1, "momentum": 0.9, "zeta": 0.2, "eff_lr": 1.0, "loss": 2.0,
           "acc": 0.1, "time": 0.0}
    w.add({**rec, "step": 0})
    assert store.step_counts(rid)[rid] == 1  # a live chart shows the first point without waiting
    w.add({**rec, "step": 1})
    w.add({**rec, "step": 2})
    assert store.step_counts(rid)[rid] == 1  # then one transaction per interval
    w.flush()
    assert store.step_counts(rid)[rid] == 3
