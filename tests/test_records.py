from beta_core.records import format_hit, format_time_to_accuracy, time_to_accuracy


def test_time_to_accuracy_first_epoch_reaching_each_threshold():
    eps = [{"epoch": 0, "step": 10, "time": 1.0, "test_acc": 0.4},
           {"epoch": 1, "step": 20, "time": 2.0, "test_acc": 0.65},
           {"epoch": 2, "step": 30, "time": 3.0, "test_acc": 0.6}]
    tta = time_to_accuracy(eps, (0.5, 0.6, 0.9))
    assert tta == {"0.5": {"epoch": 1, "step": 20, "time": 2.0}, "0.6": {"epoch": 1, "step": 20, "time": 2.0},
                   "0.9": None}


def test_one_formatter_for_time_to_accuracy():
    assert format_hit(None) == "—"
    # steps first, epochs 1-based; seconds only when asked, and then labelled as wall clock
    assert format_hit({"epoch": 2, "step": 3030, "time": 3.04}) == "step 3,030 (ep 3)"
    from beta_core.records import format_target
    assert format_target("0.575") == "57.5%" and format_target(0.6) == "60%"
    assert format_time_to_accuracy({"0.5": {"epoch": 0, "step": 1, "time": 1.0}, "0.9": None}) == \
        "0.5: step 1 (ep 1), 0.9: —"
    assert format_time_to_accuracy(None) == ""


def test_progress_rate_and_time_left():
    from beta_core.records import format_progress, format_seconds, progress_of

    p = progress_of({"phase": "training", "total": 235, "unit": "steps", "started": 100.0}, now=110.0, done=50)
    assert p["rate"] == 5.0 and p["eta"] == 37.0
    assert format_progress(p) == "training: 50/235 steps · 5 steps/s · about 37 s left"
    # nothing measured yet: the phase alone, no made-up rate
    assert format_progress(progress_of({"phase": "loading data"}, now=5.0)) == "loading data"
    slow = progress_of({"phase": "benchmark", "done": 2, "total": 12, "unit": "cases", "started": 0.0}, 60.0)
    assert format_progress(slow) == "benchmark: 2/12 cases · 2 cases/min · about 5 min 0 s left"
    # a run's steps stay per second below 1/s: its rate's unit never flips while it trains
    crawl = progress_of({"phase": "training", "total": 100, "unit": "steps", "started": 0.0}, 20.0, 10)
    assert format_progress(crawl) == "training: 10/100 steps · 0.5 steps/s · about 3 min 0 s left"
    assert format_seconds(3725) == "1 h 2 min"


def test_crossing_times_interpolate_between_evaluations():
    from beta_core.records import accuracy_series, crossing_times

    series = [(50, 5.0, 0.30), (100, 10.0, 0.50), (150, 16.0, 0.70), (200, 20.0, 0.70)]
    hits = crossing_times(series, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert hits["0.3"] == {"step": 50.0, "time": 5.0}          # reached at the first evaluation
    assert hits["0.4"] == {"step": 75.0, "time": 7.5}          # half way between 0.30 and 0.50
    assert hits["0.5"] == {"step": 100.0, "time": 10.0}        # exactly at an evaluation
    assert hits["0.6"] == {"step": 125.0, "time": 13.0}
    assert hits["0.8"] is None                                 # never: censored, not dropped
    epochs = [{"step": 100, "time": 9.0, "test_acc": 0.5, "evals": [[50, 4.0, 0.3], [100, 8.5, 0.5]]},
              {"step": 200, "time": 19.0, "test_acc": 0.7, "evals": [[150, 14.0, 0.6], [200, 18.0, 0.7]]}]
    assert accuracy_series(epochs) == [(50, 4.0, 0.3), (100, 8.5, 0.5), (150, 14.0, 0.6), (200, 18.0, 0.7)]
    assert accuracy_series([{k: v for k, v in e.items() if k != "evals"} for e in epochs]) == [
        (100, 9.0, 0.5), (200, 19.0, 0.7)]  # no evaluations within epochs: one point per epoch
