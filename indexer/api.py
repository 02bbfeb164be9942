"""Keeps the search index in step with the case library: drain the outbox, rebuild, search."""
from __future__ import annotations

from typing import Callable, Iterator

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from casekb.config import Settings
from indexer.backend_common import IndexWriteError
from indexer.documents import IndexDocument, document_for
from indexer.elasticsearch_backend import ElasticsearchBackend, client_for
from indexer.embedded import EmbeddedBackend
from indexer.embeddings import Encoder
from indexer.semantic import document_hash, passage_inputs
from indexer.text import segmenter_for
from kb.db import Database
from kb.duplicates import duplicate_groups
from kb.models import DisputeCase, IndexTask

Progress = Callable[[int], None]
#: Cases per index commit when draining the outbox: a commit costs about as much as indexing a few
#: hundred cases, and fewer commits leave fewer segments to merge.
COMMIT_CASES = 5000
#: Ids per IN (...) list in one statement.
LOOKUP_CHUNK = 5000
Backend = EmbeddedBackend | ElasticsearchBackend


def encoder_factory(settings: Settings) -> Callable[[], Encoder] | None:
    """How to load the embedding model, or None when it is not installed (keyword search only)."""
    folder = settings.embedding_model_dir
    if not (folder / "modules.json").is_file():
        return None
    return lambda: Encoder(folder, settings.home / "embeddings.sqlite3", threads=settings.embedding_threads,
                           precision=settings.embedding_precision)


def open_backend(settings: Settings) -> Backend:
    """The configured search backend."""
    segmenter = segmenter_for(settings.legal_terms, settings.segmenter)
    if settings.backend == "elasticsearch":
        return ElasticsearchBackend(client_for(settings), settings.es_index, segmenter,
                                    encoder_factory(settings))
    return EmbeddedBackend(settings.index_dir, segmenter, encoder_factory(settings))


def _load_documents(session: Session, case_ids: list[int]) -> list[IndexDocument]:
    cases = session.scalars(
        select(DisputeCase).where(DisputeCase.id.in_(case_ids))
        .options(selectinload(DisputeCase.parties), joinedload(DisputeCase.exemplar),
                 joinedload(DisputeCase.organisation))).unique().all()
    groups = duplicate_groups(session, {case.fingerprint for case in cases if case.fingerprint})
    return [document_for(case, groups.get(case.fingerprint)) for case in cases]


def _write(writer, docs: list[IndexDocument], gone: list[int]) -> IndexWriteError | None:
    """Upsert and delete, both attempted; what failed, if anything."""
    case_ids, reasons = [], []
    for write, items in ((writer.upsert, docs), (writer.delete, gone)):
        try:
            write(items)
        except IndexWriteError as error:
            case_ids += error.case_ids
            reasons += error.reasons
    return IndexWriteError(case_ids, reasons) if case_ids else None


