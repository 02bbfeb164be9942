"""Hybrid search for a whole case description: ranked as more like this ranks cases, on both search
backends, with the real model; shorter queries keep the fused ranking."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import SEARCH_BACKENDS, backend_settings, short_demo_cases, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer, open_backend
from indexer.case_query import CASE_TEXT_CHARS, PASTED_TEXT_CHARS, is_case_text
from indexer.cause_model import CALIBRATED_TEMPERATURE, MIN_LIKELIHOOD, SHOWN_CAUSES, CauseScores
from indexer.embeddings import Encoder
from indexer.more_like_this import COVER_MIN_LIKELIHOOD, LikeCase, cover_likely_causes, rank_like
from indexer.query import Filters, Hit, SearchQuery
from indexer.similarity import load_element_table

CAUSES = {"民间借贷纠纷": 8, "离婚纠纷": 8, "劳动争议": 6, "买卖合同纠纷": 4}
LOAN = "民间借贷纠纷"
DIVORCE = "离婚纠纷"


def corpus() -> list[dict]:
    return short_demo_cases(CAUSES, 700)


def description(cause: str = LOAN) -> str:
    """The text of a case of that cause that is not in the library, as a mediator would paste it."""
    unindexed = short_demo_cases({cause: CAUSES[cause] + 1}, 700)[-1]
    assert unindexed["id"] not in {row["id"] for row in corpus()}
    return unindexed["text"]


def loan_description() -> str:
    return description(LOAN)


@pytest.fixture(scope="module")
def encoder(model_dir, tmp_path_factory):
    return Encoder(model_dir, tmp_path_factory.mktemp("cache") / "embeddings.sqlite3")


def embedded_backend(kind: str, db, settings, request, encoder):
    """A backend of that kind over the library in `db`, indexed and embedded with the module's encoder."""
    backend = open_backend(backend_settings(settings, kind, request))
    backend.encoder_factory = lambda: encoder
    indexer = Indexer(db, backend)
    indexer.reindex()
    indexer.embed(encoder)
    return backend


@pytest.fixture(params=SEARCH_BACKENDS)
def library(request, db, settings, tmp_path, encoder):
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", corpus()))
    return embedded_backend(request.param, db, settings, request, encoder)


def search(backend, text, **kwargs):
    return backend.search(SearchQuery(text=text, mode=kwargs.pop("mode", "hybrid"), **kwargs))


def test_case_text_is_told_by_its_length_and_its_quotes():
    assert not is_case_text("朋友借钱 不还 打了欠条")
    assert not is_case_text("借" * (CASE_TEXT_CHARS - 1) + "  \n")
    assert is_case_text("借" * CASE_TEXT_CHARS)
    assert is_case_text("我借给同村的老王五万块钱，打了借条，说好一年还清，到期以后他一直躲着不见，电话也不接。")
    # a quoted part asks for exact wording, unless it is inside a pasted case text
    assert not is_case_text("“借条” " + "借" * CASE_TEXT_CHARS)
    assert is_case_text("“借条” " + "借" * PASTED_TEXT_CHARS)
    assert len(loan_description()) >= PASTED_TEXT_CHARS


def hits_of(*scored: tuple[str, float]) -> list[Hit]:
    """Hits of these causes and scores, best first, numbered from 1."""
    return [Hit(n, f"c-{n}", "", score, "", (), "", cause, "", "", None, False)
            for n, (cause, score) in enumerate(scored, 1)]


def test_the_best_case_of_each_likely_cause_comes_first():
    hits = hits_of(("借贷", 3.0), ("借贷", 2.9), ("借贷", 2.8), ("离婚", 2.5), ("劳动", 2.4), ("离婚", 2.3), ("买卖", 1.0))
    # unsure between loans and divorce: the best divorce case moves up to second place, the rest keep their order
    order = [hit.case_id for hit in cover_likely_causes(hits, {"借贷": 0.55, "离婚": 0.45})]
    assert order == [1, 4, 2, 3, 5, 6, 7]
    # a cause the text surely has, or none known, leaves the order as it was
    assert cover_likely_causes(hits, {"借贷": 0.99, "离婚": 0.01}) == hits
    assert cover_likely_causes(hits, {}) == hits
    # a likely cause among far worse cases still gets its best one in, and only that one
    order = [hit.case_id for hit in cover_likely_causes(hits, {"借贷": 0.4, "买卖": 0.6})]
    assert order == [1, 7, 2, 3, 4, 5, 6]
    assert cover_likely_causes(hits[:1], {"离婚": 1.0}) == hits[:1]


def test_a_case_description_is_ranked_like_a_case_and_says_why(library):
    text = loan_description()
    result = search(library, text, size=5, facets=())
    reranked = rank_like(library, LikeCase(None, text))
    assert [hit.case_id for hit in result.hits] == [hit.case_id for hit in reranked.hits[:5]]
    assert result.total == len(reranked.hits) == len(corpus())
    assert [hit.cause for hit in result.hits].count(LOAN) >= 4
    # why each matched: distinctive terms, the nearest passage, and the key facts it shares (only reranking names them)
    facts = {rule.name for rule in load_element_table().rules}
    assert any(hit.shared_facts for hit in result.hits) and all(set(hit.shared_facts) <= facts for hit in result.hits)
    assert all(hit.matched_terms or hit.best_passage for hit in result.hits)
    assert result.semantic_coverage == (len(corpus()), len(corpus()))


