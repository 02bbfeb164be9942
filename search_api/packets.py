"""The precedent packet: what the parties of a remote session see through a share link, always masked."""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate

from kb.precedents import MediationSession
from search_api.cases import CaseDetail, case_detail

#: a CID font the PDF viewer supplies (Adobe's Song for simplified Chinese): no font file to ship or embed
FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
_BODY = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=16, wordWrap="CJK", spaceAfter=4)
_MUTED = ParagraphStyle("muted", _BODY, fontSize=9, leading=13, textColor="#57606a")
_H1 = ParagraphStyle("h1", _BODY, fontSize=17, leading=24, spaceAfter=8)
_H2 = ParagraphStyle("h2", _BODY, fontSize=13, leading=19, spaceBefore=10, spaceAfter=4)
_H3 = ParagraphStyle("h3", _BODY, fontSize=11, leading=16, spaceBefore=4, spaceAfter=2)
FOOTER = "参考案例中的当事人姓名、身份证号、电话号码和住址已隐去。仅供本次调解参考。"


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


def case_line(case: CaseDetail, separator: str = " · ") -> str:
    """Category, cause, date received and outcome, as the packet's small print under a case title."""
    parts = [case.category, case.cause, case.received_on and f"{case.received_on:%Y-%m-%d} 受理",
             case.outcome and f"调解{case.outcome}",
             case.agreed_amount is not None and f"协议金额 {case.agreed_amount:,.2f} 元"]
    return separator.join(part for part in parts if part)


def packet_pdf(packet: PrecedentPacket, expires_at: dt.datetime | None = None) -> bytes:
    """The packet as an A4 PDF with the share page's content (it holds only the packet's masked texts)."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, title=packet.title, author="调解案例库",
                                 leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=18 * mm)
    document.build(_story(packet, expires_at), onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def _story(packet: PrecedentPacket, expires_at: dt.datetime | None) -> list[Flowable]:
    intro = f"调解员 {packet.mediator} 为本次调解整理的参考案例，共 {len(packet.precedents)} 个。"
    if expires_at:
        intro += f"链接有效期至 {expires_at:%Y-%m-%d %H:%M}（UTC）。"
    story = [_text(packet.title, _H1), *_texts(packet.summary, _BODY), _text(intro, _MUTED)]
    for number, precedent in enumerate(packet.precedents, 1):
        case = precedent.case
        # The CID font has no middle dot: the PDF separates with a Chinese comma.
        story += [_text(f"{number}. {case.title}", _H2), _text(case_line(case, "，"), _MUTED)]
        if precedent.note:
            story.append(_text(f"调解员说明：{precedent.note}", _BODY))
        for heading, body in (("纠纷事实", case.facts), ("调解过程", case.process), ("协议内容", case.agreement_terms)):
            if body:
                story += [_text(heading, _H3), *_texts(body, _BODY)]
    if not packet.precedents:
        story.append(_text("这个会话还没有参考案例。", _BODY))
    return story


def _text(text: str, style: ParagraphStyle) -> Paragraph:
    # Paragraph reads a small markup language: case texts must not be taken for tags.
    return Paragraph(escape(text), style)


def _texts(text: str, style: ParagraphStyle) -> list[Paragraph]:
    """One paragraph per non-empty line, as the page's pre-wrapped text shows them."""
    return [_text(line, style) for line in (text or "").splitlines() if line.strip()]


def _footer(canvas, document) -> None:
    canvas.saveState()
    canvas.setFont(FONT, 8)
    canvas.setFillColor("#57606a")
    canvas.drawString(document.leftMargin, 10 * mm, FOOTER)
    canvas.drawRightString(A4[0] - document.rightMargin, 10 * mm, f"第 {document.page} 页")
    canvas.restoreState()
