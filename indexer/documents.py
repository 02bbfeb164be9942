"""The indexed form of a dispute case: masked display text plus the fields search filters on."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from indexer.masking import mask_personal_data
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


def document_for(case: DisputeCase) -> IndexDocument:
    """Build the document of a case; personal data is masked here, before any index sees it."""
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
    )
