"""The ``ray`` job backend: training runs as Ray tasks, records streamed back to the store.

The store stays single-writer on the submitting machine: a task never opens the SQLite file.
It trains with the ordinary engine and sends its records, in batches every 0.5 s (the local
metric writer's cadence), to a :class:`Relay` actor; the submitter drains the relay and
writes them, so the dashboard's live charts work as with local workers. The final weights
come back as the task's return value and the submitter writes the checkpoint.

Resources: a run whose device is CUDA asks Ray for one GPU; others ask for ``threads`` CPUs
(the torch thread count the task sets). Ray places the tasks; we keep no queue of our own.

Data: a run that loads a dataset through its data config loads it where it runs; with
:meth:`RayRunner.share`, a submitter puts a dataset into Ray's object store once (a sweep
does this per data config) and every task on every node reads that copy. For a real
cluster the dataset must either be shared this way or exist at the same path on every node
(README, "Run a sweep on a cluster").

Failure semantics: an exception in the task marks the run ``failed`` with its message; a
dead worker or node marks it ``interrupted``; cancel sets the relay's flag (the task stops
at its next step, ``cancelled``) and calls ``ray.cancel`` for a task still waiting.

``ray`` is an optional dependency, imported on first use (``tests/test_architecture.py``
lists it as an allowed lazy import).
"""
from __future__ import annotations

import os
import socket
import threading
import time

from .. import zoo
from ..config import TrainConfig
from ..engine import Training
from ..env import RayBackendError
from ..records import EPOCH
from ..store import Store

__all__ = ["RayBackendError", "connect", "probe_head", "RayRunner"]

FLUSH_SECONDS = 0.5


def connect(address: str | None = None) -> None:
    """Join the cluster at ``address`` (``HOST:PORT``), or start a local instance when None."""
    try:
        import ray
    except ImportError:
        raise RayBackendError("The ray backend needs Ray (expected `pip install ray==2.60.0`, as in "
                              "requirements.txt)") from None
    if address and address != "auto":  # Ray retries an absent head for minutes: ask the socket first
        host, _, port = address.removeprefix("ray://").rpartition(":")
        probe_head(host, int(port), address)
    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(log_to_driver=False, include_dashboard=False)
    except Exception as e:  # noqa: BLE001 - connection, auth and version errors all end here
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayBackendError(f"Cannot reach the Ray cluster at {address or 'a new local instance'}: {msg} "
                              "(expected a running head: `ray start --head` there, then HOST:6379)") from None


# An HTTP/2 client preface and an empty SETTINGS frame. A Ray head's GCS is a gRPC (HTTP/2)
# server, which must answer with a SETTINGS frame of its own; a web server or anything else
# does not, and Ray's client would retry it for minutes with C++ warnings instead of failing.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
PROBE_SECONDS = 5.0


def probe_head(host: str, port: int, address: str, timeout: float = PROBE_SECONDS) -> None:
    """Raise :class:`RayBackendError` unless ``host:port`` answers like a Ray head (gRPC)."""
    hint = "(expected a running head: `ray start --head` there, then HOST:6379)"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        raise RayBackendError(f"No Ray head at {address}: no answer within {timeout:g} s {hint}") from None
    except OSError as e:
        raise RayBackendError(f"Cannot reach the Ray cluster at {address}: {e.strerror or e} {hint}") from None
    if len(head) < 9 or head[3] != 0x04 or head[5:9] != b"\x00\x00\x00\x00":  # SETTINGS on stream 0
        raise RayBackendError(f"No Ray head at {address}: something answers on that port, but not Ray's "
                              f"gRPC server {hint}")


def _remote_classes():
    """The Ray actor and task, defined on first use (``ray`` is imported only then)."""
    import ray

    @ray.remote(num_cpus=0)
    class Relay:
        """Records of running tasks, waiting for the submitter; cancel flags going the other way."""

        def __init__(self) -> None:
            self.items, self.cancelled = [], set()

        def put(self, run_id: str, kind: str, payload) -> None:
            self.items.append((run_id, kind, payload))

        def drain(self) -> list:
            items, self.items = self.items, []
            return items

        def cancel(self, run_id: str) -> None:
            self.cancelled.add(run_id)

        def is_cancelled(self, run_id: str) -> bool:
            return run_id in self.cancelled

    def train(run_id: str, config: dict, data_dir: str, splits, relay, threads: int | None, trusted: tuple):
        import torch

        zoo.trust(*trusted)  # what the submitting process trusts, and nothing a stored config says
        if threads:
            torch.set_num_threads(threads)
        relay.put.remote(run_id, "pid", os.getpid())
        last = [0.0]

        def stop() -> bool:  # the cancel flag, asked at most twice a second
            now = time.monotonic()
            if now - last[0] < FLUSH_SECONDS:
                return stop.value
            last[0] = now
            stop.value = ray.get(relay.is_cancelled.remote(run_id))
            return stop.value
        stop.value = False

        started = time.time()
        t = Training(TrainConfig.from_dict(config), data_dir, splits=splits, should_stop=stop)
        t.setup()
        known = t.start_summary()  # as a local run's (jobs._train): the same keys wherever a run executes
        relay.put.remote(run_id, "summary", {**known, "progress": {"phase": "training", "total": t.total_steps,
                                                                   "unit": "steps", "started": started}})
        buf, flushed = [], time.monotonic()
        for rec in t.run():
            buf.append(rec)
            if rec["kind"] == EPOCH or time.monotonic() - flushed >= FLUSH_SECONDS:
                relay.put.remote(run_id, "records", buf)
                buf, flushed = [], time.monotonic()
        if buf:
            relay.put.remote(run_id, "records", buf)
        state = {k: v.detach().cpu() for k, v in t.model.state_dict().items()} if t.status == "done" else None
        return t.status, {**known, **t.summary, "job_seconds": round(time.time() - started, 2)}, state

    return Relay, ray.remote(max_retries=0)(train)


