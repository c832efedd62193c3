"""The manager: queued jobs start on at most N warm worker processes of this machine (or, with
backend ``ray``, training runs as Ray tasks). It never computes: the job's state lives in the
store, so a browser refresh, a second tab, a restarted app or the CLI all see the same thing,
and a job's numbers are those of :func:`bodies.execute_run` wherever it runs."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import zoo
from ..jobs import BACKENDS, JOB_KINDS
from ..records import ACTIVE
from ..store import Store

__all__ = ["JobManager", "REUSED", "GPU_FREE_BYTES"]

# A warm worker takes another job only after one that ended this way: a cancel (SIGTERM) ends the
# worker after its run, and an interrupted run's worker is dying or dead.
REUSED = ("done", "failed", "diverged")
GPU_FREE_BYTES = 2 * 2 ** 30  # free GPU memory needed before another local worker starts


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
            raise ValueError(f"Unknown backend: {backend!r} (expected one of {', '.join(BACKENDS)})")
        self.store = Store(runs_dir)
        self.runs_dir, self.data_dir = str(Path(runs_dir).resolve()), data_dir
        self.max_parallel, self.poll = max_parallel, poll
        self.procs: dict[str, subprocess.Popen] = {}     # running job -> its worker
        self.idle: list[tuple[subprocess.Popen, float]] = []  # warm workers without a job, since when
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ray = None
        if backend == "ray":  # the Ray task trains (torch); a manager of local workers never imports it
            from .ray_backend import RayRunner
            self.ray = RayRunner(self.store, data_dir, ray_address, ray_threads)

    def submit(self, config: dict, kind: str = "train", parent: str | None = None,
               group_id: str | None = None, label: str | None = None) -> str:
        """Queue a job (owned by this process until a worker claims it) and start what fits."""
        if kind not in JOB_KINDS:
            raise ValueError(f"Unknown job kind: {kind!r} (expected one of {', '.join(JOB_KINDS)})")
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
        if not self.procs:
            return True
        import torch  # only with a worker running and room for another: the app starts without torch

        if not torch.cuda.is_available():
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
