"""The job bodies and the one execution path: :func:`execute_run` runs a queued job in this
process, and every launcher comes here (the CLI in-process, a warm worker, a Ray task through
``engine.Training``), so the same config and seed give the same numbers wherever it runs.

A job is a run in the store (kind ``train``, ``surgery``, ``attribution``, ``sweep`` or
``localise``); :data:`JOB_BODIES` maps each kind to the function that computes it from the
stored config and writes its records and results."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import torch

from ..attribution import SCORES, AttributionConfig, attribute, error_gallery
from ..attribution import STAGES as ATTRIBUTION_STAGES
from ..config import TrainConfig, config_fields
from ..data import Splits, eval_loaders, load_splits
from ..engine import Training, WeightsMismatch, prepare
from ..env import settings
from ..importer import KIND as KIND_IMPORTED
from ..importer import no_weights
from ..jobs import DATA_PHASE, FIRST_PHASE, JOB_KINDS
from ..localise import QUICK_SEVERITIES, localisation_benchmark
from ..mirror import open_mirror
from ..queries import latest_members
from ..records import ACTIVE, CASE, MEMBER, SYSTEM, MemberRecord, SweepReport, SweepSummary, train_config_of
from ..store import MetricWriter, Store, StoreError
from ..surgery import SurgeryConfig, run_surgery
from ..sweeps import COUNTED, RESUMED, Cell, SweepPlan, analyse, choose, coverage
from ..sysmon import Sampler
from .manager import JobManager

__all__ = ["execute_run", "JOB_BODIES", "StopFlag", "DataCache", "Cancelled", "external_config", "load_trained",
           "attribute_run"]


class Cancelled(Exception):
    """A job stopped where it had nothing to record yet (its data's first decode, an
    attribution's stages); the message says where."""


class DataCache:
    """Decoded datasets kept between jobs of one process (a warm worker, a sweep in this
    process): the ``keep`` most recently used. A first decode shows on the run that asked for
    it ("preparing data: 12,000/60,000 images") and stops at its cancel."""

    def __init__(self, keep: int = 2) -> None:
        self.keep, self.sets = keep, {}

    def get(self, dc, data_dir: str, on_progress=None) -> Splits:
        if dc not in self.sets:
            self.sets = dict(list(self.sets.items())[len(self.sets) - self.keep + 1:] if self.keep > 1 else [])
            self.sets[dc] = load_splits(dc, data_dir, on_progress)
        return self.sets[dc]


def _splits_for(store: Store, run_id: str, dc, data_dir: str, stop, splits) -> Splits:
    """The run's data: ``splits`` when the caller loaded them, else through ``splits`` (a
    :class:`DataCache`) or a fresh load, reporting the decode on the run twice a second at most."""
    if isinstance(splits, Splits):
        return splits
    started, last = time.time(), [0.0]

    def report(done: int, total: int | None) -> None:
        if stop():
            raise Cancelled("while preparing its data")
        if time.monotonic() - last[0] >= 0.5 or done == total:
            last[0] = time.monotonic()
            store.update_summary(run_id, {"progress": {"phase": DATA_PHASE, "done": done, "total": total,
                                                       "unit": "images", "started": started}})
    return (splits or DataCache(keep=1)).get(dc, data_dir, report)


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
    cfg = TrainConfig.from_dict(run["config"])
    splits = _splits_for(store, run["id"], cfg.data, data_dir, stop, splits)
    training = Training(cfg, data_dir, splits=splits, should_stop=stop)
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
    splits = _splits_for(store, run["id"], parent_cfg.data, data_dir, stop, splits)
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


def attribute_run(store: Store, run_id: str, cfg: AttributionConfig, data_dir: str = "data",
                  on_progress=None) -> dict:
    """Attribute a finished run's model and store the result on it (the CLI's ``attribute`` and
    the attribution job both come here); ``on_progress``: see ``attribution.attribute``. The
    result keeps how long it took here (``seconds``): the next attribution's estimate."""
    started = time.time()
    model, splits, loaders = load_trained(store, run_id, data_dir)
    loader = loaders["test" if cfg.split == "test" else "train_eval"]
    result = attribute(model, loader, cfg, splits.classes, train_loader=loaders["train"], on_progress=on_progress)
    result["run_id"] = run_id
    result["gallery"] = error_gallery(model, loader, max_samples=cfg.max_samples)
    result["seconds"] = round(time.time() - started, 2)
    store.add_result(run_id, "attribution", result)
    return result


def _attribution(store: Store, run: dict, data_dir: str, stop: StopFlag, on_record, splits) -> tuple[str, dict]:
    """Attribute the parent run's model; the result is stored on the parent and on the job."""
    started, since = time.time(), {}

    def progress(stage: str, done: int, total: int | None, unit: str) -> None:
        if stop():  # between batches, classes and groups: a cancel ends the job there
            raise Cancelled(f"during {stage[4:]}")
        if stage != ATTRIBUTION_STAGES[-1]:  # short stages: counts in words; the time left is the job's (timeleft)
            p = {"phase": f"{stage} ({done:,}/{total:,} {unit})" if total else stage, "started": started}
        else:  # the probe, the long part and the last: its own rate says what is left
            p = {"phase": stage, "done": done, "total": total, "unit": unit,
                 "started": since.setdefault(stage, time.time())}
        store.update_summary(run["id"], {"progress": p})

    result = attribute_run(store, run["parent"], AttributionConfig(**run["config"].get("attribution", {})), data_dir,
                           progress)
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
        self.data = DataCache()
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
                r = execute_run(self.store, rid, self.data_dir, splits=self.data, should_stop=self.stop)
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
            for dc in {plan.config(c).data for c in todo}:
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
    report: SweepReport = {**analyse(plan, test, store.epoch_records(*[r["id"] for _, r in test]), choice),
                           "coverage": cov}
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


JOB_BODIES = {"train": _train, "surgery": _surgery, "attribution": _attribution, "sweep": _sweep,
              "localise": _localise}
assert tuple(JOB_BODIES) == JOB_KINDS


def execute_run(store: Store, run_id: str, data_dir: str = "data",
                on_record: Callable[[dict], None] | None = None, splits: Splits | DataCache | None = None,
                handle_signals: bool = False, should_stop: Callable[[], bool] | None = None) -> dict:
    """Run a queued job in this process and record its outcome; returns the finished run.

    Cancellation: the store's cancel flag, ``should_stop()``, and with ``handle_signals``
    SIGTERM/SIGINT (also while the data decodes). ``splits``: the data, already loaded, or a
    :class:`DataCache` to load it through (kept between the jobs of a warm worker or a sweep).
    Any exception marks the run ``failed`` with its message; the store and other runs are left
    as they were. If even that cannot be written (a full disk), raises
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
            raise ValueError(f"Unknown job kind: {run['kind']!r} (expected one of {', '.join(JOB_KINDS)})")
        try:
            status, summary = body(store, run, data_dir, stop, on_record, splits)
        except Cancelled as e:
            status, summary = "cancelled", {"note": f"cancelled {e}"}
        # how long the job took here: the time left of the next one like it (timeleft.progress_of)
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