class RayRunner:
    """Submits training runs of a store as Ray tasks and writes what comes back."""

    def __init__(self, store: Store, data_dir: str, address: str | None = None, threads: int | None = None) -> None:
        connect(address)
        import ray

        self.ray, self.store, self.data_dir, self.threads = ray, store, data_dir, threads
        relay_cls, self.task = _remote_classes()
        self.relay = relay_cls.remote()
        self.refs: dict[str, object] = {}    # run id -> ObjectRef of its task
        self.shared: dict = {}               # data config -> ObjectRef of its splits
        self.pids: dict[str, int] = {}
        self._lock = threading.RLock()  # the app pumps from a thread while pages submit and cancel

    def share(self, data_config, splits) -> None:
        """Put a loaded dataset into Ray's object store once; tasks of that data config read it."""
        self.shared[data_config] = self.ray.put(splits)

    def submit(self, run_id: str) -> None:
        with self._lock:
            self._submit(run_id)

    def _submit(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        cfg = TrainConfig.from_dict(run["config"])
        gpu = cfg.device == "cuda" or (cfg.device == "auto" and self.ray.cluster_resources().get("GPU", 0) > 0)
        opts = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": self.threads or 1}
        self.store.claim(run_id)  # owned by the submitter: if it dies, the run reads interrupted
        data = self.shared.get(cfg.data)
        self.refs[run_id] = self.task.options(**opts).remote(run_id, run["config"], self.data_dir, data, self.relay,
                                                             self.threads, zoo.trusted())

    def cancel(self, run_id: str) -> None:
        with self._lock:
            self._cancel(run_id)

    def _cancel(self, run_id: str) -> None:
        self.relay.cancel.remote(run_id)
        ref = self.refs.get(run_id)
        if ref is not None:
            ready, _ = self.ray.wait([ref], timeout=0)
            if not ready and self.pids.get(run_id) is None:  # still waiting for a worker: drop it
                self.ray.cancel(ref)

    def pump(self) -> list[str]:
        """Write streamed records, finish completed tasks; returns the runs still in flight."""
        with self._lock:
            return self._pump()

    def _drain(self) -> None:
        """Write what the tasks relayed: steps in batches, epochs one by one, in order."""
        for run_id, kind, payload in self.ray.get(self.relay.drain.remote()):
            if kind == "pid":
                self.pids[run_id] = payload
            elif kind == "summary":
                self.store.update_summary(run_id, payload)
            else:
                self.store.add_steps(run_id, [r for r in payload if r["kind"] != EPOCH])
                for r in payload:
                    if r["kind"] == EPOCH:
                        self.store.add_epoch(run_id, r)

    def _pump(self) -> list[str]:
        self._drain()
        if self.refs:
            ready, _ = self.ray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=0)
            for run_id in [r for r, ref in self.refs.items() if ref in ready]:
                self._finish(run_id, self.refs.pop(run_id))
        return list(self.refs)

    def _finish(self, run_id: str, ref) -> None:
        from ray.exceptions import RayTaskError, TaskCancelledError

        self._drain()  # the task's last records arrive before its result
        cancelled = self.store.cancel_requested(run_id)
        try:
            status, summary, state = self.ray.get(ref)
        except TaskCancelledError:
            self.store.finish(run_id, "cancelled")
            return
        except RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            self.store.finish(run_id, "cancelled" if cancelled else "failed",
                              error=None if cancelled else f"{type(cause).__name__}: {cause}")
            return
        except Exception as e:  # noqa: BLE001 - worker or node died, object lost: not the run's fault
            self.store.update_summary(run_id, self.store.accuracy_so_far(run_id))  # as a local run keeps them
            self.store.finish(run_id, "cancelled" if cancelled else "interrupted",
                              error=None if cancelled else f"the Ray worker running it died ({type(e).__name__})")
            return
        if state is not None:
            self.store.save_checkpoint(run_id, state)
        self.store.finish(run_id, status, summary)
