"""Runs of other trackers imported as records: real TensorBoard event files and a real local
MLflow store, written here by the trackers' own writers, read back through ``beta-core import``;
records, ζ and regimes compared with values computed here from the logged lr and momentum."""
import math
import subprocess
import sys

import mlflow
import pytest
from mlflow.entities import Metric
from torch.utils.tensorboard import SummaryWriter

from beta_core import importer, trackers
from beta_core.damping import classify
from beta_core.store import Store

STEPS, EPOCHS = 60, 3


def _lr(s: int) -> float:
    return 0.1 * 0.5 * (1 + math.cos(math.pi * s / STEPS))


def _mu(s: int) -> float:
    return 0.9 if s < 30 else 0.5


def _cli(*args, runs):
    return subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(runs), "import", *args],
                          capture_output=True, text=True)


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _expected_epochs():
    """ζ median and regime per epoch, computed here from what was logged (λ = 1)."""
    per = STEPS // EPOCHS
    out = []
    for e in range(EPOCHS):
        zs = [(1 - _mu(s)) / (2 * math.sqrt(_lr(s))) for s in range(e * per, (e + 1) * per) if _lr(s) > 0]
        out.append((_median(zs), classify(_median(zs))))
    return out


@pytest.fixture
def tb_logs(tmp_path):
    for name, acc0 in (("a", 40.0), ("b", 30.0)):
        w = SummaryWriter(str(tmp_path / "logs" / name))
        for s in range(STEPS):
            w.add_scalar("train/lr", _lr(s), s)
            w.add_scalar("opt/momentum", _mu(s), s)
            w.add_scalar("train/loss", 2.0 - s / STEPS, s)
        for e in range(EPOCHS):  # percent, at the global step that ends the epoch (Lightning's habit)
            w.add_scalar("val/acc", acc0 + 10 * e, (e + 1) * STEPS // EPOCHS)
        w.add_scalar("notes/gpu_mem", 1.0, 0)
        w.close()
    return tmp_path / "logs"


def test_tensorboard_runs_become_records_with_the_logged_damping(tb_logs, tmp_path):
    runs = tmp_path / "runs"
    out = _cli("tensorboard", str(tb_logs), "--method", "sgd-constant", "--thresholds", "0.5,0.9", runs=runs)
    assert out.returncode == 0, out.stderr
    assert "lr <- 'train/lr', momentum <- 'opt/momentum', loss <- 'train/loss', test_acc <- 'val/acc'" in out.stdout
    assert "test_acc read in percent" in out.stdout and "not imported: notes/gpu_mem" in out.stdout
    assert "imported 2 runs" in out.stdout
    store = Store(runs)
    got = {r["config"]["source"]["run"]: r for r in store.runs(kind="imported")}
    assert set(got) == {"a", "b"} and {r["method"] for r in got.values()} == {"sgd-constant"}
    assert sorted(r["config"]["seed"] for r in got.values()) == [0, 1]  # two runs are two seeds, not one
    run = got["a"]
    steps = store.steps(run["id"])
    assert list(steps["step"]) == list(range(STEPS))
    for s in (0, 29, 30, STEPS - 1):
        row = steps[steps["step"] == s].iloc[0]
        assert row["lr"] == pytest.approx(_lr(s), rel=1e-6) and row["momentum"] == pytest.approx(_mu(s), rel=1e-6)
        assert row["zeta"] == pytest.approx((1 - _mu(s)) / (2 * math.sqrt(_lr(s))), rel=1e-5)
        assert row["eff_lr"] == pytest.approx(_lr(s) / (1 - _mu(s)), rel=1e-5)
    epochs = store.epochs(run["id"])
    assert list(epochs["test_acc"]) == pytest.approx([0.4, 0.5, 0.6])
    assert list(epochs["step"]) == [20, 40, 60]
    for (zmed, regime), (_, row) in zip(_expected_epochs(), epochs.iterrows()):
        assert row["zeta_median"] == pytest.approx(zmed, rel=1e-5) and row["regime"] == regime
    s = run["summary"]
    assert s["final_test_acc"] == pytest.approx(0.6) and s["time_to_accuracy"]["0.5"]["step"] == 40
    assert s["regimes"] == [r for _, r in _expected_epochs()] and s["status"] == "done"
    assert any("lam = 1" in n for n in s["import_notes"])

    again = _cli("tensorboard", str(tb_logs), runs=runs)  # the same runs again add nothing
    assert again.returncode == 0 and "imported 0 runs" in again.stdout and "2 runs imported before" in again.stdout
    assert Store(runs).count_runs("imported") == 2


def test_a_map_names_tags_and_constants_and_a_dry_run_writes_nothing(tb_logs, tmp_path):
    runs = tmp_path / "runs"
    out = _cli("tensorboard", str(tb_logs / "a"), "--map", "momentum=0.95,test_acc=val/acc", "--seed", "7",
               "--dry-run", runs=runs)
    assert out.returncode == 0, out.stderr
    assert "momentum = 0.95 (constant)" in out.stdout and "nothing written" in out.stdout
    assert not (runs / "runs.db").exists() or Store(runs).count_runs() == 0
    src = trackers.read_tensorboard(tb_logs / "a")[0]
    p = importer.plan(src, {"lr": "train/lr", "momentum": 0.95, "test_acc": "val/acc"}, seed=7)
    assert {r["momentum"] for r in p["steps"]} == {0.95} and p["config"]["seed"] == 7


@pytest.mark.parametrize("bad, says", [
    (["--map", "lr=nope"], "no tag 'nope' for lr"),
    (["--map", "speed=train/lr"], "expected FIELD=TAG"),
    (["--map", "momentum=train/loss"], "Invalid momentum in tag 'train/loss' at step 0: 2.0"),
])
def test_a_bad_map_is_one_line_and_writes_nothing(tb_logs, tmp_path, bad, says):
    out = _cli("tensorboard", str(tb_logs), *bad, runs=tmp_path / "runs")
    assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert Store(tmp_path / "runs").count_runs() == 0


def test_mlflow_runs_from_a_real_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("cifar")
    client = mlflow.MlflowClient()
    for seed in (3, 4):
        with mlflow.start_run(run_name=f"beta-{seed}") as run:
            mlflow.log_params({"seed": seed, "method": "sgd-beta", "model": "resnet18"})
            metrics = [Metric(k, v, 1000 * s, s) for s in range(STEPS)
                       for k, v in (("learning_rate", _lr(s)), ("momentum", _mu(s)), ("loss", 1.0))]
            metrics += [Metric("test_accuracy", 0.5 + 0.1 * e, 0, e) for e in range(EPOCHS)]  # by epoch number
            client.log_batch(run.info.run_id, metrics=metrics)
    mlflow.set_tracking_uri(None)
    runs = tmp_path / "runs"
    out = _cli("mlflow", "--tracking-uri", str(tmp_path / "mlruns"), "--experiment", "cifar", runs=runs)
    assert out.returncode == 0, out.stderr
    assert "logged by epoch number" in out.stdout and "imported 2 runs" in out.stdout
    store = Store(runs)
    got = sorted(store.runs(kind="imported"), key=lambda r: r["config"]["seed"])
    assert [(r["method"], r["config"]["seed"], r["model"]) for r in got] == [("sgd-beta", 3, "resnet18"),
                                                                             ("sgd-beta", 4, "resnet18")]
    epochs = store.epochs(got[0]["id"])
    assert list(epochs["step"]) == [20, 40, 60] and list(epochs["test_acc"]) == pytest.approx([0.5, 0.6, 0.7])
    assert list(epochs["regime"]) == [r for _, r in _expected_epochs()]
    assert _cli("mlflow", "--tracking-uri", str(tmp_path / "mlruns"), runs=runs).stdout.count("imported before")
    missing = _cli("mlflow", "--tracking-uri", str(tmp_path / "mlruns"), "--experiment", "nope", runs=runs)
    assert missing.returncode == 2 and "No MLflow experiment 'nope'" in missing.stderr


def test_a_wandb_csv_export_splits_into_runs(tmp_path):
    f = tmp_path / "export.csv"
    lines = ["Step,beta - train/loss,beta - train/loss__MIN,beta - test/acc,const - train/loss,const - test/acc"]
    lines += [f"{s},{1 - s / 10},0,{'' if s % 5 != 4 else 0.1 * s},{1 - s / 20},{'' if s % 5 != 4 else 0.05 * s}"
              for s in range(10)]
    f.write_text("\n".join(lines) + "\n")
    sources = trackers.read_csv(f)
    assert [s.run for s in sources] == ["beta", "const"]
    assert set(sources[0].scalars) == {"train/loss", "test/acc"}
    p = importer.plan(sources[0], importer.guess_map(sources[0].scalars))
    assert [e["test_acc"] for e in p["epochs"]] == pytest.approx([0.4, 0.9]) and len(p["steps"]) == 10
    assert any("no momentum logged" in n for n in p["notes"])


def test_an_imported_run_has_no_weights_for_a_diagnostic(tb_logs, tmp_path, capsys):
    from beta_core.cli import main

    runs = tmp_path / "runs"
    assert main(["--runs-dir", str(runs), "import", "tensorboard", str(tb_logs / "a")]) == 0
    rid = Store(runs).runs(kind="imported")[0]["id"]
    assert main(["--runs-dir", str(runs), "attribute", rid]) == 2
    assert "has records only" in capsys.readouterr().err


def test_bounds_refuse_a_huge_source_before_reading_it(tmp_path, monkeypatch):
    f = tmp_path / "big.csv"
    f.write_text("step,loss\n" + "".join(f"{s},1\n" for s in range(50)))
    monkeypatch.setattr(trackers, "MAX_POINTS", 10)
    with pytest.raises(ValueError, match="50 rows"):
        trackers.read_csv(f)
    monkeypatch.setattr(trackers, "MAX_CSV_BYTES", 100)
    with pytest.raises(ValueError, match="expected at most"):
        trackers.read_csv(f)


def test_the_readmes_import_commands_run_as_pasted(tmp_path, monkeypatch):
    """Bring your runs: each `beta-core import` line of the README, on a Lightning-style log
    folder, a local MLflow store and a W&B-style CSV made here."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Bring your runs", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert [shlex.split(ln)[2] for ln in lines] == ["tensorboard", "mlflow", "csv"]
    monkeypatch.chdir(tmp_path)
    w = SummaryWriter("lightning_logs/version_0")  # LearningRateMonitor(log_momentum=True)'s names
    for s in range(STEPS):
        w.add_scalar("lr-SGD", _lr(s), s)
        w.add_scalar("lr-SGD-momentum", _mu(s), s)
        w.add_scalar("train_loss", 1.0, s)
    for e in range(EPOCHS):
        w.add_scalar("val_acc", 0.5, (e + 1) * 20)
    w.close()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("cifar")
    with mlflow.start_run() as run:
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=[Metric("lr", 0.1, 0, s) for s in range(9)]
                                        + [Metric("test_accuracy", 0.4, 0, e) for e in range(3)])
    mlflow.set_tracking_uri(None)
    (tmp_path / "wandb_export.csv").write_text("Step,run,train/loss,train/lr,val/acc\n0,a,1,0.1,\n1,a,1,0.1,0.5\n")
    for ln in lines:
        args = shlex.split(ln)[1:]
        out = subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", "runs", *args],
                             capture_output=True, text=True)
        assert out.returncode == 0, (ln, out.stderr)
        assert "imported 1 run " in out.stdout, out.stdout
    store = Store(tmp_path / "runs")
    lightning = next(r for r in store.runs(kind="imported") if r["config"]["source"]["tracker"] == "tensorboard")
    assert lightning["config"]["map"] == {"lr": "lr-SGD", "momentum": "lr-SGD-momentum", "loss": "train_loss",
                                         "test_acc": "val_acc"}
    assert lightning["summary"]["regimes"] == [r for _, r in _expected_epochs()]


@pytest.mark.parametrize("text, says", [("step,loss\n0.5,1\n", "expected whole numbers"),
                                        ("step,loss\n1e30,1\n", "Invalid step in tag 'loss'"),
                                        ("step,test_acc\n0,150\n", "Invalid test_acc")])
def test_a_hostile_csv_is_one_error_and_writes_nothing(tmp_path, text, says):
    f = tmp_path / "x.csv"
    f.write_text(text)
    out = _cli("csv", str(f), runs=tmp_path / "runs")
    assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "runs.db").exists() or Store(tmp_path / "runs").count_runs() == 0
