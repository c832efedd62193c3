import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from beta_core.cli import main
from beta_core.data import DataConfig, load_splits
from beta_core.jobs.bodies import execute_run
from beta_core.queries import sweep_members
from beta_core.store import Store
from beta_core.sweeps import SweepPlan, choose, parse_grid, sweep_run_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "synthetic", "synthetic_train": 400, "synthetic_test": 200, "model": "small_cnn", "width": 4,
        "epochs": 2, "batch_size": 50, "device": "cpu"}


def tiny_plan(**kw) -> SweepPlan:
    base = dict(methods=["sgd-constant", "sgd-beta"], seeds=[0, 1], grid={"*": {"lr": [0.02, 0.1]}}, tune=["lr"],
                tune_seeds=[10, 11], targets=[0.2, 0.3], overrides=TINY)
    return SweepPlan(**{**base, **kw})


def run_sweep(store: Store, plan: SweepPlan, data_dir, **opts) -> dict:
    sid = store.create_run(sweep_run_config(plan, **opts), kind="sweep")
    return execute_run(store, sid, str(data_dir))


# ------------------------------------------------------------------ plans
def test_parse_grid():
    assert parse_grid(["lr=0.05,0.1", "adam:lr=1e-3,3e-3", "weight_decay=0,5e-4"]) == {
        "*": {"lr": [0.05, 0.1], "weight_decay": [0.0, 5e-4]}, "adam": {"lr": [1e-3, 3e-3]}}
    for bad, msg in (("lr", "FIELD=V1"), ("lr=", "FIELD=V1"), ("foo:lr=1", "scope"), ("lr=0.1,0.1", "distinct"),
                     ("nesterov=yes", "nesterov")):
        with pytest.raises(ValueError, match=msg):
            parse_grid([bad])


def test_plan_validation():
    with pytest.raises(ValueError, match=r"\[0\] are both tuning and test seeds"):
        tiny_plan(tune_seeds=[0, 5])
    with pytest.raises(ValueError, match="every grid field to be tuned"):
        tiny_plan(grid={"*": {"lr": [0.1], "mu": [0.8, 0.9]}})
    with pytest.raises(ValueError, match="baseline"):
        tiny_plan(baseline="adam")
    with pytest.raises(ValueError, match="epochs"):
        tiny_plan(overrides={**TINY, "epochs": 0})


def test_adam_keeps_its_own_lr_in_a_grid():
    plan = tiny_plan(methods=["sgd-beta", "adam"], grid={"*": {"lr": [0.05, 0.1]}}, tune=[], tune_seeds=[])
    lrs = {(c.method, plan.config(c).lr) for c in plan.cells("test")}
    assert lrs == {("sgd-beta", 0.05), ("sgd-beta", 0.1), ("adam", 1e-3)}
    plan = tiny_plan(methods=["adam"], grid={"*": {"lr": [0.1]}, "adam": {"lr": [3e-4, 1e-3]}}, tune=["lr"])
    assert sorted({plan.config(c).lr for c in plan.cells("tune")}) == [3e-4, 1e-3]


def _member(status, val):
    return {"status": status, "summary": {"final_val_acc": val}}


def test_choose_tie_rule_edges_and_diverged_runs():
    plan = tiny_plan(methods=["sgd-beta"], grid={"*": {"lr": [0.02, 0.05, 0.1]}}, tune_seeds=[10, 11])
    cells = plan.cells("tune")
    vals = {0.02: (0.5, 0.6), 0.05: (0.6, 0.5), 0.1: (0.3, 0.4)}
    members = [(c, _member("done", vals[dict(c.values)["lr"]][c.seed - 10])) for c in cells]
    ch = choose(plan, members)["sgd-beta"]
    assert ch["values"] == {"lr": 0.02} and ch["edge"] == ["lr"]  # tie at 0.55: the first in grid order
    members = [(c, _member("diverged", None) if dict(c.values)["lr"] == 0.02 else _member("done", 0.5)) for c in cells]
    ch = choose(plan, members)["sgd-beta"]
    assert ch["curve"][0]["mean"] == 0.0 and ch["values"] == {"lr": 0.05} and ch["edge"] == []
    members = [(c, _member("failed", None) if dict(c.values)["lr"] == 0.05 else _member("done", 0.4)) for c in cells]
    assert choose(plan, members)["sgd-beta"]["curve"][1]["missing"] == 2


