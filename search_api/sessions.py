"""Remote mediation sessions in the UI: gather precedents, note them, share the packet by link, revoke it."""
from __future__ import annotations

import datetime as dt
import io

from flask import Blueprint, abort, flash, make_response, redirect, render_template, send_file, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange

from kb.accounts import utcnow
from kb.models import DisputeCase
from kb.precedents import MediationSession, PinnedPrecedent, ShareLink
from search_api.auth import audit, public, roles, viewer
from search_api.cases import CASE_OPTIONS
from search_api.ext import casekb
from search_api.packets import PrecedentPacket, case_line, packet_of, packet_pdf

bp = Blueprint("sessions", __name__)
bp.add_app_template_global(case_line)  # the packet page and its PDF describe a case in the same words
EXPIRY_DAYS = [SelectChoice(days, f"{days} 天") for days in (1, 3, 7, 30)]
RUNS_SESSIONS = ("mediator", "admin")


class SessionForm(FlaskForm):
    title = StringField("会话名称", validators=[DataRequired(), Length(max=200)])
    summary = TextAreaField("纠纷概要（会显示给当事人，请勿填写姓名、电话等个人信息）", validators=[Length(max=2000)])


class PinForm(FlaskForm):
    session_id = SelectField("调解会话", coerce=int)
    case_id = IntegerField(validators=[DataRequired(), NumberRange(min=1)])
    note = TextAreaField("说明（为什么参考这个案例）", validators=[Length(max=2000)])


class NoteForm(FlaskForm):
    note = TextAreaField("说明", validators=[Length(max=2000)])


class ShareForm(FlaskForm):
    days = SelectField("有效期", coerce=int, choices=EXPIRY_DAYS, default=7)


class ConfirmForm(FlaskForm):
    """A button that changes something: it needs only the CSRF token."""


def my_sessions(db_session: Session) -> list[MediationSession]:
    """The sessions the current user may work on: their own (all of them for an admin)."""
    statement = select(MediationSession).order_by(MediationSession.id.desc())
    if viewer().role != "admin":
        statement = statement.where(MediationSession.owner_id == viewer().id)
    return list(db_session.scalars(statement))


def _own_session(db_session: Session, session_id: int) -> MediationSession:
    found = db_session.get(MediationSession, session_id, options=[
        selectinload(MediationSession.pins).joinedload(PinnedPrecedent.case).options(*CASE_OPTIONS),
        selectinload(MediationSession.links)])
    if found is None:
        abort(404)
    if found.owner_id != viewer().id and viewer().role != "admin":
        abort(403)
    return found


@bp.route("/sessions", methods=["GET", "POST"])
@roles(*RUNS_SESSIONS)
def index():
    form = SessionForm()
    if form.validate_on_submit():
        with casekb().db.transaction() as db_session:
            created = MediationSession(owner_id=viewer().id, title=form.title.data, summary=form.summary.data or "")
            db_session.add(created)
            db_session.flush()
            new_id = created.id
        return redirect(url_for("sessions.detail", session_id=new_id))
    with casekb().db.sessions() as db_session:
        sessions = my_sessions(db_session)
        rows = [(s, len(s.pins), sum(link.state() == "active" for link in s.links)) for s in sessions]
    return render_template("sessions.html", form=form, rows=rows)


@bp.get("/sessions/<id:session_id>")
@roles(*RUNS_SESSIONS)
def detail(session_id: int):
    with casekb().db.sessions() as db_session:
        found = _own_session(db_session, session_id)
        packet = packet_of(found)
        links = [(link, link.state()) for link in found.links]
        pins = list(zip(found.pins, packet.precedents))
    return render_template("session.html", session_row=found, pins=pins, links=links, packet=packet,
                           share_form=ShareForm(), note_form=NoteForm(), confirm=ConfirmForm())


