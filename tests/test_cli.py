
import pytest

from beta_core.cli import main
from beta_core.formats import format_seconds
from beta_core.store import Store

TINY = ["--dataset", "synthetic", "--set", "synthetic_train=400", "--set", "synthetic_test=200", "--model",
        "small_cnn", "--width", "4", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--quiet"]


def run(capsys, tmp_path, *argv):
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_list_show_export_delete(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "train", "--method", "sgd-constant", *TINY)
    assert code == 0 and "sgd-constant" in out and "done" in out and "SYNTHETIC" in out
    rid = out.split()[0]
    code, out, _ = run(capsys, tmp_path, "runs", "list")
    assert code == 0 and rid in out
    code, out, _ = run(capsys, tmp_path, "runs", "show", rid)
    assert code == 0 and '"status": "done"' in out and "test_acc" in out
    code, out, _ = run(capsys, tmp_path, "runs", "export", rid, "--out", str(tmp_path / "exp"))
    assert code == 0 and (tmp_path / "exp" / "steps.csv").exists()
    code, out, _ = run(capsys, tmp_path, "runs", "delete", rid)
    assert code == 0 and "deleted" in out
    code, out, _ = run(capsys, tmp_path, "runs", "list")
    assert "no runs" in out


def test_compare_two_seeds_reports_spread(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "compare", "--methods", "sgd-constant,sgd-beta", "--seeds", "0,1", *TINY)
    assert code == 0, out
    assert "per method (mean, std, n over seeds)" in out
    assert out.count("done") == 4 and "final_test_acc_std" in out
    # a run relaunched with a change joins the comparison it came from (as the page's Launch again)
    first = Store(tmp_path / "runs").runs(kind="train")[-1]
    code, _, err = run(capsys, tmp_path, "train", "--from", first["id"], "--set", "lr=0.05", "--quiet")
    assert code == 0, err
    new = Store(tmp_path / "runs").runs(kind="train")[0]
    assert new["group_id"] == first["group_id"] is not None and new["config"]["lr"] == 0.05


def test_compare_parallel_processes(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "compare", "--methods", "sgd-beta,adam", "--parallel", "2", *TINY)
    assert code == 0, out
    assert out.count("done") == 2


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--method", "sgd-magic"], "Unknown method: 'sgd-magic'"),
    (["train", "--model", "vgg"], "Unknown model: 'vgg'"),
    (["train", "--dataset", "mnist"], "Unknown dataset: 'mnist'"),
    (["train", "--epochs", "0"], "Invalid epochs: 0"),
    (["train", "--batch-size", "0"], "Invalid batch_size: 0"),
    (["train", "--thresholds", "0,0.5"], "Invalid thresholds"),
    (["train", "--set", "bogus=1"], "Invalid --set 'bogus=1'"),
    (["compare", "--seeds", "a,b"], "Invalid seeds"),
    (["runs", "show", "nope"], "Unknown run: 'nope'"),
    (["runs", "show", "../x"], "Invalid run id"),
])
def test_errors_exit_nonzero_with_message(capsys, tmp_path, argv, fragment):
    code, _, err = run(capsys, tmp_path, *argv)
    assert code == 2 and fragment in err and err.startswith("error:")


def test_bad_data_path_creates_no_run(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path, "train", *TINY, "--dataset", "folder", "--data-path", str(tmp_path / "none"))
    assert code == 2 and "Data path not found" in err and err.count("\n") == 1
    from beta_core.store import Store

    assert Store(tmp_path / "runs").runs() == []


def test_batch_larger_than_data(capsys, tmp_path):
    """Refused before a run exists (issue 29), not a failed run."""
    code, out, err = run(capsys, tmp_path, "train", *TINY[:-3], "--batch-size", "5000", "--quiet")
    assert code == 2 and "Invalid batch_size: 5000 (expected at most the" in err
    assert Store(tmp_path / "runs").runs() == []