def test_a_case_description_names_the_causes_it_likely_has(library):
    likely = search(library, loan_description(), size=3, facets=()).likely_causes
    assert likely and likely[0].cause == LOAN
    # shown calibrated, not at the reranker's flatter temperature
    calibrated = library.cause_scores(loan_description()).likelihoods(calibrated=True)
    assert likely[0].likelihood == round(calibrated[LOAN], 3) != round(library.cause_scores(loan_description()).likelihoods()[LOAN], 3)
    likelihoods = [cause.likelihood for cause in likely]
    assert likelihoods == sorted(likelihoods, reverse=True) and min(likelihoods) >= MIN_LIKELIHOOD
    assert len(likely) <= SHOWN_CAUSES and {cause.cause for cause in likely} <= set(CAUSES)
    assert search(library, "朋友借钱 不还 打了欠条", facets=()).likely_causes == ()  # typed words: searched as before


def test_a_description_of_two_disputes_shows_a_case_of_each_first(library):
    """Mostly a loan, with a few lines of a divorce: ranked by similarity alone, the first divorce case
    comes later; as one of the likely causes, its best case comes second."""
    text = description(LOAN)[:600] + description(DIVORCE)[:80]
    result = search(library, text, size=5, facets=())
    likely = {cause.cause: cause.likelihood for cause in result.likely_causes}
    assert likely[LOAN] > likely[DIVORCE] >= MIN_LIKELIHOOD
    assert [hit.cause for hit in result.hits[:2]] == [LOAN, DIVORCE]
    by_score = sorted(rank_like(library, LikeCase(None, text)).hits, key=lambda hit: -hit.score)
    assert first_of(DIVORCE, by_score) > 1


def test_pages_of_a_case_description_never_overlap(library):
    text = loan_description()
    whole = search(library, text, size=12, facets=())
    pages = [search(library, text, size=4, page=page, facets=()) for page in (1, 2, 3)]
    assert [hit.case_id for page in pages for hit in page.hits] == [hit.case_id for hit in whole.hits]
    assert {page.total for page in pages} == {whole.total}
    beyond = search(library, text, size=10, page=whole.total // 10 + 2, facets=())
    assert beyond.hits == [] and beyond.total == whole.total


def test_a_case_description_keeps_to_the_filters_and_facets_count_the_filtered_set(library):
    filters = Filters(categories=("婚姻家庭",))
    result = search(library, loan_description(), size=50, filters=filters)
    in_category = sum(row["category"] == "婚姻家庭" for row in corpus())
    assert result.hits and {hit.category for hit in result.hits} == {"婚姻家庭"}
    assert result.total == len(result.hits) == in_category
    # facets as in any semantic or hybrid search: the whole filtered set, each facet without its own filter
    assert result.facets == search(library, "借钱不还", size=1, filters=filters).facets
    assert sum(bucket.count for bucket in result.facets["category"]) == len(corpus())


def test_short_queries_keep_the_fused_ranking(library):
    result = search(library, "借钱不还 打了欠条", size=10, facets=())
    # reciprocal-rank fusion scores, never the reranker's; no key facts named
    bound = (library.keyword_weight + library.semantic_weight) / (library.rrf_k + 1)
    assert result.hits and all(0 < hit.score <= bound for hit in result.hits)
    assert not any(hit.shared_facts for hit in result.hits)
    # a long text in the other modes is searched as it always was
    keyword = search(library, loan_description(), mode="keyword", size=5, facets=())
    assert not any(hit.shared_facts for hit in keyword.hits)


def test_both_backends_rank_a_case_description_alike(db, settings, tmp_path, encoder, request):
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", corpus()))
    embedded, elastic = (embedded_backend(kind, db, settings, request, encoder) for kind in SEARCH_BACKENDS)
    a, b = (search(backend, loan_description(), size=5, facets=()) for backend in (embedded, elastic))
    assert a.total == b.total
    ids_b = {hit.case_id for hit in b.hits}
    assert sum(hit.case_id in ids_b for hit in a.hits) >= 4 and a.hits[0].case_id == b.hits[0].case_id
    assert a.hits[0].shared_facts == b.hits[0].shared_facts and a.hits[0].matched_terms == b.hits[0].matched_terms


def cause_scores_of(likelihoods: dict[str, float]) -> CauseScores:
    """Cause scores whose calibrated likelihoods are these (each cause of the library not named: none)."""
    causes = tuple(CAUSES)
    decision = np.array([CALIBRATED_TEMPERATURE * math.log(likelihoods.get(cause, 1e-9)) for cause in causes])
    return CauseScores(causes, decision)


def first_of(cause: str, hits: list[Hit]) -> int:
    return next(place for place, hit in enumerate(hits) if hit.cause == cause)


def test_a_cause_not_named_but_likely_enough_gets_its_best_case_moved_up(library):
    """A cause at 9 % is too unlikely to name (MIN_LIKELIHOOD) but likely enough to have its best case
    moved up (COVER_MIN_LIKELIHOOD); one at 3 % keeps the reranker's order."""
    text = description(LOAN)[:300] + description(DIVORCE)[:300]
    assert COVER_MIN_LIKELIHOOD <= 0.09 < MIN_LIKELIHOOD
    places = {}
    for share in (0.09, 0.03):
        scores = cause_scores_of({LOAN: 1 - share, DIVORCE: share})
        assert [cause for cause, _ in scores.likeliest()] == [LOAN]
        hits = rank_like(library, LikeCase(None, text), cause_scores=scores).hits
        by_score = sorted(hits, key=lambda hit: -hit.score)
        places[share] = first_of(DIVORCE, hits), first_of(DIVORCE, by_score)
    covered, by_score = places[0.09]
    assert covered < by_score
    assert places[0.03][0] == places[0.03][1]