# ------------------------------------------------------------------ the validation split
def test_validation_split_is_disjoint_and_balanced(tmp_path):
    s = load_splits(DataConfig("synthetic", synthetic_train=1000, synthetic_test=200, train_subset=500), tmp_path)
    train, val = set(s.origin["train"].tolist()), set(s.origin["val"].tolist())
    assert not train & val and len(val) == 50 and len(train) == 500
    assert torch.bincount(s.val_y).tolist() == [5] * 10  # class-balanced
    again = load_splits(DataConfig("synthetic", synthetic_train=1000, synthetic_test=200, train_subset=500), tmp_path)
    assert torch.equal(again.origin["val"], s.origin["val"])  # fixed by data_seed
    other = load_splits(DataConfig("synthetic", synthetic_train=1000, synthetic_test=200, train_subset=500,
                                   data_seed=1), tmp_path)
    assert not torch.equal(other.origin["val"], s.origin["val"])
    # the test split is a different pool: no validation image is a test image
    assert not {bytes(x.numpy()) for x in s.val_x} & {bytes(x.numpy()) for x in s.test_x}


def test_choice_never_reads_the_test_split(tmp_path, monkeypatch):
    """Poison the test labels: the chosen LRs and every validation score stay the same."""
    import beta_core.jobs.bodies as jobs

    real = jobs.load_splits
    plan = tiny_plan()
    a = Store(tmp_path / "a")
    assert run_sweep(a, plan, tmp_path / "data")["status"] == "done"

    def poisoned(cfg, data_dir, on_progress=None):
        s = real(cfg, data_dir, on_progress)
        s.test_y = s.test_y[torch.randperm(len(s.test_y), generator=torch.Generator().manual_seed(0))]
        return s

    monkeypatch.setattr(jobs, "load_splits", poisoned)
    b = Store(tmp_path / "b")
    assert run_sweep(b, plan, tmp_path / "data")["status"] == "done"
    ca, cb = (s.results(s.runs(kind="sweep")[0]["id"], "sweep_choice")[-1] for s in (a, b))
    assert {m: c["values"] for m, c in ca.items()} == {m: c["values"] for m, c in cb.items()}
    assert [p["mean"] for c in ca.values() for p in c["curve"]] == [p["mean"] for c in cb.values() for p in c["curve"]]
    ta = [r["summary"]["final_test_acc"] for _, r in sweep_members(a, a.runs(kind="sweep")[0]["id"])]
    tb = [r["summary"]["final_test_acc"] for _, r in sweep_members(b, b.runs(kind="sweep")[0]["id"])]
    assert ta != tb  # the poison did reach the test split


