"""`casekb bench` end to end on a small corpus: every engine and mode timed, every output written."""
from __future__ import annotations

import json

from click.testing import CliRunner

from casekb.benchmark.corpus import generate_corpus, read_cases
from casekb.cli import main

ENGINES = {("casekb", "keyword"), ("casekb", "semantic"), ("casekb", "hybrid"), ("tantivy (raw)", "keyword"),
           ("tantivy (raw, top 10)", "keyword"),
           ("faiss (raw)", "semantic"), ("rank_bm25", "keyword"), ("sqlite fts5", "keyword"),
           ("elasticsearch", "keyword")}


def test_corpus_is_deterministic_and_realistic(tmp_path, settings):
    small = generate_corpus(settings.demo_cases, 30, tmp_path / "small")
    large = generate_corpus(settings.demo_cases, 60, tmp_path / "large")
    first, second = list(read_cases(small)), list(read_cases(large, 30))
    assert first == second
    demo_text = settings.demo_cases.read_text(encoding="utf-8")
    for row in first:
        assert row["source_case"] in demo_text
        assert len(row["text"]) > 50 and row["region"] and row["received_on"] <= row["closed_on"]


def test_bench_smoke(tmp_path, monkeypatch, model_dir):
    monkeypatch.setenv("CASEKB_EMBEDDING_MODEL", str(model_dir))
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "bench", "--size", "2000", "--queries", "50",
                                       "--embed-sample", "2", "--slow-queries", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())["runs"]["2000"]
    timed = {(row["engine"], row["mode"]) for row in report["latency"]}
    assert timed == ENGINES
    for row in report["latency"]:
        assert row["p50_ms"] > 0 and row["qps"] > 0, row
    assert {(r["filtered"], r["clients"]) for r in report["latency"] if r["engine"] == "casekb"} == {
        (False, 1), (True, 1), (False, 8), (True, 8)}
    build = report["build"]
    for phase in ("import", "index", "vectors", "embedding", "elasticsearch"):
        assert build[phase]["cases"] > 0 and build[phase]["peak_rss_mb"] > 0, phase
    assert build["import"]["cases"] == 2000 and build["sizes_mb"]["keyword_index"] > 0
    embedding = build["embedding"]
    assert embedding["chars_per_s"] > 0 and embedding["passages"] > 0
    assert embedding["cases_reembedded_after_rebuild"] == embedding["passages_reencoded_after_rebuild"] == 0
    assert embedding["cache_misses"] == 0
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for engine, mode in ENGINES:
        assert f"| {engine} | {mode} |" in markdown
    assert (out / "latency.png").stat().st_size and (out / "throughput.png").stat().st_size

    recall = build["vectors"]["recall"]  # an exact index at 2000 cases: it finds the exact answer
    assert recall["cases"] == recall["passages_at_depth"] == recall["top10_score_ratio"] == 1.0

    again = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "bench", "--size", "2000", "--queries", "20",
                                      "--reuse", "--no-comparators", "--no-es", "--embed-sample", "1",
                                      "--out", str(out)])
    assert again.exit_code == 0, again.output
    reused = json.loads((out / "results.json").read_text())["runs"]["2000"]
    assert reused["build"]["reused"] and reused["build"]["import"] == build["import"]
    vectors = reused["build"]["vectors"]
    assert vectors["reused"] and vectors["passages"] == build["vectors"]["passages"]
    assert {(row["engine"], row["mode"]) for row in reused["latency"]} == {
        ("casekb", "keyword"), ("tantivy (raw)", "keyword"), ("tantivy (raw, top 10)", "keyword"),
        ("faiss (raw)", "semantic"), ("casekb", "semantic"), ("casekb", "hybrid")}


def test_bench_reuse_needs_a_built_library(tmp_path):
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "bench", "--size", "200", "--reuse",
                                       "--no-es", "--out", str(tmp_path / "results")])
    assert result.exit_code == 2 and "nothing to reuse" in result.output
