"""The Elasticsearch backend: the embedded backend's keyword search, served by an Elasticsearch 8 cluster.

Documents are tokenised by casekb itself (jieba terms and single characters, space-joined) and the
cluster only splits them on whitespace, so index and query tokenisation never disagree. Layout:
each generation is an index `<alias>-<generation>`; searches and writes go through the alias. A
rebuild writes a new generation, tagged with the alias `<alias>-building` so that concurrent
writers also update it, and one `_aliases` call moves both aliases at once.
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from elasticsearch import Elasticsearch, NotFoundError, helpers

from casekb.config import Settings
from indexer.backend_common import (CAUSE_BOOST, FACET_FILTER, FACET_SIZE, TITLE_BOOST, IndexWriteError,
                                    analysed_fields, build_hit, facet_filters, no_result_suggestions)
from indexer.documents import IndexDocument
from indexer.query import FacetBucket, Filters, Hit, SearchQuery, SearchResult
from indexer.semantic import SemanticUnavailable, document_hash
from indexer.text import ParsedQuery, Segmenter, char_tokens, parse_query

KEEP_OLD_GENERATIONS = 1
#: Dimensions of multilingual-e5-small, the embedding model the reserved vector field is for.
VECTOR_DIMS = 384
BULK_CHUNK = 500
TERM_FIELDS = (("terms", 1.0), ("title_terms", TITLE_BOOST), ("cause_terms", CAUSE_BOOST))
DISPLAY_FIELDS = ["case_id", "external_id", "title", "text", "category", "cause", "region", "outcome",
                  "received_day", "exemplar"]
#: A stale write (an older row version) and deleting what is gone both leave the index as it should be.
HARMLESS = {"index": {409}, "delete": {404}}

_TOKENS = {"type": "text", "analyzer": "whitespace", "index_options": "freqs"}
_STORED_ONLY = {"type": "text", "index": False}


def index_template(vector_dims: int = VECTOR_DIMS) -> dict:
    """Mappings of a generation: tokens, stored display text, filter and facet fields, a vector."""
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
            "embedding": {"type": "dense_vector", "dims": vector_dims, "index": True, "similarity": "cosine",
                          "index_options": {"type": "hnsw"}},
        }}}


def document_source(doc: IndexDocument, segmenter: Segmenter) -> dict:
    """The _source of a case: masked display text, casekb's tokens, filter and facet values."""
    return dict(
        case_id=doc.case_id, external_id=doc.external_id, version=doc.version, title=doc.title, text=doc.text,
        **analysed_fields(doc, segmenter),
        category=doc.category, cause=doc.cause, region=doc.region, outcome=doc.outcome,
        organisation=list(doc.organisation_ids), exemplar=doc.exemplar,
        received_day=doc.received_on.isoformat() if doc.received_on else None, amount=doc.amount,
        text_hash=document_hash(doc.title, doc.text))


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


class ElasticsearchWriter:
    """Bulk writes to one or more indices; a document's row version guards against stale writes."""

    def __init__(self, client: Elasticsearch, targets: list[str], segmenter: Segmenter):
        self._client, self._targets, self._segmenter = client, targets, segmenter

    def upsert(self, docs: list[IndexDocument]) -> None:
        sources = [(doc, document_source(doc, self._segmenter)) for doc in docs]
        self._bulk({"_op_type": "index", "_index": target, "_id": str(doc.case_id), "_source": source,
                    "_version": doc.version, "_version_type": "external_gte"}
                   for target in self._targets for doc, source in sources)

    def delete(self, case_ids: list[int]) -> None:
        self._bulk({"_op_type": "delete", "_index": target, "_id": str(case_id)}
                   for target in self._targets for case_id in case_ids)

    def commit(self) -> None:
        """Make the writes visible to searches."""
        self._client.indices.refresh(index=",".join(self._targets))

    def _bulk(self, actions) -> None:
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


