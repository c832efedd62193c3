"""Time left of jobs and of the queue, from what this machine measured."""
import os

import pytest
from helpers import tiny_config

from beta_core.store import Store
from beta_core.timeleft import earlier_seconds, queue_times, seconds_left


def _done(store, seconds, **cfg):
    rid = store.create_run(tiny_config(**cfg).to_dict())
    store.finish(rid, "done", {"job_seconds": seconds})
    return rid


def test_the_queue_starts_each_job_when_a_slot_frees(tmp_path):
    store = Store(tmp_path / "runs")
    for s in (8.0, 10.0, 12.0):
        _done(store, s, epochs=2)
    _done(store, 500.0, epochs=20)  # another amount of work: not counted
    running = store.create_run(tiny_config(epochs=2).to_dict(), status="running", pid=os.getpid())
    store.update_summary(running, {"progress": {"phase": "training", "total": 100, "unit": "steps", "started": 0.0}})
    store.add_steps(running, [{"step": s, "epoch": 0, "loss": 1.0} for s in range(25)])
    queued = [store.create_run(tiny_config(epochs=2, seed=s).to_dict(), pid=os.getpid()) for s in (1, 2)]
    active = [store.get_run(running), *(store.get_run(q) for q in queued)]
    assert earlier_seconds(store, active[1]) == (10.0, 3)
    now = 5.0  # 25 of 100 steps in 5 s: 15 s left
    assert seconds_left(store, active[0], now) == pytest.approx(15.0)
    times = queue_times(store, active, slots=1, now=now)
    assert times[running] == (0.0, pytest.approx(15.0))
    assert times[queued[0]] == (pytest.approx(15.0), pytest.approx(25.0))
    assert times[queued[1]] == (pytest.approx(25.0), pytest.approx(35.0))
    two = queue_times(store, active, slots=2, now=now)
    assert two[queued[0]] == (0.0, 10.0) and two[queued[1]] == (pytest.approx(10.0), pytest.approx(20.0))


def test_nothing_to_estimate_from_is_said_not_guessed(tmp_path):
    store = Store(tmp_path / "runs")
    a = store.create_run(tiny_config().to_dict(), pid=os.getpid())
    b = store.create_run(tiny_config(seed=1).to_dict(), pid=os.getpid())
    times = queue_times(store, [store.get_run(a), store.get_run(b)], slots=1, now=0.0)
    assert times[a] == (0.0, None) and times[b] == (None, None)  # no earlier run here: no number


def test_a_run_preparing_its_data_has_the_decode_left_then_a_whole_run(tmp_path):
    """While its data decodes (the first time, 80 s for CIFAR-10's JPEGs): the decode's own time
    left, then the job as long as the last ones like it (they read a decoded cache)."""
    store = Store(tmp_path / "runs")
    for s in (8.0, 10.0, 12.0):
        _done(store, s, epochs=2)
    rid = store.create_run(tiny_config(epochs=2).to_dict(), status="running", pid=os.getpid())
    store.update_summary(rid, {"progress": {"phase": "preparing data", "done": 15000, "total": 60000,
                                            "unit": "images", "started": 0.0}})
    # 15,000 of 60,000 images in 20 s: 60 s of decoding left, then about 10 s of training
    assert seconds_left(store, store.get_run(rid), now=20.0) == pytest.approx(70.0)
    store.update_summary(rid, {"progress": {"phase": "preparing data", "started": 0.0, "done": 0, "total": 60000,
                                            "unit": "images"}})  # no image decoded yet: no rate to go by
    assert seconds_left(store, store.get_run(rid), now=1.0) is None


def test_a_runs_first_step_is_no_rate(tmp_path):
    """The new user's walk: the sidebar said "all done in about 3 min 49 s" for a 7 s run, from its
    first step (the loader's start-up in it). Its rate counts from 5% of its steps; before that,
    earlier runs like it say how long it takes."""
    store = Store(tmp_path / "runs")
    running = store.create_run(tiny_config(epochs=2).to_dict(), status="running", pid=os.getpid())
    store.update_summary(running, {"progress": {"phase": "training", "total": 71, "unit": "steps", "started": 0.0}})
    store.add_steps(running, [{"step": 0, "epoch": 0, "loss": 1.0}])
    run = store.get_run(running)
    assert seconds_left(store, run, now=3.0) is None  # one step in 3 s would say 210 s: nothing measured yet
    _done(store, 7.0, epochs=2)
    assert seconds_left(store, run, now=3.0) == pytest.approx(4.0)  # as long as the last like it: 7 s, 3 s gone
    store.add_steps(running, [{"step": s, "epoch": 0, "loss": 1.0} for s in range(1, 10)])
    assert seconds_left(store, store.get_run(running), now=4.0) == pytest.approx(61 * 0.4)  # its own rate now
