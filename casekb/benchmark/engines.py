"""Every engine the benchmark times, as one callable per (query number, filtered or not).

casekb goes through `backend.search` exactly as the API does (facets, snippets and all). The raw
floors get the same query trees with no casekb layer: tantivy's Searcher with the queries and facet
aggregation requests the embedded backend builds (built before timing; a second tantivy row does the
top 10 alone), faiss with the query vectors computed before timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import faiss
import numpy as np
import tantivy

from casekb.benchmark.comparators import TOP, RankBM25, SqliteFts5
from casekb.benchmark.queries import FILTER_SINCE, BenchQuery
from indexer.embedded import SEMANTIC_DEPTH, EmbeddedBackend
from indexer.query import Filters, SearchQuery
from indexer.text import ParsedQuery
from indexer.vectors import HNSW_EF_SEARCH, PASSAGE_BITS, VectorIndex

Search = Callable[[int, bool], object]
#: tantivy doing the engine work a casekb keyword search asks of it (facets included): the overhead floor
RAW_TANTIVY = "tantivy (raw)"
#: tantivy's bare top 10 (with a count and the stored documents), no facets
RAW_TANTIVY_TOP = "tantivy (raw, top 10)"
#: casekb's hybrid search of case descriptions (searched as a case: indexer/case_query.py)
CASE_DESCRIPTION = "casekb (case description)"


@dataclass(frozen=True)
class Engine:
    name: str
    mode: str
    search: Search
    #: whether it is also timed with concurrent clients
    concurrent: bool = True
    #: at most this many queries (a slow engine), None: all
    max_queries: int | None = None


def casekb_engine(backend, queries: list[BenchQuery], mode: str, name: str = "casekb", **timing) -> Engine:
    """`timing`: Engine's concurrent and max_queries."""
    def search(number: int, filtered: bool):
        query = queries[number]
        return backend.search(SearchQuery(text=query.text, mode=mode,
                                          filters=query.filters() if filtered else Filters()))
    return Engine(name, mode, search, **timing)


def raw_tantivy_engines(backend: EmbeddedBackend, queries: list[BenchQuery], parsed: list[ParsedQuery]) -> list[Engine]:
    """tantivy's Searcher alone, twice: doing the same engine work as a casekb keyword search (the top 10
    with a count, their stored documents, and the facet aggregation requests casekb sends), the floor
    casekb's overhead is measured against; and the bare top 10 with a count and stored documents."""
    searcher = backend._searcher()
    work = {}
    for number, (query, terms) in enumerate(zip(queries, parsed)):
        text_query = backend._text_query(terms)
        for filtered in (False, True):
            search = SearchQuery(text=query.text, mode="keyword", filters=query.filters() if filtered else Filters())
            work[number, filtered] = (backend._compose(text_query, search.filters),
                                      backend.facet_requests(text_query, search))

    def top(number: int, filtered: bool):
        found = searcher.search(work[number, filtered][0], limit=TOP, count=True)
        return [searcher.doc(address) for _score, address in found.hits]

    def same_work(number: int, filtered: bool):
        documents = top(number, filtered)
        return documents, [searcher.aggregate(tree, request) for tree, request in work[number, filtered][1]]
    return [Engine(RAW_TANTIVY, "keyword", same_work), Engine(RAW_TANTIVY_TOP, "keyword", top)]


def raw_faiss_engine(backend: EmbeddedBackend, queries: list[BenchQuery], vectors: np.ndarray) -> Engine:
    """faiss alone, as deep as casekb's semantic search goes; filters as selectors built beforehand."""
    index: VectorIndex = backend.vectors()
    searcher = backend._searcher()
    depth = min(SEMANTIC_DEPTH * 3, len(index.keys))
    selectors = {}
    for category in {q.category for q in queries}:
        only = Filters(categories=(category,), received_from=FILTER_SINCE)
        allowed = backend._case_ids(searcher, backend._compose(tantivy.Query.all_query(), only), searcher.num_docs)
        rows = np.flatnonzero(np.isin(index.keys >> PASSAGE_BITS, np.asarray(allowed, dtype="int64")))
        selectors[category] = faiss.IDSelectorBatch(rows.astype("int64"))

    def params(selector):
        if index.exact:
            return faiss.SearchParameters(sel=selector) if selector else None
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, depth))

    plain = params(None)
    filtered_params = {category: params(selector) for category, selector in selectors.items()}

    def search(number: int, filtered: bool):
        chosen = filtered_params[queries[number].category] if filtered else plain
        return index.index.search(vectors[number:number + 1], depth, params=chosen)
    return Engine("faiss (raw)", "semantic", search)


def _filter_args(query: BenchQuery, filtered: bool) -> tuple[str | None, int | None]:
    return (query.category, FILTER_SINCE.toordinal()) if filtered else (None, None)


def bm25_engine(bm25: RankBM25, queries: list[BenchQuery], parsed: list[ParsedQuery], max_queries: int) -> Engine:
    def search(number: int, filtered: bool):
        return bm25.search(parsed[number].terms, *_filter_args(queries[number], filtered))
    # Pure Python under the GIL: concurrent clients would only queue.
    return Engine("rank_bm25", "keyword", search, concurrent=False, max_queries=max_queries)


def fts5_engine(fts: SqliteFts5, queries: list[BenchQuery], parsed: list[ParsedQuery]) -> Engine:
    def search(number: int, filtered: bool):
        return fts.search(parsed[number].terms, *_filter_args(queries[number], filtered))
    return Engine("sqlite fts5", "keyword", search)
