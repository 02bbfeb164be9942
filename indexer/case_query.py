"""Hybrid search for a whole case description: the two stages of more like this, with the text as the case.

A mediator who pastes a case's facts into the search box is asking for cases like it. Fusing a BM25
ranking of its hundreds of terms with its nearest passages ranks them worse than more like this does
(`casekb eval` before this path: SCM triplets 0.635 against 0.715), so a hybrid
query of at least CASE_TEXT_CHARS characters is searched as a case: candidates by its distinctive
terms and its meaning under the search's filters, reranked case to case (indexer/more_like_this.py).
Shorter queries, the 2-20 characters of keywords or a colloquial phrase people type, are searched as
before. Every backend's `search` asks `searches_as_case` first, so both backends route alike.

The result also names the causes the description most likely has (the library's cause model, which
the reranker weighs too), so a mediator sees what kind of dispute it reads as and can filter by it.
"""
from __future__ import annotations

from indexer.cause_model import CALIBRATED_TEMPERATURE
from indexer.more_like_this import LikeCase, rank_like
from indexer.query import Hit, LikelyCause, SearchQuery

#: Non-space characters from which a hybrid query is a case description. Typed queries have 2-20.
#: Chosen on leave-one-out (250 dev-half queries cut to their first L characters), MRR@10 fused / as a
#: case: L=60 0.374 / 0.373, 100 0.502 / 0.500, 150 0.544 / 0.526, 250 0.564 / 0.594, 400 0.602 / 0.625.
CASE_TEXT_CHARS = 200
#: At most this many likely causes are named, each at least MIN_LIKELIHOOD likely (calibrated).
SHOWN_CAUSES = 3
MIN_LIKELIHOOD = 0.1


def is_case_text(text: str) -> bool:
    """Whether a query is long enough to be a case description rather than keywords or a phrase."""
    return sum(not char.isspace() for char in text) >= CASE_TEXT_CHARS


def searches_as_case(backend, query: SearchQuery) -> bool:
    """Whether `query` is a hybrid search for a case description on a backend that can search by meaning."""
    return query.mode == "hybrid" and "hybrid" in backend.modes() and is_case_text(query.text)


def likely_causes(likelihoods: dict[str, float]) -> tuple[LikelyCause, ...]:
    """The SHOWN_CAUSES likeliest causes at or above MIN_LIKELIHOOD, likeliest first."""
    ranked = sorted(likelihoods.items(), key=lambda item: (-item[1], item[0]))
    return tuple(LikelyCause(cause, round(p, 3)) for cause, p in ranked[:SHOWN_CAUSES] if p >= MIN_LIKELIHOOD)


def case_query_page(backend, query: SearchQuery) -> tuple[list[Hit], int, tuple[int, int] | None,
                                                          tuple[LikelyCause, ...]]:
    """One page of the cases most like the query's text, how many there are to page through, the
    semantic coverage (cases embedded, cases indexed) and the causes it likely has. The ranking depends
    only on the text and the filters, so pages never overlap."""
    ranking = rank_like(backend, LikeCase(None, query.text), filters=query.filters)
    coverage = ranking.first_stage.semantic_coverage or (backend.embedded_case_count(), backend.document_count())
    # shown calibrated (the reranker weighs them at a flatter temperature)
    likely = likely_causes(backend.cause_likelihoods(query.text, CALIBRATED_TEMPERATURE))
    return ranking.page((query.page - 1) * query.size, query.size), len(ranking.hits), coverage, likely
