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
    assert format_hit({"epoch": 2, "step": 30, "time": 3.04}) == "ep 3 · 3.0 s"
    assert format_time_to_accuracy({"0.5": {"epoch": 0, "step": 1, "time": 1.0}, "0.9": None}) == \
        "0.5: ep 1 · 1.0 s, 0.9: —"
    assert format_time_to_accuracy(None) == ""
