"""Users with roles, API tokens for scripts, and the audit log of who saw and shared what."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import JSON, DateTime, ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from kb.models import Base, Organisation

#: admin: everything; manager: statistics and read access; trainer: curates exemplars;
#: mediator: searches, sees parties of its own organisation subtree, runs remote sessions
ROLES = ("admin", "manager", "trainer", "mediator")
MIN_PASSWORD_LENGTH = 8


def utcnow() -> dt.datetime:
    """Naive UTC, the way every DateTime column here stores time."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    #: a mediator sees parties' personal data of this organisation and everything below it
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())

    organisation: Mapped[Organisation | None] = relationship(lazy="joined")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 is stored, so a database leak reveals no token."""
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """Who searched, viewed, exported or shared what, and when."""
    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    #: empty for anonymous actors (a party opening a share link)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    #: kept apart from user_id so the entry still says who after the user is gone
    actor: Mapped[str] = mapped_column(String(100))
    #: search / view / export / share / revoke / share-view / exemplar / login
    action: Mapped[str] = mapped_column(String(30), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, username: str, password: str, role: str,
             organisation_id: int | None = None) -> User:
    """A new user; ValueError when the role, the password or the organisation is not acceptable."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if role == "mediator" and organisation_id is None:
        raise ValueError("a mediator belongs to an organisation (its personal-data scope)")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise ValueError(f"there is no organisation with id {organisation_id}")
    if session.scalar(select(User.id).where(User.username == username)):
        raise ValueError(f"user {username!r} exists already")
    user = User(username=username, password_hash=generate_password_hash(password), role=role,
                organisation_id=organisation_id)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.active))
    return user if user and user.check_password(password) else None


def issue_token(session: Session, user: User, name: str) -> str:
    """A new API token for the user; the plain token is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token), name=name))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                  ApiToken.revoked_at.is_(None)))
    return found.user if found and found.user.active else None


def record(session: Session, user: User | None, action: str, target: str = "", **detail) -> None:
    """Add an audit entry to the session's transaction."""
    session.add(AuditEntry(user_id=user.id if user else None, actor=user.username if user else "anonymous",
                           action=action, target=target, detail=detail))
