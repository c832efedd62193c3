"""Runs on disk: an SQLite index with metrics, and checkpoint files.

Layout under the runs directory (``runs/`` by default, ``BETA_RUNS_DIR`` or ``--runs-dir``)::

    runs.db              SQLite (WAL): runs, step and epoch metrics, results
    <run id>/final.pt    final weights (state_dict), loaded with weights_only=True
    <run id>/config.json the resolved config, also in the database

WAL mode lets several training processes write while the dashboard reads. A run that
claims to be queued or running but whose owning process is gone reads as
``interrupted``, so a killed process never leaves a run "running" forever.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import shutil
import sqlite3
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .env import settings
from .records import ACTIVE, EPOCH, EPOCH_FIELDS, STATUSES, STEP_FIELDS

__all__ = ["Store", "StoreError", "validate_run_id", "default_runs_dir", "MetricWriter"]

_CORRUPT = re.compile(r"not a database|malformed|corrupt", re.I)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL, updated REAL, status TEXT, kind TEXT, method TEXT,
    model TEXT, dataset TEXT, label TEXT, config TEXT, summary TEXT, parent TEXT, group_id TEXT,
    pid INTEGER, pid_start TEXT, error TEXT, cancel_requested INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS steps (run_id TEXT, {", ".join(f"{f} REAL" for f in STEP_FIELDS)},
    PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS epochs (run_id TEXT,
    {", ".join(f"{f} {'TEXT' if f == 'regime' else 'REAL'}" for f in EPOCH_FIELDS)},
    extra TEXT, PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS results (run_id TEXT, kind TEXT, created REAL, data TEXT);
CREATE INDEX IF NOT EXISTS results_run ON results (run_id, kind);
CREATE INDEX IF NOT EXISTS results_kind ON results (kind);
CREATE INDEX IF NOT EXISTS runs_kind_created ON runs (kind, created, id);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent);
CREATE INDEX IF NOT EXISTS runs_group ON runs (group_id);
"""


def _migrate(db) -> None:
    """Columns added since a store was created (val_loss and val_acc: validation splits)."""
    for table, fields in (("steps", STEP_FIELDS), ("epochs", EPOCH_FIELDS)):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for f in fields:
            if f not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {f} REAL")


class StoreError(RuntimeError):
    """The store could not do what was asked (unknown run, disk full, refused delete)."""


def default_runs_dir() -> Path:
    return Path(settings().runs_dir)


