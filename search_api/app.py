"""The Flask app factory: the JSON API, the web UI and, for `casekb serve`, the background indexer."""
from __future__ import annotations

from flask import Flask

from casekb.config import Settings, load_settings
from indexer.api import open_backend
from kb.db import Database
from search_api import api, views
from search_api.ext import CaseKB
from search_api.problems import register_error_handlers


def create_app(settings: Settings | None = None, start_indexer: bool = False) -> Flask:
    """A configured app; with start_indexer, a daemon thread keeps the index in step with the database."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    kb = CaseKB(settings, Database(settings.database_url), open_backend(settings))
    app.extensions["casekb"] = kb
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    register_error_handlers(app)
    if start_indexer:
        kb.start_indexer()
    return app
