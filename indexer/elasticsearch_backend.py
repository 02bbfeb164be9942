"""The Elasticsearch backend: the embedded backend's searches, served by an Elasticsearch 8 cluster.

Documents are tokenised by casekb itself (jieba terms and single characters, space-joined) and the
cluster only splits them on whitespace, so index and query tokenisation never disagree. Layout:
each generation is an index `<alias>-<generation>`; searches and writes go through the alias. A
rebuild writes a new generation, tagged with the alias `<alias>-building` so that concurrent
writers also update it, and one `_aliases` call moves both aliases at once. A case's passage vectors
are nested in its document (so filters apply inside the kNN search and a case scores by its best
passage); a write carries them over from the live index while the case's text hash is unchanged.
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

from casekb.config import Settings
from indexer.backend_common import (CAUSE_BOOST, FACET_FILTER, FACET_SIZE, TITLE_BOOST, EncoderOnDemand,
                                    IndexWriteError, analysed_fields, build_hit, distinctive_terms, facet_filters,
                                    no_result_suggestions)
from indexer.case_query import case_query_page, searches_as_case
from indexer.cause_model import LearntCauses, first_of_each
from indexer.documents import IndexDocument
from indexer.more_like_this import LikeCase, more_like_this
from indexer.query import Candidates, FacetBucket, Filters, Hit, SearchQuery, SearchResult
from indexer.semantic import SEMANTIC_DEPTH, document_hash, reciprocal_rank_fusion
from indexer.text import ParsedQuery, Segmenter, char_tokens, normalise, parse_query
from indexer.vectors import PassageMatch

if TYPE_CHECKING:
    from indexer.embeddings import Encoder

KEEP_OLD_GENERATIONS = 1
#: Dimensions of multilingual-e5-small, the embedding model of the passage vectors.
VECTOR_DIMS = 384
#: Passage vectors the kNN search considers for its k best cases (Elasticsearch allows 10,000 at most).
NUM_CANDIDATES = 2_000
BULK_CHUNK = 500
TERM_FIELDS = (("terms", 1.0), ("title_terms", TITLE_BOOST), ("cause_terms", CAUSE_BOOST))
DISPLAY_FIELDS = ["case_id", "external_id", "title", "text", "category", "cause", "region", "outcome",
                  "received_day", "exemplar", "duplicates"]
#: Search shows a record that repeats an earlier one's text only through that one (see kb.duplicates).
SHOWN = {"term": {"duplicate_of": 0}}
VECTOR_FIELDS = ["text_hash", "vector_model", "passages"]
#: Fields whose sums over the shown cases, with their count, tell that the cause model's cases changed.
STATE_SUMS = ("case_id", "version", "text_hash")
#: A stale write (an older row version) and deleting what is gone both leave the index as it should be.
HARMLESS = {"index": {409}, "delete": {404}}

_TOKENS = {"type": "text", "analyzer": "whitespace", "index_options": "freqs"}
_STORED_ONLY = {"type": "text", "index": False}


def index_template(vector_dims: int = VECTOR_DIMS) -> dict:
    """Mappings of a generation: tokens, stored display text, filter and facet fields, passage vectors."""
    return {"mappings": {
        "dynamic": "strict",
        "properties": {
            "case_id": {"type": "long"}, "external_id": {"type": "keyword"}, "version": {"type": "long"},
            "title": _STORED_ONLY, "text": _STORED_ONLY,
            "terms": _TOKENS, "title_terms": _TOKENS, "cause_terms": _TOKENS,
            "chars": {"type": "text", "analyzer": "whitespace", "index_options": "positions"},
            **{name: {"type": "keyword"} for name in FACET_FILTER},
            "organisation": {"type": "long"}, "exemplar": {"type": "boolean"},
            "received_day": {"type": "date", "format": "strict_date"}, "amount": {"type": "double"},
            "text_hash": {"type": "long"},
            "duplicate_of": {"type": "long"}, "duplicates": {"type": "integer", "index": False},
            # The embedding model's fingerprint: a kNN search only looks at vectors of the model in use.
            "vector_model": {"type": "keyword"},
            "passages": {"type": "nested", "properties": {
                "number": {"type": "integer"},
                "vector": {"type": "dense_vector", "dims": vector_dims, "index": True, "similarity": "cosine",
                           "index_options": {"type": "hnsw"}}}},
        }}}


def document_source(doc: IndexDocument, segmenter: Segmenter) -> dict:
    """The _source of a case: masked display text, casekb's tokens, filter and facet values."""
    return dict(
        case_id=doc.case_id, external_id=doc.external_id, version=doc.version, title=doc.title, text=doc.text,
        **analysed_fields(doc, segmenter),
        category=doc.category, cause=doc.cause, region=doc.region, outcome=doc.outcome,
        organisation=list(doc.organisation_ids), exemplar=doc.exemplar,
        received_day=doc.received_on.isoformat() if doc.received_on else None, amount=doc.amount,
        text_hash=document_hash(doc.title, doc.text), duplicate_of=doc.duplicate_of, duplicates=doc.duplicates)


