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
#: cases embedded per round of the background indexer, between two outbox drains
EMBED_CASES_PER_ROUND = 16


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

    def start_indexer(self, learn_causes: bool = False) -> threading.Thread:
        """Drain the outbox every `index_poll_seconds` in a daemon thread, so edits reach search promptly.
        `learn_causes` (a serving app): also learn the library's causes anew whenever the index changed."""
        thread = threading.Thread(target=self._keep_index_current, args=(learn_causes,), name="casekb-indexer",
                                  daemon=True)
        thread.start()
        return thread

    def _keep_index_current(self, learn_causes: bool) -> None:
        """Keyword changes first; then embeddings a few cases at a time, so edits never wait
        behind the slow embedding of a whole corpus. The cause model (a few seconds for the demo
        corpus) is learnt here, so the next case description searched for does not wait for it."""
        indexer = self.indexer()
        causes_learnt = False
        while True:
            busy = False
            try:
                changed = indexer.drain()
                if learn_causes and (changed or not causes_learnt):
                    self.backend.cause_model()
                    causes_learnt = True
                if self.backend.encoder_factory is not None:
                    busy = indexer.embed(self.backend.encoder(), limit=EMBED_CASES_PER_ROUND) > 0
            except Exception:
                # A locked database or a full disk is usually temporary: the tasks stay queued, retry.
                log.exception("background indexing failed; retrying in %s s", self.settings.index_poll_seconds)
            if self.stop_indexing.wait(0 if busy else self.settings.index_poll_seconds):
                return


def casekb() -> CaseKB:
    """The CaseKB of the current app."""
    return current_app.extensions["casekb"]
