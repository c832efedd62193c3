"""beta_core.track: any training loop logged to the store, read back like an engine run."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import tiny_config

from beta_core import track
from beta_core.jobs.bodies import execute_run
from beta_core.schedules import MomentumRule, MomentumScheduler
from beta_core.store import Store


def _loop(run, opt, model, steps=10, per_epoch=5, scheduler=None):
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for step in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler:
            scheduler.step()
        run.log_step(step, loss=loss, optimizer=opt, acc=0.5)
        if (step + 1) % per_epoch == 0:
            run.log_epoch(step // per_epoch, test_acc=0.3 + 0.1 * (step // per_epoch), val_acc=0.4, train_loss=1.0)


def test_a_plain_loop_reads_back_with_the_engines_schema(tmp_path):
    store = Store(tmp_path)
    model = torch.nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.04, momentum=0.9)
    sched = MomentumScheduler(opt, MomentumRule("beta"))
    with track.start("sgd-beta", seed=3, config={"lr": 0.04, "thresholds": [0.35]}, runs_dir=tmp_path) as run:
        _loop(run, opt, model, scheduler=sched)
    ours = store.get_run(run.id)
    assert ours["kind"] == "external" and ours["status"] == "done" and ours["method"] == "sgd-beta"
    assert ours["config"]["seed"] == 3 and ours["config"]["host"] and ours["config"]["script"]
    engine = store.create_run(tiny_config().to_dict())
    assert execute_run(store, engine, str(tmp_path / "data"))["status"] == "done"
    a, b = store.steps(run.id), store.steps(engine)
    assert list(a.columns) == list(b.columns) and len(a) == 10
    assert list(store.epochs(run.id).columns) == list(store.epochs(engine).columns)
    # the beta rule: mu = 1 - 2 sqrt(lr) = 0.6 at lr 0.04, so zeta = (1 - mu) / (2 sqrt(lr)) = 1 (critical)
    assert a["momentum"].tolist() == pytest.approx([0.6] * 10) and a["zeta"].tolist() == pytest.approx([1.0] * 10)
    assert a["eff_lr"].tolist() == pytest.approx([0.1] * 10)
    s = ours["summary"]
    assert s["epochs_completed"] == 2 and s["final_test_acc"] == pytest.approx(0.4)
    assert s["regimes"] == ["critical", "critical"] and s["steps_per_epoch"] == 5
    assert s["time_to_accuracy"]["0.35"]["epoch"] == 1
    shared = {"status", "epochs_completed", "wall_seconds", "final_test_acc", "best_test_acc", "final_val_acc",
              "best_val_acc", "time_to_accuracy", "regimes", "steps_per_epoch"}
    assert shared <= set(s) and shared <= set(store.get_run(engine)["summary"])


def test_adam_momentum_is_beta1_and_no_zeta(tmp_path):
    model = torch.nn.Linear(8, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.999))
    with track.start("adam", runs_dir=tmp_path) as run:
        _loop(run, opt, model, steps=5)
    steps = Store(tmp_path).steps(run.id)
    assert steps["momentum"].tolist() == pytest.approx([0.8] * 5) and steps["zeta"].isna().all()
    assert Store(tmp_path).get_run(run.id)["summary"]["regimes"] == ["n/a (Adam)"]


def test_an_exception_ends_failed_and_ctrl_c_cancelled(tmp_path):
    with pytest.raises(RuntimeError, match="my loop broke"):
        with track.start("sgd-beta", runs_dir=tmp_path) as run:
            run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
            raise RuntimeError("my loop broke")
    r = Store(tmp_path).get_run(run.id)
    assert r["status"] == "failed" and "RuntimeError: my loop broke" in r["error"]
    assert len(Store(tmp_path).steps(run.id)) == 1  # what it logged before is kept
    with pytest.raises(KeyboardInterrupt):
        with track.start("sgd-beta", runs_dir=tmp_path) as run:
            raise KeyboardInterrupt
    assert Store(tmp_path).get_run(run.id)["status"] == "cancelled"


def test_bad_calls_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="expected a non-empty name"):
        track.start("", runs_dir=tmp_path)
    run = track.start("sgd-beta", runs_dir=tmp_path)
    with pytest.raises(ValueError, match="needs optimizer= or both lr= and momentum="):
        run.log_step(0, loss=1.0)
    with pytest.raises(ValueError, match=r"expected an accuracy in \[0, 1\]"):
        run.log_epoch(0, test_acc=93.0)
    run.finish()


def test_ranks_other_than_zero_do_not_log(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = track.start("sgd-beta", runs_dir=tmp_path)
    run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
    run.finish()
    assert Store(tmp_path).runs() == []
    run = track.start("sgd-beta", runs_dir=tmp_path, all_ranks=True)
    run.finish()
    assert Store(tmp_path).get_run(run.id)["config"]["rank"] == 1


SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from beta_core import track
    run = track.start(sys.argv[2], seed=int(sys.argv[3]), runs_dir=sys.argv[1])
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for step in range(200):
        run.log_step(step, loss=1.0 / (step + 1), optimizer=opt)
        if step == 99 and sys.argv[2] == "killed":
            run.writer.flush()
            os._exit(9)  # killed: no finish, no exception handler
    run.log_epoch(0, test_acc=0.5)
    run.finish()
""")


