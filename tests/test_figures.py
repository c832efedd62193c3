"""beta_core.figures: charts as data (issue 31: group axes are names, not numbers)."""
from beta_core.figures import group_scores_figure, heatmap, probe_figure

# an nn.Sequential's groups: named by index, which a numeric axis would space as 0, 1, 4, 8, 13
R = {"groups": ["0", "1", "4", "8", "13"], "flagged": ["4"], "scores": dict.fromkeys(["0", "1", "4", "8", "13"], 1.0),
     "probe_scores": {"0": -0.1, "1": 0.0, "4": 0.3, "8": -0.2, "13": 0.1}, "config": {"normalization": "relative"}}


def test_group_axes_are_categorical():
    for fig in (group_scores_figure(R, red_flagged=True), probe_figure(R)):
        assert fig.layout.xaxis.type == "category" and list(fig.data[0].x) == R["groups"]
    hm = heatmap([[0.1, 0.2]] * 5, R["groups"], ["cat", "dog"], "groups x classes", 1.0)
    assert hm.layout.xaxis.type == "category" and hm.layout.yaxis.type == "category"


def test_flagged_groups_are_red_only_when_this_score_flagged_them():
    colors = list(group_scores_figure(R, red_flagged=True).data[0].marker.color)
    assert colors[2] != colors[0] and colors[0] == colors[1]
    assert isinstance(group_scores_figure(R, red_flagged=False).data[0].marker.color, str)
    assert list(probe_figure(R).data[0].marker.color)[2] == colors[2]


def test_a_mean_curve_equal_to_another_says_it_is_hidden_under_it():
    import pandas as pd

    from beta_core.figures import mean_curve_figure
    rows = [{"arm": a, "epoch": e, "step": 10 * e, "time": e, "mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01,
             "n": 3}
            for a, ms in (("sgd-beta", (0.3, 0.5)), ("sgd-hybrid", (0.3, 0.5)), ("sgd-constant", (0.2, 0.4)))
            for e, m in enumerate(ms)]
    fig = mean_curve_figure(pd.DataFrame(rows), "step", "t")
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert "sgd-hybrid (= sgd-beta throughout: under it)" in names and "sgd-constant" in names
    assert names[-1] == "sgd-beta"  # beta on top, drawn last


def test_a_sweep_grid_says_what_its_blank_cells_are():
    from beta_core.figures import sweep_grid_figure
    from beta_core.records import Cell

    def run(status, acc):
        return {"status": status, "summary": {"final_test_acc": acc}}
    done = [(Cell("test", "sgd-beta", 0, (("lr", 0.1),)), run("done", 0.5)),
            (Cell("test", "adam", 0, (("lr", 0.001),)), run("done", 0.6))]  # Adam's own LR grid
    assert sweep_grid_figure(done, "test").layout.title.text.endswith("blank: not in that method's grid")
    running = done + [(Cell("test", "sgd-beta", 1, (("lr", 0.1),)), run("running", None))]
    assert sweep_grid_figure(running, "test").layout.title.text.endswith("blank: not run yet")
    assert sweep_grid_figure(done, "tune") is None


def test_a_sweep_grid_is_in_percent_and_says_what_its_colours_span():
    from beta_core.figures import sweep_grid_figure
    from beta_core.records import Cell
    rows = [(Cell("test", "sgd-beta", s, (("lr", 0.1),)), {"status": "done", "summary": {"final_test_acc": a}})
            for s, a in ((0, 0.581), (1, 0.595))]
    fig = sweep_grid_figure(rows, "test")
    assert fig.data[0].text[0] == ["58.1%", "59.5%"] and "colours from 58.1% to 59.5%" in fig.layout.title.text


