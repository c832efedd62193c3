import os
import signal
import time
from pathlib import Path

import pytest
from helpers import tiny_config

from beta_core.jobs.bodies import execute_run
from beta_core.jobs.manager import JobManager
from beta_core.store import Store

FACTORIES = Path(__file__).resolve().parent / "data" / "user_models.py"


def test_execute_run_writes_everything(store, tmp_path):
    cfg = tiny_config(epochs=2)
    rid = store.create_run(cfg.to_dict())
    run = execute_run(store, rid, str(tmp_path / "data"))
    assert run["status"] == "done", run["error"]
    assert len(store.steps(rid)) == 16 and len(store.epochs(rid)) == 2
    assert store.checkpoint_path(rid).exists() and run["summary"]["synthetic"]


def test_failure_leaves_store_intact(store, tmp_path, monkeypatch):
    good = store.create_run(tiny_config().to_dict())
    execute_run(store, good, str(tmp_path / "data"))
    bad = store.create_run(tiny_config().to_dict())
    import torch

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    run = execute_run(store, bad, str(tmp_path / "data"))
    assert run["status"] == "failed" and "No space left" in run["error"]
    assert store.get_run(good)["status"] == "done" and store.checkpoint_path(good).exists()


def test_diverged_run(store, tmp_path):
    rid = store.create_run(tiny_config(method="sgd-constant", lr=1e6, epochs=3).to_dict())
    run = execute_run(store, rid, str(tmp_path / "data"))
    assert run["status"] == "diverged" and not store.checkpoint_path(rid).exists()


def _wait_for(pred, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_two_workers_write_at_once_and_a_reader_sees_both(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=2, poll=0.2)
    ids = [jm.submit(tiny_config(epochs=3, seed=s).to_dict()) for s in (0, 1)]
    reader = Store(tmp_path / "runs")
    # both running at the same time, both with metrics visible to a third connection
    assert _wait_for(lambda: all(reader.get_run(i)["status"] == "running" and len(reader.steps(i)) > 0 for i in ids)
                     or all(reader.get_run(i)["status"] == "done" for i in ids))
    runs = jm.wait(ids, timeout=180)
    assert [r["status"] for r in runs] == ["done", "done"], [r["error"] for r in runs]
    assert all(len(reader.steps(i)) == 24 for i in ids)


def test_concurrency_limit_queues(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2)
    ids = [jm.submit(tiny_config(epochs=2, seed=s).to_dict()) for s in (0, 1)]
    assert jm.store.get_run(ids[1])["status"] == "queued" and len(jm.procs) == 1
    runs = jm.wait(ids, timeout=180)
    assert [r["status"] for r in runs] == ["done", "done"]


def test_sigkill_leaves_run_interrupted_and_others_intact(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=2, poll=0.2)
    victim = jm.submit(tiny_config(epochs=200, synthetic_train=2000).to_dict())
    other = jm.submit(tiny_config(epochs=2, seed=1).to_dict())
    assert _wait_for(lambda: len(jm.store.steps(victim)) > 0)
    os.kill(jm.procs[victim].pid, signal.SIGKILL)
    jm.procs[victim].wait()
    assert jm.store.get_run(victim)["status"] == "interrupted"
    assert jm.wait([other], timeout=180)[0]["status"] == "done"
    assert len(jm.store.steps(victim)) > 0  # what it wrote before dying is kept


def test_cancel_running_job(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), poll=0.2)
    rid = jm.submit(tiny_config(epochs=200, synthetic_train=2000).to_dict())
    assert _wait_for(lambda: len(jm.store.steps(rid)) > 0)
    jm.cancel(rid)
    assert jm.wait([rid], timeout=60)[0]["status"] == "cancelled"


def test_bad_manager_args(tmp_path):
    with pytest.raises(ValueError, match="max_parallel: 0"):
        JobManager(tmp_path, max_parallel=0)
    jm = JobManager(tmp_path / "runs")
    with pytest.raises(ValueError, match="Unknown job kind"):
        jm.submit({}, kind="nope")


def test_another_gpu_run_waits_for_free_memory(tmp_path, monkeypatch):
    import torch

    from beta_core.jobs import manager as jobs

    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=4)
    jm.procs = {"running": object()}  # one worker already on the GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (jobs.GPU_FREE_BYTES - 1, 80 * 2 ** 30))
    assert not jm._gpu_has_room()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (jobs.GPU_FREE_BYTES, 80 * 2 ** 30))
    assert jm._gpu_has_room()
    jm.procs = {}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (0, 80 * 2 ** 30))
    assert jm._gpu_has_room()  # the first run always starts