def test_two_processes_log_at_once_and_a_killed_one_reads_interrupted(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), m, str(s)], env=env)
             for m, s in (("sgd-beta", 0), ("sgd-constant", 0), ("killed", 1))]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 9]
    store = Store(tmp_path / "runs")
    runs = {r["method"]: r for r in store.runs()}
    assert runs["sgd-beta"]["status"] == runs["sgd-constant"]["status"] == "done"
    assert store.step_counts(runs["sgd-beta"]["id"], runs["sgd-constant"]["id"]) == {
        runs["sgd-beta"]["id"]: 200, runs["sgd-constant"]["id"]: 200}
    assert runs["killed"]["status"] == "interrupted" and store.step_counts(runs["killed"]["id"])[
        runs["killed"]["id"]] == 100


def test_a_saved_model_is_diagnosed_like_ours(tmp_path, trust_factories):
    from pathlib import Path

    from beta_core.attribution import AttributionConfig
    from beta_core.jobs.bodies import attribute_run, load_trained
    from beta_core.store import StoreError
    factory = f"{Path(__file__).resolve().parent / 'data' / 'user_models.py'}:two_part"
    from beta_core.models import ModelConfig, build_model
    model = build_model(ModelConfig(factory))
    with track.start("my-method", runs_dir=tmp_path / "runs") as bare:  # no factory, no dataset
        bare.save_model(model)
    with pytest.raises(StoreError, match="without a model factory"):
        load_trained(Store(tmp_path / "runs"), bare.id, str(tmp_path / "data"))
    cfg = {"dataset": "synthetic", "synthetic_train": 120, "synthetic_test": 60, "val_fraction": 0.0, "batch_size": 40}
    with track.start("my-method", runs_dir=tmp_path / "runs", config=cfg) as run:
        run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
        run.log_epoch(0, test_acc=0.1)
        run.save_model(model, factory=factory)
    result = attribute_run(Store(tmp_path / "runs"), run.id, AttributionConfig(probe_steps=2, max_samples=40),
                           str(tmp_path / "data"))
    assert result["groups"] == ["front", "head", "other"]


# ------------------------------------------------------------------ every record kept or refused (issue 29)
def test_a_restarted_step_count_is_refused_not_overwritten(tmp_path):
    with track.start("sgd-beta", runs_dir=tmp_path) as run:
        for epoch in range(2):
            for i in range(3):
                if epoch == 1 and i == 0:
                    fix = r"Invalid step: 0 after step 2 .*step=epoch \* len\(loader\) \+ i"
                    with pytest.raises(ValueError, match=fix):
                        run.log_step(i, loss=1.0, lr=0.1, momentum=0.9)
                run.log_step(epoch * 3 + i, loss=1.0, lr=0.1, momentum=0.9)
            run.log_epoch(epoch, test_acc=0.5)
    steps = Store(tmp_path).steps(run.id)
    assert steps["step"].tolist() == [0, 1, 2, 3, 4, 5]  # the first epoch's records were kept


@pytest.mark.parametrize("call, fragment", [
    (lambda r: r.log_step(-1, loss=1.0, lr=0.1, momentum=0.9), r"Invalid step: -1"),
    (lambda r: r.log_step(10 ** 12, loss=1.0, lr=0.1, momentum=0.9), r"Invalid step: 1000000000000"),
    (lambda r: r.log_step(True, loss=1.0, lr=0.1, momentum=0.9), r"Invalid step: True"),
    (lambda r: r.log_step(0, loss=1.0, lr=float("nan"), momentum=0.9), r"Invalid lr: nan"),
    (lambda r: r.log_step(0, loss=1.0, lr=-1, momentum=0.9), r"Invalid lr: -1"),
    (lambda r: r.log_step(0, loss=1.0, lr=0.1, momentum=5), r"Invalid momentum: 5 .*\[0, 1\)"),
    (lambda r: r.log_step(0, loss="1.0", lr=0.1, momentum=0.9), r"Invalid loss: '1.0'"),
    (lambda r: r.log_epoch(0, test_acc=float("inf")), r"Invalid test_acc: inf"),
])
def test_bad_records_are_refused_and_nothing_is_stored(tmp_path, call, fragment):
    run = track.start("sgd-beta", runs_dir=tmp_path)
    with pytest.raises(ValueError, match=fragment):
        call(run)
    run.finish()
    assert Store(tmp_path).steps(run.id).empty and Store(tmp_path).get_run(run.id)["summary"]["total_steps"] == 0