def test_the_lr_sensitivity_chart_labels_every_lr_and_stays_inside_0_100():
    """Every LR of the grid has its tick, written out (0.025 had none); accuracy in %, its
    intervals cut at 0-100%, the axis spanning the data and saying so."""
    from beta_core.figures import lr_sensitivity_figure

    curve = lambda accs: [{"values": {"lr": lr}, "mean": a, "ci_low": a - 0.3, "ci_high": a + 0.3}  # noqa: E731
                          for lr, a in zip((0.025, 0.05, 0.1, 0.2), accs)]
    fig = lr_sensitivity_figure({"sgd-beta": {"curve": curve((0.2, 0.5, 0.8, 0.9))},
                                 "sgd-constant": {"curve": curve((0.1, 0.4, 0.85, 0.7))}}, {})
    assert list(fig.layout.xaxis.tickvals) == [0.025, 0.05, 0.1, 0.2]
    assert list(fig.layout.xaxis.ticktext) == ["0.025", "0.05", "0.1", "0.2"]
    for t in fig.data:
        ys, up, down = t.y, t.error_y.array, t.error_y.arrayminus
        assert all(0 <= y - d and y + u <= 100 for y, u, d in zip(ys, up, down))
    assert list(fig.layout.yaxis.range) == [0, 100] and not fig.layout.annotations  # the data span all of it
    tight = [{**p, "ci_low": p["mean"] - 0.02, "ci_high": p["mean"] + 0.02} for p in curve((0.5, 0.55, 0.58, 0.57))]
    narrow = lr_sensitivity_figure({"sgd-beta": {"curve": tight}}, {})
    lo, hi = narrow.layout.yaxis.range
    assert 40 < lo and hi < 70 and "spans the data" in narrow.layout.annotations[0].text


def test_a_one_point_accuracy_chart_stays_inside_0_100():
    import pandas as pd

    from beta_core.figures import mean_curve_figure

    one = pd.DataFrame({"arm": ["sgd-beta"], "epoch": [1], "mean": [0.3], "ci_low": [0.0], "ci_high": [1.0]})
    fig = mean_curve_figure(one, "epoch", "test accuracy", percent=True)
    lo, hi = fig.layout.yaxis.range
    assert lo == 0 and hi == 100 and not fig.layout.annotations  # it spans all of 0-100: no note says otherwise
    fig = mean_curve_figure(one.assign(ci_low=0.28, ci_high=0.33), "epoch", "test accuracy", percent=True)
    assert fig.layout.yaxis.range[0] > 20 and fig.layout.yaxis.range[1] < 40  # spans the data, not 0-100


def test_a_run_with_a_planted_fault_is_named_so():
    from beta_core.figures import run_name

    run = {"id": "20261207-081906-sgd-beta-7c99e2", "method": "sgd-beta", "kind": "train",
           "config": {"seed": 0, "lr": 0.1, "planted_fault": "block2"}}
    assert run_name(run) == "sgd-beta s0 lr 0.1 (planted fault: block2) · 7c99e2"
    assert "planted" not in run_name({**run, "config": {"seed": 0, "lr": 0.1}})


def test_a_planted_faults_drop_is_drawn_where_the_run_ended():
    """The Train chart of a planted-fault run ended at its last epoch (58.4%) while the headline
    said 36.2%: the drop after training is drawn, dotted, to the accuracy the run ended with."""
    import pandas as pd

    from beta_core.figures import panel_figure

    frames = {"a": pd.DataFrame({"epoch": [1, 2], "test_acc": [0.5, 0.584]}),
              "b": pd.DataFrame({"epoch": [1, 2], "test_acc": [0.5, 0.574]})}
    panel = {"frames": frames, "x": "epoch", "y": "test_acc", "title": "Test accuracy", "percent": True,
             "after": {"a": (0.362, "after the planted fault in block2")}}
    fig = panel_figure([panel], {"a": "faulty", "b": "clean"}, {"a": "#1f77b4", "b": "#ff7f0e"})
    drops = [t for t in fig.data if t.hovertext == "after the planted fault in block2"]
    assert len(drops) == 1 and list(drops[0].x) == [2, 2] and list(drops[0].y) == [0.584, 0.362]
    assert drops[0].line.dash == "dot" and drops[0].showlegend is False and len(fig.data) == 3
    assert fig.layout.yaxis.tickformat == ".1~%"  # ticks 0.5% apart read 16.5%, not a repeated 17%


def test_the_benchmarks_rates_read_in_percent_like_its_table():
    from beta_core.figures import top1_figure

    rate = {"rate": 0.64, "ci_low": 0.5, "ci_high": 0.76}
    fig = top1_figure({"scores": {"probe": {"top1": rate}}, "floor_top1": 1 / 6}, ["probe"])
    assert fig.layout.yaxis.tickformat == ".0%" and tuple(fig.layout.yaxis.range) == (0, 1)
    assert "top-1" in fig.layout.yaxis.title.text