# ------------------------------------------------------------------ running, resuming, stopping
def test_tuned_sweep_end_to_end_and_resume(tmp_path):
    store = Store(tmp_path / "runs")
    plan = tiny_plan()
    sweep = run_sweep(store, plan, tmp_path / "data")
    assert sweep["status"] == "done", sweep["error"]
    members = sweep_members(store, sweep["id"])
    assert len(members) == 8 + 4 and all(r["status"] == "done" for _, r in members)
    rep = store.results(sweep["id"], "sweep")[-1]
    assert set(rep["methods"]) == {"sgd-constant", "sgd-beta"} and rep["methods"]["sgd-beta"]["n"] == 2
    assert {c["kind"] for c in rep["claims"]} == {"accuracy", "speed"}
    assert rep["setting"]["chosen"]["sgd-beta"]["lr"] in (0.02, 0.1) and rep["setting"]["n_val"] == 40
    # resume: a member that failed is run again only on request
    victim = members[-1][1]["id"]
    store.finish(victim, "failed", error="simulated")
    store.reopen(sweep["id"])
    again = execute_run(store, sweep["id"], str(tmp_path / "data"))
    assert again["status"] == "incomplete" and len(store.runs(kind="train", parent=sweep["id"])) == 12
    rep = store.results(sweep["id"], "sweep")[-1]
    assert rep["methods"]["sgd-beta"]["missing"] == 1 and rep["coverage"]["counted"] == 3
    assert [m["status"] for m in rep["coverage"]["missing"]] == ["failed"]
    assert "fewer seeds than planned" in rep["note"]
    store.reopen(sweep["id"], {**sweep["config"], "options": {"parallel": 1, "retry_failed": True}})
    again = execute_run(store, sweep["id"], str(tmp_path / "data"))
    assert again["status"] == "done" and len(store.runs(kind="train", parent=sweep["id"])) == 13
    assert store.results(sweep["id"], "sweep")[-1]["methods"]["sgd-beta"]["missing"] == 0
    assert store.results(sweep["id"], "sweep")[-1]["coverage"]["missing"] == []


def test_sweep_cli_json(capsys, tmp_path):
    out = tmp_path / "rep.json"
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "sweep",
                 "--methods", "sgd-constant,sgd-beta", "--seeds", "0,1", "--tune-seeds", "5", "--grid",
                 "lr=0.05,0.1", "--tune", "lr", "--target", "0.25", "--dataset", "synthetic", "--set",
                 "synthetic_train=400", "--set", "synthetic_test=200", "--width", "4", "--epochs", "1",
                 "--batch-size", "50", "--device", "cpu", "--json", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0 and "verdicts vs sgd-constant" in text and "stage 1" in text
    rep = json.loads(out.read_text())
    m = rep["methods"]["sgd-beta"]["final_test_acc"]
    assert set(m) >= {"n", "mean", "ci_low", "ci_high"} and rep["setting"]["chosen"]["sgd-beta"]["lr"] in (0.05, 0.1)
    assert all(c["verdict"] for c in rep["claims"]) and "final_test_acc_diff" in rep["comparisons"]["sgd-beta"]


def test_sweep_sigint_stops_it(tmp_path):
    env = {**os.environ, "BETA_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), "--data-dir",
                          str(tmp_path / "data"), "sweep", "--methods", "sgd-constant,sgd-beta", "--seeds", "0,1",
                          "--grid", "lr=0.05", "--dataset", "synthetic", "--set", "synthetic_train=2000", "--width",
                          "8", "--epochs", "30", "--batch-size", "50", "--device", "cpu", "--quiet"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if (tmp_path / "runs" / "runs.db").exists():
            st = Store(tmp_path / "runs")
            if any(st.step_counts(r["id"])[r["id"]] for r in st.runs(kind="train")):
                break
        time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    st = Store(tmp_path / "runs")
    assert st.runs(kind="sweep")[0]["status"] == "cancelled"
    assert [r["status"] for r in st.runs(kind="train")] == ["cancelled"]  # the rest never started


# ------------------------------------------------------------------ interrupted sweeps resume to the same report
SMALL = ["--methods", "sgd-constant,sgd-beta", "--seeds", "0,1", "--grid", "lr=0.05", "--target", "0.2",
         "--dataset", "synthetic", "--set", "synthetic_train=1500", "--set", "synthetic_test=200", "--width", "8",
         "--epochs", "3", "--batch-size", "50", "--device", "cpu", "--quiet"]


def _cli(tmp_path, *args) -> list[str]:
    return [sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), "--data-dir",
            str(tmp_path / "data"), *args]


