"""Who is asking: login sessions with CSRF protection for the UI, bearer tokens for scripts, roles."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from kb.accounts import User, authenticate, record, user_for_token
from search_api.ext import casekb

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ROLE_LABELS = {"admin": "管理员", "manager": "管理人员", "trainer": "培训人员", "mediator": "调解员"}


@dataclass(frozen=True)
class Viewer(UserMixin):
    """A snapshot of the signed-in user for one request (no live ORM object outlives its session)."""
    id: int
    username: str
    role: str
    organisation_id: int | None
    #: materialised path of the user's organisation, for the personal-data scope
    organisation_path: str | None

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.username, user.role, user.organisation_id,
                   user.organisation.path if user.organisation else None)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]


def viewer() -> Viewer | None:
    """The signed-in user, or None for anonymous requests."""
    return current_user if current_user.is_authenticated else None


def audit(action: str, target: str = "", **detail) -> None:
    """Record an action of the current requester in the audit log, in its own transaction."""
    with casekb().db.transaction() as db_session:
        who = viewer()
        record(db_session, db_session.get(User, who.id) if who else None, action, str(target), **detail)


def public(view):
    """Marks a view that anyone may call without signing in."""
    view.public = True
    return view


def roles(*allowed: str):
    """Only users with one of these roles may call the view (403 otherwise)."""
    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if current_user.role not in allowed:
                raise Forbidden("Your role may not do this.")
            return view(*args, **kwargs)
        return guarded
    return decorate


def _once(loader):
    """A failed user lookup counts as anonymous for the rest of the request, so the error page
    (whose context processor asks for the user again) does not fail the same way."""
    @wraps(loader)
    def load(arg):
        try:
            return loader(arg)
        except Exception:
            g._login_user = login_manager.anonymous_user()
            raise
    return load


@login_manager.user_loader
@_once
def _load_user(user_id: str) -> Viewer | None:
    with casekb().db.sessions() as db_session:
        user = db_session.get(User, int(user_id))
        return Viewer.of(user) if user and user.active else None


@login_manager.request_loader
@_once
def _load_token_user(req) -> Viewer | None:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    with casekb().db.sessions() as db_session:
        user = user_for_token(db_session, token.strip())
        if user is None:
            return None
        g.via_token = True
        return Viewer.of(user)


def _require_login():
    """Every view needs a signed-in user unless marked public; session-based API writes need a CSRF token."""
    view = current_app.view_functions.get(request.endpoint)
    if view is None or request.endpoint == "static" or getattr(view, "public", False):
        return None  # the stylesheet too: shared packets and the login page need it
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            raise Unauthorized("Sign in, or send an API token as 'Authorization: Bearer <token>'.",
                               www_authenticate=WWWAuthenticate("bearer", {"realm": "casekb"}))
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if request.path.startswith("/api/") and request.method not in SAFE_METHODS and not g.get("via_token"):
        csrf.protect()  # a browser session writing through the API: same CSRF rule as the forms
    return None


def _secret_key(home: Path) -> str:
    """CASEKB_SECRET_KEY or, failing that, a random key kept in the data directory so sessions survive restarts."""
    path = home / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def init_auth(app: Flask, home: Path, secret_key: str | None) -> None:
    app.config.update(SECRET_KEY=secret_key or _secret_key(home), SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True, WTF_CSRF_TIME_LIMIT=None)
    csrf.init_app(app)
    login_manager.init_app(app)
    app.before_request(_require_login)
    app.register_blueprint(bp)


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


def _safe_next(target: str | None) -> str:
    """Only a path on this site, so the login page cannot be used to redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("views.search")


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm(next=request.args.get("next", ""))
    error = None
    if form.validate_on_submit():
        with casekb().db.sessions() as db_session:
            user = authenticate(db_session, form.username.data, form.password.data)
            found = Viewer.of(user) if user else None
        if found:
            session.clear()  # a fresh session on login: no fixation
            login_user(found)
            audit("login")
            return redirect(_safe_next(form.next.data))
        error = "用户名或密码不正确。"
    return render_template("login.html", form=form, error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
