"""`casekb eval`: its metrics on hand-computable rankings, and the command on a small slice."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from casekb.cli import main
from casekb.evaluation import (HALVES, LOO_SOURCE, EvalCase, average_precision, half_of, leave_one_out_scores,
                               ndcg_at_k, precision_at_k, read_jsonl, reciprocal_rank_at_k, summarise,
                               triplet_accuracy, triplet_scores)
from conftest import SHARED_DATA, case_row, write_jsonl


def test_triplet_accuracy_counts_ties_as_half():
    assert triplet_accuracy([(0.9, 0.1), (0.2, 0.8), (0.5, 0.5), (1.0, -math.inf)]) == pytest.approx(2.5 / 4)
    assert triplet_accuracy([]) == 0.0


def test_precision_and_reciprocal_rank_at_k():
    ranked, relevant = ["a", "x", "b", "y"], {"a", "b", "c"}
    assert precision_at_k(ranked, relevant, k=4) == 0.5
    assert precision_at_k(ranked, relevant, k=2) == 0.5
    assert reciprocal_rank_at_k(["x", "y", "b"], relevant) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(["x", "y", "b"], relevant, k=2) == 0.0


def test_ndcg_against_a_hand_computed_value():
    # hits at ranks 1 and 3; the ideal ranking of two relevant items has them at ranks 1 and 2
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], set()) == 0.0


def test_average_precision_counts_unranked_relevant_items_as_zero():
    # precision 1/1 at rank 1, 2/3 at rank 3; "c" never ranked
    assert average_precision(["a", "x", "b"], {"a", "b", "c"}) == pytest.approx((1 + 2 / 3) / 3)


def test_halves_are_stable_and_both_used():
    keys = [str(i) for i in range(40)]
    assert [half_of(k) for k in keys] == [half_of(k) for k in keys]
    assert set(map(half_of, keys)) == set(HALVES)
    summary = summarise([(k, {"m": float(i % 2)}) for i, k in enumerate(keys)])
    assert summary["all"] == {"n": 40, "m": 0.5}
    assert summary["dev"]["n"] + summary["held-out"]["n"] == 40


def test_triplet_scores_compare_the_places_of_b_and_c_in_a_ranking_for_a():
    texts = ["a", "b", "c", "d"]
    rows = [{"id": 1, "A": "a", "B": "b", "C": "c"}, {"id": 2, "A": "a", "B": "c", "C": "d"},
            {"id": 3, "A": "d", "B": "a", "C": "b"}]
    rankings = {"a": [1, 3, 2], "d": [4, 3]}  # case numbers from 1; "d" ranks neither a nor b
    scores = dict(triplet_scores(rows, rankings.__getitem__, texts))
    # c before b: wrong; c ranked, d not: right; neither ranked: a tie
    assert scores == {"1": {"accuracy": 0.0}, "2": {"accuracy": 1.0}, "3": {"accuracy": 0.5}}


def test_leave_one_out_drops_the_query_and_skips_causes_seen_once():
    cases = [EvalCase("x1", "t1", cause="借贷"), EvalCase("x2", "t2", cause="借贷"), EvalCase("y", "t3", cause="离婚")]
    rankings = {"t1": [1, 3, 2], "t2": [2, 1, 3], "t3": [3, 1, 2]}
    scores = dict(leave_one_out_scores(cases, rankings.__getitem__))
    assert set(scores) == {"x1", "x2"}  # 离婚 has no other case to find
    assert scores["x1"]["MRR@10"] == 0.5 and scores["x2"]["MRR@10"] == 1.0
    assert scores["x1"]["P@10"] == 0.1


def small_shared_data(folder: Path) -> Path:
    """A slice of the real data: the three shortest SCM triplets, the three shortest CJRC cases of two causes."""
    triplets = sorted(read_jsonl(SHARED_DATA / "eval" / "scm_triplets.jsonl"),
                      key=lambda r: len(r["A"] + r["B"] + r["C"]))
    cases = sorted((r for r in read_jsonl(SHARED_DATA / "cases_demo.jsonl") if r["source"].startswith(LOO_SOURCE)),
                   key=lambda r: len(r["text"]))
    (folder / "eval").mkdir(parents=True)
    write_jsonl(folder / "eval" / "scm_triplets.jsonl", triplets[:3])
    write_jsonl(folder / "cases_demo.jsonl", [r for cause in ("民间借贷纠纷", "离婚纠纷")
                                              for r in [r for r in cases if r["cause"] == cause][:3]])
    (folder / "legal_terms.txt").symlink_to(SHARED_DATA / "legal_terms.txt")
    return folder


def test_eval_command_on_a_small_slice(model_dir, tmp_path):
    loan, divorce = ("原告诉称被告向其借款五万元，到期未还，请求判令被告归还借款及利息。",
                     "原告与被告婚后感情不和，长期分居，原告请求判决离婚并分割夫妻共同财产。")
    rerank = write_jsonl(tmp_path / "rerank.jsonl", [{
        "query": "借钱不还", "relevant": ["1"],
        "candidates": [{"id": "2", "text": divorce, "cause": "离婚纠纷"}, {"id": "1", "text": loan}]}])
    labelled = write_jsonl(tmp_path / "labelled.jsonl", [{"query": "借款 到期未还", "category": "合同"}])
    library = write_jsonl(tmp_path / "library.jsonl", [case_row(1), case_row(2, category="婚姻家庭", text=divorce)])
    out = tmp_path / "report.json"
    env = {"CASEKB_HOME": str(tmp_path / "home"), "CASEKB_EMBEDDING_MODEL": str(model_dir),
           "CASEKB_SHARED_DATA": str(small_shared_data(tmp_path / "shared"))}
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(library)], env=env).exit_code == 0
    assert runner.invoke(main, ["index"], env=env).exit_code == 0
    found = runner.invoke(main, ["search", "借钱不还 到期未还", "--mode", "hybrid"], env=env)
    assert found.exit_code == 0, found.output
    # the search's own time, and the model's loading (this process's start-up) apart from it
    assert re.search(r"2 cases \([\d.]+ ms, hybrid, 2/2 cases embedded; model loaded in [\d.]+ s\)",
                     found.output), found.output
    browsed = runner.invoke(main, ["search", "", "--mode", "hybrid"], env=env)
    assert browsed.exit_code == 0, browsed.output
    assert "2 cases (" in browsed.output and "model loaded" not in browsed.output  # a blank query only browses
    stopwords = runner.invoke(main, ["search", "的", "--mode", "hybrid"], env=env)
    assert stopwords.exit_code == 0 and "model loaded" not in stopwords.output, stopwords.output
    result = runner.invoke(main, ["eval", "--limit", "2", "--rerank", str(rerank), "--labelled-queries", str(labelled),
                                  "--json", str(out)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) == {"triplets scm_triplets", "leave-one-out same cause", "rerank rerank", "labelled labelled"}
    assert set(report["triplets scm_triplets"]) == {"keyword", "semantic", "hybrid"}
    assert report["leave-one-out same cause"]["hybrid"]["all"]["n"] == 2
    assert set(report["rerank rerank"]) == {"keyword", "semantic", "hybrid"}
    assert report["triplets scm_triplets"]["hybrid"]["all"]["n"] == 2
    assert report["leave-one-out same cause"]["semantic"]["all"]["n"] == 2  # the first two are one cause
    assert report["rerank rerank"]["semantic"]["all"]["MAP"] == 1.0
    # one of the two library cases is a 合同 case, and only two can be found
    assert report["labelled labelled"]["keyword"]["all"]["category P@10"] == 0.1
    assert "hybrid" in result.output and "MAP" in result.output
    assert (tmp_path / "home" / "embeddings.sqlite3").exists()  # vectors are cached for the next run


def test_leave_one_out_judges_each_case_by_a_cause_model_that_never_saw_it():
    from casekb.evaluation import CrossFittedCauses, EvalCase
    from conftest import short_demo_cases
    from indexer.text import segmenter_for

    rows = short_demo_cases({"民间借贷纠纷": 10, "离婚纠纷": 10, "劳动争议": 1}, 1500)
    cases = [EvalCase(row["id"], row["text"], row["cause"], row["cause"]) for row in rows]
    folds = CrossFittedCauses(cases, segmenter_for(SHARED_DATA / "legal_terms.txt"))
    only = next(case for case in cases if case.cause == "劳动争议")
    assert only.text in folds and "劳动争议" not in folds.scores(only.text).likelihoods()
    loan = next(case for case in cases if case.cause == "民间借贷纠纷")
    likely = folds.scores(loan.text).likelihoods()
    assert max(likely, key=likely.get) == "民间借贷纠纷"
