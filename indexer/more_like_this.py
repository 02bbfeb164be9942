"""More like this: cases like a given one, in two stages any search backend can serve.

1. Candidates (the backend's `similar_candidates`): a keyword query of the case's distinctive terms
   (its cause boosted, when it has one) fused by RRF with a vector search by the `query: ` vector of
   its whole text, CANDIDATES deep, under the filters, without the case and its duplicates.
2. Rerank (indexer/similarity.py): each candidate scored against the case by meaning (the case's
   whole-text vector against the candidate's stored mean passage vector), shared key facts,
   distinctive terms, title and the same cause. Only the case's own whole text is run through the
   model (then cached): a request costs one model run the first time, none after.

3. For a case without a cause (a pasted description), the best case of each cause it likely has (the
   three likeliest, each at least COVER_MIN_LIKELIHOOD likely: the causes named to the user and any
   a little less likely) moves up (cover_likely_causes), so the first places
   show a precedent of each kind of dispute the text may be, not ten of the likeliest one. The hits
   keep the reranker's scores.

The same stages rank a whole case description searched for in hybrid mode (indexer/case_query.py).

Without an embedding model, or before anything is embedded, the candidates' keyword order is the answer.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from indexer.backend_common import with_display
from indexer.cause_model import CauseScores
from indexer.query import Candidates, Filters, Hit, SearchResult
from indexer.similarity import CaseSimilarity, CaseText
from indexer.text import Segmenter

#: Candidates the first stage hands the reranker. On the dev halves of `casekb eval` (hybrid path), 300
#: instead of 200 raised SCM triplet accuracy from 0.724 to 0.742 and left leave-one-out MRR@10 at 0.610.
CANDIDATES = 300
#: How much a likely cause not yet shown weighs against a candidate's relevance (min-max scaled to 0-1
#: over the candidates), times its calibrated likelihood. Chosen with the reranker's cause temperature
#: on the dev half of `casekb eval`'s leave-one-out (README "Measuring quality").
COVER_WEIGHT = 0.8
#: The least calibrated likelihood of a cause whose best case moves up; the causes named to the user
#: need CauseScores' MIN_LIKELIHOOD (0.1). On `casekb eval`'s leave-one-out (offline rescoring of its
#: dumped reranker features, README "Measuring quality"), 0.05 instead of 0.1 raised MRR@10 from 0.620
#: to 0.634 (dev 0.646 -> 0.657, held-out 0.594 -> 0.611) with P@10 0.443 -> 0.442 and nDCG@10 0.598 ->
#: 0.599; lower still hedges: at 0 (any of the top three) MRR@10 0.636, P@10 0.440.
COVER_MIN_LIKELIHOOD = 0.05


@dataclass(frozen=True)
class LikeCase:
    """The case others are looked for like: its id (never returned; None for a text that is not an
    indexed case, such as a case description searched for), and what it is judged by."""
    case_id: int | None
    text: str
    title: str = ""
    cause: str = ""


@lru_cache(maxsize=4)
def case_similarity(encoder, segmenter: Segmenter) -> CaseSimilarity:
    """One reranker per encoder and segmenter, so its term memo lasts from one request to the next."""
    return CaseSimilarity(encoder, segmenter)


@dataclass(frozen=True)
class LikeRanking:
    """Every candidate for a case, most alike first: the reranker's order where there is one, else
    the first stage's."""
    first_stage: Candidates
    hits: list[Hit]
    case: CaseText
    similarity: CaseSimilarity | None = None
    #: case id -> (title, text) of the reranked candidates
    texts: dict[int, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def page(self, start: int, size: int) -> list[Hit]:
        """`size` hits from `start`; once reranked, each with its snippet, matched terms and best passage
        (the candidates come without: only a page's are shown) and the key facts it shares with the case."""
        hits = self.hits[start:start + size]
        if self.similarity is None:
            return hits
        shown = []
        for hit in hits:
            title, text = self.texts[hit.case_id]
            hit = with_display(hit, text, self.first_stage.query_terms, self.first_stage.passages.get(hit.case_id))
            shown.append(dataclasses.replace(hit, shared_facts=self.similarity.shared_elements(
                self.case, CaseText(text, title))))
        return shown


def cover_likely_causes(hits: list[Hit], likelihoods: dict[str, float], weight: float = COVER_WEIGHT) -> list[Hit]:
    """`hits` (best first) reordered so that the likely causes are each represented early: place by
    place, the hit with the most (1 - weight) × relevance + weight × likelihood of its cause, where
    relevance is its score scaled to 0-1 over the hits and a cause counts only until one of its hits
    is placed (intent-aware diversification, as xQuAD). A cause the text surely has keeps the order
    as it was; unsure between two, the best of each comes first."""
    if len(hits) < 2 or not likelihoods:
        return hits
    scores = np.array([hit.score for hit in hits])
    relevance = (scores - scores.min()) / max(float(scores.max() - scores.min()), 1e-12)
    causes = np.array([hit.cause for hit in hits], object)
    bonus = weight * np.array([likelihoods.get(cause, 0.0) for cause in causes])
    left = np.ones(len(hits), bool)
    order = []
    while bonus.any():
        pick = int(np.argmax(np.where(left, (1 - weight) * relevance + bonus, -np.inf)))
        order.append(pick)
        left[pick] = False
        bonus[causes == causes[pick]] = 0.0
    order += [n for n in range(len(hits)) if left[n]]
    return [hits[n] for n in order]


def rank_like(backend, case: LikeCase, exclude: tuple[int, ...] = (), filters: Filters = Filters(),
              similarity: CaseSimilarity | None = None, depth: int = CANDIDATES,
              cause_scores: CauseScores | None = None) -> LikeRanking:
    """The first `depth` candidates for `case` (never the case itself nor those in `exclude`), reranked
    case to case. `similarity` defaults to one on the backend's encoder, where the backend has one and
    has embedded cases. `cause_scores`: the cause model's scores for the case's text where the caller
    has them already (else a case without a cause gets them from the backend's cause model)."""
    skip = tuple(i for i in (case.case_id, *exclude) if i is not None)
    if similarity is None and "semantic" in backend.modes() and backend.embedded_case_count():
        similarity = case_similarity(backend.encoder(), backend.segmenter)
    vector = similarity.whole_vector(case.text) if similarity is not None else None
    # the reranked candidates are shown a page at a time (LikeRanking.page); unreranked, they are the answer
    found = backend.similar_candidates(case, depth, skip, filters, vector, display=vector is None)
    if vector is None or not found.hits:
        return LikeRanking(found, found.hits, CaseText(case.text, cause=case.cause))
    # a case without a cause (a pasted description) is judged by the causes it most likely has
    if case.cause:
        cause_scores = None
    elif cause_scores is None:
        cause_scores = backend.cause_scores(case.text)
    likely = cause_scores.likelihoods() if cause_scores is not None else {}
    query = CaseText(case.text, cause=case.cause, likely_causes=tuple(likely.items()))
    texts = backend.stored_texts([hit.case_id for hit in found.hits])
    hits = [hit for hit in found.hits if hit.case_id in texts and hit.case_id not in skip]
    if not hits:
        return LikeRanking(found, [], query)
    candidates = [CaseText(texts[hit.case_id][1], texts[hit.case_id][0], hit.cause) for hit in hits]
    means = backend.case_vectors([hit.case_id for hit in hits])
    zero = np.zeros(similarity.encoder.dim, "float32")
    pool = similarity.pool(candidates, np.vstack([means.get(hit.case_id, zero) for hit in hits]))
    ranked = [dataclasses.replace(hits[n], score=score) for n, score in similarity.rank_similar(query, pool)]
    if cause_scores is not None:
        ranked = cover_likely_causes(ranked, dict(cause_scores.likeliest(COVER_MIN_LIKELIHOOD)))
    return LikeRanking(found, ranked, query, similarity, texts)


def more_like_this(backend, case: LikeCase, size: int = 5, exclude: tuple[int, ...] = (),
                   filters: Filters = Filters(), similarity: CaseSimilarity | None = None,
                   depth: int = CANDIDATES) -> SearchResult:
    """The `size` cases most like `case`, never the case itself nor those in `exclude` (see rank_like)."""
    started = time.perf_counter()
    ranking = rank_like(backend, case, exclude, filters, similarity, max(depth, size))
    hits = ranking.page(0, size)
    first = ranking.first_stage
    return SearchResult(hits, len(hits), {}, (time.perf_counter() - started) * 1000, first.query_terms,
                        semantic_coverage=first.semantic_coverage)
