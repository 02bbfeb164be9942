"""Exemplar cases (优秀案例) for trainers: browse by category, cause and technique; mark and unmark."""
from __future__ import annotations

import datetime as dt
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, selectinload

from indexer.masking import mask_personal_data
from kb.models import DisputeCase, ExemplarMark
from search_api.listing import PageParams


class ExemplarParams(PageParams):
    category: str | None = Field(None, max_length=50)
    cause: str | None = Field(None, max_length=100)
    technique: str | None = Field(None, max_length=50, description="Mediation technique tag, e.g. 释法析理.")


class ExemplarIn(BaseModel):
    """A trainer's curator note and technique tags."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = Field("", max_length=2000)
    techniques: list[str] = Field([], max_length=20)


class ExemplarOut(BaseModel):
    case_id: int
    title: str
    category: str
    cause: str | None
    outcome: str | None
    techniques: list[str]
    note: str | None
    curator: str
    marked_at: dt.datetime | None


def _out(case: DisputeCase) -> ExemplarOut:
    names = [p.name for p in case.parties if p.kind == "person"]
    mark = case.exemplar
    return ExemplarOut(case_id=case.id, title=mask_personal_data(case.title, names), category=case.category,
                       cause=case.cause, outcome=case.outcome, techniques=mark.techniques,
                       note=mask_personal_data(mark.note, names), curator=mark.curator,
                       # stored as naive UTC; RFC 3339 wants the offset
                       marked_at=mark.marked_at.replace(tzinfo=dt.UTC) if mark.marked_at else None)


def list_exemplars(session: Session, params: ExemplarParams) -> tuple[list[ExemplarOut], int, Counter]:
    """One page of exemplars (masked), their total, and technique counts over all that match."""
    statement = (select(DisputeCase).join(DisputeCase.exemplar).options(
        contains_eager(DisputeCase.exemplar), selectinload(DisputeCase.parties)).order_by(DisputeCase.id))
    if params.category:
        statement = statement.where(DisputeCase.category == params.category)
    if params.cause:
        statement = statement.where(DisputeCase.cause == params.cause)
    # Technique tags live in a JSON list, which SQLite and PostgreSQL query differently; exemplars
    # are a curated few hundred, so they are filtered here instead.
    cases = session.scalars(statement).unique().all()
    techniques = Counter(t for case in cases for t in case.exemplar.techniques)
    if params.technique:
        cases = [case for case in cases if params.technique in case.exemplar.techniques]
    start = (params.page - 1) * params.size
    return [_out(case) for case in cases[start:start + params.size]], len(cases), techniques


def mark_exemplar(session: Session, case: DisputeCase, curator: str, data: ExemplarIn) -> None:
    """Mark the case as an exemplar, or update its note and techniques."""
    techniques = list(dict.fromkeys(t for t in data.techniques if t))
    if case.exemplar is None:
        case.exemplar = ExemplarMark(curator=curator, note=data.note, techniques=techniques)
    else:
        case.exemplar.curator, case.exemplar.note, case.exemplar.techniques = curator, data.note, techniques