def test_warm_worker_takes_runs_one_after_another(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2)
    ids = [jm.submit(tiny_config(seed=s).to_dict()) for s in (0, 1)]
    runs = jm.wait(ids, timeout=180)
    assert [r["status"] for r in runs] == ["done", "done"]
    pids = [line.split(":")[0] for line in (tmp_path / "runs" / "workers.log").read_text().splitlines()
            if line.startswith("worker ")]
    assert len(pids) == 2 and pids[0] == pids[1]  # one process trained both
    jm.close()


def test_a_run_that_kills_its_worker_is_interrupted_and_the_next_runs(tmp_path, trust_factories):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2)
    crash = jm.submit(tiny_config(model=f"{FACTORIES}:exits", width=None).to_dict())  # os._exit building its model
    after = jm.submit(tiny_config(seed=1).to_dict())
    runs = jm.wait([crash, after], timeout=180)
    assert [r["status"] for r in runs] == ["interrupted", "done"], [r["error"] for r in runs]
    jm.close()


def test_cancel_on_a_warm_worker_then_the_next_run(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2)
    first = jm.submit(tiny_config(seed=0).to_dict())
    assert jm.wait([first], timeout=180)[0]["status"] == "done"
    long = jm.submit(tiny_config(epochs=200, synthetic_train=2000).to_dict())
    assert _wait_for(lambda: len(jm.store.steps(long)) > 0)
    jm.cancel(long)
    assert jm.wait([long], timeout=60)[0]["status"] == "cancelled"
    nxt = jm.submit(tiny_config(seed=2).to_dict())
    assert jm.wait([nxt], timeout=180)[0]["status"] == "done"
    jm.close()


def test_idle_workers_end_after_the_timeout(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2, idle_seconds=0.5)
    rid = jm.submit(tiny_config().to_dict())
    assert jm.wait([rid], timeout=180)[0]["status"] == "done"
    assert _wait_for(lambda: (jm.pump(), not jm.idle and not jm.procs)[1])


def test_a_bad_job_on_a_warm_worker_fails_and_the_worker_goes_on(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=0.2)
    bad = jm.submit({**tiny_config().to_dict(), "data_path": str(tmp_path / "nowhere"), "dataset": "folder"})
    good = jm.submit(tiny_config(seed=1).to_dict())
    runs = jm.wait([bad, good], timeout=180)
    assert [r["status"] for r in runs] == ["failed", "done"] and "nowhere" in runs[0]["error"]
    pids = {line.split(":")[0] for line in (tmp_path / "runs" / "workers.log").read_text().splitlines()
            if line.startswith("worker ")}
    assert len(pids) == 1  # the same worker took the next run
    jm.close()


def test_a_running_job_records_its_phase_and_a_finished_one_how_long_it_took(store, tmp_path):
    """What a page's progress line reads: the phase and total while training, the duration after."""
    rid = store.create_run(tiny_config(epochs=1).to_dict())
    seen = []

    def look(rec):
        if not seen:  # the first record: setup is over, training has begun
            seen.append(store.get_run(rid)["summary"]["progress"])

    assert execute_run(store, rid, str(tmp_path / "data"), on_record=look)["status"] == "done"
    assert seen[0]["phase"] == "training" and seen[0]["unit"] == "steps" and seen[0]["total"] > 0
    assert seen[0]["started"] <= time.time()
    assert store.get_run(rid)["summary"]["job_seconds"] > 0


def _progress_seen(store, monkeypatch) -> list[dict]:
    """Every progress a job writes into its summary, in order (a page sees only the newest)."""
    seen, real = [], store.update_summary

    def spy(run_id, values):
        if "progress" in values:
            seen.append(values["progress"])
        real(run_id, values)

    monkeypatch.setattr(store, "update_summary", spy)
    return seen


def _image_tree(root: Path, per: int = 12) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for ci, c in enumerate("ab"):
            (root / split / c).mkdir(parents=True)
            for i in range(per):
                Image.new("RGB", (32, 32), (90 * ci, 7 * i, 50)).save(root / split / c / f"{i}.png")
    return root


def test_a_run_shows_its_data_being_prepared_and_a_cancel_stops_the_decode(store, tmp_path, monkeypatch):
    """A run exists and is running while its data decodes: its progress reads "preparing data",
    images done of total, before it trains; a cancel during the decode ends it cancelled, with no
    step recorded and nothing cached."""
    import beta_core.data as data
    from beta_core.jobs.bodies import DataCache

    monkeypatch.setattr(data, "PROGRESS_EVERY", 8)
    tree = _image_tree(tmp_path / "tree")  # 48 images
    cfg = tiny_config(epochs=1, dataset="folder", data_path=str(tree), batch_size=8, val_fraction=0.0)
    rid = store.create_run(cfg.to_dict())
    seen = _progress_seen(store, monkeypatch)
    cache = DataCache()
    assert execute_run(store, rid, str(tmp_path / "data"), splits=cache)["status"] in ("done", "diverged")  # 2 classes
    assert seen[0]["phase"] == "preparing data" and "unit" not in seen[0]  # at once, before any image
    decoded = [p for p in seen if p.get("unit") == "images"]
    assert decoded and decoded[-1]["done"] == decoded[-1]["total"] == 48
    assert seen[-1]["phase"] == "training" and len(cache.sets) == 1

    rid2 = store.create_run(tiny_config(epochs=1, dataset="folder", data_path=str(_image_tree(tmp_path / "t2")),
                                        batch_size=8, val_fraction=0.0).to_dict())
    run = execute_run(store, rid2, str(tmp_path / "data"), splits=DataCache(), should_stop=lambda: True)
    assert run["status"] == "cancelled" and "preparing its data" in run["summary"]["note"]
    assert store.step_counts(rid2)[rid2] == 0
    assert len(list((tmp_path / "data" / "cache").glob("*.pt"))) == 1  # only the finished decode's


