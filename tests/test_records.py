from beta_core.records import time_to_accuracy


def test_time_to_accuracy_first_epoch_reaching_each_threshold():
    eps = [{"epoch": 0, "step": 10, "time": 1.0, "test_acc": 0.4},
           {"epoch": 1, "step": 20, "time": 2.0, "test_acc": 0.65},
           {"epoch": 2, "step": 30, "time": 3.0, "test_acc": 0.6}]
    tta = time_to_accuracy(eps, (0.5, 0.6, 0.9))
    assert tta == {"0.5": {"epoch": 1, "step": 20, "time": 2.0}, "0.6": {"epoch": 1, "step": 20, "time": 2.0},
                   "0.9": None}


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
