"""A run's lifecycle in the store: created, claimed, finished, cancelled, reaped, requeued,
reopened, deleted. The only code that writes a run's status (``transfer`` copies rows as
they were)."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import uuid

from .records import ACTIVE, STATUSES
from .storebase import StoreError, alive, proc_start, validate_run_id

__all__ = ["Lifecycle"]


class Lifecycle:
    """Status changes of runs; mixed into :class:`beta_core.store.Store` (``self._db()``)."""

    def create_run(self, config: dict, *, kind: str = "train", status: str = "queued",
                   parent: str | None = None, group_id: str | None = None, label: str | None = None,
                   pid: int | None = None) -> str:
        """Register a run and write its config; returns the new run id."""
        method = config.get("method", kind)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9-]', '', method)[:20]}-{uuid.uuid4().hex[:6]}"
        now = time.time()
        pid = pid or os.getpid()
        try:
            (self.dir / run_id).mkdir()
            (self.dir / run_id / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        except OSError as e:
            shutil.rmtree(self.dir / run_id, ignore_errors=True)
            raise StoreError(f"Cannot create run folder in {str(self.dir)!r}: {e}") from e
        try:
            with self._db() as db:
                db.execute("INSERT INTO runs (id, created, updated, status, kind, method, model, dataset, label, "
                           "config, parent, group_id, pid, pid_start) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (run_id, now, now, status, kind, method, config.get("model"), config.get("dataset"),
                            label, json.dumps(config, sort_keys=True), parent, group_id, pid, proc_start(pid)))
        except StoreError:
            shutil.rmtree(self.dir / run_id, ignore_errors=True)  # no folder without its row
            raise
        return run_id

    def _row(self, db, run_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM runs WHERE id = ?", (validate_run_id(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"Unknown run: {run_id!r} (see `python -m beta_core runs list`)")
        return row

    def _reap(self, db, row: sqlite3.Row) -> dict:
        """A row as a run dict. A queued or running run whose owner is gone reads ``interrupted``
        (with the accuracy of the epochs it finished); reading never writes: :meth:`reap`
        records it."""
        d = dict(row)
        d["config"] = json.loads(d["config"]) if d["config"] else {}
        d["summary"] = json.loads(d["summary"]) if d["summary"] else {}
        if d["status"] in ACTIVE and not alive(d["pid"], d["pid_start"]):
            d["status"] = "interrupted"
            n = db.execute("SELECT COUNT(*) FROM steps WHERE run_id = ?", (d["id"],)).fetchone()[0]
            d["error"] = d["error"] or ("the process that owned this run exited before it started" if not n else
                                        f"the process that owned this run exited after {n:,} step"
                                        f"{'s' if n != 1 else ''}, without finishing it")
            d["summary"].update(self._accuracy_so_far(db, d["id"]))
        return d

    def reap(self) -> list[str]:
        """Record as ``interrupted`` every queued or running run whose owning process is gone;
        returns their ids. Called by the job manager's pump and when the CLI or the app opens
        the store, so the file itself says what readers already see."""
        if self.read_only:
            return []
        with self._db() as db:
            rows = [self._reap(db, r) for r in db.execute("SELECT * FROM runs WHERE status IN (?, ?)", ACTIVE)]
            dead = [d for d in rows if d["status"] == "interrupted"]
            for d in dead:
                db.execute("UPDATE runs SET status = ?, error = ?, summary = ?, updated = ? WHERE id = ? "
                           "AND status IN (?, ?)", (d["status"], d["error"], json.dumps(d["summary"]),
                                                    time.time(), d["id"], *ACTIVE))
        return [d["id"] for d in dead]

    @staticmethod
    def _accuracy_so_far(db, run_id: str) -> dict:
        """Final and best test accuracy of the epochs a run completed (an interrupted run keeps them)."""
        rows = db.execute("SELECT test_acc FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        accs = [r["test_acc"] for r in rows]
        return {"final_test_acc": accs[-1], "best_test_acc": max(accs), "epochs_completed": len(accs)} if accs else {}

    def accuracy_so_far(self, run_id: str) -> dict:
        """Final and best test accuracy of the epochs a run completed, and how many."""
        with self._db() as db:
            return self._accuracy_so_far(db, validate_run_id(run_id))

    def get_run(self, run_id: str) -> dict:
        with self._db() as db:
            return self._reap(db, self._row(db, run_id))

    def claim(self, run_id: str, pid: int | None = None) -> None:
        """Mark a run running, owned by ``pid`` (this process by default)."""
        pid = pid or os.getpid()
        with self._db() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET status = 'running', pid = ?, pid_start = ?, updated = ? WHERE id = ?",
                       (pid, proc_start(pid), time.time(), run_id))

    def set_owner(self, run_id: str, pid: int) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET pid = ?, pid_start = ? WHERE id = ?", (pid, proc_start(pid), run_id))

    def finish(self, run_id: str, status: str, summary: dict | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"Invalid status: {status!r} (expected one of {', '.join(STATUSES)})")
        with self._db() as db:
            db.execute("UPDATE runs SET status = ?, summary = COALESCE(?, summary), error = ?, updated = ? "
                       "WHERE id = ?", (status, json.dumps(summary) if summary is not None else None, error,
                                        time.time(), validate_run_id(run_id)))

    def update_summary(self, run_id: str, values: dict) -> None:
        """Merge ``values`` into a run's summary (e.g. the step count once it is known)."""
        with self._db() as db:
            row = self._row(db, run_id)
            summary = {**(json.loads(row["summary"]) if row["summary"] else {}), **values}
            db.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(summary), run_id))

    def request_cancel(self, run_id: str) -> None:
        with self._db() as db:
            row = self._reap(db, self._row(db, run_id))
            if row["status"] == "queued":
                db.execute("UPDATE runs SET status = 'cancelled', cancel_requested = 1, updated = ? WHERE id = ?",
                           (time.time(), run_id))
            else:
                db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        with self._db() as db:
            return bool(self._row(db, run_id)["cancel_requested"])

    def delete(self, run_id: str) -> int:
        """Delete a finished run and its files; a sweep goes with its member runs. Returns how
        many runs were deleted. Refused for a queued or running run (cancel it first), a sweep
        with an active member, and a member of a sweep that is running."""
        with self._db() as db:
            row = self._reap(db, self._row(db, run_id))
            if row["status"] in ACTIVE:
                raise StoreError(f"Run {run_id} is {row['status']}: cancel it before deleting it")
            if row["parent"] and row["group_id"] == row["parent"]:  # a sweep member
                sweep = db.execute("SELECT * FROM runs WHERE id = ?", (row["parent"],)).fetchone()
                if sweep is not None and self._reap(db, sweep)["status"] in ACTIVE:
                    raise StoreError(f"Run {run_id} is a member of sweep {row['parent']}, which is running: cancel "
                                     "the sweep before deleting its runs")
            ids = [run_id]
            if row["kind"] == "sweep":
                members = [self._reap(db, r) for r in db.execute("SELECT * FROM runs WHERE parent = ?", (run_id,))]
                busy = [m["id"] for m in members if m["status"] in ACTIVE]
                if busy:
                    raise StoreError(f"Sweep {run_id} has {len(busy)} active member runs (e.g. {busy[0]}): cancel "
                                     "the sweep before deleting it")
                ids += [m["id"] for m in members]
            for rid in ids:
                for table in ("steps", "epochs", "results"):
                    db.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
                db.execute("DELETE FROM runs WHERE id = ?", (rid,))
        for rid in ids:
            shutil.rmtree(self.dir / rid, ignore_errors=True)
        return len(ids)

    def requeue(self, run_id: str, pid: int | None = None) -> None:
        """Put an interrupted run that never started back in the queue, owned by ``pid``."""
        pid = pid or os.getpid()
        with self._db() as db:
            row = self._reap(db, self._row(db, run_id))
            n = db.execute("SELECT COUNT(*) FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
            if row["status"] != "interrupted" or n:
                raise StoreError(f"Run {run_id} is {row['status']}"
                                 + (f" with {n} steps recorded" if n else "")
                                 + " (expected an interrupted run that never started)")
            db.execute("UPDATE runs SET status = 'queued', error = NULL, cancel_requested = 0, pid = ?, "
                       "pid_start = ?, updated = ? WHERE id = ?", (pid, proc_start(pid), time.time(), run_id))

    def reopen(self, run_id: str, config: dict | None = None, pid: int | None = None) -> dict:
        """Queue a finished job again, owned by ``pid`` (this process by default; ``sweep
        --resume``); ``config`` replaces its stored config (e.g. new options).

        Atomic: one write transaction checks that no live process owns the job and makes
        ``pid`` its owner, so of two resumes started at the same instant exactly one wins; the
        other gets a :class:`StoreError` naming the process that runs it."""
        pid = pid or os.getpid()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading: check-and-set is one step
            row = self._reap(db, self._row(db, run_id))
            if row["status"] in ACTIVE:
                raise StoreError(f"{row['kind']} {run_id} is being run by process {row['pid']} "
                                 f"(it is {row['status']}; wait for it, or cancel it first)")
            cfg = json.dumps(config if config is not None else row["config"], sort_keys=True)
            db.execute("UPDATE runs SET status = 'queued', error = NULL, cancel_requested = 0, config = ?, pid = ?, "
                       "pid_start = ?, updated = ? WHERE id = ?", (cfg, pid, proc_start(pid), time.time(), run_id))
        return self.get_run(run_id)

    def never_started(self) -> list[dict]:
        """Interrupted runs with no step recorded: queued when their owner (e.g. the app) stopped."""
        interrupted = self.runs(status="interrupted")
        with self._db() as db:  # one indexed lookup per interrupted run, not a scan of every step
            return [r for r in interrupted
                    if db.execute("SELECT 1 FROM steps WHERE run_id = ? LIMIT 1", (r["id"],)).fetchone() is None]
