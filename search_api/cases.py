"""A dispute case as a given viewer may see it: masked for everyone but the roles allowed its personal data."""
from __future__ import annotations

import datetime as dt
from functools import partial

from pydantic import BaseModel
from sqlalchemy.orm import Session, joinedload, selectinload

from indexer.masking import mask_personal_data, masked_name
from indexer.query import SearchResult
from kb.models import DisputeCase, Party
from kb.statistics import kind_label


class ExemplarNote(BaseModel):
    note: str | None
    techniques: list[str]
    curator: str


class PartyDetail(BaseModel):
    """A party; for viewers without the right to personal data only role, kind and a masked name."""
    role: str
    kind: str
    name: str
    sex: str | None = None
    age: int | None = None
    occupation: str | None = None
    id_number: str | None = None
    phone: str | None = None
    address: str | None = None


class Referral(BaseModel):
    """Where an unsuccessful case went next (the unsuccessful-case database) and what became of it there."""
    destination: str
    #: the destination as people read it (诉讼, 仲裁 …)
    destination_label: str
    referred_on: dt.date | None
    later_result: str | None
    #: invented by a demo generator, not a real record
    synthetic: bool


class CaseDetail(BaseModel):
    """A case; texts masked unless personal_data_shown."""
    id: int
    external_id: str
    case_number: str | None
    title: str
    organisation: str | None
    organisation_id: int | None
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
    parties: list[PartyDetail]
    #: set for an unsuccessful case whose referral is tracked
    referral: Referral | None = None
    #: true only for the case's own organisation subtree's mediators and admins
    personal_data_shown: bool
    #: fields a demo generator invented, so nobody takes them for a real record
    synthetic_fields: list[str]


def may_see_personal_data(viewer, case: DisputeCase) -> bool:
    """Admins, and mediators whose organisation is the case's or one of its ancestors."""
    if viewer is None:
        return False
    if viewer.role == "admin":
        return True
    return (viewer.role == "mediator" and bool(viewer.organisation_path) and case.organisation is not None
            and case.organisation.path.startswith(viewer.organisation_path))


def _party(party: Party, reveal: bool) -> PartyDetail:
    if reveal:
        return PartyDetail(role=party.role, kind=party.kind, name=party.name, sex=party.sex, age=party.age,
                           occupation=party.occupation, id_number=party.id_number, phone=party.phone,
                           address=party.address)
    return PartyDetail(role=party.role, kind=party.kind,
                       name=masked_name(party.name) if party.kind == "person" else party.name)


def case_detail(case: DisputeCase, viewer=None) -> CaseDetail:
    """The case as this viewer may see it; viewer None (shares, exports) always gets the masked form."""
    reveal = may_see_personal_data(viewer, case)
    names = [p.name for p in case.parties if p.kind == "person"]
    mask = (lambda text: text) if reveal else partial(mask_personal_data, person_names=names)
    exemplar = (ExemplarNote(note=mask(case.exemplar.note), techniques=case.exemplar.techniques,
                             curator=case.exemplar.curator) if case.exemplar else None)
    return CaseDetail(
        id=case.id, external_id=case.external_id, case_number=case.case_number, title=mask(case.title),
        organisation=case.organisation.name if case.organisation else None, organisation_id=case.organisation_id,
        intake=case.intake, category=case.category, cause=case.cause, region=case.region,
        received_on=case.received_on, closed_on=case.closed_on, outcome=case.outcome,
        agreed_amount=float(case.agreed_amount) if case.agreed_amount is not None else None,
        performance=mask(case.performance), facts=mask(case.facts), process=mask(case.process),
        agreement_terms=mask(case.agreement_terms), exemplar=exemplar,
        parties=[_party(p, reveal) for p in case.parties], referral=_referral(case, mask), personal_data_shown=reveal,
        synthetic_fields=case.synthetic_fields or [])


def _referral(case: DisputeCase, mask) -> Referral | None:
    tracking = case.tracking
    if tracking is None:
        return None
    return Referral(destination=tracking.destination,
                    destination_label=kind_label(tracking.destination),
                    referred_on=tracking.referred_on, later_result=mask(tracking.later_result),
                    synthetic=tracking.synthetic)


CASE_OPTIONS = (selectinload(DisputeCase.parties), joinedload(DisputeCase.organisation),
                joinedload(DisputeCase.exemplar), joinedload(DisputeCase.tracking))


def load_case(session: Session, case_id: int, viewer=None) -> CaseDetail | None:
    """The case as the viewer may see it, or None when there is no such case."""
    case = session.get(DisputeCase, case_id, options=CASE_OPTIONS)
    return None if case is None else case_detail(case, viewer)


def similar_cases(backend, case: DisputeCase, copies: list[DisputeCase], size: int = 5) -> SearchResult:
    """More like this: precedents for a case (masked, from the index), never the case itself nor its
    `copies`, the records that repeat its text (kb.duplicates.duplicates_of)."""
    return backend.similar(case.id, size=size, exclude=tuple(copy.id for copy in copies))
