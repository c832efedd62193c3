"""What every part of the run store shares: its error, run ids, process ownership, and one
SQLite connection per transaction (the parts: ``lifecycle``, ``metrics``, ``checkpoints``,
``transfer``; ``store.Store`` joins them)."""
from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

__all__ = ["StoreError", "validate_run_id", "is_run_id", "proc_start", "alive", "connect", "CORRUPT"]

CORRUPT = re.compile(r"not a database|malformed|corrupt", re.I)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class StoreError(RuntimeError):
    """The store could not do what was asked (unknown run, disk full, refused delete)."""


def is_run_id(text) -> bool:
    """Whether ``text`` can be a run id: letters, digits, '.', '_' and '-', no path traversal."""
    return isinstance(text, str) and bool(_RUN_ID.match(text)) and ".." not in text


def validate_run_id(run_id: str) -> str:
    """Run ids name folders: letters, digits, '.', '_' and '-' only, no path traversal."""
    if not is_run_id(run_id):
        raise ValueError(f"Invalid run id: {run_id!r} (expected letters, digits, '.', '_', '-'; "
                         "no '/' or '..'; at most 100 characters)")
    return run_id


def proc_start(pid: int) -> str | None:
    """Start time of ``pid`` (Linux /proc), to tell a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    return None if rest[0] in ("Z", "X") else rest[19]  # zombies are dead for our purposes


def alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = proc_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@contextmanager
def connect(folder: Path, read_only: bool = False):
    """One transaction on the store's database (commit on success, roll back on error); every
    SQLite error becomes a :class:`StoreError` naming the store."""
    try:
        if read_only:  # immutable: no -wal/-shm files, which a read-only folder cannot hold
            db = sqlite3.connect(f"file:{folder / 'runs.db'}?immutable=1", uri=True, timeout=30)
        else:
            db = sqlite3.connect(folder / "runs.db", timeout=30)
    except sqlite3.Error as e:
        raise StoreError(f"Cannot open the run store {str(folder)!r}: {e}") from e
    db.row_factory = sqlite3.Row
    try:
        if not read_only:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        with db:  # one transaction: commit on success, roll back on error
            yield db
    except sqlite3.DatabaseError as e:
        if CORRUPT.search(str(e)):
            raise StoreError(f"The run store {str(folder / 'runs.db')!r} is corrupt ({e}): expected an SQLite "
                             "database; move it aside to start a new store, or restore a copy") from e
        what = "it is read-only here" if read_only else e
        raise StoreError(f"The run store {str(folder)!r} could not be updated: {what} "
                         "(expected a writable folder with free space)") from e
    finally:
        db.close()
