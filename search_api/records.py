"""Read endpoints for the other databases: organisations, mediators, experts, learning material,
unsuccessful-case tracking and quality reviews. Texts that may name parties are masked."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from indexer.masking import mask_personal_data
from kb.accounts import AuditEntry
from kb.models import (DisputeCase, Expert, LearningMaterial, Mediator, Organisation, QualityReview,
                       UnsuccessfulCaseTracking)
from search_api.auth import roles
from search_api.ext import casekb
from search_api.listing import MAX_ID, PageParams, paginate, parse_args
from search_api.problems import ProblemError

bp = Blueprint("records", __name__, url_prefix="/api/v1")


def _masked(text: str | None, *cases: DisputeCase) -> str | None:
    return mask_personal_data(text, [p.name for c in cases for p in c.parties if p.kind == "person"])


class OrganisationOut(BaseModel):
    id: int
    name: str
    level: str
    parent_id: int | None
    #: ids from the root down, e.g. /1/4/17/
    path: str


class OrganisationParams(PageParams):
    parent: int | None = Field(None, ge=0, le=MAX_ID, description="Children of this organisation; 0 for the roots.")
    level: str | None = Field(None, max_length=20)


class MediatorOut(BaseModel):
    """A mediator without contact data."""
    id: int
    name: str
    organisation_id: int
    full_time: bool
    specialities: list[str]


class MediatorParams(PageParams):
    organisation: int | None = Field(None, ge=1, le=MAX_ID, description="This organisation and everything below it.")
    full_time: bool | None = None


class ExpertOut(BaseModel):
    id: int
    name: str
    field: str
    title: str | None
    affiliation: str | None


class ExpertParams(PageParams):
    field: str | None = Field(None, max_length=50)


class MaterialOut(BaseModel):
    id: int
    title: str
    kind: str
    body: str
    case_ids: list[int]


class MaterialParams(PageParams):
    kind: str | None = Field(None, max_length=30)


class TrackingOut(BaseModel):
    case_id: int
    case_title: str
    destination: str
    referred_on: dt.date | None
    later_result: str | None


class TrackingParams(PageParams):
    destination: Literal["court", "arbitration", "petition", "administrative", "other"] | None = None


class ReviewOut(BaseModel):
    id: int
    case_id: int
    reviewer: str
    total_score: int
    verdict: str
    reviewed_on: dt.date
    scores: dict[str, int]


class ReviewParams(PageParams):
    verdict: Literal["优秀", "合格", "不合格"] | None = None


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict


class AuditParams(PageParams):
    action: str | None = Field(None, max_length=30, description="search, view, export, pin, share, revoke, ...")
    actor: str | None = Field(None, max_length=100)


def _organisation(org: Organisation) -> OrganisationOut:
    return OrganisationOut(id=org.id, name=org.name, level=org.level, parent_id=org.parent_id, path=org.path)


def _material(material: LearningMaterial) -> MaterialOut:
    return MaterialOut(id=material.id, title=_masked(material.title, *material.cases), kind=material.kind,
                       body=_masked(material.body, *material.cases), case_ids=[c.id for c in material.cases])


def _page(params: PageParams, statement, convert):
    with casekb().db.sessions() as session:
        return jsonify(paginate(session, statement, params, convert))


@bp.get("/organisations")
def organisations():
    params = parse_args(OrganisationParams, request)
    statement = select(Organisation).order_by(Organisation.path)
    if params.parent is not None:
        statement = statement.where(Organisation.parent_id.is_(None) if params.parent == 0
                                    else Organisation.parent_id == params.parent)
    if params.level:
        statement = statement.where(Organisation.level == params.level)
    return _page(params, statement, _organisation)


@bp.get("/organisations/<id:org_id>")
def organisation(org_id: int):
    with casekb().db.sessions() as session:
        org = session.get(Organisation, org_id)
        if org is None:
            raise ProblemError(404, f"There is no organisation with id {org_id}.")
        children = session.scalars(select(Organisation).where(Organisation.parent_id == org_id)
                                   .order_by(Organisation.id)).all()
        return jsonify(**_organisation(org).model_dump(),
                       children=[_organisation(c).model_dump() for c in children])


@bp.get("/mediators")
def mediators():
    params = parse_args(MediatorParams, request)
    statement = select(Mediator).order_by(Mediator.id)
    if params.organisation is not None:
        subtree = select(Organisation.path).where(Organisation.id == params.organisation).scalar_subquery()
        statement = statement.join(Organisation).where(Organisation.path.startswith(subtree))
    if params.full_time is not None:
        statement = statement.where(Mediator.full_time == params.full_time)
    return _page(params, statement, lambda m: MediatorOut.model_validate(m, from_attributes=True))


@bp.get("/experts")
def experts():
    params = parse_args(ExpertParams, request)
    statement = select(Expert).order_by(Expert.id)
    if params.field:
        statement = statement.where(Expert.field == params.field)
    return _page(params, statement, lambda e: ExpertOut.model_validate(e, from_attributes=True))


@bp.get("/learning-materials")
def learning_materials():
    params = parse_args(MaterialParams, request)
    statement = (select(LearningMaterial).order_by(LearningMaterial.id)
                 .options(selectinload(LearningMaterial.cases).selectinload(DisputeCase.parties)))
    if params.kind:
        statement = statement.where(LearningMaterial.kind == params.kind)
    return _page(params, statement, _material)


@bp.get("/learning-materials/<id:material_id>")
def learning_material(material_id: int):
    with casekb().db.sessions() as session:
        material = session.get(LearningMaterial, material_id)
        if material is None:
            raise ProblemError(404, f"There is no learning material with id {material_id}.")
        return jsonify(_material(material).model_dump(mode="json"))


@bp.get("/unsuccessful-cases")
def unsuccessful_cases():
    params = parse_args(TrackingParams, request)
    statement = (select(UnsuccessfulCaseTracking).order_by(UnsuccessfulCaseTracking.id)
                 .options(joinedload(UnsuccessfulCaseTracking.case).selectinload(DisputeCase.parties)))
    if params.destination:
        statement = statement.where(UnsuccessfulCaseTracking.destination == params.destination)
    return _page(params, statement, lambda t: TrackingOut(
        case_id=t.case_id, case_title=_masked(t.case.title, t.case), destination=t.destination,
        referred_on=t.referred_on, later_result=_masked(t.later_result, t.case)))


@bp.get("/quality-reviews")
def quality_reviews():
    params = parse_args(ReviewParams, request)
    statement = select(QualityReview).order_by(QualityReview.id)
    if params.verdict:
        statement = statement.where(QualityReview.verdict == params.verdict)
    return _page(params, statement, lambda r: ReviewOut.model_validate(r, from_attributes=True))


@bp.get("/audit")
@roles("admin")
def audit_log():
    """Newest first: who searched, viewed, exported and shared what (admins only: queries may name people)."""
    params = parse_args(AuditParams, request)
    statement = select(AuditEntry).order_by(AuditEntry.id.desc())
    if params.action:
        statement = statement.where(AuditEntry.action == params.action)
    if params.actor:
        statement = statement.where(AuditEntry.actor == params.actor)
    return _page(params, statement, lambda e: AuditOut(
        id=e.id, at=e.at.replace(tzinfo=dt.UTC), actor=e.actor, action=e.action, target=e.target, detail=e.detail))


#: path → (summary, parameters model, item model) for the OpenAPI document
LISTS = {
    "/api/v1/organisations": ("Organisations (filter by parent to walk the tree)", OrganisationParams, OrganisationOut),
    "/api/v1/mediators": ("Mediators, without contact data", MediatorParams, MediatorOut),
    "/api/v1/experts": ("Experts", ExpertParams, ExpertOut),
    "/api/v1/learning-materials": ("Learning material, masked", MaterialParams, MaterialOut),
    "/api/v1/unsuccessful-cases": ("Where unsuccessful cases went next, masked", TrackingParams, TrackingOut),
    "/api/v1/quality-reviews": ("Quality reviews of case files", ReviewParams, ReviewOut),
    "/api/v1/audit": ("The audit log, newest first (admins only)", AuditParams, AuditOut),
}
