"""A run's records in the store: step and epoch metrics, results (attribution, surgery, a
sweep's report), and the buffered writer the training loop feeds."""
from __future__ import annotations

import json
import math
import time

import pandas as pd

from .records import EPOCH, EPOCH_FIELDS, STEP_FIELDS
from .storebase import validate_run_id

__all__ = ["Metrics", "MetricWriter"]


class Metrics:
    """Reading and writing records; mixed into :class:`beta_core.store.Store` (``self._db()``)."""

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

    def step_series(self, run_ids: list[str], field: str, max_points: int = 20_000) -> pd.DataFrame:
        """One step field of many runs for a chart (run_id, step, field): every k-th step, the same
        k for every run, so that at most about ``max_points`` rows are read (k = 1 when they fit)."""
        if field not in STEP_FIELDS:
            raise ValueError(f"Invalid field {field!r} (expected one of {', '.join(STEP_FIELDS)})")
        ids = [validate_run_id(r) for r in run_ids]
        total = sum(n for n, _ in self.step_times(*ids).values()) if ids else 0
        k = max(1, math.ceil(total / max_points))
        with self._db() as db:
            rows = db.execute(f"SELECT run_id, step, {field} FROM steps WHERE run_id IN ({', '.join('?' * len(ids))})"
                              f" AND CAST(step AS INTEGER) % ? = 0 ORDER BY run_id, step", [*ids, k]).fetchall()
        df = pd.DataFrame([tuple(r) for r in rows], columns=["run_id", "step", field])
        return df.astype({"step": "int64", field: "float64"})

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

    def with_results(self, kind: str) -> set[str]:
        """Ids of the runs that hold at least one result of ``kind`` (one indexed query)."""
        with self._db() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT run_id FROM results WHERE kind = ?", (kind,))}


class MetricWriter:
    """Buffers step records and writes them every ``interval`` seconds (one transaction each);
    an epoch record flushes the steps before it and is written at once. The first step is
    written at once too, so a live chart shows a new run's first point without waiting."""

    def __init__(self, store, run_id: str, interval: float = 0.5, mirror=None) -> None:
        self.store, self.run_id, self.interval = store, run_id, interval
        self.mirror = mirror  # a mirror.Mirror: the same records to the user's tracker
        self.buf: list[dict] = []
        self.last = -math.inf  # the first record goes out at once

    def add(self, rec: dict) -> None:
        if self.mirror is not None:
            self.mirror.write(rec)
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
        if self.mirror is not None:
            self.mirror.flush()

    def close(self, status: str = "done") -> None:
        """The last records out, and the mirror's run ended with ``status``."""
        self.flush()
        if self.mirror is not None:
            self.mirror.close(status)
