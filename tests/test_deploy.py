"""deploy/docker-compose.yml runs only real casekb commands and settings, and the worker it runs
keeps the index current on both search backends. (No containers here: the compose file itself is
not started by the tests.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from casekb.cli import main
from casekb.config import PROJECT_ROOT
from conftest import SEARCH_BACKENDS, backend_settings, case_row, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer, open_backend

COMPOSE = PROJECT_ROOT / "deploy" / "docker-compose.yml"


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]


def test_the_compose_file_runs_casekb_commands_that_exist_with_their_options():
    commands = [service["command"] for service in compose_services().values()
                if isinstance(service.get("command"), list) and service["command"][0] == "casekb"]
    assert {tuple(command[1:2]) for command in commands} >= {("serve",), ("worker",), ("init",), ("model",)}
    for command in commands:
        # Unknown subcommands or options fail before --help is handled.
        result = CliRunner().invoke(main, [*command[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_every_casekb_setting_in_the_compose_file_is_one_casekb_reads():
    config = (PROJECT_ROOT / "casekb" / "config.py").read_text(encoding="utf-8")
    names = {name for service in compose_services().values() for name in service.get("environment", {})
             if name.startswith("CASEKB_")}
    assert "CASEKB_BACKEND" in names and "CASEKB_ES_CA_CERTS" in names
    assert sorted(name for name in names if f'"{name}"' not in config) == []


def environment_for(settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CASEKB_")}
    env.update(CASEKB_HOME=str(settings.home), CASEKB_DATABASE_URL=settings.database_url,
               CASEKB_SHARED_DATA=str(settings.shared_data), CASEKB_BACKEND=settings.backend)
    if settings.backend == "elasticsearch":
        env.update(CASEKB_ES_URL=settings.es_url, CASEKB_ES_INDEX=settings.es_index)
    return env


@pytest.mark.parametrize("kind", SEARCH_BACKENDS)
def test_the_worker_keeps_the_index_current_until_stopped(kind, db, settings, tmp_path, request):
    kind_settings = backend_settings(settings, kind, request)
    backend, indexer = open_backend(kind_settings), Indexer(db, open_backend(kind_settings))
    worker = subprocess.Popen([str(Path(sys.executable).with_name("casekb")), "worker"], env=environment_for(
        kind_settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for batch in range(2):  # cases queued before and while it runs
            import_file(db, settings, write_jsonl(tmp_path / f"{batch}.jsonl",
                                                  [case_row(batch * 10 + i) for i in range(3)]))
            deadline = time.monotonic() + 120
            while (indexer.pending() or backend.document_count() < 3 * (batch + 1)) and time.monotonic() < deadline:
                assert worker.poll() is None, worker.stdout.read()
                time.sleep(0.5)
            assert indexer.pending() == 0 and backend.document_count() == 3 * (batch + 1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert f"keeping the {kind} index current" in worker.stdout.read()
