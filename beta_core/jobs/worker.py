"""The warm worker: one process that runs the jobs a :class:`manager.JobManager` hands it, one at a time.

The manager starts ``python -m beta_core worker --serve`` and writes run ids to its stdin; the
worker imports torch once, keeps the two most recently decoded datasets in memory, runs each job
through ``bodies.execute_run`` (the one execution path: in-process runs and Ray tasks give the same
numbers, ``config.threads``), and reports each finished job on the manager's pipe
(``BETA_WORKER_FD``), which hands over the next at once. It ends at end of input, on a cancel
(``should_stop``), or within seconds of its manager's death (:func:`end_with_parent`).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

from ..store import Store, StoreError
from .bodies import DataCache, execute_run

__all__ = ["serve", "end_with_parent"]


def end_with_parent(parent: int, grace: float = 1.5) -> None:
    """A warm worker whose manager died (kill -9: no end of input while a run trains) stops within
    seconds: its run is cancelled (SIGTERM, as a cancel), and if it has not ended ``grace`` s later
    (a dataset still decoding), the process exits and the run reads interrupted. Either way a
    resumed sweep runs that cell again; no orphan goes on training into it. (Not the Linux
    parent-death signal: it fires when the *thread* that started the child ends.)"""
    while os.getppid() == parent:
        time.sleep(0.2)  # with the grace below, gone well inside the 5 s a loaded 2-core machine allows
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(1)


def serve(store: Store, data_dir: str, lines: Iterable[str], should_stop: Callable[[], bool],
          log: Callable[[str], None], report_fd: int | None = None) -> bool:
    """Run each run id of ``lines`` in turn; returns True when stopped by ``should_stop`` (the
    worker then ends and the manager starts another), False at end of input."""
    threading.Thread(target=end_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    report = os.fdopen(report_fd, "w", buffering=1) if report_fd is not None else None
    cache = DataCache(keep=2)  # decoded inside the run, which shows it: "preparing data: n/N images"
    for line in lines:
        rid = line.strip()
        if not rid:
            continue
        log(f"worker {os.getpid()}: {rid}")
        try:
            execute_run(store, rid, data_dir, splits=cache, should_stop=should_stop)
        except StoreError as e:  # a run deleted or taken meanwhile: nothing of it to record
            log(f"worker {os.getpid()}: {rid}: {e}")
        if report is not None:
            try:
                report.write(f"{rid}\n")
            except OSError:  # the manager is gone: this worker's stdin ends too
                report = None
        if should_stop():
            return True
    return False
