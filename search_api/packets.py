"""The precedent packet: what the parties of a remote session see through a share link, always masked."""
from __future__ import annotations

from dataclasses import dataclass

from kb.precedents import MediationSession
from search_api.cases import CaseDetail, case_detail


@dataclass(frozen=True)
class Precedent:
    case: CaseDetail
    note: str


@dataclass(frozen=True)
class PrecedentPacket:
    title: str
    summary: str
    mediator: str
    precedents: list[Precedent]


def packet_of(mediation_session: MediationSession) -> PrecedentPacket:
    """The session's packet; cases are rendered for no viewer, so personal data is masked whoever shares it."""
    return PrecedentPacket(
        title=mediation_session.title, summary=mediation_session.summary,
        mediator=mediation_session.owner.username,
        precedents=[Precedent(case_detail(pin.case), pin.note) for pin in mediation_session.pins])
