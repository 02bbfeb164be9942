"""The public form of a dispute case: personal data masked, parties left out."""
from __future__ import annotations

import datetime as dt
from functools import partial

from pydantic import BaseModel
from sqlalchemy.orm import Session, joinedload, selectinload

from indexer.masking import mask_personal_data
from kb.models import DisputeCase


class ExemplarNote(BaseModel):
    note: str | None
    techniques: list[str]


class CaseDetail(BaseModel):
    """A case as anyone may see it: texts masked, no party names, ID numbers, phones or addresses."""
    id: int
    external_id: str
    case_number: str | None
    title: str
    organisation: str | None
    intake: str | None
    category: str
    cause: str | None
    region: str | None
    received_on: dt.date | None
    closed_on: dt.date | None
    outcome: str | None
    agreed_amount: float | None
    performance: str | None
    facts: str
    process: str | None
    agreement_terms: str | None
    exemplar: ExemplarNote | None
    #: fields a demo generator invented, so nobody takes them for a real record
    synthetic_fields: list[str]


def load_case(session: Session, case_id: int) -> CaseDetail | None:
    """The masked case, or None when there is no such case."""
    case = session.get(DisputeCase, case_id, options=[
        selectinload(DisputeCase.parties), joinedload(DisputeCase.organisation), joinedload(DisputeCase.exemplar)])
    if case is None:
        return None
    mask = partial(mask_personal_data, person_names=[p.name for p in case.parties if p.kind == "person"])
    exemplar = (ExemplarNote(note=mask(case.exemplar.note), techniques=case.exemplar.techniques)
                if case.exemplar else None)
    return CaseDetail(
        id=case.id, external_id=case.external_id, case_number=case.case_number, title=mask(case.title),
        organisation=case.organisation.name if case.organisation else None, intake=case.intake,
        category=case.category, cause=case.cause, region=case.region, received_on=case.received_on,
        closed_on=case.closed_on, outcome=case.outcome,
        agreed_amount=float(case.agreed_amount) if case.agreed_amount is not None else None,
        performance=mask(case.performance), facts=mask(case.facts), process=mask(case.process),
        agreement_terms=mask(case.agreement_terms), exemplar=exemplar,
        synthetic_fields=case.synthetic_fields or [])
