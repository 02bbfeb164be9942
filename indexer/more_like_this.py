"""More like this: cases like a given one, in two stages any search backend can serve.

1. Candidates (the backend's `similar_candidates`): a keyword query of the case's distinctive terms
   (its cause boosted, when it has one) fused by RRF with a vector search by the `query: ` vector of
   its whole text, CANDIDATES deep, under the filters, without the case and its duplicates.
2. Rerank (indexer/similarity.py): each candidate scored against the case by meaning (the case's
   whole-text vector against the candidate's stored mean passage vector), shared key facts,
   distinctive terms, title and the same cause. Only the case's own whole text is run through the
   model (then cached): a request costs one model run the first time, none after.

Without an embedding model, or before anything is embedded, the candidates' keyword order is the answer.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from indexer.query import Filters, Hit, SearchResult
from indexer.similarity import CaseSimilarity, CaseText
from indexer.text import Segmenter

#: candidates the first stage hands the reranker
CANDIDATES = 200


@dataclass(frozen=True)
class LikeCase:
    """The case others are looked for like: its id (never returned), and what it is judged by."""
    case_id: int
    text: str
    title: str = ""
    cause: str = ""


@lru_cache(maxsize=4)
def case_similarity(encoder, segmenter: Segmenter) -> CaseSimilarity:
    """One reranker per encoder and segmenter, so its term memo lasts from one request to the next."""
    return CaseSimilarity(encoder, segmenter)


def more_like_this(backend, case: LikeCase, size: int = 5, exclude: tuple[int, ...] = (),
                   filters: Filters = Filters(), similarity: CaseSimilarity | None = None,
                   depth: int = CANDIDATES) -> SearchResult:
    """The `size` cases most like `case`, never the case itself nor those in `exclude`. `similarity`
    defaults to one on the backend's encoder, where the backend has one and has embedded cases."""
    started = time.perf_counter()
    skip = (case.case_id, *exclude)
    if similarity is None and "semantic" in backend.modes() and backend.embedded_case_count():
        similarity = case_similarity(backend.encoder(), backend.segmenter)
    vector = similarity.whole_vector(case.text) if similarity is not None else None
    found = backend.similar_candidates(case, max(depth, size), skip, filters, vector)
    hits = found.hits[:size]
    if vector is not None and found.hits:
        hits = _reranked(backend, similarity, CaseText(case.text, cause=case.cause), found.hits, skip, size)
    return dataclasses.replace(found, hits=hits, total=len(hits), took_ms=(time.perf_counter() - started) * 1000)


def _reranked(backend, similarity: CaseSimilarity, query: CaseText, hits: list[Hit], skip: tuple[int, ...],
              size: int) -> list[Hit]:
    """The best `size` candidates in the reranker's order, each with the key facts it shares with the case."""
    texts = backend.stored_texts([hit.case_id for hit in hits])
    hits = [hit for hit in hits if hit.case_id in texts and hit.case_id not in skip]
    if not hits:
        return []
    candidates = [CaseText(texts[hit.case_id][1], texts[hit.case_id][0], hit.cause) for hit in hits]
    means = backend.case_vectors([hit.case_id for hit in hits])
    zero = np.zeros(similarity.encoder.dim, "float32")
    pool = similarity.pool(candidates, np.vstack([means.get(hit.case_id, zero) for hit in hits]))
    return [dataclasses.replace(hits[n], score=score, shared_facts=similarity.shared_elements(query, candidates[n]))
            for n, score in similarity.rank_similar(query, pool, size)]
