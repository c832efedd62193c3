"""Jobs: run a stored run in this process, or as worker processes under a concurrency limit.

The one place that joins the store and the computation. A job is a run in the store (kind
``train``, ``surgery``, ``attribution``, ``sweep`` or ``localise``); :data:`JOB_BODIES` maps
each kind to the function that computes it from the stored config and writes its records
and results. Its state lives in the store, never in the manager, so a browser refresh, a
second tab, a restarted app or the CLI all see the same thing. Training never happens in
the caller's thread of a UI: the :class:`JobManager` starts one ``python -m beta_core worker
RUN_ID`` process per job and queues the rest, so a 2-core machine is not oversubscribed
(or, with backend ``ray``, hands training runs to Ray).
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from . import zoo
from .attribution import SCORES, AttributionConfig, attribute, error_gallery
from .config import TrainConfig, config_fields
from .data import eval_loaders, load_splits
from .engine import Training, WeightsMismatch, prepare
from .env import settings
from .importer import KIND as KIND_IMPORTED
from .importer import no_weights
from .localise import QUICK_SEVERITIES, localisation_benchmark
from .mirror import open_mirror
from .queries import latest_members
from .ray_backend import RayRunner
from .records import ACTIVE, CASE, MEMBER, SYSTEM, MemberRecord, SweepSummary, train_config_of
from .store import MetricWriter, Store, StoreError
from .surgery import SurgeryConfig, run_surgery
from .sweeps import COUNTED, RESUMED, Cell, SweepPlan, analyse, choose, coverage
from .sysmon import Sampler

BACKENDS = ("local", "ray")
# A warm worker takes another job only after one that ended this way: a cancel (SIGTERM) ends the
# worker after its run, and an interrupted run's worker is dying or dead.
REUSED = ("done", "failed", "diverged")
GPU_FREE_BYTES = 2 * 2 ** 30  # free GPU memory needed before another local worker starts

__all__ = ["BACKENDS", "execute_run", "JobManager", "JOB_KINDS", "JOB_BODIES", "StopFlag", "external_config",
           "load_trained", "attribute_run", "attribution_job", "localise_job"]


class StopFlag:
    """Cancellation: a signal, the caller's ``also()``, or the run's cancel flag in the store
    (polled at most twice a second)."""

    def __init__(self, store: Store, run_id: str, interval: float = 0.5,
                 also: Callable[[], bool] | None = None) -> None:
        self.store, self.run_id, self.interval, self.also = store, run_id, interval, also
        self.stopped, self._next = False, 0.0

    def on_signal(self, *_):
        self.stopped = True

    def __call__(self) -> bool:
        if not self.stopped and self.also is not None and self.also():
            self.stopped = True
        now = time.monotonic()
        if not self.stopped and now >= self._next:
            self._next = now + self.interval
            self.stopped = self.store.cancel_requested(self.run_id)
        return self.stopped


def external_config(run: dict) -> TrainConfig:
    """What diagnosing a run logged from the user's loop needs: the model its ``save_model``
    named and data our loader reads, both from what the user gave; the rest of its config
    (its own method names, script, host) plays no part in loading."""
    c, spec = run["config"], run["summary"].get("model_spec")
    if not spec or c.get("dataset") in (None, "auto"):
        raise StoreError(f"Run {run['id']} was logged from your own loop without "
                         + ("a model factory" if not spec else "a dataset our loader reads")
                         + " (expected run.save_model(model, factory='file.py:fn') and config={'dataset': 'folder', "
                           "'data_path': ...} or 'cifar10' in track.start)")
    known = {f.name for f in config_fields()} - {"method", "model"}
    return TrainConfig.from_fields({**{k: v for k, v in c.items() if k in known}, "model": spec})


def load_trained(store: Store, run_id: str, data_dir: str = "data", device: str | None = None):
    """(model with the run's final weights in eval mode, its splits, eval loaders) for a finished run."""
    run = store.get_run(run_id)
    if run["kind"] == KIND_IMPORTED:
        raise StoreError(no_weights(run))
    if run["kind"] not in ("train", "surgery", "external"):
        raise StoreError(f"Run {run_id} is a {run['kind']} job (expected a training or surgery run)")
    state = store.load_checkpoint(run_id)  # clear error if the run has no checkpoint
    cfg = external_config(run) if run["kind"] == "external" else TrainConfig.from_dict(train_config_of(run))
    if device:
        cfg = replace(cfg, device=device)
    try:
        p = prepare(cfg, data_dir, init_state=state)
    except WeightsMismatch as e:
        raise StoreError(f"Checkpoint of run {run_id} does not fit its model: {e}") from None
    p.model.eval()
    return p.model, p.splits, eval_loaders(p.splits, p.device, p.channels_last)


def _train(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    training = Training(TrainConfig.from_dict(run["config"]), data_dir, splits=splits, should_stop=stop)
    training.setup()
    known = training.start_summary()
    # what a live page reads while the run trains; done steps are its step records
    store.update_summary(run["id"], {**known, "progress": {"phase": "training", "total": training.total_steps,
                                                           "unit": "steps", "started": time.time()}})
    writer = MetricWriter(store, run["id"], mirror=open_mirror(settings().mirror, run["id"], run["config"]))
    with Sampler(lambda s: store.add_result(run["id"], SYSTEM, s), str(training.device)):
        for rec in training.run():
            writer.add(rec)
            if on_record:
                on_record(rec)
    writer.close(training.status)
    if training.status == "done":
        store.save_checkpoint(run["id"], training.model.state_dict())
    return training.status, {**known, **training.summary}  # the final summary keeps what was known at the start


def _surgery(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    """The run's config holds the parent's training config and the surgery config."""
    parent_cfg = TrainConfig.from_dict(train_config_of(store.get_run(run["parent"])))
    cfg = SurgeryConfig(**run["config"]["surgery"])
    state = store.load_checkpoint(run["parent"])
    writer = MetricWriter(store, run["id"])
    # no step total up front (the full fine-tune and the controls follow): the page's time left
    # comes from earlier surgeries measured here
    store.update_summary(run["id"], {"progress": {"phase": "retraining, then the full fine-tune" + (
        " and the controls" if cfg.controls else ""), "unit": "steps", "started": time.time()}})

    def rec(r):
        writer.add(r)
        if on_record:
            on_record(r)

    try:
        out = run_surgery(parent_cfg, state, cfg, data_dir, splits, on_record=rec, stop=stop)
    except WeightsMismatch as e:
        raise StoreError(f"Checkpoint of run {run['parent']} does not fit its model: {e}") from None
    writer.flush()
    if out["status"] != "done":
        return out["status"], {"report": out["report"]}
    store.save_checkpoint(run["id"], out["state"])
    store.add_result(run["id"], "surgery", {"summary": out["summary"], "report": out["report"],
                                             "config": asdict(cfg)})
    return "done", {**out["summary"], "report": out["report"]}


def attribute_run(store: Store, run_id: str, cfg: AttributionConfig, data_dir: str = "data") -> dict:
    """Attribute a finished run's model and store the result on it (the CLI's ``attribute`` and
    the attribution job both come here)."""
    model, splits, loaders = load_trained(store, run_id, data_dir)
    loader = loaders["test" if cfg.split == "test" else "train_eval"]
    result = attribute(model, loader, cfg, splits.classes, train_loader=loaders["train"])
    result["run_id"] = run_id
    result["gallery"] = error_gallery(model, loader, max_samples=cfg.max_samples)
    store.add_result(run_id, "attribution", result)
    return result


def attribution_job(parent: dict, cfg: AttributionConfig) -> dict:
    """What an attribution job of ``parent`` stores as its config (the page and the bundles'
    check read it back as an :class:`AttributionConfig`, so it was valid when it was made)."""
    return {"method": "attribution", "model": parent["config"].get("model"), "attribution": asdict(cfg)}


def localise_job(parent: dict, scores=SCORES, faults=None, seeds=(0,), probe_steps: int = 20) -> dict:
    """What a localisation benchmark of ``parent`` stores as its config: every score and fault
    known, seeds and probe steps whole numbers, checked before any job exists."""
    faults = list(QUICK_SEVERITIES) if faults is None else list(faults)
    bad = [x for x in scores if x not in SCORES] + [x for x in faults if x not in QUICK_SEVERITIES]
    if bad:
        raise ValueError(f"Unknown score or fault: {bad[0]!r} (expected scores {SCORES}, faults "
                         f"{tuple(QUICK_SEVERITIES)})")
    if not isinstance(probe_steps, int) or probe_steps < 1:
        raise ValueError(f"Invalid probe steps: {probe_steps!r} (expected an integer >= 1)")
    return {"method": "localise", "model": parent["config"].get("model"),
            "localise": {"scores": list(scores), "severities": {f: list(QUICK_SEVERITIES[f]) for f in faults},
                         "seeds": list(seeds), "probe_steps": probe_steps}}


def _attribution(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    """Attribute the parent run's model; the result is stored on the parent and on the job."""
    result = attribute_run(store, run["parent"], AttributionConfig(**run["config"].get("attribution", {})), data_dir)
    store.add_result(run["id"], "attribution", result)
    return "done", {"flagged": result["flagged"], "n_errors": result["n_errors"],
                    "param_fraction": result["param_fraction"]}


class _SweepRunner:
    """Runs a sweep's cells: in this process one after another (data loaded once per data
    config), or as worker processes through a JobManager when ``parallel`` > 1. A cell whose
    member counts (done, diverged) is kept; one cancelled or interrupted (the sweep was stopped
    or killed) or never started is run again; one that failed only with ``retry_failed``. A
    member still running under another process (the worker of a killed sweep) is waited for."""

    def __init__(self, store: Store, sweep: dict, data_dir: str, stop: StopFlag, on_record) -> None:
        self.store, self.sweep, self.data_dir, self.stop, self.on_record = store, sweep, data_dir, stop, on_record
        opts = sweep["config"].get("options", {})
        self.parallel, self.retry = int(opts.get("parallel", 1)), bool(opts.get("retry_failed", False))
        self.backend, self.ray_address = opts.get("backend", "local"), opts.get("ray_address")
        self.splits: dict = {}
        self.done, self.started = 0, time.time()

    def members(self) -> dict[str, dict]:
        return latest_members(self.store, self.sweep["id"])

    def _rerun(self, r: dict | None) -> bool:
        return r is None or r["status"] in RESUMED or (r["status"] == "failed" and self.retry)

    def _wait_for_others(self, cells: list[Cell]) -> None:
        """Members left running by a previous runner's workers finish (or die) before we decide."""
        keys = {c.key() for c in cells}
        while not self.stop():
            busy = [r for k, r in self.members().items() if k in keys and r["status"] in ACTIVE]
            if not busy:
                return
            time.sleep(0.5)

    def run(self, plan: SweepPlan, cells: list[Cell], total: int) -> list[tuple[Cell, dict]]:
        self._wait_for_others(cells)
        have = self.members()
        todo = [c for c in cells if self._rerun(have.get(c.key()))]
        self.done += len(cells) - len(todo)
        if self.parallel > 1 or self.backend == "ray":
            self._in_workers(plan, todo, total)
        else:
            for c in todo:
                if self.stop():
                    break
                cfg = plan.config(c)
                rid = self._create(c, cfg)
                dc = cfg.data_config()
                if dc not in self.splits:
                    self.splits[dc] = load_splits(dc, self.data_dir)
                r = execute_run(self.store, rid, self.data_dir, splits=self.splits[dc], should_stop=self.stop)
                self._tick(c, r, total)
        have = self.members()
        return [(c, have[c.key()]) for c in cells if c.key() in have]

    def _create(self, c: Cell, cfg: TrainConfig, status: str = "queued") -> str:
        return self.store.create_run(cfg.to_dict(), parent=self.sweep["id"], group_id=self.sweep["id"],
                                     label=c.key(), status=status)

    def _tick(self, c: Cell, r: dict, total: int) -> None:
        self.done += 1
        self.store.update_summary(self.sweep["id"], {"progress": {
            "phase": "tuning (validation)" if c.stage == "tune" else "test seeds", "done": self.done,
            "total": total, "unit": "runs", "started": self.started}})
        if self.on_record:
            rec: MemberRecord = {"kind": MEMBER, "cell": c.label(), "stage": c.stage, "run": r["id"],
                                 "status": r["status"], "summary": r["summary"], "done": self.done, "total": total}
            self.on_record(rec)

    def _in_workers(self, plan: SweepPlan, todo: list[Cell], total: int) -> None:
        jm = JobManager(self.store.dir, self.data_dir, max_parallel=self.parallel, backend=self.backend,
                        ray_address=self.ray_address)
        if jm.ray is not None:  # each dataset into Ray's object store once, shared by every task
            for dc in {plan.config(c).data_config() for c in todo}:
                jm.ray.share(dc, load_splits(dc, self.data_dir))
        ids = {jm.submit(plan.config(c).to_dict(), parent=self.sweep["id"], group_id=self.sweep["id"],
                         label=c.key()): c for c in todo}
        jm.wait(list(ids), should_stop=self.stop,
                on_finished=lambda r: self._tick(ids[r["id"]], r, total))


def _sweep(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    """Stage 1 (tune, on validation) when the plan tunes, then the reported stage, then the
    analysis. Ends ``done`` only when every planned cell of the reported stage counted;
    otherwise ``incomplete`` (``failed`` when none did), with the report saying which cells
    are missing."""
    plan = SweepPlan.from_dict(run["config"]["sweep"])
    runner = _SweepRunner(store, run, data_dir, stop, on_record)
    choice = None
    total = plan.n_cells()
    if plan.tune:
        tuned = runner.run(plan, plan.cells("tune"), total)
        if stop():
            return "cancelled", {"stage": "tune", "members": len(tuned)}
        choice = choose(plan, tuned)
        store.add_result(run["id"], "sweep_choice", choice)
        missing = [m for m, c in choice.items() if c["values"] is None]
        if missing:
            raise ValueError(f"No usable tuning run for {', '.join(missing)} (every run failed or was cancelled)")
    cells = plan.cells("test", {m: c["values"] for m, c in (choice or {}).items()})
    test = runner.run(plan, cells, total)
    if stop():
        return "cancelled", {"stage": "test", "members": len(test)}
    cov = coverage(cells, test)
    counted = [(c, r) for c, r in test if r["status"] in COUNTED]
    status = "done" if not cov["missing"] else ("incomplete" if counted else "failed")
    summary: SweepSummary = {"coverage": cov, "members": total}
    if not counted:
        return status, summary
    if all(r["status"] == "diverged" for _, r in counted):  # chance accuracy everywhere: nothing to compare
        return "diverged", {**summary, "note": f"no verdict: every run diverged ({len(counted)} runs)"}
    report = {**analyse(plan, test, store.epoch_records(*[r["id"] for _, r in test]), choice), "coverage": cov}
    if cov["missing"]:
        report["note"] = "; ".join(filter(None, [report["note"], (
            f"{len(cov['missing'])} of {cov['planned']} planned cells did not count (see coverage): every figure "
            "rests on fewer seeds than planned")]))
    store.add_result(run["id"], "sweep", report)
    return status, {**summary, "claims": report["claims"], "setting": report["setting"], "note": report["note"],
                    "synthetic": report["setting"]["synthetic"], "data": report["setting"]["data"]}


def _localise(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    """The localisation benchmark on the parent run's model: errors of its validation split
    (test when it has none); the result is stored on the parent and on the job."""
    opts = run["config"].get("localise", {})
    model, splits, loaders = load_trained(store, run["parent"], data_dir)
    split = "val" if "val" in loaders else "test"
    severities = {f: tuple(v) for f, v in opts.get("severities", QUICK_SEVERITIES).items()}
    started = time.time()

    def on_case(c: dict) -> None:
        store.update_summary(run["id"], {"progress": {"phase": "damaging and scoring", "done": c["done"],
                                                      "total": c["total"], "unit": "cases", "started": started}})
        if on_record:
            on_record({"kind": CASE, **c})

    result = localisation_benchmark(model, loaders[split], loaders["train"], tuple(opts.get("scores") or SCORES),
                                    severities, tuple(opts.get("seeds", (0,))), probe_steps=opts.get("probe_steps", 20),
                                    on_case=on_case, should_stop=stop)
    parent = store.get_run(run["parent"])
    result.update({"run_id": run["parent"], "split": split, "model": parent["config"].get("model"),
                   "width": train_config_of(parent).get("width")})
    store.add_result(run["parent"], "localisation", result)
    store.add_result(run["id"], "localisation", result)
    if result["stopped"]:
        return "cancelled", {"n_cases": result["n_cases"]}
    return "done", {"best": result["best"], "n_cases": result["n_cases"],
                    "top1": {s: v["top1"]["rate"] for s, v in result["scores"].items()}}


# What a job does from its start until it reports more (a page shows it instead of a bare "running").
FIRST_PHASE = {"train": "decoding the data and building the model", "surgery": "loading the model and the data",
               "attribution": "loading the model, then scoring each group on the errors (gradients, probe)",
               "localise": "loading the model and the data", "sweep": "planning"}

JOB_BODIES = {"train": _train, "surgery": _surgery, "attribution": _attribution, "sweep": _sweep,
              "localise": _localise}
JOB_KINDS = tuple(JOB_BODIES)


def execute_run(store: Store, run_id: str, data_dir: str = "data",
                on_record: Callable[[dict], None] | None = None, splits=None,
                handle_signals: bool = False, should_stop: Callable[[], bool] | None = None) -> dict:
    """Run a queued job in this process and record its outcome; returns the finished run.

    Cancellation: the store's cancel flag, ``should_stop()``, and with ``handle_signals``
    SIGTERM/SIGINT. Any exception marks the run ``failed`` with its message; the store and
    other runs are left as they were. If even that cannot be written (a full disk), raises
    :class:`StoreError` with the run's cause in one line.
    """
    run = store.get_run(run_id)
    if run["status"] != "queued":
        raise StoreError(f"Run {run_id} is {run['status']} (expected a queued run)")
    store.claim(run_id)
    started = time.time()
    store.update_summary(run_id, {"progress": {"phase": FIRST_PHASE.get(run["kind"], "starting"), "started": started}})
    stop = StopFlag(store, run_id, also=should_stop)
    threads = torch.get_num_threads()  # a run sets its own (config.threads); the process keeps its own
    if handle_signals:
        signal.signal(signal.SIGTERM, stop.on_signal)
        signal.signal(signal.SIGINT, stop.on_signal)
    try:
        body = JOB_BODIES.get(run["kind"])
        if body is None:
            raise ValueError(f"Unknown job kind: {run['kind']!r} (expected one of {JOB_KINDS})")
        status, summary = body(store, run, data_dir, stop, on_record, splits)
        # how long the job took here: the time left of the next one like it (records.progress_of)
        store.finish(run_id, status, {**summary, "job_seconds": round(time.time() - started, 2)})
    except Exception as e:  # noqa: BLE001 - the run fails, the caller decides what to show
        cause = str(e) if isinstance(e, (StoreError, ValueError)) else f"{type(e).__name__}: {e}"
        try:
            store.finish(run_id, "failed", error=cause)
        except StoreError as e2:
            raise StoreError(f"Run {run_id} failed ({cause}); recording that failed too, so the store will show "
                             f"it as interrupted: {e2}") from None
    finally:
        torch.set_num_threads(threads)
    return store.get_run(run_id)


class JobManager:
    """Starts queued jobs on at most ``max_parallel`` warm worker processes (backend ``local``),
    or, with backend ``ray``, training runs as Ray tasks placed by Ray (other job kinds still run
    on local workers). Connecting to Ray happens here, before any run exists: an unreachable
    cluster is one error.

    Warm workers: a worker imports torch once and keeps the datasets it decoded in memory; it
    reads run ids from its stdin, one run at a time, and ends at end of input (this manager
    gone) or when the manager closes it after ``idle_seconds`` without work. ``procs`` maps a
    running job to its worker. Crash isolation is the process: a run that kills its worker
    (segfault, OOM, ``os._exit``) reads ``interrupted`` (its owner is dead), the worker is
    replaced, and the next run starts on a fresh one. Cancel stops the run through the store
    flag and SIGTERM; the worker then ends (and is replaced when there is more to run)."""

    def __init__(self, runs_dir: str | os.PathLike, data_dir: str = "data", max_parallel: int = 1,
                 poll: float = 0.2, backend: str = "local", ray_address: str | None = None,
                 ray_threads: int | None = None, idle_seconds: float = 60.0) -> None:
        if not isinstance(max_parallel, int) or max_parallel < 1:
            raise ValueError(f"Invalid max_parallel: {max_parallel!r} (expected an integer >= 1)")
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend: {backend!r} (expected one of {BACKENDS})")
        self.store = Store(runs_dir)
        self.runs_dir, self.data_dir = str(Path(runs_dir).resolve()), data_dir
        self.max_parallel, self.poll = max_parallel, poll
        self.procs: dict[str, subprocess.Popen] = {}     # running job -> its worker
        self.idle: list[tuple[subprocess.Popen, float]] = []  # warm workers without a job, since when
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ray = RayRunner(self.store, data_dir, ray_address, ray_threads) if backend == "ray" else None

    def submit(self, config: dict, kind: str = "train", parent: str | None = None,
               group_id: str | None = None, label: str | None = None) -> str:
        """Queue a job (owned by this process until a worker claims it) and start what fits."""
        if kind not in JOB_KINDS:
            raise ValueError(f"Unknown job kind: {kind!r} (expected one of {JOB_KINDS})")
        if kind == "train" and config.get("threads") is None:  # the run's numbers must not depend on where it runs
            config = {**config, "threads": (self.ray.threads or 1) if self.ray is not None
                      else self._threads_per_worker()}
        with self._lock:  # created and handed to Ray at once: the pump never sees it queued
            run_id = self.store.create_run(config, kind=kind, status="queued", parent=parent,
                                           group_id=group_id, label=label)
            if self.ray is not None and kind == "train":
                self.ray.submit(run_id)  # Ray queues and places it: no queue of ours
        self.pump()
        self._ensure_thread()
        return run_id

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, daemon=True, name="beta-jobs")
            self._thread.start()

    def _wait_for_news(self) -> None:
        """Sleep until a worker reports a finished job or dies (its report pipe is readable:
        a line, or end of file), or a tick passes. Local workers report, so the tick is only a
        safety net (idle shutdown, a GPU that had no room): at least a second, as a tick every
        0.2 s on a 2-core machine slowed the training it waited for by ~5% (bench_latency.py).
        Ray tasks do not report: with some in flight, the tick is ``poll``."""
        with self._lock:
            pipes = [r for p in (*self.procs.values(), *(p for p, _ in self.idle))
                     if (r := getattr(p, "report", None)) is not None and not r.closed]
            tick = self.poll if self.ray is not None and self.ray.refs else max(self.poll, 1.0)
        try:
            ready, _, _ = select.select(pipes, [], [], tick)
        except (OSError, ValueError):  # a pipe closed under us: look at the workers now
            return
        for f in ready:
            try:
                if not os.read(f.fileno(), 4096):  # end of file: that worker is gone
                    self._drop_report(f)
            except ValueError:  # closed by pump meanwhile (its worker was reaped): nothing to read
                pass
            except OSError:
                self._drop_report(f)

    def _drop_report(self, f) -> None:
        """A worker's pipe reached end of file (it died): stop listening to it."""
        with self._lock:
            for p in (*self.procs.values(), *(p for p, _ in self.idle)):
                if getattr(p, "report", None) is f:
                    self._close_report(p)
        f.close()

    def _loop(self) -> None:
        while True:
            self._wait_for_news()
            try:
                if not self.pump() and not self.procs and not self.idle and not (self.ray and self.ray.refs):
                    return  # nothing queued, nothing running: the thread ends, submit restarts it
            except Exception:  # noqa: BLE001 - a transient DB error must not kill the pump
                continue

    def _threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.max_parallel)

    def pump(self) -> int:
        """Reap finished workers and start queued jobs while there is room; returns jobs still queued."""
        with self._lock:
            self.store.reap()
            if self.ray is not None:
                self.ray.pump()
            now = time.monotonic()
            for rid, p in list(self.procs.items()):
                if p.poll() is not None:  # the worker ended (cancelled, crashed, killed): the store says how
                    del self.procs[rid]
                    self._close_report(p)
                elif (status := self.store.get_run(rid)["status"]) not in ACTIVE:
                    del self.procs[rid]
                    if status in REUSED:  # its job finished: the worker waits for the next
                        self.idle.append((p, now))
                    else:  # cancelled or interrupted: that worker is ending or gone; never hand it more
                        self._close(p)
            for p, _ in self.idle:
                if p.poll() is not None:
                    self._close_report(p)
            self.idle = [(p, t) for p, t in self.idle if p.poll() is None]
            for p, t in [(p, t) for p, t in self.idle if now - t > self.idle_seconds]:
                self.idle.remove((p, t))
                self._close(p)
            queued = [r for r in reversed(self.store.runs(status="queued")) if r["pid"] == os.getpid()]
            while queued and len(self.procs) < self.max_parallel and self._gpu_has_room():
                self._start(queued.pop(0)["id"])
            return len(queued)

    @staticmethod
    def _close_report(p: subprocess.Popen) -> None:
        report = getattr(p, "report", None)
        if report is not None:
            report.close()
            p.report = None

    @classmethod
    def _close(cls, p: subprocess.Popen) -> None:
        """End an idle worker: end of input, and it exits (reaped by a thread, not waited on here)."""
        try:
            p.stdin.close()
        except OSError:
            pass
        cls._close_report(p)
        threading.Thread(target=p.wait, daemon=True).start()

    def close(self) -> None:
        """End the idle workers now (running jobs finish first; their workers end with this process)."""
        with self._lock:
            for p, _ in self.idle:
                self._close(p)
            self.idle = []

    def _gpu_has_room(self) -> bool:
        """Several runs share a GPU (BETA_MAX_JOBS), but another starts only while the GPU has
        GPU_FREE_BYTES free: a run that cannot allocate would fail, not wait."""
        if not self.procs or not torch.cuda.is_available():
            return True
        free, _ = torch.cuda.mem_get_info()
        return free >= GPU_FREE_BYTES

    def _spawn(self) -> subprocess.Popen:
        # The worker reports each finished job on its own pipe (BETA_WORKER_FD): the manager wakes
        # at once to hand it the next, instead of finding out on a poll.
        read_end, write_end = os.pipe()
        # Code specs trusted here (zoo.trust) are trusted by the worker: it runs what this process was asked to.
        env = {**os.environ, "BETA_THREADS": str(self._threads_per_worker()), "PYTHONUNBUFFERED": "1",
               "BETA_WORKER_FD": str(write_end), "BETA_MODELS": ",".join(zoo.trusted())}
        cmd = [sys.executable, "-m", "beta_core", "--runs-dir", self.runs_dir, "--data-dir", self.data_dir,
               "worker", "--serve"]
        log = open(Path(self.runs_dir) / "workers.log", "ab")
        try:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.PIPE,
                                 pass_fds=(write_end,))
        finally:
            log.close()
            os.close(write_end)  # the worker holds it: its exit is end of file here
        p.report = os.fdopen(read_end, "rb", buffering=0)
        return p

    def _start(self, run_id: str) -> None:
        """Hand ``run_id`` to a warm idle worker, or to a new one."""
        p = self.idle.pop(0)[0] if self.idle else self._spawn()
        # Ownership goes to the worker first, so the run is never orphaned between hand-over and claim.
        self.store.set_owner(run_id, p.pid)
        try:
            p.stdin.write(f"{run_id}\n".encode())
            p.stdin.flush()
        except OSError:  # the idle worker ended since the last look: a fresh one takes the run
            p = self._spawn()
            self.store.set_owner(run_id, p.pid)
            p.stdin.write(f"{run_id}\n".encode())
            p.stdin.flush()
        self.procs[run_id] = p

    def cancel(self, run_id: str) -> None:
        """Ask a job to stop: the store flag (any process sees it) plus SIGTERM to our worker."""
        self.store.request_cancel(run_id)
        p = self.procs.get(run_id)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
        if self.ray is not None and run_id in self.ray.refs:
            with self._lock:
                self.ray.cancel(run_id)

    def requeue(self, run_ids: list[str]) -> None:
        """Queue again runs that never started (queued when a previous app process stopped)."""
        for rid in run_ids:
            self.store.requeue(rid, os.getpid())
        self.pump()
        self._ensure_thread()

    def active(self) -> list[dict]:
        """Queued and running jobs of this store, oldest first."""
        return list(reversed(self.store.runs(status=ACTIVE)))

    def wait(self, run_ids: list[str], timeout: float | None = None, on_tick: Callable[[], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             on_finished: Callable[[dict], None] | None = None) -> list[dict]:
        """Block until every run in ``run_ids`` has left queued/running; returns them.

        ``should_stop()`` true cancels every run still active (queued ones never start,
        workers get SIGTERM) and goes on waiting for them to end; ``on_finished(run)`` is
        called once per run as it ends."""
        end = None if timeout is None else time.monotonic() + timeout
        left, cancelled = list(run_ids), False
        while True:
            self.pump()
            if should_stop is not None and not cancelled and should_stop():
                cancelled = True
                for rid in left:
                    self.cancel(rid)
            for r in [self.store.get_run(rid) for rid in left]:
                if r["status"] not in ACTIVE:
                    left.remove(r["id"])
                    if on_finished:
                        on_finished(r)
            if on_tick:
                on_tick()
            if not left:
                return [self.store.get_run(r) for r in run_ids]
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"Runs still active after {timeout} s: {left}")
            time.sleep(self.poll)
