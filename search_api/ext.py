"""What the request handlers share, and the background indexer that keeps the index current."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import current_app

from casekb.config import Settings
from indexer.api import Indexer
from indexer.embedded import EmbeddedBackend
from kb.db import Database

log = logging.getLogger(__name__)


@dataclass
class CaseKB:
    """Settings, the case library and the search backend of one app."""
    settings: Settings
    db: Database
    backend: EmbeddedBackend
    #: set to stop the background indexer
    stop_indexing: threading.Event = field(default_factory=threading.Event)

    def indexer(self) -> Indexer:
        return Indexer(self.db, self.backend, self.settings.index_batch_size)

    def start_indexer(self) -> threading.Thread:
        """Drain the outbox every `index_poll_seconds` in a daemon thread, so edits reach search promptly."""
        thread = threading.Thread(target=self._keep_index_current, name="casekb-indexer", daemon=True)
        thread.start()
        return thread

    def _keep_index_current(self) -> None:
        indexer = self.indexer()
        while True:
            try:
                indexer.drain()
            except Exception:
                # A locked database or a full disk is usually temporary: the tasks stay queued, retry.
                log.exception("background indexing failed; retrying in %s s", self.settings.index_poll_seconds)
            if self.stop_indexing.wait(self.settings.index_poll_seconds):
                return


def casekb() -> CaseKB:
    """The CaseKB of the current app."""
    return current_app.extensions["casekb"]
