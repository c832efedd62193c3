"""How numbers read for people (``formats``): one formatter per idea, each tested here."""
from beta_core.formats import (
    counted,
    format_hit,
    format_progress,
    format_seconds,
    format_target,
    format_time_to_accuracy,
    g3,
    paper_beside,
    pct,
    share,
)
from beta_core.timeleft import progress_of


def test_one_formatter_for_time_to_accuracy():
    assert format_hit(None) == "—"
    # steps first, epochs 1-based; seconds only when asked, and then labelled as wall clock
    assert format_hit({"epoch": 2, "step": 3030, "time": 3.04}) == "step 3,030 (ep 3)"
    assert format_target("0.575") == "57.5%" and format_target(0.6) == "60%"
    assert format_time_to_accuracy({"0.5": {"epoch": 0, "step": 1, "time": 1.0}, "0.9": None}) == \
        "0.5: step 1 (ep 1), 0.9: —"
    assert format_time_to_accuracy(None) == ""


def test_progress_rate_and_time_left():
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


def test_numbers_counts_and_shares_read_as_people_write_them():
    assert pct(None) == "-" and pct(0.5834) == "58.3%" and pct(0.5834, 2) == "58.34%" and pct(None, none="—") == "—"
    assert share(32 / 100000) == "<0.1%" and share(0.76) == "76.0%" and share(0.0) == "0.0%"
    assert g3(-76.14) == "−76.1" and g3(0.15849) == "0.158" and g3(1e-5) == "1e-05"  # a true minus sign
    assert counted(1, "run") == "1 run" and counted(1024, "run") == "1,024 runs" and counted(0, "seed") == "0 seeds"
    assert format_seconds(42.4) == "42 s" and format_seconds(185) == "3 min 5 s" and format_seconds(-3) == "0 s"


def test_the_papers_claim_stands_beside_ours_with_whether_they_compare():
    assert paper_beside("sgd-constant", 0.9) is None  # the paper claims nothing about it
    assert paper_beside("sgd-beta", 0.9).endswith("same target: comparable in what is measured, not in model, "
                                                  "recipe or seeds")
    assert "this claim's target is 95%, the paper's 90%" in paper_beside("sgd-beta", 0.95)