def _untimed(x):
    """A report without its wall-clock fields: seconds differ between any two runs of one sweep."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in ("time", "seconds")}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def _wait_for_first_step(tmp_path, p, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end and p.poll() is None:
        if (tmp_path / "runs" / "runs.db").exists():
            st = Store(tmp_path / "runs")
            if any(st.step_counts(r["id"])[r["id"]] for r in st.runs(kind="train")):
                return
        time.sleep(0.2)
    raise AssertionError("no member recorded a step")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted reports of SMALL, per --parallel value, computed once."""
    cache = {}

    def get(parallel: int) -> dict:
        if parallel not in cache:
            d = tmp_path_factory.mktemp(f"ref{parallel}")
            out = subprocess.run(_cli(d, "sweep", *SMALL, "--parallel", str(parallel), "--json", str(d / "r.json")),
                                 cwd=ROOT, capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            cache[parallel] = json.loads((d / "r.json").read_text())
        return cache[parallel]
    return get


@pytest.mark.parametrize("how,parallel,resume", [
    pytest.param("sigint", 1, 1, marks=pytest.mark.slow), pytest.param("sigint", 2, 2, marks=pytest.mark.slow),
    pytest.param("kill", 1, 1, marks=pytest.mark.slow), pytest.param("kill", 2, 2, marks=pytest.mark.slow),
    ("kill", 2, 1)])  # issue 30: resumed in this process, its cells give the workers' numbers (threads in the plan)
def test_interrupted_sweep_resumes_to_the_uninterrupted_report(tmp_path, reference, how, parallel, resume):
    """Ctrl-C or kill -9, then the command the CLI advises (with or without --parallel): every
    cell counts, the report is the uninterrupted one field by field (wall-clock seconds aside)."""
    p = subprocess.Popen(_cli(tmp_path, "sweep", *SMALL, "--parallel", str(parallel)), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_first_step(tmp_path, p)
    p.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    st = Store(tmp_path / "runs")
    sid = st.runs(kind="sweep")[0]["id"]
    if how == "sigint":
        assert p.returncode == 130 and f"beta-core sweep --resume {sid}" in out, (out, err)
    assert st.get_run(sid)["status"] in ("cancelled", "interrupted")
    res = subprocess.run(_cli(tmp_path, "sweep", "--resume", sid, "--parallel", str(resume), "--json",
                              str(tmp_path / "r.json"), "--quiet"), cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last == f"sweep {sid}: done: all 4 planned cells of the reported stage counted"
    resumed = json.loads((tmp_path / "r.json").read_text())
    assert _untimed(resumed) == _untimed(reference(parallel))


@pytest.mark.slow  # ~18 s; the default suite keeps test_resume_of_a_running_sweep_is_refused (below)
def test_two_resumes_of_one_sweep_one_wins(tmp_path):
    """Claiming a sweep is one transaction: of two processes resuming it at once, exactly one runs it."""
    import multiprocessing as mp

    store = Store(tmp_path / "runs")
    sid = store.create_run(sweep_run_config(tiny_plan()), kind="sweep", status="cancelled")
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_reopen_when, args=(str(tmp_path / "runs"), sid, go, results)) for _ in range(4)]
    for q in procs:
        q.start()
    time.sleep(1.0)
    go.set()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for q in procs:
        q.join(timeout=60)
    assert outcomes == ["ok", "refused", "refused", "refused"], outcomes


def _reopen_when(runs_dir, sid, go, results):
    from beta_core.store import StoreError as SE

    st = Store(runs_dir)
    real = Store._reap

    def slow_reap(self, db, row):  # widen the window between reading the status and writing the owner
        out = real(self, db, row)
        time.sleep(0.3)
        return out

    Store._reap = slow_reap
    go.wait()
    try:
        st.reopen(sid)
        results.put("ok")
        time.sleep(3)  # stay alive: the owner of a queued sweep must be a live process
    except SE as e:
        results.put("refused" if "is being run by process" in str(e) else str(e))


def test_resume_of_a_running_sweep_is_refused(tmp_path, capsys):
    store = Store(tmp_path / "runs")
    sid = store.create_run(sweep_run_config(tiny_plan()), kind="sweep", status="cancelled")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.reopen(sid, pid=owner.pid)
        code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "sweep",
                     "--resume", sid])
    finally:
        owner.kill()
    err = capsys.readouterr().err
    assert code == 2 and f"sweep {sid} is being run by process {owner.pid}" in err
    assert store.runs(kind="train") == []


