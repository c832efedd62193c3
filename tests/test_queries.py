"""Reading the store for pages and reports (``beta_core.queries``)."""
import subprocess
import sys

from helpers import tiny_config

from beta_core.queries import active_duplicates
from beta_core.store import Store


def test_a_second_launch_of_the_same_runs_is_seen_as_a_duplicate(tmp_path):
    store = Store(tmp_path / "runs")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cfg = tiny_config(seed=1).to_dict()
        queued = store.create_run({**cfg, "threads": 2}, pid=owner.pid)  # the launcher filled its threads in
        assert [r["id"] for r in active_duplicates(store, [cfg, tiny_config(seed=2).to_dict()])] == [queued]
        assert active_duplicates(store, [tiny_config(seed=2).to_dict()]) == []  # another seed is a new run
        store.finish(queued, "done", {})
        assert active_duplicates(store, [cfg]) == []  # finished: launching it again is a new comparison
    finally:
        owner.kill()
        owner.wait()
