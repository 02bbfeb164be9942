"""The token fields of many documents, worked out in worker processes.

Segmentation and normalisation are pure CPU work that holds the GIL; while the workers analyse, the
indexing process loads the next documents from the database and tantivy's writer threads index.
Workers build their own segmenter from the same dictionaries and engine, so the fields are the same.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Iterable

from indexer.backend_common import analysed_fields
from indexer.documents import IndexDocument
from indexer.text import Segmenter

#: Fewer documents than this in one call are analysed in the calling process: starting the workers
#: (about two seconds: imports and dictionaries) only pays off on large batches.
PARALLEL_MIN_DOCS = 200
#: Documents sent to a worker at a time.
CHUNK_DOCS = 25
#: More workers than this would wait on the indexing process, which adds what they return.
MAX_WORKERS = 4

_segmenter: Segmenter | None = None


def _start_worker(dictionaries, engine: str) -> None:
    global _segmenter
    _segmenter = Segmenter(dictionaries, engine)


def _fields_in_worker(doc: IndexDocument) -> dict[str, str]:
    return analysed_fields(doc, _segmenter)


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Analyser:
    """analysed_fields of documents, in order: in this process for a few, in worker processes (started on
    first need, stopped by close) for many, when there is more than one CPU."""

    def __init__(self, segmenter: Segmenter, workers: int | None = None):
        self.segmenter = segmenter
        self.workers = workers if workers is not None else min(MAX_WORKERS, _usable_cpus())
        self._pool: ProcessPoolExecutor | None = None

    def fields(self, docs: list[IndexDocument]) -> Iterable[dict[str, str]]:
        if self.workers < 2 or len(docs) < PARALLEL_MIN_DOCS:
            return (analysed_fields(doc, self.segmenter) for doc in docs)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_start_worker,
                                             initargs=(self.segmenter.dictionaries, self.segmenter.engine))
        return self._pool.map(_fields_in_worker, docs, chunksize=CHUNK_DOCS)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
