"""Outbox: every flush that changes a searchable record writes index tasks in the same transaction.

The indexer drains `index_tasks`; if the process dies between commit and indexing the tasks
are still there, so the index always catches up. kb never imports the indexer.
"""
from __future__ import annotations

from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from kb.models import DisputeCase, ExemplarMark, IndexTask, Party

CASE_ENTITY = "case"


def _case_id_of(obj) -> int | None:
    if isinstance(obj, DisputeCase):
        return obj.id
    if isinstance(obj, (Party, ExemplarMark)):
        return obj.case_id
    return None


def changed_case_ids(session: Session) -> set[int]:
    """Ids of the cases whose indexed form this flush changes."""
    ids = set()
    dirty = (obj for obj in session.dirty if session.is_modified(obj, include_collections=False))
    for group in (session.new, dirty, session.deleted):
        for obj in group:
            case_id = _case_id_of(obj)
            if case_id is not None:
                ids.add(case_id)
    return ids


@event.listens_for(Session, "after_flush")
def _write_index_tasks(session: Session, _flush_context) -> None:
    ids = changed_case_ids(session)
    if ids:
        session.connection().execute(
            insert(IndexTask), [{"entity": CASE_ENTITY, "entity_id": i} for i in sorted(ids)])
