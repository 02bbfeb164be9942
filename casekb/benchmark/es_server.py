"""An Elasticsearch to compare with: CASEKB_ES_URL when set, else noida-db started on a free port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from elasticsearch import Elasticsearch

START_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def elasticsearch_url(configured: str | None, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(address, what it is); a noida-db started here is stopped on exit."""
    if configured:
        yield configured, "Elasticsearch cluster at CASEKB_ES_URL"
        return
    port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("noida-db")), "start", "--host", "127.0.0.1",
               "--only", "elasticsearch", "--elasticsearch-port", str(port), "--data-dir", str(data_dir)]
    # Its own session: the noida-db command wraps a binary, and both must stop.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        client, deadline = Elasticsearch(url), time.monotonic() + START_SECONDS
        while not client.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"noida-db did not start at {url}")
            time.sleep(0.1)
        yield url, "noida-db (Elasticsearch API emulator)"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
