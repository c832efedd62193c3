"""Hostile-user checks: every user error ends in one clear line and a non-zero exit (or a clear
message on a page), never a traceback; nothing is lost; a signal stops a whole comparison."""
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from helpers import OLD_STORE, tiny_config

from beta_core.cli import main
from beta_core.engine import DivergenceWatch, Training
from beta_core.env import settings
from beta_core.jobs.bodies import execute_run
from beta_core.reports import run_table
from beta_core.store import Store, StoreError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--set", "synthetic_train=400", "--set", "synthetic_test=200", "--width", "4",
        "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--quiet"]
OLD_RUN = "20261130-190919-sgd-beta-447761"


def run(capsys, tmp_path, *argv):
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


@pytest.fixture
def old_store(tmp_path):
    shutil.copytree(OLD_STORE, tmp_path / "runs")
    return Store(tmp_path / "runs")


# ------------------------------------------------------------------ the table of bad invocations
BAD = [
    (["train", *TINY, "--set", "nesterov=yes"], "nesterov"),
    (["train", *TINY, "--set", "attribution_every_epoch=no"], "attribution_every_epoch"),
    (["train", *TINY, "--set", "epochs=true"], "epochs"),
    (["train", *TINY, "--set", "seed=x"], "seed"),
    (["train", *TINY, "--set", "thresholds=5"], "thresholds"),
    (["train", *TINY, "--set", "label_smoothing=nan"], "label_smoothing"),
    (["train", *TINY, "--set", "beta2=nan"], "beta2"),
    (["train", *TINY, "--set", "min_lr=nan"], "min_lr"),
    (["train", *TINY, "--set", "method=foo"], "--method"),
    (["train", *TINY, "--set", "data_path=5", "--set", "dataset=folder"], "Data path not found"),
    (["train", *TINY, "--epochs", "99999999999999999999999"], "epochs"),
    (["train", *TINY, "--set", "synthetic_train=100000000000"], "synthetic_train"),
    (["train", *TINY, "--batch-size", "10000000"], "batch_size"),
    (["train", *TINY, "--train-subset", "100000000000"], "train_subset"),
    (["compare", *TINY, "--parallel", "0"], "--parallel"),
    (["compare", *TINY, "--parallel", "-3"], "--parallel"),
    (["compare", *TINY, "--seeds", "abc"], "seeds"),
    (["train", *TINY, "--dataset", "folder", "--data-path", "/"], "Not a dataset"),
    (["attribute", OLD_RUN, "--z", "nan"], "Invalid z"),
    (["runs", "show", "no-such-run"], "Unknown run"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[" ".join(a[-2:]) for a, _ in BAD])
def test_bad_invocations_end_in_one_line(capsys, tmp_path, argv, fragment):
    shutil.copytree(OLD_STORE, tmp_path / "runs")
    code, _, err = run(capsys, tmp_path, *argv)
    assert code != 0 and fragment in err and one_line(err), err
    assert len(Store(tmp_path / "runs").runs()) == 3  # nothing was created


def test_argparse_type_errors_name_the_field(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "epochs" in err and "Traceback" not in err


def test_no_traceback_from_the_real_process(tmp_path):
    """The same through ``python -m beta_core``: what a user's terminal shows."""
    for argv in (["train", *TINY, "--set", "nesterov=yes"], ["runs", "export", "x", "--out", "/dev/null/x"]):
        p = subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), *argv],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode != 0 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr


# ------------------------------------------------------------------ defect 1: export target
def test_export_to_a_file_or_under_a_file(capsys, tmp_path, old_store):
    f = tmp_path / "afile"
    f.write_text("x")
    for out in (f, f / "sub"):
        code, _, err = run(capsys, tmp_path, "runs", "export", OLD_RUN, "--out", str(out))
        assert code == 2 and one_line(err) and "Cannot export to" in err and "expected a folder" in err


