"""Moving runs between stores: a finished run as plain data (``export_run``) and back
(``import_run``, ids kept, the same run twice adds nothing). Bundles (``bundles``) check what
arrives before it gets here."""
from __future__ import annotations

import json
import os
import shutil

from .records import ACTIVE, EPOCH_FIELDS, STEP_FIELDS
from .storebase import StoreError, validate_run_id

__all__ = ["Transfer"]


class Transfer:
    """Export and import of whole runs; mixed into :class:`beta_core.store.Store` (``self._db()``)."""

    _ROW = ("id", "created", "updated", "status", "kind", "method", "model", "dataset", "label", "config", "summary",
            "parent", "group_id", "error", "tags", "note", "name")

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
                       "NULL)", [row.get(k) for k in self._ROW])  # tags, note, name: not in older bundles
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