def test_an_attribution_job_says_which_stage_it_is_in_and_a_cancel_stops_it(store, tmp_path, monkeypatch):
    """The page's progress line of an attribution: the short stages with their counts in words,
    then the probe with group passes done of total (its own rate gives the time left); a cancel
    between groups ends the job cancelled."""
    from beta_core.attribution import STAGES

    rid = store.create_run(tiny_config(epochs=1).to_dict())
    assert execute_run(store, rid, str(tmp_path / "data"))["status"] == "done"
    seen = _progress_seen(store, monkeypatch)
    cfg = {"method": "attribution", "attribution": {"max_samples": 200, "probe_steps": 2}}
    job = store.create_run(cfg, kind="attribution", parent=rid)
    assert execute_run(store, job, str(tmp_path / "data"))["status"] == "done"
    phases = [p["phase"] for p in seen]
    assert f"{STAGES[0]} (200/200 images)" in phases and any(p.startswith(STAGES[1] + " (") for p in phases)
    probe = [p for p in seen if p["phase"] == STAGES[2]]
    assert probe[0]["done"] == 0 and probe[-1]["done"] == probe[-1]["total"] > 0 and probe[-1]["unit"] == "group passes"
    assert store.results(rid, "attribution")[-1]["seconds"] > 0

    calls = iter(range(10 ** 6))
    job = store.create_run(cfg, kind="attribution", parent=rid)
    run = execute_run(store, job, str(tmp_path / "data"), should_stop=lambda: next(calls) > 3)
    assert run["status"] == "cancelled" and run["summary"]["note"].startswith("cancelled during ")


def test_the_localisation_benchmark_reports_cases_done_of_total(store, tmp_path):
    rid = store.create_run(tiny_config(epochs=1).to_dict())
    execute_run(store, rid, str(tmp_path / "data"))
    job = store.create_run({"method": "localise", "model": "small_cnn",
                            "localise": {"severities": {"noise": [1.0], "bn_stats": [1.0]}, "scores": ["random"]}},
                           kind="localise", parent=rid)
    cases = []
    execute_run(store, job, str(tmp_path / "data"), on_record=lambda c: cases.append(c))
    assert cases and all(c["total"] == len(cases) for c in cases)
    assert [c["done"] for c in cases] == list(range(1, len(cases) + 1))


def test_a_worker_reports_a_finished_or_crashed_job_at_once(tmp_path, trust_factories):
    """The next run is handed over when the worker reports (its pipe), not on a poll: with a
    30 s poll, a finish or a crash is still followed by the next run within seconds."""
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), max_parallel=1, poll=30.0)
    crash = jm.submit(tiny_config(model=f"{FACTORIES}:exits", width=None).to_dict())
    ids = [crash, *(jm.submit(tiny_config(seed=s).to_dict()) for s in (1, 2))]
    start = time.monotonic()
    while any(jm.store.get_run(i)["status"] in ("queued", "running") for i in ids):  # no pump from here
        time.sleep(0.2)
        assert time.monotonic() - start < 60, [jm.store.get_run(i)["status"] for i in ids]
    assert [jm.store.get_run(i)["status"] for i in ids] == ["interrupted", "done", "done"]
    jm.close()


def test_a_run_records_the_machine_while_it_trains(store, tmp_path, monkeypatch):
    import beta_core.sysmon as sysmon
    from beta_core.explorer import system_records

    monkeypatch.setattr(sysmon, "INTERVAL", 0.2)
    monkeypatch.setattr(sysmon.Sampler.__init__, "__defaults__", (None, 0.2))
    rid = store.create_run(tiny_config(epochs=3).to_dict())
    assert execute_run(store, rid, str(tmp_path / "data"))["status"] == "done"
    samples = system_records(store, [rid])
    assert len(samples) >= 1 and (samples["rss_mb"] > 10).all() and (samples["cpu_machine"] >= 0).all()
    assert samples["time"].is_monotonic_increasing
