"""Semantic and hybrid search with the real multilingual-e5-small model on a small corpus, on both
search backends (the embedded one and Elasticsearch)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import SEARCH_BACKENDS, backend_settings, short_demo_cases, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer, open_backend
from indexer.embeddings import Encoder
from indexer.query import Filters, SearchQuery
from indexer.semantic import SemanticUnavailable
from kb.models import DisputeCase

CAUSES = {"民间借贷纠纷": 8, "离婚纠纷": 8, "劳动争议": 6, "相邻关系纠纷": 4, "买卖合同纠纷": 4}


def small_corpus() -> list[dict]:
    """Short demo cases of a few causes, picked deterministically."""
    return short_demo_cases(CAUSES, 700)


@pytest.fixture(scope="module")
def encoder(model_dir, tmp_path_factory):
    """One loaded model and one embedding cache for the module: each text is embedded once."""
    return Encoder(model_dir, tmp_path_factory.mktemp("cache") / "embeddings.sqlite3")


def backend_with_model(kind: str, settings, request, encoder):
    """A backend of that kind whose embedding model is the module's loaded encoder."""
    backend = open_backend(backend_settings(settings, kind, request))
    backend.encoder_factory = lambda: encoder
    return backend


@pytest.fixture(params=SEARCH_BACKENDS)
def semantic(request, db, settings, tmp_path, encoder):
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", small_corpus()))
    backend = backend_with_model(request.param, settings, request, encoder)
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


def test_a_filtered_search_and_its_facets_follow_new_cases(semantic, db, settings, tmp_path):
    """What a semantic or hybrid search counts and searches under its filters depends on the filters, not
    its words (the embedded backend keeps it per index state): a case added since is found and counted."""
    backend, indexer, encoder = semantic
    family = Filters(categories=("婚姻家庭",))

    def ask(mode: str):
        return backend.search(SearchQuery(text="借钱不还", mode=mode, size=50, filters=family))

    def counts(result, facet: str) -> dict[str, int]:
        return {bucket.value: bucket.count for bucket in result.facets[facet]}

    before = {mode: ask(mode) for mode in ("semantic", "hybrid")}
    row = next(r for r in small_corpus() if r["category"] == "婚姻家庭")
    added = {**row, "id": f"{row['id']}-later", "text": row["text"] + f"另查明，双方于2021年分居（{tmp_path.name}）。"}
    import_file(db, settings, write_jsonl(tmp_path / "later.jsonl", [added]))
    indexer.drain()
    assert indexer.embed(encoder) == 1
    for mode, earlier in before.items():
        after = ask(mode)
        assert after.total == earlier.total + 1
        assert any(hit.external_id == added["id"] for hit in after.hits)
        # the category facet ignores its own filter: every category counted, the family one up by one
        assert counts(after, "category") == {**counts(earlier, "category"),
                                             "婚姻家庭": counts(earlier, "category")["婚姻家庭"] + 1}
        assert counts(after, "cause")[row["cause"]] == counts(earlier, "cause")[row["cause"]] + 1


def drop_all_vectors(backend, encoder) -> None:
    backend.store_vectors(encoder.name, encoder.dim, {}, list(backend.text_hashes()))
    assert backend.vector_hashes(encoder.name) == {}


def test_unchanged_cases_are_never_re_embedded(semantic, db, tmp_path):
    backend, indexer, encoder = semantic
    before = encoder.encoded
    assert indexer.embed(encoder) == 0
    indexer.reindex()  # a new generation keeps the vectors of unchanged texts
    assert indexer.embed(encoder) == 0
    drop_all_vectors(backend, encoder)  # even with the vectors gone, the cache answers
    assert indexer.embed(encoder) == len(small_corpus())
    assert encoder.encoded == before
    with db.transaction() as session:
        case = session.scalar(select(DisputeCase).order_by(DisputeCase.id))
        # new text for this test run: the module's embedding cache is shared by its database variants
        case.facts += f"另查明，双方于2020年达成还款协议（{tmp_path.name}）。"
    indexer.drain()
    assert indexer.embed(encoder) == 1
    assert encoder.encoded > before


def test_semantic_search_without_a_model_says_so(settings, db, backend):
    assert backend.modes() == ("keyword",)
    row = small_corpus()[0]
    import_file(db, settings, write_jsonl(settings.home.parent / "one.jsonl", [row]))
    Indexer(db, backend).drain()
    with pytest.raises(SemanticUnavailable, match="casekb model install"):
        search(backend, "借钱不还", mode="semantic")
    assert search(backend, row["title"], mode="keyword").total == 1


def test_embedding_can_proceed_a_few_cases_at_a_time(semantic):
    backend, indexer, encoder = semantic
    drop_all_vectors(backend, encoder)
    assert indexer.embed(encoder, batch_cases=2, limit=5) == 5
    assert len(backend.vector_hashes(encoder.name)) == 5 == backend.embedded_case_count()
    result = search(backend, "借钱不还", mode="semantic")
    assert result.semantic_coverage == (5, len(small_corpus()))
    assert indexer.embed(encoder, batch_cases=2) == len(small_corpus()) - 5


AGREEMENT_QUERIES = ["借钱不还 打了欠条", "老板拖欠工资 不给经济补偿", "离婚后孩子归谁抚养", "楼上漏水 邻居不肯赔",
                     "买的东西有质量问题 商家不退货", "夫妻感情破裂 分割财产"]


def top_overlap(a, b, n: int = 10) -> float:
    return len({h.case_id for h in a.hits[:n]} & {h.case_id for h in b.hits[:n]}) / max(1, min(n, len(a.hits)))


def test_both_backends_agree_on_semantic_and_hybrid_top_results(db, settings, tmp_path, encoder, request):
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", small_corpus()))
    embedded, elastic = (backend_with_model(kind, settings, request, encoder) for kind in SEARCH_BACKENDS)
    for backend in (embedded, elastic):
        indexer = Indexer(db, backend)
        indexer.reindex()
        indexer.embed(encoder)
    for mode in ("semantic", "hybrid"):
        overlaps, same_first = [], 0
        for text in AGREEMENT_QUERIES:
            a, b = search(embedded, text, mode=mode), search(elastic, text, mode=mode)
            assert a.total == b.total and a.semantic_coverage == b.semantic_coverage
            overlaps.append(top_overlap(a, b))
            same_first += a.hits[0].case_id == b.hits[0].case_id
            if mode == "semantic":  # the same cosine similarities, up to float32 rounding
                scores_b = {hit.case_id: hit.score for hit in b.hits}
                assert all(abs(hit.score - scores_b[hit.case_id]) < 1e-4 for hit in a.hits if hit.case_id in scores_b)
        print(f"{mode}: mean top-10 overlap {sum(overlaps) / len(overlaps):.3f}, "
              f"same first hit {same_first}/{len(AGREEMENT_QUERIES)}")
        # Exact search against an ANN (HNSW): the top results may differ slightly, not wholesale.
        assert sum(overlaps) / len(overlaps) >= 0.8 and same_first >= len(AGREEMENT_QUERIES) - 1
    like = [(embedded.similar(case_id), elastic.similar(case_id)) for case_id in sorted(embedded.text_hashes())[:5]]
    assert all(a.query_terms == b.query_terms and a.semantic_coverage == b.semantic_coverage for a, b in like)
    overlap = sum(top_overlap(a, b, 5) for a, b in like) / len(like)
    print(f"more like this: mean top-5 overlap {overlap:.3f}")
    assert overlap >= 0.8
