"""The Flask app factory: the JSON API, the web UI and, for `casekb serve`, the background indexer."""
from __future__ import annotations

import os

from flask import Flask

from casekb.config import Settings, load_settings
from indexer.api import open_backend
from kb.db import Database
from search_api import api, records, sessions, stats, views
from search_api.auth import csrf, init_auth
from search_api.ext import CaseKB
from search_api.listing import IdConverter
from search_api.problems import register_error_handlers


def create_app(settings: Settings | None = None, start_indexer: bool = False) -> Flask:
    """A configured app; with start_indexer, a daemon thread keeps the index in step with the database."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.url_map.converters["id"] = IdConverter
    kb = CaseKB(settings, Database(settings.database_url), open_backend(settings))
    app.extensions["casekb"] = kb
    init_auth(app, settings.home, os.environ.get("CASEKB_SECRET_KEY"))
    for blueprint in (api.bp, records.bp, stats.bp):
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)  # the API checks CSRF itself, for browser sessions only: tokens need none
    app.register_blueprint(views.bp)
    app.register_blueprint(sessions.bp)
    register_error_handlers(app)
    if start_indexer:
        kb.start_indexer(learn_causes=True)
    return app
