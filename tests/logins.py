"""Test helpers: users with tokens, signed-in browser sessions and their CSRF tokens."""
from __future__ import annotations

import re

from kb.accounts import add_user, issue_token
from kb.db import Database

PASSWORD = "correct horse battery"


def add_user_with_token(db: Database, username: str, role: str, organisation_id: int | None = None) -> str:
    """Create the user (password PASSWORD) and return a fresh API token."""
    with db.transaction() as session:
        return issue_token(session, add_user(session, username, PASSWORD, role, organisation_id), "tests")


def use_token(client, token: str):
    """The test client, sending the token as a bearer token on every request."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf[-_]token"[^>]*? (?:content|value)="([^"]+)"', page).group(1)


def sign_in(client, username: str, password: str = PASSWORD):
    """Sign in through the login form, the way a browser does; returns the response."""
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token(client)})