def _sweep_cli(tmp_path, *args):
    return main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "sweep", *args])


@pytest.mark.parametrize("args,msg", [
    (["--grid", "lr=1e300"], "Invalid lr: 1e+300"),
    (["--seeds", "99999999999999999999"], "Invalid seeds"),
    (["--grid", "seed=1,2"], "seed is not a grid field (expected seeds in --seeds"),
    (["--grid", "method=sgd-beta"], "method is not a grid field (expected methods in --methods"),
    (["--resume", ""], "Invalid --resume ''"),
    (["--seeds", ""], "Invalid seeds: ''"),
    (["--tune", "lr", "--grid", "lr=0.1,0.2", "--tune-seeds", ""], "Invalid seeds: ''"),
    (["--grid", "adam:lr=1e-3"], "no method of the sweep is 'adam'"),
    (["--data-path", "x.tar.gz", "--dataset", "synthetic"], "with dataset synthetic"),
    (["--grid", "lr=" + ",".join(str(0.01 * (i + 1)) for i in range(120))], "plans 240 runs"),
])
def test_sweep_refuses_before_any_run_exists(tmp_path, capsys, args, msg):
    code = _sweep_cli(tmp_path, "--methods", "sgd-constant,sgd-beta", "--seeds", "0", "--dataset", "synthetic",
                      *args)
    err = capsys.readouterr().err
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert Store(tmp_path / "runs").runs() == []


def test_sweep_with_failed_cells_is_not_done(tmp_path, capsys, monkeypatch):
    """Failed members: the sweep ends incomplete (failed when none counted), exits 1, and its
    last line and its report say which cells are missing."""
    import beta_core.jobs.bodies as jobs

    real = jobs.Training

    class Failing(real):
        def run(self):
            if self.cfg.method == "sgd-beta" and self.cfg.seed == 1:
                raise RuntimeError("simulated")
            return super().run()

    monkeypatch.setattr(jobs, "Training", Failing)
    args = ["--methods", "sgd-constant,sgd-beta", "--seeds", "0,1", "--grid", "lr=0.05", "--dataset", "synthetic",
            "--set", "synthetic_train=400", "--set", "synthetic_test=200", "--width", "4", "--epochs", "1",
            "--batch-size", "50", "--device", "cpu", "--quiet", "--json", str(tmp_path / "r.json")]
    assert _sweep_cli(tmp_path, *args) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "incomplete: 1 of 4 planned cells of the reported stage did not count (1 failed)" in last
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["coverage"]["missing"] == [{"cell": "sgd-beta lr=0.05 seed 1", "status": "failed"}]
    assert "fewer seeds than planned" in rep["note"]

    class AllFail(real):
        def run(self):
            raise RuntimeError("simulated")

    monkeypatch.setattr(jobs, "Training", AllFail)
    assert _sweep_cli(tmp_path, *args) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert ": failed: 4 of 4 planned cells" in last and "no verdict" in last


# ------------------------------------------------------------------ how sure a verdict is
def _analysed(acc_beta, steps_beta, plan=None):
    """A reported stage built by hand: sgd-constant vs sgd-beta on 4 seeds."""
    from beta_core.sweeps import analyse

    plan = plan or tiny_plan(tune=[], tune_seeds=[], grid={"*": {"lr": [0.1]}}, seeds=[0, 1, 2, 3], targets=[0.5])
    base_acc, base_steps = [0.60, 0.62, 0.61, 0.63], [100, 120, 110, 130]
    members, epochs = [], {}
    for c in plan.cells("test"):
        acc, step = ((base_acc, base_steps) if c.method == "sgd-constant" else (acc_beta, steps_beta))
        rid = f"{c.method}-{c.seed}"
        members.append((c, {"id": rid, "status": "done", "summary": {"final_test_acc": acc[c.seed],
                                                                     "best_test_acc": acc[c.seed]}}))
        epochs[rid] = [{"epoch": 0, "step": step[c.seed], "time": float(step[c.seed]), "test_acc": 0.95}]
    return analyse(plan, members, epochs)


