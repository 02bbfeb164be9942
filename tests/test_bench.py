"""`casekb bench` end to end on a small corpus: every engine and mode timed, every output written."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from casekb.benchmark.corpus import generate_corpus, read_cases
from casekb.cli import main

ENGINES = {("casekb", "keyword"), ("casekb", "semantic"), ("casekb", "hybrid"), ("tantivy (raw)", "keyword"),
           ("tantivy (raw, top 10)", "keyword"),
           ("faiss (raw)", "semantic"), ("rank_bm25", "keyword"), ("sqlite fts5", "keyword"),
           ("elasticsearch", "keyword"), ("casekb (case description)", "hybrid")}


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
                                       "--embed-sample", "2", "--slow-queries", "20", "--descriptions", "6",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())["runs"]["2000"]
    timed = {(row["engine"], row["mode"]) for row in report["latency"]}
    assert timed == ENGINES
    for row in report["latency"]:
        assert row["p50_ms"] > 0 and row["qps"] > 0, row
    assert {(r["filtered"], r["clients"]) for r in report["latency"] if r["engine"] == "casekb"} == {
        (False, 1), (True, 1), (False, 8), (True, 8)}
    described = [r for r in report["latency"] if r["engine"] == "casekb (case description)"]
    assert {(r["filtered"], r["clients"], r["queries"]) for r in described} == {(False, 1, 6), (True, 1, 6)}
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
                                      "--descriptions", "0", "--out", str(out)])
    assert again.exit_code == 0, again.output
    reused = json.loads((out / "results.json").read_text())["runs"]["2000"]
    assert reused["build"]["reused"] and reused["build"]["import"] == build["import"]
    vectors = reused["build"]["vectors"]
    assert vectors["reused"] and vectors["passages"] == build["vectors"]["passages"]
    assert {(row["engine"], row["mode"]) for row in reused["latency"]} == {
        ("casekb", "keyword"), ("tantivy (raw)", "keyword"), ("tantivy (raw, top 10)", "keyword"),
        ("faiss (raw)", "semantic"), ("casekb", "semantic"), ("casekb", "hybrid")}


def test_descriptions_are_searched_as_cases(tmp_path, settings):
    from casekb.benchmark.queries import PASTED_MAX, PASTED_MIN, sample_descriptions
    from indexer.case_query import is_case_text

    texts = [row["text"] for row in read_cases(generate_corpus(settings.demo_cases, 200, tmp_path / "corpus"))]
    descriptions = sample_descriptions(texts, 30)
    assert descriptions == sample_descriptions(texts, 30)
    assert [d.kind for d in descriptions] == ["pasted", "described"] * 15
    assert all(is_case_text(d.text) for d in descriptions)
    for pasted in descriptions[::2]:
        assert any(text.startswith(pasted.text) for text in texts)
        assert PASTED_MIN <= len(pasted.text) <= PASTED_MAX
        # cut at a sentence end, else at PASTED_MAX, or a whole text shorter than that
        assert pasted.text[-1] in "。！？!?；;" or len(pasted.text) == PASTED_MAX or pasted.text in texts
    assert len({d.text for d in descriptions[1::2]}) == 12  # every colloquial description is used


def test_bench_reuse_needs_a_built_library(tmp_path):
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "bench", "--size", "200", "--reuse",
                                       "--no-es", "--out", str(tmp_path / "results")])
    assert result.exit_code == 2 and "nothing to reuse" in result.output


@pytest.mark.parametrize("value", ["-1", "many"])
def test_bench_refuses_a_bad_description_count(tmp_path, value):
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "bench", "--size", "200", "--no-es",
                                       "--descriptions", value, "--out", str(tmp_path / "results")])
    assert result.exit_code == 2 and "--descriptions" in result.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "home").exists()


def test_derived_vectors_are_the_same_in_any_chunk_size(tmp_path, settings, model_dir):
    """build_vectors streams its rows into faiss a chunk at a time; the vectors saved do not depend on the size."""
    import dataclasses
    import html

    import numpy as np

    from casekb.benchmark import phases
    from casekb.benchmark.derived_vectors import build_vectors
    from indexer.api import open_backend
    from indexer.embeddings import EmbeddingCache, model_fingerprint, text_hash
    from indexer.masking import mask_personal_data
    from indexer.semantic import passage_inputs
    from indexer.vectors import VectorIndex

    home = tmp_path / "library"
    library = dataclasses.replace(settings, home=home, database_url=f"sqlite:///{home / 'casekb.sqlite3'}",
                                  backend="embedded", embedding_model=model_dir)
    home.mkdir()
    files = generate_corpus(settings.demo_cases, 120, tmp_path / "corpus")
    phases.import_cases(library, files)
    phases.index_cases(library)
    # the real cache holds (made-up) vectors of the first demo cases: their copies borrow them, the rest are lent
    cache_path = tmp_path / "embeddings.sqlite3"
    cache, rng = EmbeddingCache(cache_path, model_fingerprint(model_dir)), np.random.default_rng(3)
    for row in map(json.loads, settings.demo_cases.read_text(encoding="utf-8").splitlines()[:40]):
        inputs = passage_inputs(html.unescape(row["title"]), mask_personal_data(html.unescape(row["text"]), []))
        cache.put({text_hash(p): rng.standard_normal(384).astype("float32") for p in inputs})
    saved = open_backend(library).vectors_path()

    def built(**options) -> tuple[dict, VectorIndex]:
        return build_vectors(library, files, cache_path, **options), VectorIndex.load(saved)

    whole, one_chunk = built(seed=7)
    small, chunked = built(seed=7, chunk_rows=7)
    assert whole["passages"] == small["passages"] == len(chunked.keys) > 120 and whole["lent_by"]["own"] > 0
    assert whole["lent_by"] == small["lent_by"] and whole["exact"] and small["chunk_rows"] == 7
    assert np.array_equal(one_chunk.keys, chunked.keys)
    vectors = chunked.index.reconstruct_n(0, chunked.index.ntotal)
    assert np.array_equal(one_chunk.index.reconstruct_n(0, one_chunk.index.ntotal), vectors)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert len(chunked.case_ids()) == whole["cases"] and set(chunked.text_hashes) == set(chunked.case_ids())
    _, other_seed = built(seed=8, chunk_rows=7)
    assert not np.array_equal(other_seed.index.reconstruct_n(0, other_seed.index.ntotal), vectors)