def client_for(settings: Settings) -> Elasticsearch:
    """A client for the configured cluster; certificates are verified, against es_ca_certs when set."""
    auth = {}
    if settings.es_api_key:
        auth["api_key"] = settings.es_api_key
    elif settings.es_username:
        auth["basic_auth"] = (settings.es_username, settings.es_password or "")
    if settings.es_ca_certs:
        auth["ca_certs"] = str(settings.es_ca_certs)
    return Elasticsearch(settings.es_url, verify_certs=True, retry_on_timeout=True, max_retries=3,
                         request_timeout=30, **auth)


def passage_vectors(model: str, vectors: np.ndarray) -> dict:
    """The vector fields of a case's document."""
    return {"vector_model": model,
            "passages": [{"number": number, "vector": vector.tolist()} for number, vector in enumerate(vectors)]}


class ElasticsearchWriter:
    """Bulk writes to one or more indices; a document's row version guards against stale writes.
    Vectors come over from `vectors_from` (the live alias) for documents whose text is unchanged."""

    def __init__(self, client: Elasticsearch, targets: list[str], segmenter: Segmenter, vectors_from: str):
        self._client, self._targets, self._segmenter = client, targets, segmenter
        self._vectors_from = vectors_from

    def upsert(self, docs: list[IndexDocument]) -> None:
        sources = [(doc, document_source(doc, self._segmenter)) for doc in docs]
        carried = self._stored_vectors([doc.case_id for doc in docs])
        for doc, source in sources:
            old = carried.get(doc.case_id, {})
            if old.get("text_hash") == source["text_hash"] and "passages" in old:
                source.update(vector_model=old["vector_model"], passages=old["passages"])
        self.bulk({"_op_type": "index", "_index": target, "_id": str(doc.case_id), "_source": source,
                   "_version": doc.version, "_version_type": "external_gte"}
                  for target in self._targets for doc, source in sources)

    def _stored_vectors(self, case_ids: list[int]) -> dict[int, dict]:
        if not case_ids:
            return {}
        try:
            found = self._client.mget(index=self._vectors_from, ids=[str(i) for i in case_ids], source=VECTOR_FIELDS)
        except NotFoundError:
            return {}
        return {int(doc["_id"]): doc["_source"] for doc in found["docs"] if doc.get("found")}

    def delete(self, case_ids: list[int]) -> None:
        self.bulk({"_op_type": "delete", "_index": target, "_id": str(case_id)}
                  for target in self._targets for case_id in case_ids)

    def commit(self) -> None:
        """Make the writes visible to searches."""
        self._client.indices.refresh(index=",".join(self._targets))

    def bulk(self, actions) -> None:
        """Send in chunks, retrying rejected ones with backoff; raise naming the cases that failed."""
        failed, reasons = set(), []
        for ok, item in helpers.streaming_bulk(self._client, actions, chunk_size=BULK_CHUNK, max_retries=5,
                                               initial_backoff=1, max_backoff=30, raise_on_error=False,
                                               raise_on_exception=False):
            op, info = next(iter(item.items()))
            if ok or info.get("status") in HARMLESS.get(op, ()):
                continue
            failed.add(int(info["_id"]))
            reasons.append(f"case {info['_id']}: {info.get('error')}")
        if failed:
            raise IndexWriteError(sorted(failed), reasons)


