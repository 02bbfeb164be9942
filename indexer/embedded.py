"""The embedded backend: tantivy over jieba tokens, in files under the data directory.

Layout: `<index_dir>/keyword/<generation>/` holds one tantivy index; the file `CURRENT` names
the live generation. A rebuild writes a new generation and replaces `CURRENT` in one rename,
so searches never see a half-built index.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import tantivy

from indexer.backend_common import (CAUSE_BOOST, FACET_SIZE, TITLE_BOOST, EncoderOnDemand,
                                    build_hit, distinctive_terms, facet_filters, no_result_suggestions)
from indexer.case_query import case_query_page, searches_as_case
from indexer.cause_model import LearntCauses, first_of_each
from indexer.documents import IndexDocument
from indexer.more_like_this import LikeCase, more_like_this
from indexer.parallel_analysis import Analyser
from indexer.query import Candidates, FacetBucket, Filters, Hit, SearchQuery, SearchResult, Suggestion
from indexer.semantic import SEMANTIC_DEPTH, document_hash, reciprocal_rank_fusion
from indexer.vectors import PassageMatch, VectorIndex, best_per_case
from indexer.text import ParsedQuery, Segmenter, char_tokens, normalise, parse_query

KEEP_OLD_GENERATIONS = 1
#: the layout of the documents (see _schema); a generation of another format is rebuilt, not written to
INDEX_FORMAT = "2"
FORMAT_FILE = "FORMAT"
#: Indexing memory of the tantivy writer, shared by its threads; a full heap becomes a segment.
WRITER_HEAP_BYTES = 64_000_000
VECTORS_FILE = "vectors.npz"
#: Entries of the per-filters cache (see FilterCache): a few filter combinations are most of the searches.
FILTER_CACHE_SIZE = 64

if TYPE_CHECKING:
    from indexer.embeddings import Encoder


class FilterCache:
    """What depends only on the index's state and a search's filters, not on its words: the cases the
    filters allow (which a filtered vector search is limited to) and the facet counts of a semantic or
    hybrid search (counted over every case the filters allow). Keyed by the state the searcher was opened
    on, so a commit or a swap is never answered from before it; the least recently used entry goes first."""

    def __init__(self, size: int = FILTER_CACHE_SIZE):
        self.size = size
        self._values: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[], object]):
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = compute()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("case_id", stored=True, indexed=True, fast=True)
    builder.add_text_field("external_id", stored=True, tokenizer_name="raw")
    builder.add_integer_field("version", stored=True)
    builder.add_bytes_field("title", stored=True)
    builder.add_bytes_field("text", stored=True)
    for name in ("terms", "title_terms", "cause_terms"):
        builder.add_text_field(name, tokenizer_name="whitespace", index_option="freq")
    builder.add_text_field("chars", tokenizer_name="whitespace", index_option="position")
    for name in ("category", "cause", "region", "outcome"):
        builder.add_text_field(name, stored=True, fast=True, tokenizer_name="raw")
    builder.add_integer_field("organisation", indexed=True)
    builder.add_boolean_field("exemplar", stored=True, indexed=True, fast=True)
    builder.add_integer_field("received_day", stored=True, indexed=True, fast=True)
    builder.add_float_field("amount", indexed=True, fast=True)
    builder.add_integer_field("text_hash", fast=True)
    builder.add_integer_field("duplicate_of", indexed=True, fast=True)
    builder.add_integer_field("duplicates", stored=True)
    return builder.build()


def _to_tantivy(doc: IndexDocument, analysed: dict[str, str]) -> tantivy.Document:
    """The tantivy document of a case, with its token fields (analysed_fields) given."""
    fields = dict(
        case_id=doc.case_id, external_id=doc.external_id, version=doc.version,
        title=doc.title.encode(), text=doc.text.encode(), **analysed,
        category=doc.category, cause=doc.cause, region=doc.region, outcome=doc.outcome,
        organisation=list(doc.organisation_ids), exemplar=doc.exemplar,
        received_day=doc.received_on.toordinal() if doc.received_on else -1,
        text_hash=document_hash(doc.title, doc.text), duplicate_of=doc.duplicate_of, duplicates=doc.duplicates,
    )
    if doc.amount is not None:
        fields["amount"] = doc.amount
    return tantivy.Document(**fields)


class KeywordWriter:
    """Adds, replaces and deletes case documents in one tantivy index; each commit makes the changes
    so far searchable and durable, close waits for the background merges."""

    def __init__(self, index: tantivy.Index, segmenter: Segmenter):
        self._writer = index.writer(heap_size=WRITER_HEAP_BYTES)
        self.analyser = Analyser(segmenter)

    def upsert(self, docs: list[IndexDocument]) -> None:
        for doc, analysed in zip(docs, self.analyser.fields(docs)):
            self._writer.delete_documents_by_term("case_id", doc.case_id)
            self._writer.add_document(_to_tantivy(doc, analysed))

    def delete(self, case_ids: list[int]) -> None:
        for case_id in case_ids:
            self._writer.delete_documents_by_term("case_id", case_id)

    def commit(self) -> None:
        self._writer.commit()

    def close(self) -> None:
        self._writer.wait_merging_threads()


@contextmanager
def _writing(index: tantivy.Index, segmenter: Segmenter) -> Iterator[KeywordWriter]:
    """A writer on `index`, committed and its merges awaited on clean exit; its analysis workers
    stopped either way."""
    writer = KeywordWriter(index, segmenter)
    try:
        yield writer
        writer.commit()
        writer.close()
    finally:
        writer.analyser.close()


class EmbeddedBackend(EncoderOnDemand, LearntCauses):
    name = "embedded"

    def __init__(self, index_dir: Path, segmenter: Segmenter, encoder_factory: Callable[[], Encoder] | None = None,
                 rrf_k: int = 60, keyword_weight: float = 1.0, semantic_weight: float = 1.0):
        self.root = index_dir / "keyword"
        self.segmenter = segmenter
        self._init_encoder(encoder_factory)
        self.rrf_k, self.keyword_weight, self.semantic_weight = rrf_k, keyword_weight, semantic_weight
        self._vectors: VectorIndex | None = None
        self._vectors_stamp = None
        self.schema = _schema()
        self._opened: tuple[str, int, int] | None = None
        self._index: tantivy.Index | None = None
        self._open_lock = threading.Lock()
        self._by_filters = FilterCache()

    # -- generations -------------------------------------------------------------------
    def _current_generation(self) -> str | None:
        try:
            return (self.root / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _new_generation(self) -> tuple[str, tantivy.Index]:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"  # sorts by creation time
        path = self.root / name
        path.mkdir(parents=True)
        (path / FORMAT_FILE).write_text(INDEX_FORMAT)
        return name, tantivy.Index(self.schema, path=str(path))

    def outdated(self) -> bool:
        """Whether the live index was written in an older document format (rebuild it to use it)."""
        generation = self._current_generation()
        if generation is None:
            return False
        try:
            return (self.root / generation / FORMAT_FILE).read_text().strip() != INDEX_FORMAT
        except FileNotFoundError:
            return True

    def _publish(self, generation: str) -> None:
        pointer = self.root / "CURRENT.tmp"
        pointer.write_text(generation)
        os.replace(pointer, self.root / "CURRENT")
        generations = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != generation)
        # The newest old generation stays for searchers that still hold it open.
        for old in generations[:-KEEP_OLD_GENERATIONS]:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer at a time across processes (the web app's indexer thread, the CLI)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "write.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def writer(self) -> Iterator[KeywordWriter]:
        """Write to the live index (creating it when there is none); committed on clean exit."""
        with self.write_lock():
            generation = self._current_generation()
            if generation is None:
                generation, index = self._new_generation()
                self._publish(generation)
            else:
                index = tantivy.Index.open(str(self.root / generation))
            with _writing(index, self.segmenter) as writer:
                yield writer

    @contextmanager
    def rebuild(self) -> Iterator[KeywordWriter]:
        """Write a fresh index beside the live one; it replaces the live one on clean exit."""
        with self.write_lock():
            generation, index = self._new_generation()
            try:
                with _writing(index, self.segmenter) as writer:
                    yield writer
                # Vectors follow the documents by text hash: unchanged cases keep theirs.
                old = self.vectors_path()
                if old and old.exists():
                    shutil.copyfile(old, self.root / generation / VECTORS_FILE)
            except BaseException:
                shutil.rmtree(self.root / generation, ignore_errors=True)
                raise
            self._publish(generation)

    def vectors_path(self) -> Path | None:
        """The passage-vector file of the live generation (it may not exist yet)."""
        generation = self._current_generation()
        return self.root / generation / VECTORS_FILE if generation else None

    # -- reading -----------------------------------------------------------------------
    def _searcher(self) -> tantivy.Searcher | None:
        """A searcher on the live generation, reopened after a swap and reloaded after commits."""
        return self._searcher_and_state()[0]

    def _searcher_and_state(self) -> tuple[tantivy.Searcher | None, tuple[str, int, int] | None]:
        """The searcher, and the state it was opened on: the generation and meta.json's time and inode."""
        generation = self._current_generation()
        if generation is None:
            return None, None
        meta = self.root / generation / "meta.json"
        try:
            found = meta.stat()  # tantivy replaces meta.json on every commit: a new inode and time
            stamp = (generation, found.st_mtime_ns, found.st_ino)
        except FileNotFoundError:
            return None, None
        with self._open_lock:
            if self._opened is None or self._opened[0] != generation:
                self._index = tantivy.Index.open(str(self.root / generation))
            elif self._opened != stamp:
                self._index.reload()
            self._opened = stamp
            return self._index.searcher(), stamp

    def document_count(self) -> int:
        searcher = self._searcher()
        return searcher.num_docs if searcher else 0

    def shown_case_count(self) -> int:
        """Indexed cases that search shows: every document but the duplicates collapsed into another
        (they need no vectors, so semantic coverage counts against this)."""
        searcher = self._searcher()
        return self._shown_count(searcher) if searcher else 0

    def _shown_count(self, searcher) -> int:
        return self._count(searcher, self._compose(tantivy.Query.all_query(), Filters()))

    def _filter_clauses(self, filters: Filters) -> list[tantivy.Query]:
        schema, Q = self.schema, tantivy.Query
        clauses = []
        for field_name, values in (("category", filters.categories), ("cause", filters.causes),
                                   ("region", filters.regions), ("outcome", filters.outcomes)):
            if values:
                clauses.append(Q.term_set_query(schema, field_name, list(values)))
        if filters.organisation_id is not None:
            clauses.append(Q.term_query(schema, "organisation", filters.organisation_id))
        if filters.exemplar_only:
            clauses.append(Q.term_query(schema, "exemplar", True))
        if filters.received_from or filters.received_to:
            clauses.append(Q.range_query(
                schema, "received_day", tantivy.FieldType.Integer,
                filters.received_from.toordinal() if filters.received_from else None,
                filters.received_to.toordinal() if filters.received_to else None))
        if filters.amount_min is not None or filters.amount_max is not None:
            clauses.append(Q.range_query(schema, "amount", tantivy.FieldType.Float,
                                         filters.amount_min, filters.amount_max))
        return clauses

    def _text_query(self, parsed: ParsedQuery) -> tantivy.Query:
        schema, Q, Occur = self.schema, tantivy.Query, tantivy.Occur
        if parsed.is_empty:
            return Q.all_query()
        should = []
        for term in parsed.terms:
            should.append((Occur.Should, Q.term_query(schema, "terms", term)))
            should.append((Occur.Should, Q.boost_query(Q.term_query(schema, "title_terms", term), TITLE_BOOST)))
            should.append((Occur.Should, Q.boost_query(Q.term_query(schema, "cause_terms", term), CAUSE_BOOST)))
        must = []
        for phrase in parsed.phrases:
            chars = char_tokens(phrase)
            must.append((Occur.Must, Q.term_query(schema, "chars", chars[0]) if len(chars) == 1
                         else Q.phrase_query(schema, "chars", chars)))
        if must and should:
            return Q.boolean_query(must + [(Occur.Should, Q.boolean_query(should))])
        return Q.boolean_query(must or should)

    def _compose(self, text_query: tantivy.Query, filters: Filters) -> tantivy.Query:
        """The query under the filters, duplicate records left out (the record they repeat stands for them)."""
        shown = tantivy.Query.term_query(self.schema, "duplicate_of", 0)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q)
                                            for q in [text_query, shown, *self._filter_clauses(filters)]])

    def facet_requests(self, text_query: tantivy.Query, query: SearchQuery) -> list[tuple[tantivy.Query, dict]]:
        """The aggregation requests that count the facets: one per distinct set of filters, a facet
        ignoring its own filter (drill sideways). Every facet whose own filter is not active shares the
        search's filters, so those are counted together in one pass over the matching documents."""
        by_filters: dict[Filters, list[str]] = {}
        for field_name in query.facets:
            by_filters.setdefault(facet_filters(query.filters, field_name), []).append(field_name)
        return [(self._compose(text_query, filters),
                 {name: {"terms": {"field": name, "size": FACET_SIZE}} for name in names})
                for filters, names in by_filters.items()]

    def _facets(self, searcher, text_query, query: SearchQuery) -> dict[str, list[FacetBucket]]:
        """Facet counts over the whole filtered set; a facet ignores its own filter (drill sideways)."""
        counted = {}
        for tree, request in self.facet_requests(text_query, query):
            counted.update(searcher.aggregate(tree, request))
        return {name: [FacetBucket(b["key"], b["doc_count"]) for b in counted[name]["buckets"] if b["key"] != ""]
                for name in query.facets}

    def _count(self, searcher, query: tantivy.Query) -> int:
        return searcher.search(query, limit=1, count=True).count

    def _suggestions(self, searcher, parsed: ParsedQuery, filters: Filters) -> list[Suggestion]:
        return no_result_suggestions(parsed, filters, self.segmenter,
                                     lambda p, f: self._count(searcher, self._compose(self._text_query(p), f)))

    def search(self, query: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        parsed = parse_query(query.text, self.segmenter)
        searcher, state = self._searcher_and_state()
        if searcher is None:
            return SearchResult([], 0, {}, 0.0, parsed.highlight_terms(), also_searched=parsed.expansion_words)
        text_query = self._text_query(parsed)
        needles = parsed.highlight_terms()
        coverage = None
        likely = ()
        if query.mode == "keyword" or parsed.is_empty:
            hits, total = self._keyword_page(searcher, parsed, text_query, query, needles)
        elif searches_as_case(self, query):
            hits, total, coverage, likely = case_query_page(self, query)
        else:
            hits, total, coverage = self._fused_page(searcher, state, text_query, query, needles)
        facets = {}
        if query.facets and query.mode == "keyword":
            facets = self._facets(searcher, text_query, query)
        elif query.facets:  # counted over every case the filters allow, whatever the words
            facets = {name: list(buckets) for name, buckets in self._by_filters.get(
                (state, "facets", query.filters, tuple(query.facets)),
                lambda: self._facets(searcher, tantivy.Query.all_query(), query)).items()}
        suggestions = self._suggestions(searcher, parsed, query.filters) if not total else []
        took = (time.perf_counter() - started) * 1000
        return SearchResult(hits, total, facets, took, needles, suggestions, coverage, parsed.expansion_words, likely,
                            parsed.has_no_search_words)

    def _keyword_page(self, searcher, parsed, text_query, query: SearchQuery, needles) -> tuple[list[Hit], int]:
        order = {}
        if query.sort != "relevance" or parsed.is_empty:
            order = {"order_by_field": "received_day",
                     "order": tantivy.Order.Asc if query.sort == "date_asc" else tantivy.Order.Desc}
        found = searcher.search(self._compose(text_query, query.filters), limit=query.size,
                                offset=(query.page - 1) * query.size, count=True, **order)
        hits = [self._hit(searcher.doc(address).to_dict(), 0.0 if order else score, needles)
                for score, address in found.hits]
        return hits, found.count

    # -- semantic and hybrid -------------------------------------------------------------
    def vectors(self) -> VectorIndex | None:
        """The live generation's passage vectors, reloaded when the embedding worker saved new ones."""
        path = self.vectors_path()
        try:
            stamp = (path, path.stat().st_mtime_ns)
        except (AttributeError, FileNotFoundError):
            return None
        with self._open_lock:
            if self._vectors_stamp != stamp:
                self._vectors, self._vectors_stamp = VectorIndex.load(path), stamp
            return self._vectors

    def vector_hashes(self, model: str) -> dict[int, int]:
        """case id -> text hash its vectors were computed from, for the vectors of `model`."""
        vectors = self.vectors()
        return dict(vectors.text_hashes) if vectors is not None and vectors.model == model else {}

    def store_vectors(self, model: str, dim: int, vectors: dict[int, tuple[np.ndarray, int]],
                      gone: list[int]) -> None:
        """Save cases' passage vectors (with the text hash they come from) and drop those of `gone`."""
        with self.write_lock():
            path = self.vectors_path()
            if path is None:
                return
            current = VectorIndex.load(path) if path.exists() else None
            if current is None or current.model != model:
                current = VectorIndex.create(dim, model, expected_passages=self.document_count() * 3)
            current.remove_cases(gone)
            for case_id, (passage_vectors, text_hash) in vectors.items():
                current.add_case(case_id, passage_vectors, text_hash)
            current.save(path)

    def embedded_case_count(self) -> int:
        vectors = self.vectors()
        return len(vectors.text_hashes) if vectors is not None else 0

    def _case_ids(self, searcher, query: tantivy.Query, limit: int) -> list[int]:
        found = searcher.search(query, limit=max(1, limit), count=False)
        return searcher.fast_field_values("case_id", [address for _score, address in found.hits])

    def _allowed_cases(self, searcher, state, filters: Filters) -> np.ndarray:
        """The ids of every case the filters allow (read-only; cached per index state and filters)."""
        def compute() -> np.ndarray:
            ids = np.asarray(self._case_ids(searcher, self._compose(tantivy.Query.all_query(), filters),
                                            searcher.num_docs), dtype="int64")
            ids.setflags(write=False)
            return ids
        return self._by_filters.get((state, "allowed", filters), compute)

    def _semantic_ranking(self, searcher, state, query: SearchQuery, depth: int) -> list[PassageMatch]:
        encoder = self.encoder()
        vectors = self.vectors()
        if vectors is None or not len(vectors):
            return []
        allowed = self._allowed_cases(searcher, state, query.filters) if query.filters.active() else None
        return vectors.best_cases(encoder.query(query.text), depth, allowed)

    def _fused_page(self, searcher, state, text_query, query: SearchQuery, needles):
        """Semantic or hybrid ranking over the first SEMANTIC_DEPTH cases, one page of it."""
        semantic = self._semantic_ranking(searcher, state, query, SEMANTIC_DEPTH)
        best_passage = {match.case_id: match for match in semantic}
        if query.mode == "semantic":
            ranked = [(match.case_id, match.score) for match in semantic]
        else:
            keyword = self._case_ids(searcher, self._compose(text_query, query.filters), SEMANTIC_DEPTH)
            ranked = reciprocal_rank_fusion([(keyword, self.keyword_weight),
                                             ([m.case_id for m in semantic], self.semantic_weight)], self.rrf_k)
        page = ranked[(query.page - 1) * query.size:query.page * query.size]
        stored = self._stored_by_case(searcher, [case_id for case_id, _ in page])
        hits = [self._hit(stored[case_id], score, needles, best_passage.get(case_id))
                for case_id, score in page if case_id in stored]
        vectors = self.vectors()
        coverage = (len(vectors.text_hashes) if vectors else 0, self._shown_count(searcher))
        return hits, len(ranked), coverage

    # -- more like this ------------------------------------------------------------------
    def similar(self, case_id: int, size: int = 5, exclude: tuple[int, ...] = (),
                filters: Filters = Filters()) -> SearchResult:
        """Cases like an indexed one (indexer/more_like_this.py): candidates by its distinctive terms and
        meaning, reranked case to case once cases are embedded. Never the case itself nor `exclude`."""
        searcher = self._searcher()
        stored = self._stored_by_case(searcher, [case_id]).get(case_id) if searcher else None
        if stored is None:
            return SearchResult([], 0, {}, 0.0)
        case = LikeCase(case_id, stored["text"][0].decode(), stored["title"][0].decode(), stored["cause"][0])
        return more_like_this(self, case, size, exclude, filters)

    def similar_candidates(self, case: LikeCase, depth: int, skip: tuple[int, ...], filters: Filters,
                           vector: np.ndarray | None = None, display: bool = True) -> Candidates:
        """More like this, first stage: the case's distinctive terms (its cause boosted) fused with a
        search by `vector` when given; `depth` cases at most, none of `skip`. Without `display`, the hits
        come without snippets and matched terms (the reranker shows only a page of them)."""
        searcher = self._searcher()
        if searcher is None:
            return Candidates([], 0, {}, 0.0)
        terms = distinctive_terms(self.segmenter.terms(normalise(f"{case.title}\n{case.text}")),
                                  lambda term: searcher.doc_freq("terms", term), searcher.num_docs)
        Q, Occur = tantivy.Query, tantivy.Occur
        should = [(Occur.Should, Q.boost_query(Q.term_query(self.schema, "terms", term), weight))
                  for term, weight in terms]
        if case.cause:  # the same cause of action: the first thing a mediator looks for in a precedent
            top = terms[0][1] if terms else 1.0
            should.append((Occur.Should, Q.boost_query(Q.term_query(self.schema, "cause", case.cause),
                                                       CAUSE_BOOST * top)))
        unskipped = (Occur.MustNot, Q.term_set_query(self.schema, "case_id", list(skip)))
        like = Q.boolean_query(should or [(Occur.Must, Q.empty_query())])
        rankings = [(self._case_ids(searcher, Q.boolean_query([(Occur.Must, self._compose(like, filters)), unskipped]),
                                    depth), self.keyword_weight)]
        vectors = self.vectors() if vector is not None else None
        best_passage = {}
        if vectors is not None:
            allowed = np.asarray(self._case_ids(searcher, Q.boolean_query(
                [(Occur.Must, self._compose(Q.all_query(), filters)), unskipped]), searcher.num_docs), dtype="int64")
            semantic = best_per_case(vectors.search(vector, depth * 3, allowed))[:depth]
            best_passage = {match.case_id: match for match in semantic}
            rankings.append(([match.case_id for match in semantic], self.semantic_weight))
        ranked = reciprocal_rank_fusion(rankings, self.rrf_k)[:depth]
        found = self._stored_by_case(searcher, [i for i, _ in ranked])
        needles = tuple(term for term, _ in terms)
        hits = [self._hit(found[i], score, needles, best_passage.get(i), display) for i, score in ranked if i in found]
        coverage = (len(vectors.text_hashes), self._shown_count(searcher)) if vectors is not None else None
        return Candidates(hits, len(hits), {}, 0.0, needles, semantic_coverage=coverage, passages=best_passage)

    def case_vectors(self, case_ids: list[int]) -> dict[int, np.ndarray]:
        """case id -> normalised mean of its passage vectors, for the cases embedded so far."""
        vectors = self.vectors()
        means = {i: vectors.case_vector(i) for i in case_ids} if vectors is not None else {}
        return {i: mean for i, mean in means.items() if mean is not None}

    def _stored_by_case(self, searcher, case_ids: list[int]) -> dict[int, dict]:
        if not case_ids:
            return {}
        found = searcher.search(tantivy.Query.term_set_query(self.schema, "case_id", case_ids), limit=len(case_ids))
        docs = (searcher.doc(address).to_dict() for _score, address in found.hits)
        return {doc["case_id"][0]: doc for doc in docs}

    def text_hashes(self) -> dict[int, int]:
        """case id -> text hash of every indexed document that search shows (duplicates need no vectors),
        for the embedding worker."""
        searcher = self._searcher()
        if searcher is None or not searcher.num_docs:
            return {}
        found = searcher.search(self._compose(tantivy.Query.all_query(), Filters()), limit=searcher.num_docs,
                                count=False)
        addresses = [address for _score, address in found.hits]
        return dict(zip(searcher.fast_field_values("case_id", addresses),
                        searcher.fast_field_values("text_hash", addresses)))

    def cause_state(self) -> tuple[str, int, int] | None:
        """Changes on every commit and swap (indexer/cause_model.py retrains on a change)."""
        return self._searcher_and_state()[1]

    def labelled_texts(self, per_cause: int) -> list[tuple[str, str]]:
        """(masked text, cause) of the cases search shows that have a cause, the first `per_cause` of each."""
        searcher = self._searcher()
        if searcher is None or not searcher.num_docs:
            return []
        found = searcher.search(self._compose(tantivy.Query.all_query(), Filters()), limit=searcher.num_docs,
                                count=False)
        docs = (searcher.doc(address).to_dict() for _score, address in found.hits)
        return first_of_each(((doc["text"][0].decode(), doc["cause"][0]) for doc in docs), per_cause)

    def stored_texts(self, case_ids: list[int]) -> dict[int, tuple[str, str]]:
        """case id -> (title, masked text) as indexed."""
        searcher = self._searcher()
        if searcher is None:
            return {}
        return {case_id: (doc["title"][0].decode(), doc["text"][0].decode())
                for case_id, doc in self._stored_by_case(searcher, case_ids).items()}

    @staticmethod
    def _hit(stored: dict, score: float, needles, passage: PassageMatch | None = None, display: bool = True) -> Hit:
        day = stored["received_day"][0]
        return build_hit(
            case_id=stored["case_id"][0], external_id=stored["external_id"][0],
            title=stored["title"][0].decode(), text=stored["text"][0].decode(),
            category=stored["category"][0], cause=stored["cause"][0],
            region=stored.get("region", [""])[0], outcome=stored.get("outcome", [""])[0],
            received_on=dt.date.fromordinal(day) if day > 0 else None,
            exemplar=bool(stored["exemplar"][0]), score=score, needles=needles, passage=passage,
            duplicates=stored.get("duplicates", [0])[0], display=display)
