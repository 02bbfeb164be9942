"""Remote mediation sessions: the precedent cases a mediator pins, and links that share them."""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kb.accounts import User, utcnow
from kb.models import Base, DisputeCase

#: 32 random bytes: unguessable, and short enough to read out over a phone
TOKEN_BYTES = 32


class MediationSession(Base):
    """One dispute being mediated remotely, and the precedents gathered for it."""
    __tablename__ = "mediation_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    #: the dispute in the mediator's words; shown to the parties with the packet
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    owner: Mapped[User] = relationship()
    pins: Mapped[list[PinnedPrecedent]] = relationship(
        back_populates="mediation_session", cascade="all, delete-orphan", order_by="PinnedPrecedent.id")
    links: Mapped[list[ShareLink]] = relationship(
        back_populates="mediation_session", cascade="all, delete-orphan", order_by="ShareLink.id")


class PinnedPrecedent(Base):
    """A precedent case in a session, with the mediator's note on why it matters here."""
    __tablename__ = "pinned_precedents"
    __table_args__ = (UniqueConstraint("session_id", "case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_cases.id", ondelete="CASCADE"))
    note: Mapped[str] = mapped_column(Text, default="")
    pinned_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    mediation_session: Mapped[MediationSession] = relationship(back_populates="pins")
    case: Mapped[DisputeCase] = relationship()


class ShareLink(Base):
    """Read-only access to a session's packet for whoever holds the token, until expiry or revocation."""
    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("mediation_sessions.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: secrets.token_urlsafe(TOKEN_BYTES))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    mediation_session: Mapped[MediationSession] = relationship(back_populates="links")

    def state(self, now: dt.datetime | None = None) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if (now or utcnow()) >= self.expires_at else "active"
