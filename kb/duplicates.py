"""Duplicate cases: records whose facts share a fingerprint. The earliest (lowest id) is the one
search shows; the others are flagged as its duplicates and collapsed into it.

A change to one record of a group changes how the others are indexed (which one is shown, how
many duplicates it has), so the flush that changes one queues index tasks for all of them.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event, func, insert, inspect, select
from sqlalchemy.orm import Session

from kb.models import DisputeCase, IndexTask
from kb.outbox import CASE_ENTITY

LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class DuplicateGroup:
    #: the record search shows for the group
    canonical_id: int
    #: how many records share the fingerprint, the canonical one included
    size: int


def duplicate_groups(session: Session, fingerprints: set[str]) -> dict[str, DuplicateGroup]:
    """The groups of these fingerprints that hold more than one record."""
    if not fingerprints:
        return {}
    rows = session.execute(
        select(DisputeCase.fingerprint, func.min(DisputeCase.id), func.count())
        .where(DisputeCase.fingerprint.in_(fingerprints))
        .group_by(DisputeCase.fingerprint).having(func.count() > 1))
    return {fingerprint: DuplicateGroup(first, size) for fingerprint, first, size in rows}


def duplicates_of(session: Session, case: DisputeCase) -> list[DisputeCase]:
    """The other records with the same facts as this one, oldest first."""
    return list(session.scalars(select(DisputeCase).where(
        DisputeCase.fingerprint == case.fingerprint, DisputeCase.id != case.id).order_by(DisputeCase.id)))


@event.listens_for(Session, "after_flush")
def _reindex_duplicate_groups(session: Session, _flush_context) -> None:
    touched = {obj.id: obj.fingerprint for group in (session.new, session.dirty, session.deleted)
               for obj in group if isinstance(obj, DisputeCase) and obj.fingerprint}
    if not touched:
        return
    fingerprints = set(touched.values())
    for obj in session.dirty:  # a record whose facts changed leaves its old group
        if isinstance(obj, DisputeCase):
            fingerprints.update(inspect(obj).attrs.fingerprint.history.deleted)
    others = session.connection().execute(
        select(DisputeCase.id).where(DisputeCase.fingerprint.in_(fingerprints),
                                     DisputeCase.id.not_in(list(touched)))).scalars().all()
    if others:
        session.connection().execute(
            insert(IndexTask), [{"entity": CASE_ENTITY, "entity_id": i} for i in sorted(others)])



def duplicates_among(session: Session, external_ids: list[str]) -> list[tuple[str, str]]:
    """(external id, external id of the record it repeats) for each of these records whose facts an
    earlier record already has, in id order. Call after a flush."""
    flagged = []
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = external_ids[start:start + LOOKUP_CHUNK]
        fingerprints = set(session.scalars(select(DisputeCase.fingerprint).where(
            DisputeCase.external_id.in_(chunk))))
        groups = duplicate_groups(session, fingerprints)
        if not groups:
            continue
        canonical = dict(session.execute(select(DisputeCase.id, DisputeCase.external_id).where(
            DisputeCase.id.in_([g.canonical_id for g in groups.values()]))).all())
        rows = session.execute(select(DisputeCase.id, DisputeCase.external_id, DisputeCase.fingerprint).where(
            DisputeCase.external_id.in_(chunk), DisputeCase.fingerprint.in_(groups)))
        flagged += [(case_id, external_id, canonical[groups[fingerprint].canonical_id])
                    for case_id, external_id, fingerprint in rows
                    if case_id != groups[fingerprint].canonical_id]
    return [(external_id, first) for _id, external_id, first in sorted(flagged)]