class ElasticsearchBackend(EncoderOnDemand, LearntCauses):
    name = "elasticsearch"

    def __init__(self, client: Elasticsearch, alias: str, segmenter: Segmenter,
                 encoder_factory: Callable[[], Encoder] | None = None, vector_dims: int = VECTOR_DIMS,
                 rrf_k: int = 60, keyword_weight: float = 1.0, semantic_weight: float = 1.0):
        self.client = client
        self.alias = alias
        self.building = f"{alias}-building"
        self.segmenter = segmenter
        self._init_encoder(encoder_factory)
        self.vector_dims = vector_dims
        self.rrf_k, self.keyword_weight, self.semantic_weight = rrf_k, keyword_weight, semantic_weight

    # -- generations -------------------------------------------------------------------
    def _indices_of(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=alias))
        except NotFoundError:
            return []

    def _put_template(self) -> None:
        self.client.indices.put_index_template(name=self.alias, index_patterns=[f"{self.alias}-0*"],
                                               template=index_template(self.vector_dims))

    def _new_generation(self) -> str:
        """Create an empty generation (sorting by creation time), tagged as being built."""
        self._put_template()
        name = f"{self.alias}-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        self.client.indices.create(index=name, aliases={self.building: {}})
        return name

    def _create_first_generation(self) -> None:
        """The first live index, under a fixed name and created with its alias in one call, so that
        processes starting at once all end up writing to the same one."""
        self._put_template()
        try:
            self.client.indices.create(index=f"{self.alias}-{0:020d}-first", aliases={self.alias: {}})
        except BadRequestError as error:
            if error.error != "resource_already_exists_exception":
                raise

    def _publish(self, generation: str) -> None:
        """Point the alias at `generation` in one atomic call, then drop all but the newest old ones."""
        live = self._indices_of(self.alias)
        actions = [{"remove": {"index": old, "alias": self.alias}} for old in live]
        if generation in self._indices_of(self.building):
            actions.append({"remove": {"index": generation, "alias": self.building}})
        self.client.indices.update_aliases(actions=actions + [{"add": {"index": generation, "alias": self.alias}}])
        # The newest old generation stays for searches already under way on it; one still being
        # built by a concurrent rebuild is not old.
        building = set(self._indices_of(self.building))
        older = [name for name in self.generations() if name < generation and name not in building]
        for old in older[:-KEEP_OLD_GENERATIONS]:
            self.client.indices.delete(index=old, ignore_unavailable=True)

    def generations(self) -> list[str]:
        """Every generation index of this alias, oldest first."""
        try:
            return sorted(self.client.indices.get(index=f"{self.alias}-0*"))
        except NotFoundError:
            return []

    def outdated(self) -> bool:
        """Whether the live index lacks fields of the current template (written by an older casekb:
        rebuild it to use them)."""
        generation = self.live_generation()
        if generation is None:
            return False
        mapping = self.client.indices.get_mapping(index=generation)[generation]["mappings"]
        return not set(index_template(self.vector_dims)["mappings"]["properties"]) <= set(mapping["properties"])

    def live_generation(self) -> str | None:
        live = self._indices_of(self.alias)
        return live[0] if live else None

    def _write_targets(self) -> list[str]:
        """The live index and any being rebuilt: writes go to both."""
        return [self.alias, *self._indices_of(self.building)]

    @contextmanager
    def writer(self) -> Iterator[ElasticsearchWriter]:
        """Write to the live index (creating it when there is none) and to one being rebuilt."""
        if not self._indices_of(self.alias):
            self._create_first_generation()
        writer = ElasticsearchWriter(self.client, self._write_targets(), self.segmenter, self.alias)
        yield writer
        writer.commit()

    @contextmanager
    def rebuild(self) -> Iterator[ElasticsearchWriter]:
        """Write a fresh index beside the live one; it replaces the live one on clean exit."""
        generation = self._new_generation()
        try:
            writer = ElasticsearchWriter(self.client, [generation], self.segmenter, self.alias)
            yield writer
            writer.commit()
        except BaseException:
            self.client.indices.delete(index=generation, ignore_unavailable=True)
            raise
        self._publish(generation)

    # -- reading -----------------------------------------------------------------------
    def _count_documents(self, query: dict | None = None) -> int:
        """Documents matching `query` (all of them without one); 0 where there is no index yet."""
        try:
            return self.client.count(index=self.alias, query=query)["count"]
        except NotFoundError:
            return 0

    def document_count(self) -> int:
        return self._count_documents()

    def shown_case_count(self) -> int:
        """Indexed cases that search shows: every document but the duplicates collapsed into another
        (they need no vectors, so semantic coverage counts against this)."""
        return self._count_documents(SHOWN)

    @staticmethod
    def _filter_clauses(filters: Filters) -> list[dict]:
        clauses = [{"terms": {field: list(values)}} for field, values in (
            ("category", filters.categories), ("cause", filters.causes),
            ("region", filters.regions), ("outcome", filters.outcomes)) if values]
        if filters.organisation_id is not None:
            clauses.append({"term": {"organisation": filters.organisation_id}})
        if filters.exemplar_only:
            clauses.append({"term": {"exemplar": True}})
        if filters.received_from or filters.received_to:
            clauses.append({"range": {"received_day": _bounds(
                filters.received_from and filters.received_from.isoformat(),
                filters.received_to and filters.received_to.isoformat())}})
        if filters.amount_min is not None or filters.amount_max is not None:
            clauses.append({"range": {"amount": _bounds(filters.amount_min, filters.amount_max)}})
        return clauses

    @staticmethod
    def _text_query(parsed: ParsedQuery) -> dict:
        """Same clauses and boosts as the embedded backend."""
        if parsed.is_empty:
            return {"match_all": {}}
        # `match` on a whitespace-analysed field with one token is Elasticsearch's BM25 term query;
        # the noida-db emulator scores a `term` query as a constant, but a `match` with BM25.
        should = [{"match": {field: {"query": term, "boost": boost}}}
                  for term in parsed.terms for field, boost in TERM_FIELDS]
        must = [{"match_phrase": {"chars": " ".join(char_tokens(phrase))}} for phrase in parsed.phrases]
        if must and should:
            return {"bool": {"must": must, "should": [{"bool": {"should": should}}]}}
        return {"bool": {"must": must}} if must else {"bool": {"should": should}}

    def _query(self, parsed: ParsedQuery, filters: Filters) -> dict:
        return {"bool": {"must": [self._text_query(parsed)], "filter": [SHOWN, *self._filter_clauses(filters)]}}

    def _request(self, parsed: ParsedQuery, query: SearchQuery) -> dict:
        """One search: facet filters as post_filter, so each facet can count without its own filter."""
        facet_names = tuple(FACET_FILTER.values())
        facet_only = Filters(**{name: getattr(query.filters, name) for name in facet_names})
        request = dict(
            query=self._query(parsed, replace(query.filters, **{name: () for name in facet_names})),
            from_=(query.page - 1) * query.size, size=query.size, track_total_hits=True, source=DISPLAY_FIELDS)
        if facet_only.active():
            request["post_filter"] = {"bool": {"filter": self._filter_clauses(facet_only)}}
        if query.facets:
            request["aggs"] = {facet: {
                "filter": {"bool": {"filter": self._filter_clauses(facet_filters(facet_only, facet))}},
                "aggs": {"values": {"terms": {"field": facet, "size": FACET_SIZE}}}} for facet in query.facets}
        if query.sort != "relevance" or parsed.is_empty:
            ascending = query.sort == "date_asc"
            # Cases without a date sort below every date, as in the embedded backend.
            request["sort"] = [{"received_day": {"order": "asc" if ascending else "desc",
                                                 "missing": "_first" if ascending else "_last"}}]
        return request

    def search(self, query: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        parsed = parse_query(query.text, self.segmenter)
        needles = parsed.highlight_terms()
        coverage, likely = None, ()
        try:
            if query.mode == "keyword" or parsed.is_empty:
                hits, total, facets = self._keyword_page(parsed, query, needles)
            else:
                if searches_as_case(self, query):
                    hits, total, coverage, likely = case_query_page(self, query)
                else:
                    hits, total, coverage = self._fused_page(parsed, query, needles)
                facets = self._filtered_set_facets(query) if query.facets else {}
        except NotFoundError:
            return SearchResult([], 0, {}, 0.0, needles, also_searched=parsed.expansion_words)
        found_none = [] if total else no_result_suggestions(parsed, query.filters, self.segmenter, self._count)
        took = (time.perf_counter() - started) * 1000
        return SearchResult(hits, total, facets, took, needles, found_none, coverage, parsed.expansion_words, likely,
                            parsed.has_no_search_words)

    def _keyword_page(self, parsed: ParsedQuery, query: SearchQuery, needles):
        request = self._request(parsed, query)
        response = self.client.search(index=self.alias, **request)
        sorted_by_date = "sort" in request
        hits = [self._hit(found["_source"], 0.0 if sorted_by_date else found["_score"], needles)
                for found in response["hits"]["hits"]]
        return hits, response["hits"]["total"]["value"], self._facets_of(response, query)

    def _filtered_set_facets(self, query: SearchQuery) -> dict[str, list[FacetBucket]]:
        """Facets over the whole filtered set (semantic and hybrid modes, as in the embedded backend)."""
        request = self._request(parse_query("", self.segmenter), query)
        request.pop("sort")
        response = self.client.search(index=self.alias, **{**request, "from_": 0, "size": 0})
        return self._facets_of(response, query)

    @staticmethod
    def _facets_of(response, query: SearchQuery) -> dict[str, list[FacetBucket]]:
        return {facet: [FacetBucket(b["key"], b["doc_count"])
                        for b in response["aggregations"][facet]["values"]["buckets"] if b["key"] != ""]
                for facet in query.facets}

    # -- semantic and hybrid -------------------------------------------------------------
    def _semantic_ranking(self, query: SearchQuery, depth: int) -> tuple[list[PassageMatch], dict[int, dict]]:
        """The `depth` cases whose best passage is nearest the query, filtered inside the kNN search;
        and their display fields."""
        return self._nearest(self.encoder().query(query.text), query.filters, depth)

    def _nearest(self, vector: np.ndarray, filters: Filters, depth: int,
                 skip: tuple[int, ...] = ()) -> tuple[list[PassageMatch], dict[int, dict]]:
        """The `depth` cases whose best passage is nearest `vector`, filtered inside the kNN search
        (never those in `skip`); and their display fields."""
        clauses = [SHOWN, *self._filter_clauses(filters), {"term": {"vector_model": self.encoder().name}}]
        if skip:
            clauses.append({"bool": {"must_not": {"terms": {"case_id": list(skip)}}}})
        response = self.client.search(index=self.alias, size=depth, source=DISPLAY_FIELDS, knn={
            "field": "passages.vector", "query_vector": vector.tolist(), "k": depth,
            "num_candidates": max(depth, NUM_CANDIDATES), "filter": clauses,
            "inner_hits": {"size": 1, "_source": False, "fields": ["passages.number"]}})
        matches, sources = [], {}
        for found in response["hits"]["hits"]:
            best = found["inner_hits"]["passages"]["hits"]["hits"][0]
            case_id = found["_source"]["case_id"]
            # Elasticsearch scores cosine similarity c as (1 + c) / 2; the embedded backend shows c.
            matches.append(PassageMatch(case_id, best["fields"]["passages"][0]["number"][0], 2 * found["_score"] - 1))
            sources[case_id] = found["_source"]
        return matches, sources

    def _fused_page(self, parsed: ParsedQuery, query: SearchQuery, needles):
        """Semantic or hybrid (client-side reciprocal-rank fusion) ranking over the first
        SEMANTIC_DEPTH cases, one page of it."""
        semantic, sources = self._semantic_ranking(query, SEMANTIC_DEPTH)
        best_passage = {match.case_id: match for match in semantic}
        if query.mode == "semantic":
            ranked = [(match.case_id, match.score) for match in semantic]
        else:
            found = self.client.search(index=self.alias, query=self._query(parsed, query.filters),
                                       size=SEMANTIC_DEPTH, source=["case_id"])["hits"]["hits"]
            keyword = [hit["_source"]["case_id"] for hit in found]
            ranked = reciprocal_rank_fusion([(keyword, self.keyword_weight),
                                             ([m.case_id for m in semantic], self.semantic_weight)], self.rrf_k)
        page = ranked[(query.page - 1) * query.size:query.page * query.size]
        sources.update(self._sources([case_id for case_id, _ in page if case_id not in sources], DISPLAY_FIELDS))
        hits = [self._hit(sources[case_id], score, needles, best_passage.get(case_id))
                for case_id, score in page if case_id in sources]
        coverage = (self._count_embedded(self.encoder().name), self.shown_case_count())
        return hits, len(ranked), coverage

    # -- more like this ------------------------------------------------------------------
    def similar(self, case_id: int, size: int = 5, exclude: tuple[int, ...] = (),
                filters: Filters = Filters()) -> SearchResult:
        """Cases like an indexed one, as in the embedded backend (indexer/more_like_this.py): candidates
        by its distinctive terms and meaning, reranked case to case once cases are embedded. Never the
        case itself nor `exclude`."""
        try:
            stored = self._sources([case_id], ["title", "text", "cause"]).get(case_id)
        except NotFoundError:
            stored = None
        if stored is None:
            return SearchResult([], 0, {}, 0.0)
        return more_like_this(self, LikeCase(case_id, stored["text"], stored["title"], stored["cause"]),
                              size, exclude, filters)

    def similar_candidates(self, case: LikeCase, depth: int, skip: tuple[int, ...], filters: Filters,
                           vector: np.ndarray | None = None, display: bool = True) -> Candidates:
        """More like this, first stage: the case's distinctive terms (its cause boosted) fused with a kNN
        search by `vector` when given; `depth` cases at most, none of `skip`. Without `display`, the hits
        come without snippets and matched terms (the reranker shows only a page of them)."""
        terms = distinctive_terms(*self._term_statistics(case), self.document_count())
        should = [{"match": {"terms": {"query": term, "boost": weight}}} for term, weight in terms]
        if case.cause:  # the same cause of action: the first thing a mediator looks for in a precedent
            should.append({"term": {"cause": {"value": case.cause, "boost": CAUSE_BOOST * (
                terms[0][1] if terms else 1.0)}}})
        query = {"bool": {"should": should or [{"match_none": {}}], "minimum_should_match": 1,
                          "filter": [SHOWN, *self._filter_clauses(filters)],
                          "must_not": [{"terms": {"case_id": list(skip)}}]}}
        found = self.client.search(index=self.alias, query=query, size=depth, source=DISPLAY_FIELDS)
        sources = {hit["_source"]["case_id"]: hit["_source"] for hit in found["hits"]["hits"]}
        rankings = [(list(sources), self.keyword_weight)]
        best_passage, coverage = {}, None
        if vector is not None:
            coverage = (self._count_embedded(self.encoder().name), self.shown_case_count())
            semantic, knn_sources = self._nearest(vector, filters, depth, skip)
            sources.update(knn_sources)
            best_passage = {match.case_id: match for match in semantic}
            rankings.append(([match.case_id for match in semantic], self.semantic_weight))
        ranked = reciprocal_rank_fusion(rankings, self.rrf_k)[:depth]
        needles = tuple(term for term, _ in terms)
        hits = [self._hit(sources[i], score, needles, best_passage.get(i), display) for i, score in ranked if i in sources]
        return Candidates(hits, len(hits), {}, 0.0, needles, semantic_coverage=coverage, passages=best_passage)

    def case_vectors(self, case_ids: list[int]) -> dict[int, np.ndarray]:
        """case id -> normalised mean of its passage vectors, for the cases embedded with the current model."""
        model = self.encoder().name if self.encoder_factory is not None else None
        means = {}
        for case_id, source in self._sources(case_ids, ["vector_model", "passages"]).items():
            if model and source.get("vector_model") == model and source.get("passages"):
                mean = np.mean([passage["vector"] for passage in source["passages"]], axis=0)
                means[case_id] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype("float32")
        return means

    def _term_statistics(self, case: LikeCase) -> tuple[list[str], Callable[[str], int]]:
        """A case's indexed terms (each as often as it occurs) and their document frequencies; for a
        text not in the index, its terms as indexing segments them."""
        document = {"id": str(case.case_id)} if case.case_id is not None else \
            {"doc": {"terms": " ".join(self.segmenter.terms(normalise(f"{case.title}\n{case.text}")))}}
        vectors = self.client.termvectors(index=self.alias, **document, fields=["terms"], term_statistics=True,
                                          positions=False, offsets=False, field_statistics=False)
        stats = vectors["term_vectors"].get("terms", {}).get("terms", {})
        terms = [term for term, info in stats.items() for _ in range(info["term_freq"])]
        return terms, lambda term: stats[term].get("doc_freq", 0)

    def _sources(self, case_ids: list[int], fields: list[str]) -> dict[int, dict]:
        """case id -> the chosen fields of its document in the live index."""
        if not case_ids:
            return {}
        found = self.client.mget(index=self.alias, ids=[str(i) for i in case_ids], source=fields)
        return {int(doc["_id"]): doc["_source"] for doc in found["docs"] if doc.get("found")}

    def _count_embedded(self, model: str | None = None) -> int:
        query = {"term": {"vector_model": model}} if model else {"exists": {"field": "vector_model"}}
        return self._count_documents(query)

    def embedded_case_count(self) -> int:
        """Cases that have passage vectors (of any model)."""
        return self._count_embedded()

    # -- the embedding worker's view -----------------------------------------------------
    def _scan_hashes(self, query: dict) -> dict[int, int]:
        try:
            found = helpers.scan(self.client, index=self.alias, query={"query": query},
                                 _source=["case_id", "text_hash"], size=2_000)
            return {hit["_source"]["case_id"]: hit["_source"]["text_hash"] for hit in found}
        except NotFoundError:
            return {}

    def text_hashes(self) -> dict[int, int]:
        """case id -> text hash of every indexed document that search shows (duplicates need no
        vectors), for the embedding worker."""
        return self._scan_hashes(SHOWN)

    def vector_hashes(self, model: str) -> dict[int, int]:
        """case id -> text hash of every document that holds vectors of `model`."""
        return self._scan_hashes({"term": {"vector_model": model}})

    def _scan_shown(self, fields: list[str]) -> Iterator[dict]:
        """The `fields` of every shown case, read a page at a time (none where there is no index)."""
        try:
            for hit in helpers.scan(self.client, index=self.alias, query={"query": SHOWN}, _source=fields, size=2_000):
                yield hit["_source"]
        except NotFoundError:
            return

    def cause_state(self) -> tuple[float, ...] | None:
        """Changes whenever the shown cases' texts or causes may have (indexer/cause_model.py retrains
        on a change): their count and the sums of their ids, row versions (a new cause or text is a new
        version) and text hashes, summed by the cluster in one request instead of read case by case."""
        sums = {name: {"sum": {"field": name}} for name in STATE_SUMS}
        try:
            found = self.client.search(index=self.alias, size=0, query=SHOWN, aggs=sums, track_total_hits=True)
        except NotFoundError:
            return None
        return (found["hits"]["total"]["value"], *(found["aggregations"][name]["value"] for name in STATE_SUMS))

    def labelled_texts(self, per_cause: int) -> list[tuple[str, str]]:
        """(masked text, cause) of the cases search shows that have a cause, the first `per_cause` of each."""
        shown = self._scan_shown(["text", "cause"])
        return first_of_each(((source["text"], source.get("cause", "")) for source in shown), per_cause)

    def stored_texts(self, case_ids: list[int]) -> dict[int, tuple[str, str]]:
        """case id -> (title, masked text) as indexed."""
        return {case_id: (source["title"], source["text"])
                for case_id, source in self._sources(case_ids, ["title", "text"]).items()}

    def store_vectors(self, model: str, dim: int, vectors: dict[int, tuple[np.ndarray, int]],
                      gone: list[int]) -> None:
        """Put cases' passage vectors into their documents (live, and being rebuilt) where the text
        still has the hash they were computed from; drop the vectors of `gone`. Each document is
        rewritten under its own version, so a newer write that came meanwhile wins."""
        if dim != self.vector_dims:
            raise ValueError(f"the index holds {self.vector_dims}-dimension vectors, the model makes {dim}")
        ids = [str(case_id) for case_id in [*vectors, *gone]]
        if not ids:
            return
        targets = [*self._indices_of(self.alias), *self._indices_of(self.building)]
        actions = []
        for target in targets:
            for doc in self.client.mget(index=target, ids=ids, source_excludes=["passages"])["docs"]:
                if not doc.get("found"):
                    continue
                source, case_id = doc["_source"], int(doc["_id"])
                source.pop("vector_model", None)
                if case_id in vectors and vectors[case_id][1] == source["text_hash"]:
                    source.update(passage_vectors(model, vectors[case_id][0]))
                elif case_id not in gone:
                    continue  # its text changed since: the next pass embeds the new one
                actions.append({"_op_type": "index", "_index": target, "_id": doc["_id"], "_source": source,
                                "_version": doc["_version"], "_version_type": "external_gte"})
        writer = ElasticsearchWriter(self.client, targets, self.segmenter, self.alias)
        writer.bulk(actions)
        if targets:
            writer.commit()

    def _count(self, parsed: ParsedQuery, filters: Filters) -> int:
        return self.client.count(index=self.alias, query=self._query(parsed, filters))["count"]

    @staticmethod
    def _hit(source: dict, score: float, needles: tuple[str, ...], passage: PassageMatch | None = None,
             display: bool = True) -> Hit:
        day = source.get("received_day")
        return build_hit(
            case_id=source["case_id"], external_id=source["external_id"], title=source["title"],
            text=source["text"], category=source["category"], cause=source["cause"],
            region=source.get("region", ""), outcome=source.get("outcome", ""),
            received_on=dt.date.fromisoformat(day) if day else None, exemplar=bool(source["exemplar"]),
            score=score, needles=needles, passage=passage, duplicates=source.get("duplicates") or 0, display=display)


def _bounds(low, high) -> dict:
    """An inclusive range, open where a bound is None."""
    return {key: value for key, value in (("gte", low), ("lte", high)) if value is not None}