def test_diagnostic_commands(capsys, tmp_path):
    ids = []
    for method in ("sgd-beta", "adam"):
        code, out, _ = run(capsys, tmp_path, "train", "--method", method, *TINY)
        assert code == 0
        ids.append(out.split()[0])
    code, out, _ = run(capsys, tmp_path, "attribute", ids[0], "-k", "2", "--probe-steps", "2")
    assert code == 0 and "flagged by probe:" in out and "block3" in out
    code, out, _ = run(capsys, tmp_path, "overlap", ids[0], ids[1])
    assert code == 0 and "Jaccard" in out
    code, out, _ = run(capsys, tmp_path, "surgery", ids[0], "--groups", "fc", "--epochs", "1", "--controls", "--quiet")
    assert code == 0, out
    assert "all groups (full fine-tune)" in out and "random groups" in out and "per-parameter" in out
    assert "parameter proxy" in out and "measured wall-clock" in out
    code, out, _ = run(capsys, tmp_path, "plant-fault", ids[0], "--group", "block2")
    assert code in (0, 1) and "ranked" in out  # 1 = not detected: the exit code says so


@pytest.mark.parametrize("argv,fragment", [
    (["surgery", "RUN", "--groups", "layer9", "--quiet"], "Unknown layer groups: ['layer9']"),
    (["surgery", "RUN", "--epochs", "0"], "Invalid surgery epochs: 0"),
    (["surgery", "RUN", "--train-split", "test"], "Refused: surgery would train on the 'test' split"),
    (["attribute", "RUN", "-k", "9"], "Invalid k: 9"),
    (["plant-fault", "RUN", "--group", "nope"], "Unknown layer group: 'nope'"),
])
def test_diagnostic_errors(capsys, tmp_path, argv, fragment):
    code, out, _ = run(capsys, tmp_path, "train", *TINY)
    rid = out.split()[0]
    code, out, err = run(capsys, tmp_path, *[rid if a == "RUN" else a for a in argv])
    assert code != 0 and fragment in (err + out)


def test_run_without_checkpoint(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "train", *TINY, "--set", "lr=1e6", "--method", "sgd-constant",
                       "--epochs", "3")
    rid = out.split()[0]
    assert "diverged" in out
    code, _, err = run(capsys, tmp_path, "attribute", rid)
    assert code == 2 and "has no checkpoint" in err


def test_store_written_by_the_previous_code_still_works(capsys, tmp_path):
    """A runs folder written before the records/config split (tests/data/store_v0): list, show,
    export and attribute it with today's code."""
    import shutil

    from helpers import OLD_STORE

    shutil.copytree(OLD_STORE, tmp_path / "runs")
    code, out, _ = run(capsys, tmp_path, "runs", "list")
    assert code == 0 and "20261130-190919-sgd-beta-447761" in out and "surgery" in out
    from beta_core.reports import run_table
    from beta_core.store import Store

    df = run_table(Store(tmp_path / "runs")).set_index("id")
    assert df.loc["20261130-190919-sgd-beta-447761", "wall_seconds"] > 0  # stored as train_seconds then
    code, out, _ = run(capsys, tmp_path, "runs", "show", "20261130-190919-sgd-beta-447761")
    assert code == 0 and '"status": "done"' in out and "test_acc" in out
    code, out, _ = run(capsys, tmp_path, "runs", "export", "20261130-190919-sgd-beta-447761", "--out",
                       str(tmp_path / "exp"))
    assert code == 0 and "group_scores" in (tmp_path / "exp" / "epochs.csv").read_text()
    code, out, err = run(capsys, tmp_path, "attribute", "20261130-190919-sgd-beta-447761", "-k", "2")
    assert code == 0 and "flagged by" in out, err
    code, out, err = run(capsys, tmp_path, "attribute", "20261130-190921-surgery-fbaeb3", "-k", "2")
    assert code == 0 and "flagged by" in out, err


def test_every_subcommand_prints_its_help(capsys):
    """A help text with a bare % (a config field's "about 2%") crashed `compare --help`."""
    import argparse

    from beta_core.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        text = parser.format_help()
        assert name in text and "usage" in text
    with pytest.raises(SystemExit) as e:
        main(["compare", "--help"])
    assert e.value.code == 0 and "--eval-images" in capsys.readouterr().out