def validate_run_id(run_id: str) -> str:
    """Run ids name folders: letters, digits, '.', '_' and '-' only, no path traversal."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"Invalid run id: {run_id!r} (expected letters, digits, '.', '_', '-'; "
                         "no '/' or '..'; at most 100 characters)")
    return run_id


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` (Linux /proc), to tell a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    return None if rest[0] in ("Z", "X") else rest[19]  # zombies are dead for our purposes


def _alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = _proc_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class Store:
    """The run store. Every method opens its own short transaction; safe across processes.

    A store in a folder we cannot write (read-only media, another user's runs) opens
    read-only: listing, showing, exporting and diagnosing work; anything that writes raises
    :class:`StoreError`. Every SQLite error (disk full, locked, corrupt) becomes a StoreError
    with one line naming the store.
    """

    def __init__(self, runs_dir: str | os.PathLike | None = None) -> None:
        self.dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.read_only = False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.executescript(_SCHEMA)
                _migrate(db)
        except (OSError, StoreError) as e:
            if (self.dir / "runs.db").is_file() and not os.access(self.dir, os.W_OK):
                self.read_only = True
                return
            if isinstance(e, StoreError) and _CORRUPT.search(str(e.__cause__ or "")):
                raise
            raise StoreError(f"Cannot open the run store in {str(self.dir)!r}: {e.__cause__ or e} "
                             "(expected a writable folder)") from None

    @contextmanager
    def _db(self):
        try:
            if self.read_only:  # immutable: no -wal/-shm files, which a read-only folder cannot hold
                db = sqlite3.connect(f"file:{self.dir / 'runs.db'}?immutable=1", uri=True, timeout=30)
            else:
                db = sqlite3.connect(self.dir / "runs.db", timeout=30)
        except sqlite3.Error as e:
            raise StoreError(f"Cannot open the run store {str(self.dir)!r}: {e}") from e
        db.row_factory = sqlite3.Row
        try:
            if not self.read_only:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction: commit on success, roll back on error
                yield db
        except sqlite3.DatabaseError as e:
            if _CORRUPT.search(str(e)):
                raise StoreError(f"The run store {str(self.dir / 'runs.db')!r} is corrupt ({e}): expected an SQLite "
                                 "database; move it aside to start a new store, or restore a copy") from e
            what = "it is read-only here" if self.read_only else e
            raise StoreError(f"The run store {str(self.dir)!r} could not be updated: {what} "
                             "(expected a writable folder with free space)") from e
        finally:
            db.close()

    # ------------------------------------------------------------ runs
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
                            label, json.dumps(config, sort_keys=True), parent, group_id, pid, _proc_start(pid)))
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
        if d["status"] in ACTIVE and not _alive(d["pid"], d["pid_start"]):
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

    @staticmethod
    def _where(kind=None, status=None, parent=None, group_id=None, search=None) -> tuple[str, list]:
        """The SQL filter of :meth:`runs` and :meth:`count_runs` (indexed columns)."""
        where, args = [], []
        if status is not None:
            wanted = {status} if isinstance(status, str) else set(status)
            # A run stored as queued/running whose owner died reads "interrupted": asking for
            # interrupted (or an active status) reads those rows too, and the reading decides.
            stored = wanted | (set(ACTIVE) if wanted & {"interrupted", *ACTIVE} else set())
            where.append(f"status IN ({', '.join('?' * len(stored))})")
            args += sorted(stored)
        for col, val in (("kind", kind), ("parent", parent), ("group_id", group_id)):
            if val is not None:
                vals = (val,) if isinstance(val, str) else tuple(val)
                where.append(f"{col} IN ({', '.join('?' * len(vals))})")
                args += vals
        if search:
            where.append("(id LIKE ? OR method LIKE ? OR model LIKE ? OR label LIKE ?)")
            args += [f"%{search}%"] * 4
        return (f" WHERE {' AND '.join(where)}" if where else ""), args

    def runs(self, kind: str | tuple | None = None, status: str | tuple | None = None,
             parent: str | None = None, group_id: str | None = None, limit: int | None = None,
             offset: int = 0, search: str | None = None) -> list[dict]:
        """Runs, newest first, with dead owners read as ``interrupted``; filtered when asked.

        ``kind`` and ``status`` take one value or a tuple of values; ``search`` matches part of
        the id, method, model or label; ``limit``/``offset`` page the result. Filters run in
        SQL on indexed columns, so a page of the newest runs costs the same at 10,000 runs as
        at 100. Status is checked again after reading, so ``status="running"`` never returns a
        dead run (a page can then hold fewer than ``limit``).
        """
        where, args = self._where(kind, status, parent, group_id, search)
        order = " ORDER BY created DESC, id DESC"
        with self._db() as db:
            if limit is None:
                rows = [self._reap(db, r) for r in db.execute(f"SELECT * FROM runs{where}{order}", args)]
            else:
                # The page's ids first, from the (kind, created, id) index alone; then only their
                # rows (config and summary JSON are most of a row's bytes).
                ids = [r[0] for r in db.execute(f"SELECT id FROM runs{where}{order} LIMIT ? OFFSET ?",
                                                [*args, int(limit), int(offset)])]
                got = {r["id"]: r for r in db.execute(f"SELECT * FROM runs WHERE id IN ({', '.join('?' * len(ids))})",
                                                      ids)} if ids else {}
                rows = [self._reap(db, got[i]) for i in ids if i in got]
        if status is not None:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            rows = [r for r in rows if r["status"] in wanted]
        return rows

    def count_runs(self, kind: str | tuple | None = None, status: str | tuple | None = None,
                   search: str | None = None) -> int:
        """How many runs :meth:`runs` would list with these filters (stored statuses: a dead
        owner's run still counts as what it was stored as until :meth:`reap` records it)."""
        where, args = self._where(kind, status, None, None, search)
        with self._db() as db:
            return db.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0]

    def with_results(self, kind: str) -> set[str]:
        """Ids of the runs that hold at least one result of ``kind`` (one indexed query)."""
        with self._db() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT run_id FROM results WHERE kind = ?", (kind,))}

    def claim(self, run_id: str, pid: int | None = None) -> None:
        """Mark a run running, owned by ``pid`` (this process by default)."""
        pid = pid or os.getpid()
        with self._db() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET status = 'running', pid = ?, pid_start = ?, updated = ? WHERE id = ?",
                       (pid, _proc_start(pid), time.time(), run_id))

    def set_owner(self, run_id: str, pid: int) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET pid = ?, pid_start = ? WHERE id = ?", (pid, _proc_start(pid), run_id))

    def finish(self, run_id: str, status: str, summary: dict | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"Invalid status: {status!r} (expected one of {STATUSES})")
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

    # ------------------------------------------------------------ metrics
    def add_steps(self, run_id: str, records: list[dict]) -> None:
        if records:
            with self._db() as db:
                db.executemany(f"INSERT OR REPLACE INTO steps (run_id, {', '.join(STEP_FIELDS)}) "
                               f"VALUES (?, {', '.join('?' * len(STEP_FIELDS))})",
                               [(run_id, *(r.get(f) for f in STEP_FIELDS)) for r in records])

    def add_epoch(self, run_id: str, rec: dict) -> None:
        extra = {k: v for k, v in rec.items() if k not in EPOCH_FIELDS and k != "kind"}
        with self._db() as db:
            db.execute(f"INSERT OR REPLACE INTO epochs (run_id, {', '.join(EPOCH_FIELDS)}, extra) "
                       f"VALUES (?, {', '.join('?' * len(EPOCH_FIELDS))}, ?)",
                       (run_id, *(rec.get(f) for f in EPOCH_FIELDS), json.dumps(extra)))

    def _frame(self, table: str, fields: tuple, run_ids: list[str], since: int | None = None) -> pd.DataFrame:
        ids = [validate_run_id(r) for r in run_ids]
        if not ids:
            return pd.DataFrame(columns=["run_id", *fields])
        order = fields[0]
        q = f"SELECT * FROM {table} WHERE run_id IN ({', '.join('?' * len(ids))})"
        args = list(ids)
        if since is not None:
            q += f" AND {order} >= ?"
            args.append(since)
        with self._db() as db:
            df = pd.read_sql_query(q + f" ORDER BY run_id, {order}", db, params=args)
        return df.astype({"epoch": "int64", "step": "int64"})  # stored as REAL, counted as integers

    def step_counts(self, *run_ids: str) -> dict[str, int]:
        """Number of step records per run (cheap: no rows are read)."""
        return {i: n for i, (n, _) in self.step_times(*run_ids).items()}

    def step_times(self, *run_ids: str) -> dict[str, tuple[int, float | None]]:
        """Per run: (step records, ``time`` of the newest), one indexed query (no rows read)."""
        ids = [validate_run_id(r) for r in run_ids]
        with self._db() as db:
            rows = db.execute(f"SELECT run_id, COUNT(*) AS n, MAX(time) AS t FROM steps WHERE run_id IN "
                              f"({', '.join('?' * len(ids))}) GROUP BY run_id", ids).fetchall()
        return {**{i: (0, None) for i in ids}, **{r["run_id"]: (r["n"], r["t"]) for r in rows}}

    def steps(self, *run_ids: str, since: int | None = None) -> pd.DataFrame:
        """Step records of one or more runs (columns: run_id + the step schema)."""
        return self._frame("steps", STEP_FIELDS, list(run_ids), since)

    def epochs(self, *run_ids: str) -> pd.DataFrame:
        """Epoch records of one or more runs; ``extra`` holds a dict per epoch (e.g. group scores)."""
        df = self._frame("epochs", EPOCH_FIELDS, list(run_ids))
        df["extra"] = [json.loads(e) if e else {} for e in df.get("extra", [])]
        return df

    def epoch_records(self, *run_ids: str) -> dict[str, list[dict]]:
        """``{run: [epoch record, ...]}`` with each record's extras (``evals``, ...) as fields: what
        time-to-target and verdicts read."""
        eps = self.epochs(*run_ids)
        out: dict[str, list[dict]] = {i: [] for i in run_ids}
        for e in eps.to_dict("records"):
            out[e["run_id"]].append({**e, **e["extra"]})
        return out

    # ------------------------------------------------------------ results and checkpoints
    def add_result(self, run_id: str, kind: str, data: dict) -> None:
        with self._db() as db:
            self._row(db, run_id)
            db.execute("INSERT INTO results VALUES (?, ?, ?, ?)", (run_id, kind, time.time(), json.dumps(data)))

    def results(self, run_id: str, kind: str) -> list[dict]:
        """Stored results of ``kind`` for a run, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT data FROM results WHERE run_id = ? AND kind = ? ORDER BY created",
                              (validate_run_id(run_id), kind)).fetchall()
        return [json.loads(r["data"]) for r in rows]

    def checkpoint_path(self, run_id: str) -> Path:
        return self.dir / validate_run_id(run_id) / "final.pt"

    def save_checkpoint(self, run_id: str, state_dict: dict) -> Path:
        """Write atomically (temp file, then rename): a full disk leaves no half checkpoint.

        Serialised in memory first, so a full disk surfaces as the OS's own "No space left on
        device" rather than a message from torch's zip writer."""
        import torch  # here, not at the top: listing and reading runs never needs torch
        path = self.checkpoint_path(run_id)
        tmp = path.with_suffix(".tmp")
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
        try:
            tmp.write_bytes(buf.getbuffer())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"Cannot write the checkpoint of run {run_id} to {str(path)!r}: {e.strerror or e} "
                             "(expected free space and a writable runs folder)") from None
        return path

    def load_checkpoint(self, run_id: str) -> dict:
        """The run's final weights. Loaded with ``weights_only=True`` always: a checkpoint that
        holds anything but tensors is refused, never executed."""
        import torch  # here, not at the top: listing and reading runs never needs torch
        path = self.checkpoint_path(run_id)
        if not path.exists():
            run = self.get_run(run_id)
            if run["status"] == "done" and run["kind"] in ("train", "surgery"):
                raise StoreError(f"Checkpoint of run {run_id} is missing: {str(path)!r} was deleted or moved "
                                 "(expected the final weights the run wrote when it finished)")
            raise StoreError(f"Run {run_id} has no checkpoint (it is {run['status']}; only training and surgery "
                             "runs that finished have one)")
        why = None
        try:
            with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we say it once
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            why = "it holds objects other than tensors (refused: only weights are loaded)"
        except Exception as e:  # noqa: BLE001 - empty, truncated, random bytes: torch raises many types
            why = f"not a torch weights file ({type(e).__name__})"
        else:
            if not (isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                             for k, v in state.items())):
                why = "it does not hold a state_dict (a mapping of parameter names to tensors)"
        if why:
            raise StoreError(f"Checkpoint of run {run_id} is unreadable: {why} ({str(path)!r})")
        return state

    # ------------------------------------------------------------ moving runs between stores
    _ROW = ("id", "created", "updated", "status", "kind", "method", "model", "dataset", "label", "config", "summary",
            "parent", "group_id", "error")

    def export_run(self, run_id: str) -> dict:
        """A finished run as plain data: its row (config and summary as JSON text, as stored),
        step and epoch records and results; what :meth:`import_run` takes back."""
        with self._db() as db:
            row = self._reap(db, self._row(db, run_id))
            if row["status"] in ACTIVE:
                raise StoreError(f"Run {run_id} is {row['status']} (expected a finished run: wait for it or cancel "
                                 "it first)")
            raw = dict(self._row(db, run_id))
            steps = [dict(r) for r in db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY step", (run_id,))]
            epochs = [dict(r) for r in db.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,))]
            results = [dict(r) for r in db.execute("SELECT kind, created, data FROM results WHERE run_id = ? "
                                                   "ORDER BY created", (run_id,))]
        return {"run": {k: raw[k] for k in self._ROW}, "steps": steps, "epochs": epochs, "results": results}

    _SAME = ("kind", "method", "config", "summary", "status", "parent")  # what makes two rows one run

    def holds(self, row: dict) -> bool:
        """Whether the store already holds the run ``row`` (an :meth:`export_run` row): False when
        the id is free; a StoreError when the id holds a different run (reads the row only)."""
        with self._db() as db:
            have = db.execute("SELECT * FROM runs WHERE id = ?", (validate_run_id(row["id"]),)).fetchone()
        if have is None:
            return False
        if all(have[k] == row[k] for k in self._SAME):
            return True
        raise StoreError(f"Run {row['id']} is already in {str(self.dir)!r} with other contents (expected a new id, "
                         "or the same run: unpack into another store, or delete that run first)")

    def import_run(self, data: dict, checkpoint: bytes | os.PathLike | None = None) -> bool:
        """Add a run exported by :meth:`export_run` with its id kept. Returns False (and writes
        nothing) when the store already holds the same run; a different run under that id is
        a StoreError. One transaction: a failure leaves no half run."""
        row = data["run"]
        run_id = validate_run_id(row["id"])
        if self.holds(row):
            return False
        with self._db() as db:
            db.execute(f"INSERT INTO runs ({', '.join(self._ROW)}, pid) VALUES ({', '.join('?' * len(self._ROW))}, "
                       "NULL)", [row[k] for k in self._ROW])
            for table, allowed in (("steps", STEP_FIELDS), ("epochs", (*EPOCH_FIELDS, "extra"))):
                records = data[table]
                if not records:
                    continue
                cols = [c for c in records[0] if c != "run_id"]
                if any(c not in allowed for c in cols):  # names go into SQL: only the schema's own
                    raise StoreError(f"Run {run_id}: unknown {table} fields {sorted(set(cols) - set(allowed))} "
                                     f"(expected some of {list(allowed)})")
                db.executemany(f"INSERT INTO {table} (run_id, {', '.join(cols)}) VALUES (?, "
                               f"{', '.join('?' * len(cols))})", [(run_id, *(r[c] for c in cols)) for r in records])
            db.executemany("INSERT INTO results VALUES (?, ?, ?, ?)",
                           [(run_id, r["kind"], r["created"], r["data"]) for r in data["results"]])
            folder = self.dir / run_id
            try:  # files last, inside the transaction: a failure here rolls the rows back too
                folder.mkdir(exist_ok=True)
                (folder / "config.json").write_text(json.dumps(json.loads(row["config"]), indent=2, sort_keys=True))
                if isinstance(checkpoint, bytes):
                    (folder / "final.pt").write_bytes(checkpoint)
                elif checkpoint is not None:  # a file already checked (bundles): copied, never held in memory
                    shutil.copyfile(checkpoint, folder / "final.pt")
            except OSError as e:
                shutil.rmtree(folder, ignore_errors=True)
                raise StoreError(f"Cannot write run {run_id} into {str(self.dir)!r}: {e}") from None
        return True

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
                       "pid_start = ?, updated = ? WHERE id = ?", (pid, _proc_start(pid), time.time(), run_id))

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
                       "pid_start = ?, updated = ? WHERE id = ?", (cfg, pid, _proc_start(pid), time.time(), run_id))
        return self.get_run(run_id)

    def never_started(self) -> list[dict]:
        """Interrupted runs with no step recorded: queued when their owner (e.g. the app) stopped."""
        interrupted = self.runs(status="interrupted")
        with self._db() as db:  # one indexed lookup per interrupted run, not a scan of every step
            return [r for r in interrupted
                    if db.execute("SELECT 1 FROM steps WHERE run_id = ? LIMIT 1", (r["id"],)).fetchone() is None]


class MetricWriter:
    """Buffers step records and writes them every ``interval`` seconds (one transaction each);
    an epoch record flushes the steps before it and is written at once. The first step is
    written at once too, so a live chart shows a new run's first point without waiting."""

    def __init__(self, store: Store, run_id: str, interval: float = 0.5) -> None:
        self.store, self.run_id, self.interval = store, run_id, interval
        self.buf: list[dict] = []
        self.last = -math.inf  # the first record goes out at once

    def add(self, rec: dict) -> None:
        if rec["kind"] == EPOCH:  # flush steps first so readers see them in order
            self.flush()
            self.store.add_epoch(self.run_id, rec)
            return
        self.buf.append(rec)
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        self.store.add_steps(self.run_id, self.buf)
        self.buf, self.last = [], time.monotonic()