@bp.post("/sessions/pins")
@roles(*RUNS_SESSIONS)
def pin():
    form = PinForm()
    with casekb().db.transaction() as db_session:
        form.session_id.choices = [SelectChoice(s.id, s.title) for s in my_sessions(db_session)]
        if not form.validate_on_submit():
            abort(400, "; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()))
        found = _own_session(db_session, form.session_id.data)
        if db_session.get(DisputeCase, form.case_id.data) is None:
            abort(404)
        existing = next((p for p in found.pins if p.case_id == form.case_id.data), None)
        if existing:
            existing.note = form.note.data or existing.note
        else:
            found.pins.append(PinnedPrecedent(case_id=form.case_id.data, note=form.note.data or ""))
    audit("pin", f"session:{found.id}", case_id=form.case_id.data)
    flash("已加入调解会话。")
    return redirect(url_for("sessions.detail", session_id=found.id))


@bp.post("/sessions/<id:session_id>/pins/<id:pin_id>")
@roles(*RUNS_SESSIONS)
def edit_pin(session_id: int, pin_id: int):
    form = NoteForm()
    if not form.validate_on_submit():
        abort(400)
    with casekb().db.transaction() as db_session:
        _pin_of(_own_session(db_session, session_id), pin_id).note = form.note.data or ""
    return redirect(url_for("sessions.detail", session_id=session_id))


@bp.post("/sessions/<id:session_id>/pins/<id:pin_id>/delete")
@roles(*RUNS_SESSIONS)
def unpin(session_id: int, pin_id: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with casekb().db.transaction() as db_session:
        found = _own_session(db_session, session_id)
        found.pins.remove(_pin_of(found, pin_id))
    return redirect(url_for("sessions.detail", session_id=session_id))


def _pin_of(found: MediationSession, pin_id: int) -> PinnedPrecedent:
    pinned = next((p for p in found.pins if p.id == pin_id), None)
    if pinned is None:
        abort(404)
    return pinned


@bp.post("/sessions/<id:session_id>/links")
@roles(*RUNS_SESSIONS)
def share(session_id: int):
    form = ShareForm()
    if not form.validate_on_submit():
        abort(400)
    with casekb().db.transaction() as db_session:
        found = _own_session(db_session, session_id)
        link = ShareLink(expires_at=utcnow() + dt.timedelta(days=form.days.data))
        found.links.append(link)
        db_session.flush()
        link_id = link.id
    audit("share", f"session:{session_id}", link_id=link_id, days=form.days.data)
    return redirect(url_for("sessions.detail", session_id=session_id, _anchor="links"))


@bp.post("/sessions/<id:session_id>/links/<id:link_id>/revoke")
@roles(*RUNS_SESSIONS)
def revoke(session_id: int, link_id: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with casekb().db.transaction() as db_session:
        link = next((lk for lk in _own_session(db_session, session_id).links if lk.id == link_id), None)
        if link is None:
            abort(404)
        link.revoked_at = link.revoked_at or utcnow()
    audit("revoke", f"session:{session_id}", link_id=link_id)
    return redirect(url_for("sessions.detail", session_id=session_id, _anchor="links"))


GONE = {"expired": ("分享链接已过期", "这个链接的有效期已过。如仍需查看，请联系调解员重新分享。"),
        "revoked": ("分享链接已撤销", "调解员已撤销这个链接。如仍需查看，请联系调解员。")}
#: a party's copy must not linger in shared caches, leak its token in a Referer, or be indexed
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def _shared_packet(token: str, action: str) -> tuple[PrecedentPacket, dt.datetime]:
    """The packet behind a live link and the link's expiry, audited as `action`; the 404 or 410 page otherwise."""
    with casekb().db.sessions() as db_session:
        link = db_session.scalar(select(ShareLink).where(ShareLink.token == token))
        if link is None:
            abort(make_response(render_template("error.html", status=404, title="找不到这个分享链接",
                                                hint="请核对链接是否完整。", errors=[], public_page=True), 404))
        state = link.state()
        if state != "active":
            title, hint = GONE[state]
            audit(action, f"link:{link.id}", refused=state)
            abort(make_response(render_template("error.html", status=410, title=title, hint=hint, errors=[],
                                                public_page=True), 410))
        packet = packet_of(_packet_session(db_session, link.session_id))
        link_id, expires_at = link.id, link.expires_at
    audit(action, f"link:{link_id}")
    return packet, expires_at


@bp.get("/share/<token>")
@public
def shared(token: str):
    """The packet for a party: read-only, masked, no sign-in; dead the moment the link expires or is revoked."""
    packet, expires_at = _shared_packet(token, "share-view")
    response = render_template("packet.html", packet=packet, expires_at=expires_at, public_page=True,
                               pdf_url=url_for("sessions.shared_pdf", token=token))
    return response, 200, PRIVATE


@bp.get("/share/<token>/packet.pdf")
@public
def shared_pdf(token: str):
    """The party's packet as a PDF download, under the same rules as the page."""
    packet, expires_at = _shared_packet(token, "share-pdf")
    return _pdf_download(packet, expires_at, PRIVATE)


def _packet_session(db_session: Session, session_id: int) -> MediationSession:
    return db_session.get(MediationSession, session_id, options=[
        selectinload(MediationSession.pins).joinedload(PinnedPrecedent.case).options(*CASE_OPTIONS)])


def _pdf_download(packet: PrecedentPacket, expires_at: dt.datetime | None, headers: dict):
    response = send_file(io.BytesIO(packet_pdf(packet, expires_at)), mimetype="application/pdf",
                         as_attachment=True, download_name=f"{packet.title}.pdf")
    response.headers.update(headers)
    return response


@bp.get("/sessions/<id:session_id>/packet")
@roles(*RUNS_SESSIONS)
def preview(session_id: int):
    """The packet exactly as the parties will see it (for printing or saving as PDF too)."""
    with casekb().db.sessions() as db_session:
        packet = packet_of(_own_session(db_session, session_id))
    audit("export", f"session:{session_id}")
    return render_template("packet.html", packet=packet, expires_at=None, public_page=False,
                           pdf_url=url_for("sessions.packet_download", session_id=session_id))


@bp.get("/sessions/<id:session_id>/packet.pdf")
@roles(*RUNS_SESSIONS)
def packet_download(session_id: int):
    """The packet as the parties' PDF, for the mediator to send or print."""
    with casekb().db.sessions() as db_session:
        packet = packet_of(_own_session(db_session, session_id))
    audit("export", f"session:{session_id}", format="pdf")
    return _pdf_download(packet, None, {"Cache-Control": "no-store"})
