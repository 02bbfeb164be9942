"""Keeps the search index in step with the case library: drain the outbox, rebuild, search."""
from __future__ import annotations

from typing import Callable, Iterator

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from casekb.config import Settings
from indexer.documents import IndexDocument, document_for
from indexer.embedded import EmbeddedBackend
from indexer.text import segmenter_for
from kb.db import Database
from kb.models import DisputeCase, IndexTask

Progress = Callable[[int], None]


def open_backend(settings: Settings) -> EmbeddedBackend:
    """The configured search backend."""
    return EmbeddedBackend(settings.index_dir, segmenter_for(settings.legal_terms))


def _load_documents(session: Session, case_ids: list[int]) -> list[IndexDocument]:
    cases = session.scalars(
        select(DisputeCase).where(DisputeCase.id.in_(case_ids))
        .options(selectinload(DisputeCase.parties), joinedload(DisputeCase.exemplar),
                 joinedload(DisputeCase.organisation))).unique()
    return [document_for(case) for case in cases]


class Indexer:
    """The database is the source of truth; the index is derived from it and rebuilt at will."""

    def __init__(self, db: Database, backend: EmbeddedBackend, batch_size: int = 500):
        self.db = db
        self.backend = backend
        self.batch_size = batch_size

    def pending(self) -> int:
        with self.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(IndexTask))

    def _next_batch(self, session: Session) -> tuple[list[int], list[int]]:
        """Up to batch_size distinct cases from the oldest tasks, and the ids of those tasks."""
        rows = session.execute(select(IndexTask.id, IndexTask.entity_id).order_by(IndexTask.id)
                               .limit(self.batch_size * 20)).all()
        case_ids: dict[int, None] = {}
        task_ids = []
        for task_id, case_id in rows:
            if case_id not in case_ids and len(case_ids) == self.batch_size:
                continue
            case_ids[case_id] = None
            task_ids.append(task_id)
        return sorted(case_ids), task_ids

    def drain(self, progress: Progress | None = None) -> int:
        """Index every queued change, batch by batch; returns how many cases were (re)indexed."""
        done = 0
        while True:
            with self.backend.writer() as writer, self.db.sessions() as session:
                case_ids, task_ids = self._next_batch(session)
                if not case_ids:
                    return done
                docs = _load_documents(session, case_ids)
                writer.upsert(docs)
                writer.delete(sorted(set(case_ids) - {doc.case_id for doc in docs}))
            # Only the tasks that were read go, and only after the index committed: a crash in
            # between re-indexes, a change queued meanwhile stays queued.
            with self.db.transaction() as session:
                session.execute(delete(IndexTask).where(IndexTask.id.in_(task_ids)))
            done += len(case_ids)
            if progress:
                progress(len(case_ids))

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
                    writer.upsert(_load_documents(session, chunk))
                total += len(chunk)
                if progress:
                    progress(len(chunk))
        with self.db.transaction() as session:
            session.execute(delete(IndexTask).where(IndexTask.id <= watermark))
        return total

    def count_cases(self) -> int:
        with self.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(DisputeCase))