class Indexer:
    """The database is the source of truth; the index is derived from it and rebuilt at will."""

    def __init__(self, db: Database, backend: Backend, batch_size: int = 500):
        self.db = db
        self.backend = backend
        self.batch_size = batch_size

    def pending(self) -> int:
        with self.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(IndexTask))

    def _next_batch(self, session: Session, cases: int) -> tuple[list[int], list[int]]:
        """Up to `cases` distinct cases from the oldest tasks, and the ids of those tasks."""
        rows = session.execute(select(IndexTask.id, IndexTask.entity_id).order_by(IndexTask.id)
                               .limit(cases * 20)).all()
        case_ids: dict[int, None] = {}
        task_ids = []
        for task_id, case_id in rows:
            if case_id not in case_ids and len(case_ids) == cases:
                continue
            case_ids[case_id] = None
            task_ids.append(task_id)
        return sorted(case_ids), task_ids

    def drain(self, progress: Progress | None = None) -> int:
        """Index every queued change, commit by commit (up to COMMIT_CASES cases each, read from the
        database batch_size at a time); returns how many cases were (re)indexed. One index writer
        serves all commits. An index written by an older casekb is rebuilt instead."""
        if self.backend.outdated():
            return self.reindex(progress)
        done = 0

        def next_batch() -> tuple[list[int], list[int]]:
            with self.db.sessions() as session:
                return self._next_batch(session, max(COMMIT_CASES, self.batch_size))

        case_ids, task_ids = next_batch()
        if not case_ids:
            # An idle poll opens no writer: a commit of nothing would still be a new index state,
            # and every cache keyed by the state (filters, facets, the cause model) would start over.
            return done
        with self.backend.writer() as writer:
            while case_ids:
                failed = self._write_cases(writer, case_ids)
                writer.commit()
                # Only the tasks that were read go, and only after the index committed: a crash in
                # between re-indexes, a change queued meanwhile stays queued, and so do failed cases.
                with self.db.transaction() as session:
                    for start in range(0, len(task_ids), LOOKUP_CHUNK):
                        session.execute(delete(IndexTask).where(
                            IndexTask.id.in_(task_ids[start:start + LOOKUP_CHUNK]),
                            IndexTask.entity_id.not_in(failed.case_ids if failed else [])))
                if failed:
                    raise failed
                done += len(case_ids)
                if progress:
                    progress(len(case_ids))
                case_ids, task_ids = next_batch()
        return done

    def _write_cases(self, writer, case_ids: list[int]) -> IndexWriteError | None:
        """Write these cases' documents (deleting those gone from the database), batch_size at a time."""
        case_ids_failed, reasons = [], []
        for start in range(0, len(case_ids), self.batch_size):
            chunk = case_ids[start:start + self.batch_size]
            with self.db.sessions() as session:
                docs = _load_documents(session, chunk)
            failed = _write(writer, docs, sorted(set(chunk) - {doc.case_id for doc in docs}))
            if failed:
                case_ids_failed += failed.case_ids
                reasons += failed.reasons
        return IndexWriteError(case_ids_failed, reasons) if case_ids_failed else None

    def _all_case_ids(self) -> Iterator[list[int]]:
        with self.db.sessions() as session:
            ids = session.scalars(select(DisputeCase.id).order_by(DisputeCase.id)).all()
        for start in range(0, len(ids), self.batch_size):
            yield ids[start:start + self.batch_size]

    def reindex(self, progress: Progress | None = None) -> int:
        """Build a fresh index from the database and swap it in atomically."""
        total = 0
        with self.backend.rebuild() as writer:
            with self.db.sessions() as session:
                watermark = session.scalar(select(func.max(IndexTask.id))) or 0
            for chunk in self._all_case_ids():
                with self.db.sessions() as session:
                    docs = _load_documents(session, chunk)
                writer.upsert(docs)
                # A case deleted after it was read can reach the new index after its deletion did
                # (an indexer running meanwhile deletes from both): take such cases out again. One
                # deleted after this look is already in the new index, where that deletion finds it.
                with self.db.sessions() as session:
                    kept = set(session.scalars(select(DisputeCase.id).where(DisputeCase.id.in_(chunk))))
                writer.delete([doc.case_id for doc in docs if doc.case_id not in kept])
                total += len(chunk)
                if progress:
                    progress(len(chunk))
        with self.db.transaction() as session:
            session.execute(delete(IndexTask).where(IndexTask.id <= watermark))
        return total

    def embed(self, encoder: Encoder, progress: Progress | None = None, batch_cases: int = 64,
              limit: int | None = None) -> int:
        """Embed every indexed case whose text changed since its vectors were computed (or that has
        none; at most `limit` cases), batch by batch; each batch is searchable once stored."""
        done = 0
        while limit is None or done < limit:
            # One look at the index per pass, not per batch; the next pass picks up what changed meanwhile.
            wanted = self.backend.text_hashes()
            stored = self.backend.vector_hashes(encoder.name)
            todo = sorted(case_id for case_id, digest in wanted.items() if stored.get(case_id) != digest)
            gone = [case_id for case_id in stored if case_id not in wanted]
            if not todo and not gone:
                return done
            todo = todo if limit is None else todo[:limit - done]
            embedded = 0
            for start in range(0, max(len(todo), 1), batch_cases):
                batch = todo[start:start + batch_cases]
                embedded += self._embed_batch(encoder, batch, gone if start == 0 else [])
                done += len(batch)
                if progress:
                    progress(len(batch))
            if todo and not embedded:
                return done  # their texts left the index meanwhile; nothing more can be done now
        return done

    def _embed_batch(self, encoder: Encoder, batch: list[int], gone: list[int]) -> int:
        """Embed some cases and drop the vectors of others; returns how many were embedded."""
        texts = self.backend.stored_texts(batch)
        inputs = {case_id: passage_inputs(*texts[case_id]) for case_id in batch if case_id in texts}
        flat = encoder.passages([p for passages in inputs.values() for p in passages])
        vectors, offset = {}, 0
        for case_id, passages in inputs.items():
            # The hash of the text actually embedded: a backend stores vectors only beside that text.
            vectors[case_id] = (flat[offset:offset + len(passages)], document_hash(*texts[case_id]))
            offset += len(passages)
        self.backend.store_vectors(encoder.name, encoder.dim, vectors, gone)
        return len(inputs)

    def count_cases(self) -> int:
        with self.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(DisputeCase))
