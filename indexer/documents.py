"""The indexed form of a dispute case: masked display text plus the fields search filters on."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from indexer.masking import mask_personal_data
from kb.duplicates import DuplicateGroup
from kb.models import DisputeCase


@dataclass(frozen=True)
class IndexDocument:
    case_id: int
    external_id: str
    version: int
    #: masked, otherwise as written; what results and snippets show
    title: str
    text: str
    category: str
    cause: str
    region: str
    organisation_ids: tuple[int, ...]
    outcome: str
    exemplar: bool
    received_on: dt.date | None
    amount: float | None
    #: the record search shows instead of this one, when an earlier record has the same text; else 0
    duplicate_of: int = 0
    #: on the record shown: how many other records repeat its text (collapsed into it)
    duplicates: int = 0


def document_for(case: DisputeCase, group: DuplicateGroup | None = None) -> IndexDocument:
    """Build the document of a case (and its place in its duplicate group, if it has one); personal
    data is masked here, before any index sees it."""
    names = [p.name for p in case.parties if p.kind == "person"]
    # Generated demo text (templated agreements) would match every query about agreements.
    extra = [getattr(case, name) for name in ("process", "agreement_terms") if name not in case.synthetic_fields]
    body = "\n".join(part for part in (case.facts, *extra) if part)
    return IndexDocument(
        case_id=case.id,
        external_id=case.external_id,
        version=case.version,
        title=mask_personal_data(case.title, names),
        text=mask_personal_data(body, names),
        category=case.category,
        cause=case.cause or "",
        region=case.region or "",
        organisation_ids=tuple(case.organisation.ancestor_ids()) if case.organisation else (),
        outcome=case.outcome or "",
        exemplar=case.exemplar is not None,
        received_on=case.received_on,
        amount=float(case.agreed_amount) if case.agreed_amount is not None else None,
        duplicate_of=group.canonical_id if group and group.canonical_id != case.id else 0,
        duplicates=group.size - 1 if group and group.canonical_id == case.id else 0,
    )
