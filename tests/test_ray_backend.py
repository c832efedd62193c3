"""The ray backend on a local Ray instance (CPU), started once for the module (~4 s)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is in requirements.txt; install it to test the ray backend")

from helpers import tiny_config  # noqa: E402

from beta_core.jobs.bodies import execute_run  # noqa: E402
from beta_core.jobs.manager import JobManager  # noqa: E402
from beta_core.jobs.ray_backend import connect  # noqa: E402
from beta_core.queries import sweep_members  # noqa: E402
from beta_core.store import Store  # noqa: E402
from beta_core.sweeps import SweepPlan, sweep_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "synthetic", "synthetic_train": 400, "synthetic_test": 200, "model": "small_cnn", "width": 4,
        "epochs": 2, "batch_size": 50, "device": "cpu"}
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    connect(None)
    yield
    ray.shutdown()


def _sweep(tmp_path, backend: str) -> tuple[Store, str]:
    store = Store(tmp_path / backend)
    plan = SweepPlan(methods=["sgd-constant", "sgd-beta"], seeds=[0, 1], overrides=TINY)
    cfg = {**sweep_run_config(plan), "options": {"parallel": 2, "backend": backend, "ray_address": None}}
    sid = store.create_run(cfg, kind="sweep")
    assert execute_run(store, sid, str(tmp_path / "data"))["status"] == "done"
    return store, sid


@pytest.mark.slow  # ~35 s; the default suite keeps the one-config repro on Ray (in-process = worker = Ray)
def test_sweep_on_ray_equals_local(tmp_path):
    stores = {b: _sweep(tmp_path, b) for b in ("ray", "local")}
    runs = {b: {c.key(): r for c, r in sweep_members(s, sid)} for b, (s, sid) in stores.items()}
    assert set(runs["ray"]) == set(runs["local"]) and len(runs["ray"]) == 4
    for key, r in runs["ray"].items():
        loc = runs["local"][key]
        assert r["status"] == loc["status"] == "done"
        s_ray, s_loc = stores["ray"][0].steps(r["id"]), stores["local"][0].steps(loc["id"])
        assert len(s_ray) == len(s_loc) == 16 and len(stores["ray"][0].epochs(r["id"])) == 2
        assert s_ray["loss"].tolist() == pytest.approx(s_loc["loss"].tolist(), rel=1e-4)  # same data order, same losses
        assert stores["ray"][0].checkpoint_path(r["id"]).exists()  # written by the submitter


def _long(tmp_path) -> tuple[JobManager, str]:
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), backend="ray", poll=0.2)
    rid = jm.submit(tiny_config(epochs=200, synthetic_train=2000, width=8).to_dict())
    end = time.monotonic() + 120
    while time.monotonic() < end and not (jm.store.step_counts(rid)[rid] and rid in jm.ray.pids):
        jm.pump()
        time.sleep(0.2)
    assert jm.store.step_counts(rid)[rid] > 0, "the task never streamed a step"
    return jm, rid


def test_cancel_reaches_the_task(tmp_path):
    jm, rid = _long(tmp_path)
    jm.cancel(rid)
    run = jm.wait([rid])[0]
    assert run["status"] == "cancelled" and jm.store.step_counts(rid)[rid] < 200 * 40


def test_killed_worker_reads_interrupted(tmp_path):
    """A dead worker: interrupted, keeping the accuracy of its finished epochs as a local run does."""
    jm, rid = _long(tmp_path)
    end = time.monotonic() + 120
    while time.monotonic() < end and jm.store.epochs(rid).empty:
        jm.pump()
        time.sleep(0.2)
    os.kill(jm.ray.pids[rid], signal.SIGKILL)
    run = jm.wait([rid])[0]
    assert run["status"] == "interrupted" and "Ray worker" in run["error"]
    eps = jm.store.epochs(rid)
    assert run["summary"]["epochs_completed"] == len(eps) >= 1
    assert run["summary"]["final_test_acc"] == eps["test_acc"].iloc[-1]


def test_task_exception_fails_the_run_with_its_message(tmp_path):
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), backend="ray", poll=0.2)
    rid = jm.submit(tiny_config(batch_size=5000).to_dict())
    run = jm.wait([rid])[0]
    assert run["status"] == "failed" and "Invalid batch_size: 5000" in run["error"]


def test_unreachable_cluster_is_one_line_and_creates_nothing(tmp_path):
    p = subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), "sweep", "--backend",
                        "ray", "--ray-address", "127.0.0.1:1", "--methods", "sgd-beta", "--dataset", "synthetic"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Cannot reach the Ray cluster at 127.0.0.1:1" in p.stderr
    assert Store(tmp_path / "runs").runs() == []
    p = subprocess.run([sys.executable, "-m", "beta_core", "runs", "list"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "BETA_BACKEND": "ray", "BETA_RAY_ADDRESS": "nowhere",
                            "BETA_RUNS_DIR": str(tmp_path / "r2")}, timeout=120)
    assert p.returncode == 2 and "BETA_RAY_ADDRESS='nowhere'" in p.stderr


def test_a_port_that_is_not_ray_is_refused_at_once(tmp_path, capsys):
    """A web server on the port: one line naming the address within seconds, no run created; a
    real head (this module's local instance) passes the same probe."""
    import http.server
    import socketserver
    import threading

    from beta_core.cli import main
    from beta_core.jobs.ray_backend import probe_head

    gcs = ray.get_runtime_context().gcs_address
    host, _, port = gcs.rpartition(":")
    probe_head(host, int(port), gcs)
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # the server's own log would land in the captured stderr
            pass

    srv = socketserver.TCPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{srv.server_address[1]}"
    silent = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)  # accepts, never answers
    try:
        for addr in (address, f"127.0.0.1:{silent.server_address[1]}"):
            t0 = time.monotonic()
            code = main(["--runs-dir", str(tmp_path / "runs"), "sweep", "--backend", "ray", "--ray-address", addr,
                         "--dataset", "synthetic", "--seeds", "0"])
            err = capsys.readouterr().err
            assert code == 2 and f"No Ray head at {addr}" in err and len(err.strip().splitlines()) == 1, err
            assert time.monotonic() - t0 < 15
    finally:
        srv.shutdown()
        silent.server_close()
    assert Store(tmp_path / "runs").runs() == []


def test_one_config_gives_the_same_numbers_in_process_in_a_worker_and_on_ray(tmp_path):
    """Issue 30: one execution path. The same config and seed give bit-identical step losses,
    final accuracy and summary keys wherever the run executes (its thread count is in its config)."""
    cfg = tiny_config(epochs=2, threads=1).to_dict()
    store = Store(tmp_path / "runs")
    here = store.create_run(cfg)
    runs = {"in-process": execute_run(store, here, str(tmp_path / "data"))}
    for backend in ("local", "ray"):
        jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), backend=backend)
        rid = jm.submit(cfg)
        runs[backend] = jm.wait([rid], timeout=300)[0]
        jm.close()
    losses = {k: store.steps(r["id"])["loss"].tolist() for k, r in runs.items()}
    assert all(r["status"] == "done" for r in runs.values()), {k: r["error"] for k, r in runs.items()}
    assert losses["in-process"] == losses["local"] == losses["ray"] and len(losses["ray"]) == 16
    accs = {k: r["summary"]["final_test_acc"] for k, r in runs.items()}
    assert len(set(accs.values())) == 1, accs
    keys = {k: sorted(r["summary"]) for k, r in runs.items()}
    assert keys["in-process"] == keys["local"] == keys["ray"], keys
    assert {r["summary"]["environment"]["threads"] for r in runs.values()} == {1}
