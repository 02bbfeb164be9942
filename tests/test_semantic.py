"""Semantic and hybrid search with the real multilingual-e5-small model on a small corpus."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from conftest import SHARED_DATA, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer
from indexer.embedded import EmbeddedBackend
from indexer.embeddings import Encoder
from indexer.query import Filters, SearchQuery
from indexer.semantic import SemanticUnavailable
from indexer.text import segmenter_for
from kb.models import DisputeCase

CAUSES = {"民间借贷纠纷": 8, "离婚纠纷": 8, "劳动争议": 6, "相邻关系纠纷": 4, "买卖合同纠纷": 4}


def small_corpus() -> list[dict]:
    """Short demo cases of a few causes, picked deterministically."""
    wanted, rows = dict(CAUSES), []
    for line in (SHARED_DATA / "cases_demo.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if wanted.get(row["cause"], 0) > 0 and len(row["text"]) < 700:
            wanted[row["cause"]] -= 1
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def encoder(model_dir, tmp_path_factory):
    """One loaded model and one embedding cache for the module: each text is embedded once."""
    return Encoder(model_dir, tmp_path_factory.mktemp("cache") / "embeddings.sqlite3")


@pytest.fixture
def semantic(db, settings, tmp_path, encoder):
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", small_corpus()))
    backend = EmbeddedBackend(settings.index_dir, segmenter_for(settings.legal_terms), lambda: encoder)
    indexer = Indexer(db, backend)
    indexer.drain()
    assert indexer.embed(encoder) == len(small_corpus())
    return backend, indexer, encoder


def search(backend, text, **kwargs):
    return backend.search(SearchQuery(text=text, facets=(), **kwargs))


def test_a_colloquial_query_finds_loan_cases_by_meaning(semantic):
    backend, _, _ = semantic
    result = search(backend, "借钱不还 打了欠条", mode="semantic", size=5)
    # loan cases are under a third of this corpus, but the majority of the top five
    assert [hit.cause for hit in result.hits].count("民间借贷纠纷") >= 3
    assert result.semantic_coverage == (len(small_corpus()),) * 2
    assert all(hit.best_passage for hit in result.hits)


def test_hybrid_fuses_both_rankings_and_pages_stably(semantic):
    backend, _, _ = semantic
    loans = search(backend, "借钱不还 打了欠条", mode="hybrid", size=5).hits
    assert [hit.cause for hit in loans].count("民间借贷纠纷") >= 3
    both = search(backend, "老板拖欠工资 不给经济补偿", mode="hybrid", size=10).hits
    first = search(backend, "老板拖欠工资 不给经济补偿", mode="hybrid", size=5).hits
    second = search(backend, "老板拖欠工资 不给经济补偿", mode="hybrid", size=5, page=2).hits
    assert [h.case_id for h in first + second] == [h.case_id for h in both]
    assert both[0].cause == "劳动争议"


def test_filters_apply_inside_the_vector_search(semantic):
    backend, _, _ = semantic
    result = search(backend, "借钱不还", mode="semantic", size=50, filters=Filters(categories=("婚姻家庭",)))
    assert result.total == sum(1 for row in small_corpus() if row["category"] == "婚姻家庭") > 0
    assert {hit.category for hit in result.hits} == {"婚姻家庭"}


def test_unchanged_cases_are_never_re_embedded(semantic, db, tmp_path):
    backend, indexer, encoder = semantic
    before = encoder.encoded
    assert indexer.embed(encoder) == 0
    indexer.reindex()  # a new generation keeps the vectors of unchanged texts
    assert indexer.embed(encoder) == 0
    backend.vectors_path().unlink()  # even with the vectors gone, the cache answers
    assert indexer.embed(encoder) == len(small_corpus())
    assert encoder.encoded == before
    with db.transaction() as session:
        case = session.scalar(select(DisputeCase).order_by(DisputeCase.id))
        # new text for this test run: the module's embedding cache is shared by its database variants
        case.facts += f"另查明，双方于2020年达成还款协议（{tmp_path.name}）。"
    indexer.drain()
    assert indexer.embed(encoder) == 1
    assert encoder.encoded > before


def test_semantic_search_without_a_model_says_so(settings, db):
    backend = EmbeddedBackend(settings.index_dir, segmenter_for(settings.legal_terms))
    row = small_corpus()[0]
    import_file(db, settings, write_jsonl(settings.home.parent / "one.jsonl", [row]))
    Indexer(db, backend).drain()
    with pytest.raises(SemanticUnavailable, match="casekb model install"):
        search(backend, "借钱不还", mode="semantic")
    assert search(backend, row["title"], mode="keyword").total == 1


def test_embedding_can_proceed_a_few_cases_at_a_time(semantic):
    backend, indexer, encoder = semantic
    backend.vectors_path().unlink()
    assert indexer.embed(encoder, batch_cases=2, limit=5) == 5
    assert len(backend.vectors().text_hashes) == 5
    result = search(backend, "借钱不还", mode="semantic")
    assert result.semantic_coverage == (5, len(small_corpus()))
    assert indexer.embed(encoder, batch_cases=2) == len(small_corpus()) - 5