# ------------------------------------------------------------------ defect 2: bad checkpoints
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _bad_checkpoints(tmp_path):
    import pickle

    return {"pickle with code": pickle.dumps({"w": Evil()}), "random bytes": os.urandom(256), "empty": b"",
            "another model": _torch_bytes(torch.nn.Linear(3, 2).state_dict(), tmp_path)}


def _torch_bytes(obj, tmp_path) -> bytes:
    torch.save(obj, tmp_path / "x.pt")
    return (tmp_path / "x.pt").read_bytes()


@pytest.mark.parametrize("command", [["attribute", OLD_RUN], ["surgery", OLD_RUN, "--groups", "fc", "--epochs", "1"],
                                     ["plant-fault", OLD_RUN, "--group", "fc"], ["overlap", OLD_RUN, OLD_RUN]])
def test_bad_checkpoint_says_which_run_and_why(capsys, tmp_path, old_store, command):
    for what, data in _bad_checkpoints(tmp_path).items():
        old_store.checkpoint_path(OLD_RUN).write_bytes(data)
        code, out, err = run(capsys, tmp_path, *command)
        text = err + out
        assert code != 0 and "weights_only=False" not in text and "Traceback" not in text, (what, text)
        assert f"Checkpoint of run {OLD_RUN}" in text, (what, text)
        assert ("does not fit its model" if what == "another model" else "unreadable") in text, (what, text)


def test_bad_checkpoint_on_the_attribution_job(tmp_path, old_store):
    """What the Attribution page shows: the job's error, one clear sentence."""
    old_store.checkpoint_path(OLD_RUN).write_bytes(b"")
    job = old_store.create_run({"method": "attribution", "attribution": {}}, kind="attribution", parent=OLD_RUN)
    run_ = execute_run(old_store, job, str(tmp_path / "data"))
    assert run_["status"] == "failed" and run_["error"].startswith(f"Checkpoint of run {OLD_RUN} is unreadable")