def test_reading_stored_runs_imports_no_torch(tmp_path):
    """`runs list|show|diff` and `report` read the store without torch (a listing took 9 s, 8.4 s of
    it torch)."""
    import subprocess
    import sys

    from helpers import tiny_config

    from beta_core.jobs.bodies import execute_run
    store = Store(tmp_path / "runs")
    ids = [store.create_run(tiny_config(method=m).to_dict()) for m in ("sgd-beta", "sgd-constant")]
    for rid in ids:
        execute_run(store, rid, str(tmp_path / "data"))
    out = str(tmp_path / "r.html")
    for argv in (["runs", "list"], ["runs", "show", ids[0]], ["runs", "diff", *ids], ["report", *ids, "--out", out]):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"),
                            *argv], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-500:]
        assert ids[0] in p.stdout or argv[0] == "report"
        imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time")}
        assert "torch" not in imported and "torchvision" not in imported, argv
        assert "beta_core.cli.stored" in imported  # the light path ran
    # the light path still says what a bad id is, in one line
    p = subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(tmp_path / "runs"), "runs", "show",
                        "nope"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: Unknown run: 'nope'")


def test_attribute_says_what_it_will_do_and_takes_a_subset(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "train", "--method", "sgd-beta", *TINY)
    rid = out.split()[0]
    code, out, err = run(capsys, tmp_path, "attribute", rid, "--images", "120", "--probe-steps", "2")
    assert code == 0, err
    assert err.startswith(f"attributing run {rid}: the errors among the first 120 test images") and "took " in err
    assert "no earlier attribution like it here to estimate from" in err
    # each stage says how far it is while it works (the probe: group passes of 2 x groups)
    for line in ("1/3 reading the images: 0/120 images", "1/3 reading the images: 120/120 images",
                 "3/3 the probe retraining each group: 0/", "2/3 gradients on the errors: "):
        assert line in err, err
    assert "errors of 120 (test split)" in out
    stored = Store(tmp_path / "runs").results(rid, "attribution")[-1]
    assert stored["n_samples"] == 120 and stored["config"]["max_samples"] == 120 and stored["seconds"] > 0
    code, out, err = run(capsys, tmp_path, "attribute", rid, "--images", "120", "--probe-steps", "2")
    assert f"about {format_seconds(stored['seconds'])}, as the last one like it took here" in err  # measured here
    code, _, err = run(capsys, tmp_path, "attribute", rid, "--images", "0")
    assert code == 2 and "Invalid max_samples: 0" in err


def test_runs_list_says_a_missing_value_with_a_dash(capsys, tmp_path):
    """The new user's walk: `runs list` printed NaN and <NA> for what a run does not have (a
    localisation's seed and LR, a surgery's wall seconds, a top-level run's parent)."""
    from beta_core.store import Store

    store = Store(tmp_path / "runs")
    rid = store.create_run({"method": "localise", "model": "small_cnn"}, kind="localise", status="done")
    store.finish(rid, "done", {})
    code, out, _ = run(capsys, tmp_path, "runs", "list")
    row = next(line for line in out.splitlines() if rid in line)
    assert code == 0 and not {"NaN", "nan", "<NA>", "None"} & set(row.split()) and row.split().count("-") >= 5


def test_a_bad_flag_is_one_line_too(capsys, tmp_path):
    """`--lr inf` printed the whole usage (34 lines) before its error, unlike every other bad input."""
    with pytest.raises(SystemExit) as e:
        main(["--runs-dir", str(tmp_path / "runs"), "train", "--lr", "inf"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.splitlines() == [
        "beta-core train: error: argument --lr: Invalid lr: 'inf' (expected a finite number) (see beta-core train "
        "--help)"]
    assert not (tmp_path / "runs").exists() or Store(tmp_path / "runs").count_runs() == 0