class ElasticsearchBackend:
    name = "elasticsearch"
    #: keyword search only, for now: no embedding model is used with this backend
    encoder_factory = None

    def __init__(self, client: Elasticsearch, alias: str, segmenter: Segmenter, vector_dims: int = VECTOR_DIMS):
        self.client = client
        self.alias = alias
        self.building = f"{alias}-building"
        self.segmenter = segmenter
        self.vector_dims = vector_dims

    # -- generations -------------------------------------------------------------------
    def _indices_of(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=alias))
        except NotFoundError:
            return []

    def _new_generation(self, building: bool) -> str:
        """Create an empty generation (sorting by creation time), tagged as being built or not."""
        self.client.indices.put_index_template(name=self.alias, index_patterns=[f"{self.alias}-0*"],
                                               template=index_template(self.vector_dims))
        name = f"{self.alias}-{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        self.client.indices.create(index=name, aliases={self.building: {}} if building else None)
        return name

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

    def live_generation(self) -> str | None:
        live = self._indices_of(self.alias)
        return live[0] if live else None

    @contextmanager
    def writer(self) -> Iterator[ElasticsearchWriter]:
        """Write to the live index (creating it when there is none) and to one being rebuilt."""
        if not self._indices_of(self.alias):
            self._publish(self._new_generation(building=False))
        writer = ElasticsearchWriter(self.client, [self.alias, *self._indices_of(self.building)], self.segmenter)
        yield writer
        writer.commit()

    @contextmanager
    def rebuild(self) -> Iterator[ElasticsearchWriter]:
        """Write a fresh index beside the live one; it replaces the live one on clean exit."""
        generation = self._new_generation(building=True)
        try:
            writer = ElasticsearchWriter(self.client, [generation], self.segmenter)
            yield writer
            writer.commit()
        except BaseException:
            self.client.indices.delete(index=generation, ignore_unavailable=True)
            raise
        self._publish(generation)

    # -- reading -----------------------------------------------------------------------
    def document_count(self) -> int:
        try:
            return self.client.count(index=self.alias)["count"]
        except NotFoundError:
            return 0

    def modes(self) -> tuple[str, ...]:
        return ("keyword",)

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
        return {"bool": {"must": [self._text_query(parsed)], "filter": self._filter_clauses(filters)}}

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
        if query.mode != "keyword" and not parsed.is_empty:
            raise SemanticUnavailable("the Elasticsearch backend serves keyword search only")
        request = self._request(parsed, query)
        try:
            response = self.client.search(index=self.alias, **request)
        except NotFoundError:
            return SearchResult([], 0, {}, 0.0, needles)
        sorted_by_date = "sort" in request
        hits = [self._hit(found, 0.0 if sorted_by_date else found["_score"], needles)
                for found in response["hits"]["hits"]]
        total = response["hits"]["total"]["value"]
        facets = {facet: [FacetBucket(b["key"], b["doc_count"])
                          for b in response["aggregations"][facet]["values"]["buckets"] if b["key"] != ""]
                  for facet in query.facets}
        found_none = [] if total else no_result_suggestions(parsed, query.filters, self.segmenter, self._count)
        took = (time.perf_counter() - started) * 1000
        return SearchResult(hits, total, facets, took, needles, found_none)

    def _count(self, parsed: ParsedQuery, filters: Filters) -> int:
        return self.client.count(index=self.alias, query=self._query(parsed, filters))["count"]

    @staticmethod
    def _hit(found: dict, score: float, needles: tuple[str, ...]) -> Hit:
        source = found["_source"]
        day = source.get("received_day")
        return build_hit(
            case_id=source["case_id"], external_id=source["external_id"], title=source["title"],
            text=source["text"], category=source["category"], cause=source["cause"],
            region=source.get("region", ""), outcome=source.get("outcome", ""),
            received_on=dt.date.fromisoformat(day) if day else None, exemplar=bool(source["exemplar"]),
            score=score, needles=needles)


def _bounds(low, high) -> dict:
    """An inclusive range, open where a bound is None."""
    return {key: value for key, value in (("gte", low), ("lte", high)) if value is not None}
