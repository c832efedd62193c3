"""Findings: the paper's four claims on the bundled runs; the document regenerates exactly."""
from pathlib import Path

import pytest
from scipy import stats

from beta_core import bundles
from beta_core.cli import main
from beta_core.findings import findings, gradient_top, markdown, overlap_test, sections
from beta_core.store import Store

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "data" / "demo" / "findings.zip"


def test_overlap_is_tested_against_random_picks_of_the_same_size():
    # 3 of 6 groups twice at random share 1.5 on average; all 3 shared has probability 1/20
    one = overlap_test([({"a", "b", "c"}, {"a", "b", "c"})], 6)
    assert one["expected"] == pytest.approx(1.5) and one["pairs"][0]["p"] == pytest.approx(1 / 20)
    # pooled over independent seeds: the exact distribution of the sum (not a product of p-values)
    two = overlap_test([({"a", "b", "c"}, {"a", "b", "c"}), ({"a", "b", "c"}, {"a", "b", "d"})], 6)
    h = stats.hypergeom(6, 3, 3)
    p_sum_ge_5 = sum(h.pmf(i) * h.pmf(j) for i in range(4) for j in range(4) if i + j >= 5)
    assert two["shared"] == 5 and two["p"] == pytest.approx(p_sum_ge_5)
    assert two["fraction"]["mean"] == pytest.approx((1 + 2 / 3) / 2)
    # nothing shared is no evidence at all
    assert overlap_test([({"a"}, {"b"})], 6)["p"] == pytest.approx(1.0)


def test_the_papers_flags_are_the_top_gradient_scores():
    scores = {"fc": 0.1, "bn1": 0.5, "block1": 0.3, "block2": 0.2}
    assert gradient_top({"scores": scores}) == ["bn1", "block1", "block2"]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("findings") / "runs")
    bundles.unpack(store, BUNDLE)
    return store


def test_the_document_is_what_the_bundled_runs_give(bundled, tmp_path, capsys):
    f = findings(bundled)
    assert markdown(f) == (ROOT / "docs" / "findings.md").read_text()
    # the command the document names writes the same file
    out = tmp_path / "findings.md"
    assert main(["--runs-dir", str(bundled.dir), "findings", "--out", str(out)]) == 0
    assert out.read_text() == (ROOT / "docs" / "findings.md").read_text()


def test_every_claim_is_answered_with_enough_seeds(bundled):
    f = findings(bundled)
    assert min(f["n"].values()) >= 10 and len(f["n"]) == 5
    assert f["claim2"]["n"] >= 5 and f["claim3"]["n"] >= 5
    heads = [h for h, _ in sections(f)]
    assert heads[1] == "Outcome" and sum(h[:1].isdigit() for h in heads) == 4
    outcome = dict(sections(f))["Outcome"]
    import re
    assert len(re.findall(r"^\| [1-4] \|", outcome, re.M)) == 4 and "not measured" not in outcome  # each answered


def test_a_store_without_the_findings_sweep_says_how_to_get_it(tmp_path):
    with pytest.raises(ValueError, match="findings.zip"):
        findings(Store(tmp_path / "runs"))


def test_malformed_findings_records_are_one_error_not_a_traceback(tmp_path):
    import json
    import sqlite3
    store = Store(tmp_path / "runs")
    bundles.unpack(store, BUNDLE)
    with sqlite3.connect(store.dir / "runs.db") as db:  # a forged bundle's attribution: not the shape we store
        db.execute("UPDATE results SET data = ? WHERE kind = 'attribution'", (json.dumps({"scores": 5}),))
    with pytest.raises(ValueError, match="incomplete or malformed"):
        findings(store)