# ------------------------------------------------------------------ defect 3: disk full
def test_disk_full_and_store_unwritable_is_one_line(capsys, tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    real_finish = Store.finish

    def finish(self, run_id, status, summary=None, error=None):
        if status == "failed":
            raise StoreError(f"The run store {str(self.dir)!r} could not be updated: database or disk is full")
        return real_finish(self, run_id, status, summary, error)

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(Store, "finish", finish)
    code, _, err = run(capsys, tmp_path, "train", *TINY)
    assert code == 2 and one_line(err) and "No space left" in err and "recording that failed too" in err


@contextmanager
def _mount(target: Path, *options: str):
    target.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount here ({p.stderr.strip() or 'not root'}); the monkeypatched case covers it")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_disk_full_on_a_real_tiny_filesystem(tmp_path):
    with _mount(tmp_path / "small", "-t", "tmpfs", "-o", "size=400k", "tmpfs") as runs_dir:
        store = Store(runs_dir)
        rid = store.create_run(tiny_config(epochs=2).to_dict())

        def fill(rec):  # the disk fills up just before the run finishes
            if rec["kind"] == "epoch" and rec["epoch"] == 1:
                with open(runs_dir / "filler", "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                    except OSError:
                        pass

        try:
            r = execute_run(store, rid, str(tmp_path / "data"), on_record=fill)
            assert r["status"] == "failed" and "No space left" in r["error"], r["error"]
        except StoreError as e:  # the store itself could not record it: one line saying so
            assert "No space left" in str(e) and "\n" not in str(e)


# ------------------------------------------------------------------ defect 4: environment variables
@pytest.mark.parametrize("var,value", [("BETA_MAX_JOBS", "abc"), ("BETA_MAX_JOBS", "0"), ("BETA_MAX_JOBS", "-2"),
                                       ("BETA_POLL_SECONDS", "fast"), ("BETA_POLL_SECONDS", "nan"),
                                       ("BETA_THREADS", "0"), ("BETA_DATA_PATH", "/no/such/data"),
                                       ("BETA_RUNS_DIR", "FILE"), ("BETA_DATA_DIR", "FILE")])
def test_environment_variables_are_validated_once(capsys, tmp_path, monkeypatch, var, value):
    if value == "FILE":
        (tmp_path / "f").write_text("x")
        value = str(tmp_path / "f")
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=f"{var}=.*expected"):
        settings()
    code, _, err = run(capsys, tmp_path, "runs", "list") if var not in ("BETA_RUNS_DIR",) else (None, None, None)
    if code is not None:
        assert code == 2 and one_line(err) and var in err


def test_app_shows_one_message_for_a_bad_variable(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BETA_MAX_JOBS", "abc")
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    assert not at.exception and len(at.error) == 1 and "BETA\\_MAX\\_JOBS" in at.error[0].value


# ------------------------------------------------------------------ defect 5: signals stop a comparison
SLOW = ["--dataset", "synthetic", "--set", "synthetic_train=2000", "--set", "synthetic_test=200", "--width", "8",
        "--epochs", "30", "--batch-size", "50", "--device", "cpu", "--quiet"]


def _start_compare(tmp_path, *extra):
    env = {**os.environ, "BETA_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), "--data-dir",
                             str(tmp_path / "data"), "compare", "--methods", "sgd-constant,sgd-beta,sgd-hybrid",
                             "--seeds", "0,1", *SLOW, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_running(tmp_path, n=1, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (tmp_path / "runs" / "runs.db").exists():
            store = Store(tmp_path / "runs")
            running = [r for r in store.runs(status="running") if store.step_counts(r["id"])[r["id"]] > 0]
            if len(running) >= n:
                return store
        time.sleep(0.3)
    raise AssertionError("no run started")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_whole_comparison(tmp_path, sig, code):
    p = _start_compare(tmp_path)
    store = _wait_running(tmp_path)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == code and "Traceback" not in err, err
    runs = store.runs()
    assert [r["status"] for r in runs] == ["cancelled"], [(r["method"], r["status"]) for r in runs]


def test_signal_stops_parallel_workers_and_the_queue(tmp_path):
    p = _start_compare(tmp_path, "--parallel", "2")
    store = _wait_running(tmp_path, n=2)
    p.send_signal(signal.SIGINT)  # to the parent only: it must stop the workers it started
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    statuses = [r["status"] for r in store.runs()]
    assert len(statuses) == 6 and set(statuses) == {"cancelled"}, statuses


# ------------------------------------------------------------------ weak points
def test_divergence_without_nan_is_divergence(tiny_splits):
    t = Training(tiny_config(method="adam", lr=1e6, epochs=3), splits=tiny_splits)
    list(t.run())
    assert t.status == "diverged"


def test_divergence_rule():
    w = DivergenceWatch(factor=100, patience=2)
    assert w.ok([2.3] * 20) and w.ok([500.0] * 20) and not w.ok([600.0] * 20)  # two windows above 230
    w = DivergenceWatch()
    assert w.ok([2.3]) and w.ok([1e4]) and w.ok([1.0]) and w.ok([1e4])  # not sustained: still training
    w = DivergenceWatch()
    assert w.ok([2.3, 1e9]) and not w.ok([1e9])  # the reference is the first loss, not the first window
    assert not DivergenceWatch().ok([float("nan")])


def test_read_only_runs_folder_can_still_be_read(capsys, tmp_path):
    shutil.copytree(OLD_STORE, tmp_path / "src")
    with _mount(tmp_path / "runs", "--bind", str(tmp_path / "src")):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(tmp_path / "runs")], check=True)
        code, out, err = run(capsys, tmp_path, "runs", "list")
        assert code == 0 and OLD_RUN in out, err
        code, out, err = run(capsys, tmp_path, "runs", "show", OLD_RUN)
        assert code == 0 and '"status": "done"' in out
        code, _, err = run(capsys, tmp_path, "runs", "delete", OLD_RUN)
        assert code == 2 and one_line(err) and "read-only" in err


def test_interrupted_run_keeps_its_accuracy(store, tmp_path):
    rid = store.create_run(tiny_config(epochs=2).to_dict(), pid=999999)  # an owner that is gone
    store.add_epoch(rid, {"epoch": 0, "step": 8, "train_loss": 1.0, "train_acc": 0.2, "test_loss": 1.1,
                          "test_acc": 0.31, "regime": "critical", "zeta_median": 1.0, "lr": 0.1, "momentum": 0.37,
                          "time": 0.5})
    r = store.get_run(rid)
    assert r["status"] == "interrupted" and r["summary"]["best_test_acc"] == 0.31
    assert run_table(store).loc[0, "best_test_acc"] == 0.31


def test_runs_show_prints_integers_and_survives_a_closed_pipe(tmp_path):
    shutil.copytree(OLD_STORE, tmp_path / "runs")
    cmd = f"{sys.executable} -m beta_core --runs-dir {tmp_path / 'runs'} runs show {OLD_RUN}"
    p = subprocess.run(f"{cmd} | head -3", shell=True, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    full = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    table = full[full.index(" epoch "):].splitlines()
    assert table[1].split()[:2] == ["0", "8"]  # epoch and step as integers, not 0.0000


def test_requeue_runs_an_earlier_app_never_started(tmp_path):
    from beta_core.jobs.manager import JobManager

    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config().to_dict(), pid=999999)  # queued by an app that is gone
    assert [r["id"] for r in store.never_started()] == [rid]
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"), poll=0.2)
    jm.requeue([rid])
    assert jm.wait([rid], timeout=120)[0]["status"] == "done"
    with pytest.raises(StoreError, match="expected an interrupted run that never started"):
        store.requeue(rid)


def test_page_refuses_a_bad_data_path_at_launch(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BETA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BETA_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    at.switch_page("pages/views/train.py").run()
    at.text_input[0].set_value(str(tmp_path / "nowhere"))  # form widgets: set, then submit
    at.button[0].click().run()
    assert not at.exception and any("Data path not found" in e.value and "\\*.jpg" in e.value for e in at.error)
    assert Store(tmp_path / "runs").runs() == []
    at.text_input[1].set_value("abc")
    at.text_input[0].set_value("")
    at.button[0].click().run()
    assert any("Invalid seeds: 'abc'" in e.value for e in at.error)


# ------------------------------------------------------------------ issue 17: refused before a run exists
@pytest.fixture
def trained(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "train", *TINY)
    assert code == 0
    return out.split()[0]


@pytest.mark.parametrize("argv,fragment", [
    (["surgery", "RUN", "--groups", "nosuch", "--quiet"], "Unknown layer groups: ['nosuch'] in --groups"),
    (["surgery", "RUN", "--lr", "-1", "--quiet"], "Invalid surgery lr: -1.0"),
    (["surgery", "SWEEP", "--quiet"], "is a sweep"),
    (["localise-bench", "SWEEP"], "is a sweep"),
    (["train", *TINY, "--set", "device=cuda"], "no CUDA device here"),
    (["train", *TINY, "--lr", "1e300"], "Invalid lr: 1e+300"),
    (["train", *TINY, "--set", "data_seed=99999999999999999999"], "Invalid data_seed"),
    # issue 29: what only a run found out, now found before it exists
    (["train", *TINY, "--batch-size", "5000"], "Invalid batch_size: 5000 (expected at most the"),
    (["train", "--from", "SWEEP", "--quiet"], "is a sweep run, not a training run"),
    (["train", "--from", "EXT", "--quiet"], "is an external run, not a training run"),
])
def test_refused_before_any_run_exists(capsys, tmp_path, trained, argv, fragment):
    store = Store(tmp_path / "runs")
    sweep = store.create_run({"method": "sweep", "sweep": {}}, kind="sweep", status="done")
    ext = store.create_run({"method": "mine", "seed": 0, "host": "h", "rank": 0, "script": "x.py"}, kind="external",
                           status="done")
    before = {r["id"] for r in store.runs()}
    code, out, err = run(capsys, tmp_path, *[{"RUN": trained, "SWEEP": sweep, "EXT": ext}.get(a, a) for a in argv])
    assert code == 2 and fragment in err and one_line(err), err
    assert {r["id"] for r in store.runs()} == before


def test_deleted_checkpoint_is_missing_not_unfinished(capsys, tmp_path, trained):
    Store(tmp_path / "runs").checkpoint_path(trained).unlink()
    code, _, err = run(capsys, tmp_path, "attribute", trained)
    assert code == 2 and f"Checkpoint of run {trained} is missing" in err and one_line(err)


def test_corrupt_store_says_corrupt(capsys, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "runs.db").write_bytes(b"this is not sqlite" * 100)
    code, _, err = run(capsys, tmp_path, "runs", "list")
    assert code == 2 and "is corrupt" in err and "writable" not in err and one_line(err)


def test_a_failed_insert_leaves_no_run_folder(tmp_path, monkeypatch):
    store = Store(tmp_path / "runs")

    @contextmanager
    def broken():
        raise StoreError("simulated: database disk image is malformed")
        yield

    monkeypatch.setattr(store, "_db", broken)
    with pytest.raises(StoreError):
        store.create_run(tiny_config().to_dict())
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["runs.db"] or \
        all(not p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_ray_port_out_of_range(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path, "train", *TINY, "--backend", "ray", "--ray-address", "127.0.0.1:99999")
    assert code == 2 and "invalid port" in err and one_line(err)


# ------------------------------------------------------------------ issue 17: sweep housekeeping
def _finished_sweep(tmp_path) -> tuple[Store, str]:
    from beta_core.sweeps import SweepPlan, sweep_run_config

    store = Store(tmp_path / "runs")
    overrides = {k: v for k, v in tiny_config().to_dict().items() if k not in ("method", "seed")}
    plan = SweepPlan(methods=["sgd-constant", "sgd-beta"], seeds=[0, 1], targets=[0.2], overrides=overrides)
    sid = store.create_run(sweep_run_config(plan), kind="sweep")
    assert execute_run(store, sid, str(tmp_path / "data"))["status"] == "done"
    return store, sid


def test_sweep_export_and_delete(capsys, tmp_path):
    import json

    import pandas as pd

    store, sid = _finished_sweep(tmp_path)
    code, out, _ = run(capsys, tmp_path, "runs", "export", sid, "--out", str(tmp_path / "out"))
    assert code == 0
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 4 and set(runs["parent"]) == {sid}
    assert len(pd.read_csv(tmp_path / "out" / "epochs.csv")) == 4
    rep = json.loads((tmp_path / "out" / f"sweep-{sid}.json").read_text())
    assert rep["coverage"]["counted"] == 4
    assert len(pd.read_csv(tmp_path / "out" / f"sweep-{sid}-verdicts.csv")) == len(rep["claims"])
    member = runs["id"].iloc[0]
    store.reopen(sid, pid=os.getpid())  # the sweep runs: its members stay
    with pytest.raises(StoreError, match=f"member of sweep {sid}, which is running"):
        store.delete(member)
    store.finish(sid, "done")
    code, out, _ = run(capsys, tmp_path, "runs", "delete", sid)
    assert code == 0 and f"deleted {sid} and its 4 member runs" in out
    assert store.runs() == [] and not any(p.is_dir() for p in (tmp_path / "runs").iterdir())


def test_messages_name_what_the_user_typed(capsys, tmp_path, trained):
    code, _, err = run(capsys, tmp_path, "curvature", trained, "--hvps", "2")
    assert code == 2 and "Invalid --hvps 2" in err and "max_hvps" not in err and one_line(err)
    zip_named_tar = tmp_path / "data.tar.gz"
    import zipfile
    with zipfile.ZipFile(zip_named_tar, "w") as z:
        z.writestr("train/a/1.jpg", b"x")
    code, _, err = run(capsys, tmp_path, "train", *TINY[:-1], "--dataset", "folder", "--data-path", str(zip_named_tar))
    assert code == 2 and one_line(err) and "data.tar.gz" in err and "object at 0x" not in err, err
