"""How long jobs have left, measured on this machine: a running job from its own rate, one
without a step total from earlier jobs of its kind and model here, a queued job from the same,
and the queue as a whole from the jobs ahead and the slots that run them. The pages and the CLI
only say what this computes.
"""
from __future__ import annotations

import heapq
import statistics
import time

from .records import TRAINED_KINDS, Progress
from .store import Store

__all__ = ["progress_of", "earlier_seconds", "seconds_left", "queue_times", "WORKLOAD"]


# What makes two training runs the same amount of work (the method and seed do not, to a first order).
WORKLOAD = ("model", "epochs", "batch_size", "dataset", "train_subset", "synthetic_train", "width", "device")


def progress_of(p: Progress | None, now: float, done: int | None = None) -> dict:
    """Rate and time left of a job's progress: ``{"phase", "done", "total", "unit", "rate"
    (units/s), "eta" (s)}``, rate and eta None until measured. ``done`` overrides the stored
    count (a run's step records are counted, not written into its summary each step).

    >>> progress_of({"phase": "training", "done": 0, "total": 100, "unit": "steps", "started": 0.0}, 10.0, 20)
    {'phase': 'training', 'done': 20, 'total': 100, 'unit': 'steps', 'rate': 2.0, 'eta': 40.0}
    >>> progress_of({"phase": "training", "total": 100, "unit": "steps", "started": 0.0}, 3.0, 1)["eta"] is None
    True
    """
    p = p or {}
    done = p.get("done", 0) if done is None else done
    total, started = p.get("total"), p.get("started")
    # a run's first steps carry its start-up (loader workers, first batches): one step of a 7 s run
    # read as "3 min 49 s left"; its rate counts from a few steps (5% of them) on
    early = p.get("unit") == "steps" and done < max(3, 0.05 * (total or 0))
    rate = done / (now - started) if done and not early and started is not None and now > started else None
    eta = (total - done) / rate if rate and total else None
    return {"phase": p.get("phase", "starting"), "done": done, "total": total, "unit": p.get("unit", ""),
            "rate": rate, "eta": eta}


def earlier_seconds(store: Store, run: dict, cache: dict | None = None) -> tuple[float, int] | None:
    """Median duration of the newest finished jobs of this kind and model on this machine (up to
    20; a training run's also of its epochs, batch size and data), and how many: the expected
    length of a job that has not measured its own rate. Imported runs, timed on other machines,
    never count (``job_seconds`` is written only by jobs that ran here). ``cache``: answers by
    kind and work, so a queue of 60 like runs reads the store once, not 60 times."""
    key = (run["kind"], run["model"], *(str(run["config"].get(k)) for k in WORKLOAD))
    if cache is not None and key in cache:
        return cache[key]
    same = (lambda r: all(r["config"].get(k) == run["config"].get(k) for k in WORKLOAD)) if run["kind"] == "train" \
        else (lambda r: r["model"] == run["model"])
    took = [r["summary"]["job_seconds"] for r in store.runs(kind=run["kind"], status="done", limit=50)
            if same(r) and r["summary"].get("job_seconds")][:20]
    out = (statistics.median(took), len(took)) if took else None
    if cache is not None:
        cache[key] = out
    return out


def seconds_left(store: Store, run: dict, now: float | None = None, steps: int | None = None,
                 cache: dict | None = None) -> float | None:
    """A job's time left: from its own rate once it has one; else, for a job that has started,
    earlier jobs' duration minus its time so far; for a queued job, earlier jobs' duration.
    None when nothing here measures it."""
    now = time.time() if now is None else now
    p = run["summary"].get("progress") or {}
    if run["status"] == "running" and p.get("unit") == "images":  # its data decoding: the decode's own time left,
        decode = progress_of(p, now)["eta"]                        # then the job as long as the last ones like it
        earlier = earlier_seconds(store, run, cache)
        return decode + earlier[0] if decode is not None and earlier else None
    if run["status"] == "running":
        done = (store.step_counts(run["id"])[run["id"]] if steps is None else steps) \
            if run["kind"] in ("surgery", *TRAINED_KINDS) else None
        eta = progress_of(p, now, done)["eta"]
        if eta is not None:
            return eta
    earlier = earlier_seconds(store, run, cache)
    if earlier is None:
        return None
    return max(0.0, earlier[0] - (now - p["started"])) if run["status"] == "running" \
        and p.get("started") is not None else earlier[0]


def queue_times(store: Store, active: list[dict], slots: int, now: float | None = None) -> dict[str, tuple]:
    """Per active job (oldest first, the queue's order): (seconds until it starts, seconds until
    it ends); None where it or a job ahead of it cannot be estimated. ``slots`` jobs run at once
    (a running job holds one until it ends; a queued one takes the first that frees).

    >>> class S:  # a store whose jobs of every kind took 10 s before
    ...     def runs(self, **kw): return [{"model": "m", "config": {"epochs": 2}, "summary": {"job_seconds": 10.0}}]
    >>> jobs = [{"id": i, "status": "queued", "kind": "train", "model": "m", "config": {"epochs": 2}, "summary": {}}
    ...         for i in "abc"]
    >>> queue_times(S(), jobs, slots=2)
    {'a': (0.0, 10.0), 'b': (0.0, 10.0), 'c': (10.0, 20.0)}
    """
    now = time.time() if now is None else now
    free, out, known, cache = [], {}, True, {}
    for r in (r for r in active if r["status"] == "running"):
        left = seconds_left(store, r, now, cache=cache)
        known &= left is not None
        out[r["id"]] = (0.0, left)
        heapq.heappush(free, left or 0.0)
    free += [0.0] * max(0, slots - len(free))
    heapq.heapify(free)
    for r in (r for r in active if r["status"] != "running"):
        start, length = heapq.heappop(free), seconds_left(store, r, now, cache=cache)
        out[r["id"]] = (start if known else None, start + length if known and length is not None else None)
        known &= length is not None
        heapq.heappush(free, start + (length or 0.0))
    return out
