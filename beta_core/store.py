"""Runs on disk: an SQLite index with metrics, and checkpoint files. ``Store`` is the facade:
its lifecycle (``lifecycle``: the only code that writes a status), records (``metrics``),
weights (``checkpoints``), whole runs between stores (``transfer``) and tags, notes and names
(``annotations``) live in their own modules; here are the database, its schema and the queries that list runs.

Layout under the runs directory (``runs/`` by default, ``BETA_RUNS_DIR`` or ``--runs-dir``)::

    runs.db              SQLite (WAL): runs, step and epoch metrics, results
    <run id>/final.pt    final weights (state_dict), loaded with weights_only=True
    <run id>/config.json the resolved config, also in the database

WAL mode lets several training processes write while the dashboard reads. A run that
claims to be queued or running but whose owning process is gone reads as
``interrupted``, so a killed process never leaves a run "running" forever.
"""
from __future__ import annotations

import os
from pathlib import Path

from .annotations import Annotations
from .checkpoints import Checkpoints
from .env import settings
from .lifecycle import Lifecycle
from .metrics import Metrics, MetricWriter
from .records import ACTIVE, EPOCH_FIELDS, STEP_FIELDS
from .storebase import CORRUPT, StoreError, connect, is_run_id, validate_run_id
from .transfer import Transfer

__all__ = ["Store", "StoreError", "validate_run_id", "is_run_id", "default_runs_dir", "MetricWriter"]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL, updated REAL, status TEXT, kind TEXT, method TEXT,
    model TEXT, dataset TEXT, label TEXT, config TEXT, summary TEXT, parent TEXT, group_id TEXT,
    pid INTEGER, pid_start TEXT, error TEXT, cancel_requested INTEGER DEFAULT 0, tags TEXT, note TEXT,
    name TEXT);
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
    """Columns added since a store was created (val_loss and val_acc: validation splits; a
    run's tags, note and name)."""
    for table, fields, kind in (("steps", STEP_FIELDS, "REAL"), ("epochs", EPOCH_FIELDS, "REAL"),
                                ("runs", ("tags", "note", "name"), "TEXT")):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for f in fields:
            if f not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {f} {kind}")


def default_runs_dir() -> Path:
    return Path(settings().runs_dir)


class Store(Lifecycle, Metrics, Checkpoints, Transfer, Annotations):
    """The run store. Every method opens its own short transaction; safe across processes.

    A store in a folder we cannot write (read-only media, another user's runs) opens
    read-only: listing, showing, exporting and diagnosing work; anything that writes raises
    :class:`StoreError`. Every SQLite error (disk full, locked, corrupt) becomes a StoreError
    with one line naming the store.
    """

    def __init__(self, runs_dir: str | os.PathLike | None = None) -> None:
        self.dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.read_only, self._columns = False, None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.executescript(_SCHEMA)
                _migrate(db)
        except (OSError, StoreError) as e:
            if (self.dir / "runs.db").is_file() and not os.access(self.dir, os.W_OK):
                self.read_only = True
                return
            if isinstance(e, StoreError) and CORRUPT.search(str(e.__cause__ or "")):
                raise
            raise StoreError(f"Cannot open the run store in {str(self.dir)!r}: {e.__cause__ or e} "
                             "(expected a writable folder)") from None

    def _db(self):
        return connect(self.dir, self.read_only)

    @property
    def columns(self) -> frozenset:
        """The runs table's columns (a store opened read-only is not migrated: it may lack the newest)."""
        if self._columns is None:
            with self._db() as db:
                self._columns = frozenset(r[1] for r in db.execute("PRAGMA table_info(runs)"))
        return self._columns

    def reading(self):
        """One transaction for reading, for queries built of whitelisted expressions and bound
        values (``explorer``: filters, sorts and groups in SQL)."""
        return self._db()

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

    def runs_by_id(self, ids: list[str]) -> list[dict]:
        """The runs of ``ids`` that exist, in that order (a link's ids: unknown ones left out)."""
        ids = [i for i in ids if is_run_id(i)]
        with self._db() as db:
            got = {r["id"]: self._reap(db, r) for r in db.execute(
                f"SELECT * FROM runs WHERE id IN ({', '.join('?' * len(ids))})", ids)} if ids else {}
        return [got[i] for i in ids if i in got]

    def count_runs(self, kind: str | tuple | None = None, status: str | tuple | None = None,
                   search: str | None = None) -> int:
        """How many runs :meth:`runs` would list with these filters (stored statuses: a dead
        owner's run still counts as what it was stored as until :meth:`reap` records it)."""
        where, args = self._where(kind, status, None, None, search)
        with self._db() as db:
            return db.execute(f"SELECT COUNT(*) FROM runs{where}", args).fetchone()[0]
