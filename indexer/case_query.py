"""Hybrid search for a whole case description: the two stages of more like this, with the text as the case.

A mediator who pastes a case's facts into the search box, or describes a dispute in a sentence or
two, is asking for cases like it. Fusing a BM25 ranking of its terms with its nearest passages ranks
them worse than more like this does (`casekb eval` before this path: SCM triplets 0.635 against
0.715), so a hybrid query of at least CASE_TEXT_CHARS characters is searched as a case: candidates by
its distinctive terms and its meaning under the search's filters, reranked case to case
(indexer/more_like_this.py). Shorter queries, the 2-20 characters of keywords people type, are
searched as before, and so is a query under PASTED_TEXT_CHARS with a quoted part (the user asked for
that exact wording; a pasted case text quotes its documents). Every backend's `search` asks
`searches_as_case` first, so both backends route alike.

The result also names the causes the description most likely has (the library's cause model, which
the reranker weighs too), so a mediator sees what kind of dispute it reads as and can filter by it.
"""
from __future__ import annotations

from indexer.more_like_this import LikeCase, rank_like
from indexer.query import Hit, LikelyCause, SearchQuery
from indexer.text import has_quoted_part

#: Non-space characters from which a hybrid query is a case description. Typed keywords have 2-20.
#: Measured on leave-one-out queries cut to their first L characters (150 of each half, the cause
#: model cross-fitted), MRR@10 fused / as a case, dev: L=25 0.139 / 0.189, 40 0.245 / 0.287,
#: 60 0.333 / 0.384, 100 0.423 / 0.513, 150 0.494 / 0.536; held-out: 25 0.165 / 0.227, 40 0.285 /
#: 0.322, 60 0.318 / 0.369, 100 0.423 / 0.472. (Before the cause model the two tied up to L=150, and
#: the threshold was 200.) 40 keeps a short phrase, which people expect to be matched word by word,
#: on the fused path.
CASE_TEXT_CHARS = 40
#: From this length a quoted part is part of a pasted text, not an exact-wording request.
PASTED_TEXT_CHARS = 200


def is_case_text(text: str) -> bool:
    """Whether a query is a case description rather than keywords: long enough, and (short of a pasted
    text) without a quoted part that asks for exact wording."""
    length = sum(not char.isspace() for char in text)
    return length >= PASTED_TEXT_CHARS or (length >= CASE_TEXT_CHARS and not has_quoted_part(text))


def searches_as_case(backend, query: SearchQuery) -> bool:
    """Whether `query` is a hybrid search for a case description on a backend that can search by meaning."""
    return query.mode == "hybrid" and "hybrid" in backend.modes() and is_case_text(query.text)


def case_query_page(backend, query: SearchQuery) -> tuple[list[Hit], int, tuple[int, int] | None,
                                                          tuple[LikelyCause, ...]]:
    """One page of the cases most like the query's text, how many there are to page through, the
    semantic coverage (cases embedded, cases search shows) and the causes it likely has. The ranking depends
    only on the text and the filters, so pages never overlap."""
    # one read of the cause model: weighed by the reranker, and shown calibrated
    scores = backend.cause_scores(query.text)
    ranking = rank_like(backend, LikeCase(None, query.text), filters=query.filters, cause_scores=scores)
    coverage = ranking.first_stage.semantic_coverage or (backend.embedded_case_count(), backend.shown_case_count())
    likely = tuple(LikelyCause(cause, round(p, 3)) for cause, p in scores.likeliest()) if scores is not None else ()
    return ranking.page((query.page - 1) * query.size, query.size), len(ranking.hits), coverage, likely
