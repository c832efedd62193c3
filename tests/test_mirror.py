"""Mirroring: a tracked run's records also in the user's TensorBoard or MLflow, equal to the store's."""
import math

import mlflow
import pytest

from beta_core import track, trackers
from beta_core.env import EnvError, settings
from beta_core.mirror import TAGS, check_spec
from beta_core.store import Store


def _log(run, steps=12):
    for s in range(steps):
        lr = 0.1 * (1 - s / steps) + 1e-3
        run.log_step(s, loss=2.0 - s / 10, lr=lr, momentum=1 - 2 * math.sqrt(lr))
        if s % 4 == 3:
            run.log_epoch(s // 4, test_acc=0.3 + 0.05 * s, val_acc=0.25 + 0.05 * s, train_loss=1.0)


def test_a_mirrored_runs_tensorboard_scalars_equal_its_store_records(tmp_path):
    with track.start("sgd-beta", seed=1, runs_dir=tmp_path / "runs", mirror=f"tensorboard:{tmp_path / 'tb'}") as run:
        _log(run)
    store = Store(tmp_path / "runs")
    steps, epochs = store.steps(run.id), store.epochs(run.id)
    (src,) = trackers.read_tensorboard(tmp_path / "tb")
    assert src.run == run.id
    for field, tag in TAGS["step"].items():
        want = [(int(s), v) for s, v in zip(steps["step"], steps[field]) if v == v and v is not None]
        got = [(s, v) for s, v, _ in src.scalars.get(tag, [])]
        assert [s for s, _ in got] == [s for s, _ in want], field
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), field  # float32 events
    for field in ("test_acc", "val_acc", "train_loss", "zeta_median"):
        got = src.scalars[TAGS["epoch"][field]]
        assert [s for s, _, _ in got] == list(epochs["step"].astype(int))
        assert [v for _, v, _ in got] == pytest.approx(list(epochs[field]), rel=1e-6)


def test_a_mirrored_run_in_mlflow_and_a_failing_tracker_does_not_stop_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    with track.start("sgd-beta", seed=2, runs_dir=tmp_path / "runs", mirror=f"mlflow:{uri}") as run:
        _log(run)
    client = mlflow.MlflowClient(uri)
    (ml,) = client.search_runs([client.get_experiment_by_name("beta-core").experiment_id])
    assert ml.info.run_name == run.id and ml.info.status == "FINISHED" and ml.data.params["method"] == "sgd-beta"
    history = client.get_metric_history(ml.info.run_id, "opt/momentum")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        list(Store(tmp_path / "runs").steps(run.id)["momentum"]))

    with pytest.warns(RuntimeWarning, match="mirroring run .* stopped: division by zero"), \
            track.start("sgd-beta", seed=3, runs_dir=tmp_path / "runs", mirror=f"mlflow:{uri}") as run:
        monkeypatch.setattr(run.writer.mirror.ml, "log_batch", lambda *a, **k: 1 / 0)
        _log(run)
    got = Store(tmp_path / "runs").get_run(run.id)
    assert got["status"] == "done" and len(Store(tmp_path / "runs").steps(run.id)) == 12


def test_a_bad_mirror_spec_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="expected tensorboard:DIR, mlflow or mlflow:TRACKING_URI"):
        track.start("sgd-beta", runs_dir=tmp_path / "runs", mirror="wandb")
    assert Store(tmp_path / "runs").count_runs() == 0
    assert check_spec("mlflow") == "mlflow" and check_spec(None) is None
    with pytest.raises(EnvError, match="BETA_MIRROR"):
        settings({"BETA_MIRROR": "neptune:x"})
    assert settings({"BETA_MIRROR": "tensorboard:/tmp/tb"}).mirror == "tensorboard:/tmp/tb"


def test_beta_mirror_sends_every_engine_run_to_the_tracker(tmp_path, monkeypatch):
    from helpers import tiny_config

    from beta_core.jobs.bodies import execute_run

    monkeypatch.setenv("BETA_MIRROR", f"tensorboard:{tmp_path / 'tb'}")
    store = Store(tmp_path / "runs")
    rid = store.create_run(tiny_config(epochs=2).to_dict())
    assert execute_run(store, rid, str(tmp_path / "data"))["status"] == "done"
    (src,) = trackers.read_tensorboard(tmp_path / "tb")
    assert src.run == rid
    assert [v for _, v, _ in src.scalars["opt/momentum"]] == pytest.approx(list(store.steps(rid)["momentum"]))
    assert [v for _, v, _ in src.scalars["test/acc"]] == pytest.approx(list(store.epochs(rid)["test_acc"]))