def test_verdicts_say_equivalent_or_what_could_be_detected():
    same = _analysed([0.601, 0.619, 0.611, 0.629], [100, 120, 110, 130])
    acc, speed = same["claims"][0], same["claims"][1]
    assert acc["verdict"] == "equivalent within ±0.5 pt at n = 4"
    assert speed["verdict"] == "equivalent within ±10% at n = 4"
    noisy = _analysed([0.50, 0.75, 0.55, 0.72], [90, 160, 80, 150])
    acc, speed = noisy["claims"][0], noisy["claims"][1]
    assert acc["verdict"].startswith("no detectable difference at n = 4; could detect ≥ ")
    assert acc["verdict"].endswith(" pts (80% power)")
    assert speed["verdict"].startswith("no detectable difference at n = 4; could detect ≥ ")
    assert noisy["comparisons"]["sgd-beta"]["final_test_acc_diff"]["detectable"] > 0.05
    assert "TOST" in noisy["statistics"]["equivalence"] and "Holm" in noisy["statistics"]["family"]


def test_holm_adjusts_the_family_of_claims():
    """Accuracy +2 pts with paired t p = 0.041 alone says "higher"; beside a second claim
    (speed, p = 1) Holm doubles it to 0.082: "no detectable difference after Holm"."""
    rep = _analysed([0.63, 0.63, 0.62, 0.66], [100, 120, 110, 130])
    acc, speed = rep["claims"]
    assert acc["verdict"] == "higher" and acc["p"] == pytest.approx(0.0409, abs=5e-4)
    assert acc["p_holm"] == pytest.approx(2 * acc["p"]) and speed["p_holm"] == 1.0
    assert acc["verdict_holm"] == "no detectable difference after Holm (2 claims)"
    assert speed["verdict_holm"] == speed["verdict"]


def test_paper_claims_sit_beside_every_claim_they_speak_to_saying_whether_comparable():
    """Issue 31: the column was empty unless a target was exactly 0.90."""
    plan = tiny_plan(tune=[], tune_seeds=[], grid={"*": {"lr": [0.1]}}, seeds=[0, 1, 2, 3], targets=[0.5, 0.9])
    speed = {c["target"]: c["paper"] for c in _analysed([0.6] * 4, [100] * 4, plan)["claims"] if c["kind"] == "speed"}
    assert "90% 1.9x" in speed[0.5] and "not comparable: this claim's target is 50%, the paper's 90%" in speed[0.5]
    assert "90% 1.9x" in speed[0.9] and "same target: comparable" in speed[0.9]


def test_targets_fit_the_data_unless_given():
    from beta_core.sweeps import derived_targets

    plan = tiny_plan(targets=[])
    choice = {"sgd-constant": {"val_acc": 0.8, "values": {"lr": 0.1}}, "sgd-beta": {"val_acc": 0.7}}
    ts, why = derived_targets(plan, choice)
    assert ts == [0.72, 0.76, 0.792] and "sgd-constant's mean final validation accuracy in stage 1 (0.800)" in why
    assert derived_targets(tiny_plan(targets=[0.3]), choice) == ([0.3], "given (--target)")
    one_stage = tiny_plan(targets=[], tune=[], tune_seeds=[])
    assert derived_targets(one_stage, None)[0] == [0.9, 0.95] and "no stage 1" in derived_targets(one_stage, None)[1]


