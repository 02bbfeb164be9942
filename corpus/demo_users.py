"""One demo login per role, so the UI can be tried out; the mediator belongs to the first county."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.accounts import ROLES, User, add_user
from kb.models import Organisation

#: demo passwords are printed by `casekb demo`; they protect nothing but synthetic data
DEMO_PASSWORD = "{role}-demo-2024"


def add_demo_users(session: Session) -> list[tuple[str, str, str]]:
    """Create the missing demo users; (username, password, scope) of every demo user."""
    county = session.scalar(select(Organisation).where(Organisation.level == "county").order_by(Organisation.id))
    logins = []
    for role in ROLES:
        username, password = f"demo-{role}", DEMO_PASSWORD.format(role=role)
        organisation = county if role == "mediator" else None
        if session.scalar(select(User.id).where(User.username == username)) is None:
            add_user(session, username, password, role, organisation.id if organisation else None)
        scope = organisation.name if organisation else ("all cases" if role == "admin" else "none (masked text only)")
        logins.append((username, password, scope))
    return logins