@pytest.mark.parametrize("kw, fragment", [
    ({"seed": 2 ** 70}, r"Invalid seed: 1180591620717411303424 \(expected an integer in \[0, 4,294,967,295\]\)"),
    ({"seed": True}, r"Invalid seed: True"),
    ({"config": {"lr": float("nan")}}, r"Invalid lr in config: nan"),
    ({"config": {"lr": -1}}, r"Invalid lr in config: -1"),
    ({"config": {"momentum": 5}}, r"Invalid momentum in config: 5"),
    ({"config": {"seed": 2 ** 70}}, r"Invalid seed in config"),
    ({"config": {"note": object()}}, r"Invalid config: .*expected JSON values"),
])
def test_seeds_and_hyperparameters_are_bounded_like_train_config(tmp_path, kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        track.start("sgd-beta", runs_dir=tmp_path, **kw)
    assert Store(tmp_path).runs() == []


def test_a_finished_run_refuses_more_records(tmp_path):
    with track.start("sgd-beta", runs_dir=tmp_path) as run:
        run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
        run.log_epoch(0, test_acc=0.5)
    for call in (lambda: run.log_step(1, loss=1.0, lr=0.1, momentum=0.9), lambda: run.log_epoch(1, test_acc=0.6),
                 lambda: run.save_model(torch.nn.Linear(2, 2))):
        with pytest.raises(ValueError, match=r"is finished \(done\).* after finish\(\) is refused"):
            call()
    store = Store(tmp_path)
    assert len(store.steps(run.id)) == 1 and len(store.epochs(run.id)) == 1
    assert store.get_run(run.id)["summary"]["final_test_acc"] == 0.5 and not store.checkpoint_path(run.id).exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), torch.tensor(float("nan"))])
def test_a_non_finite_loss_ends_the_run_diverged(tmp_path, bad):
    with pytest.raises(track.Diverged, match="diverged: the loss was"):
        with track.start("sgd-beta", runs_dir=tmp_path) as run:
            run.log_step(0, loss=1.0, lr=0.1, momentum=0.9)
            run.log_step(1, loss=bad, lr=0.1, momentum=0.9)
    r = Store(tmp_path).get_run(run.id)
    assert r["status"] == "diverged" and "at step 1" in r["error"] and len(Store(tmp_path).steps(run.id)) == 1


def test_a_killed_loop_says_how_many_steps_it_logged(tmp_path):
    code = textwrap.dedent(f"""
        import os
        from beta_core import track
        run = track.start("sgd-beta", runs_dir={str(tmp_path)!r})
        for i in range(449):
            run.log_step(i, loss=1.0, lr=0.1, momentum=0.9)
        run.writer.flush()
        os._exit(9)
    """)
    subprocess.run([sys.executable, "-c", code], check=False, timeout=120)
    (r,) = Store(tmp_path).runs()
    assert r["status"] == "interrupted" and "exited after 449 steps" in r["error"]


def test_runs_list_survives_a_huge_seed_in_an_older_store(tmp_path, capsys):
    from beta_core.cli import main
    store = Store(tmp_path)
    rid = store.create_run({"method": "mine", "seed": 2 ** 70}, kind="external", status="running")
    store.finish(rid, "done", {})
    assert main(["--runs-dir", str(tmp_path), "runs", "list"]) == 0
    assert rid in capsys.readouterr().out


def test_fields_the_store_would_drop_or_mangle_are_refused(tmp_path):
    run = track.start("sgd-beta", runs_dir=tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword argument 'grad_norm'"):
        run.log_step(0, loss=1.0, lr=0.1, momentum=0.9, grad_norm=3.0)  # a step record has fixed fields
    with pytest.raises(ValueError, match="Invalid val_loss: 'x'"):
        run.log_epoch(0, test_acc=0.5, val_loss="x")
    run.log_epoch(0, test_acc=0.5, train_loss=float("nan"), note="kept")  # an epoch's extras are kept
    run.finish()
    assert Store(tmp_path).epochs(run.id)["extra"].tolist() == [{"note": "kept"}]


def test_the_readmes_loop_runs_as_pasted_and_is_diagnosed(tmp_path):
    """The README's "Your training loop" script, copied as it stands: it trains on an image
    tree, logs to the store, and `beta-core attribute --trust-model loop.py:net` diagnoses it."""
    from pathlib import Path

    from PIL import Image
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your training loop", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "loop.py").write_text(code)
    g = torch.Generator().manual_seed(0)
    for split, per in (("train", 40), ("test", 20)):
        for ci, c in enumerate(("cat", "dog")):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for i in range(per):  # two classes told apart by a colour shift; a quarter of the test images
                shift = 60 * (1 - ci if split == "test" and i % 4 == 0 else ci)  # look like the other class
                px = (torch.rand(32, 32, 3, generator=g) * 120 + shift).clamp(0, 255).to(torch.uint8)
                Image.fromarray(px.numpy()).save(tmp_path / "data" / split / c / f"{i}.png")
    env = {**os.environ, "BETA_RUNS_DIR": str(tmp_path / "runs"), "BETA_DATA_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "loop.py", "data"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    run = Store(tmp_path / "runs").runs()[0]
    assert run["kind"] == "external" and run["status"] == "done" and run["summary"]["model_spec"] == "loop.py:net"
    p = subprocess.run([sys.executable, "-m", "beta_core", "attribute", run["id"], "--trust-model", "loop.py:net",
                        "--probe-steps", "2"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "errors of 40 (test split)" in p.stdout