def test_plan_n_from_a_pilot(tmp_path, capsys):
    """--plan-n reads the newest finished sweep's paired spread and prints the seeds needed."""
    from beta_core.stats import detectable_difference, seeds_needed
    from beta_core.sweeps import seeds_plan

    rep = _analysed([0.62, 0.63, 0.615, 0.66], [100, 120, 110, 130])
    p = seeds_plan(rep, 0.01)
    sd = rep["comparisons"]["sgd-beta"]["final_test_acc_diff"]["sd"]
    assert p["sd"] == sd and p["needed"] == seeds_needed(sd, 0.01)
    assert detectable_difference(sd, p["needed"]) <= 0.01 < detectable_difference(sd, p["needed"] - 1)
    del rep["comparisons"]["sgd-beta"]["final_test_acc_diff"]["sd"]  # a report from before: read from its interval
    assert seeds_plan(rep, 0.01)["sd"] == pytest.approx(sd)
    assert _sweep_cli(tmp_path, "--plan-n", "0.01") == 2  # no pilot yet: one line
    assert "No pilot for --plan-n" in capsys.readouterr().err
    store = Store(tmp_path / "runs")
    run_sweep(store, tiny_plan(tune=[], tune_seeds=[], grid={"*": {"lr": [0.05]}}, seeds=[0, 1, 2]), tmp_path / "data")
    capsys.readouterr()
    assert _sweep_cli(tmp_path, "--plan-n", "0.01") == 0
    out = capsys.readouterr().out
    assert "pilot sweep" in out and "to detect 1 pts with 80% power:" in out and "seeds per method" in out
    assert store.runs(kind="sweep")[0]["status"] == "done" and len(store.runs(kind="sweep")) == 1  # ran nothing


def test_a_sweep_whose_every_run_diverged_ends_diverged_without_verdicts(tmp_path, capsys):
    from beta_core.cli import main
    from beta_core.store import Store
    tiny = ["--dataset", "synthetic", "--synthetic-train", "200", "--synthetic-test", "100", "--model", "small_cnn",
            "--width", "4", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--quiet"]
    main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "sweep", "--methods",
          "sgd-constant,sgd-beta", "--seeds", "0,1", "--grid", "lr=100000", "--no-tune", "--target", "0.2", *tiny])
    store = Store(tmp_path / "runs")
    (sweep,) = store.runs(kind="sweep")
    assert {r["status"] for r in store.runs(kind="train")} == {"diverged"}
    assert sweep["status"] == "diverged" and "no verdict: every run diverged" in sweep["summary"]["note"]
    assert store.results(sweep["id"], "sweep") == []


def _workers_of(runs_dir: Path) -> list[int]:
    """Live `beta-core worker` processes serving ``runs_dir`` (from /proc)."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmd and str(runs_dir).encode() in cmd:
            pids.append(int(d.name))
    return pids


def test_workers_end_within_seconds_of_a_killed_sweep(tmp_path):
    """Issue 30: after kill -9 of a --parallel 2 sweep, no worker goes on training (they did for ~10 min)."""
    long = [a if a != "3" else "200" for a in SMALL]  # 200 epochs: still training when killed
    p = subprocess.Popen(_cli(tmp_path, "sweep", *long, "--parallel", "2", "--yes"), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_first_step(tmp_path, p)
    assert len(_workers_of(tmp_path / "runs")) == 2
    p.kill()
    p.wait()
    killed = time.monotonic()
    while _workers_of(tmp_path / "runs") and time.monotonic() - killed < 30:
        time.sleep(0.1)
    assert not _workers_of(tmp_path / "runs") and time.monotonic() - killed <= 5
    st = Store(tmp_path / "runs")
    assert {r["status"] for r in st.runs(kind="train")} <= {"cancelled", "interrupted", "queued"}


def test_the_sweep_estimate_counts_only_runs_of_this_machine():
    """Issue 31: imported runs of another machine said 9 s for a sweep that took 4 min."""
    import socket

    from beta_core.sweeps import estimate_seconds
    plan = tiny_plan()
    cfg = plan.config(plan.first_stage_cells()[0]).to_dict()

    def past(host):
        return [{"config": cfg, "summary": {"wall_seconds": 10.0, "n_train": 400,
                                            "environment": {"host": host} if host else {}}}]
    assert estimate_seconds(plan, past("another-box")) is None and estimate_seconds(plan, past(None)) is None
    assert estimate_seconds(plan, past(socket.gethostname())) > 0
