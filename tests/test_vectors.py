"""The faiss passage store: exact and HNSW agree, filters apply inside the search, updates replace."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.vectors import HNSW_THRESHOLD, VectorIndex, best_per_case

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    return {case_id: unit(rng.normal(size=(1 + case_id % 3, DIM))) for case_id in range(1, 201)}


def brute_force(vectors, query, allowed=None):
    best = {}
    for case_id, rows in vectors.items():
        if allowed is None or case_id in allowed:
            scores = rows @ query
            best[case_id] = (float(scores.max()), int(scores.argmax()))
    return sorted(best.items(), key=lambda kv: -kv[1][0])


@pytest.fixture(params=["exact", "hnsw"])
def store(request, vectors):
    index = VectorIndex.create(DIM, "test-model", 0 if request.param == "exact" else HNSW_THRESHOLD + 1)
    assert index.exact == (request.param == "exact")
    for case_id, rows in vectors.items():
        index.add_case(case_id, rows, text_hash=case_id * 7)
    return index


def test_best_passage_matches_brute_force(store, vectors):
    query = vectors[17][0]
    top = store.search(query, 5)
    assert (top[0].case_id, top[0].passage) == (17, 0)
    assert top[0].score == pytest.approx(1.0, abs=1e-5)
    expected = brute_force(vectors, query)[0]
    assert (top[0].case_id, top[0].passage) == (expected[0], expected[1][1])


def test_filters_apply_inside_the_search(store, vectors):
    allowed = np.array([5, 60, 61, 150])
    query = vectors[17][0]
    matches = store.search(query, 50, allowed)
    assert {m.case_id for m in matches} == {5, 60, 61, 150}
    best_per_case = {}
    for m in matches:
        best_per_case.setdefault(m.case_id, m.score)
    expected = brute_force(vectors, query, set(allowed.tolist()))
    assert [c for c, _ in expected] == list(best_per_case)
    assert store.search(query, 10, np.array([], dtype="int64")) == []


def test_replacing_and_removing_cases(store, vectors, tmp_path):
    store.add_case(17, unit(np.ones((1, DIM))))
    store.remove_cases([18])
    assert 18 not in store.case_ids() and 17 in store.case_ids()
    assert len(store) == sum(len(v) for v in vectors.values()) - len(vectors[17]) + 1 - len(vectors[18])
    old_query = vectors[17][0]
    assert all(m.case_id != 18 for m in store.search(vectors[18][0], 400))
    assert store.search(old_query, 1)[0].case_id != 17 or store.search(old_query, 1)[0].score < 0.99
    path = tmp_path / "vectors.npz"
    store.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.search(old_query, 10) == store.search(old_query, 10)
    assert len(loaded) == len(store) and loaded.model == "test-model"
    assert loaded.text_hashes == store.text_hashes and 18 not in loaded.text_hashes


def test_filters_inside_the_hnsw_graph_search(vectors, monkeypatch):
    """Above EXACT_SCAN_LIMIT allowed rows a filtered HNSW search walks the graph with a row bitmap."""
    monkeypatch.setattr("indexer.vectors.EXACT_SCAN_LIMIT", 0)
    index = VectorIndex.create(DIM, "test-model", HNSW_THRESHOLD + 1)
    for case_id, rows in vectors.items():
        index.add_case(case_id, rows)
    index.remove_cases([60])
    allowed = np.arange(50, 120)
    query = vectors[17][0]
    matches = index.search(query, 400, allowed)
    assert {m.case_id for m in matches} == set(allowed.tolist()) - {60}
    expected = brute_force({c: v for c, v in vectors.items() if c != 60}, query, set(allowed.tolist()))
    assert [m.case_id for m in matches][0] == expected[0][0]


def test_exact_search_scores_every_live_row(store, vectors):
    store.remove_cases([17])
    query = vectors[17][0]
    found = best_per_case(store.exact_search(query, 30))
    expected = brute_force({c: v for c, v in vectors.items() if c != 17}, query)
    assert [(m.case_id, m.passage) for m in found][:5] == [(c, p) for c, (_, p) in expected[:5]]
    assert found[0].score == pytest.approx(expected[0][1][0], abs=1e-5)


@pytest.mark.parametrize("graph_limit", [0, 10_000])
def test_best_cases_go_deep_enough_for_the_depth(vectors, monkeypatch, graph_limit):
    """Passages are fetched deeper until they cover `depth` cases; a filtered HNSW search falls back to
    scoring the allowed rows exactly past HNSW_FILTERED_LIMIT (0: at once after the first round)."""
    monkeypatch.setattr("indexer.vectors.EXACT_SCAN_LIMIT", 0)
    monkeypatch.setattr("indexer.vectors.HNSW_FILTERED_LIMIT", graph_limit)
    index = VectorIndex.create(DIM, "test-model", HNSW_THRESHOLD + 1)
    for case_id, rows in vectors.items():
        index.add_case(case_id, rows)
    allowed = np.arange(20, 180)
    query = vectors[17][0]
    best = index.best_cases(query, 100, allowed)
    expected = brute_force(vectors, query, set(allowed.tolist()))
    assert len(best) == 100 and len({m.case_id for m in best}) == 100
    assert [m.case_id for m in best[:10]] == [c for c, _ in expected[:10]]
    assert len(index.best_cases(query, 500, allowed)) == len(allowed)
    assert [m.case_id for m in index.best_cases(query, 5)] == [c for c, _ in brute_force(vectors, query)[:5]]
