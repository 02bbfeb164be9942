"""The usual alternatives over the very same jieba tokens: rank_bm25 (pure Python) and SQLite FTS5."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tantivy
from rank_bm25 import BM25Okapi

from indexer.text import Segmenter, normalise

TOP = 10


#: rank_bm25 keeps every document's term counts in Python dicts: above this many cases it is left out.
BM25_MAX_DOCS = 200_000
#: (case id, category, received day, terms) of one indexed case
Document = tuple[int, str, int, list[str]]


def tokenised_documents(searcher: tantivy.Searcher, segmenter: Segmenter) -> Iterator[Document]:
    """Every indexed case with the terms casekb's `terms` field holds (title and masked text, segmented)."""
    found = searcher.search(tantivy.Query.all_query(), limit=max(1, searcher.num_docs), count=False)
    for _score, address in found.hits:
        doc = searcher.doc(address)
        text = normalise(doc["title"][0].decode()) + "\n" + normalise(doc["text"][0].decode())
        yield doc["case_id"][0], doc["category"][0], doc["received_day"][0], segmenter.terms(text)


class RankBM25:
    """BM25Okapi over all documents; a filter keeps the best-scoring documents that pass it."""

    def __init__(self, documents: list[Document]):
        self.case_ids = np.array([d[0] for d in documents])
        self.categories = np.array([d[1] for d in documents])
        self.received_days = np.array([d[2] for d in documents])
        self.bm25 = BM25Okapi([d[3] for d in documents])

    def search(self, terms: tuple[str, ...], category: str | None, since_day: int | None) -> list[int]:
        scores = self.bm25.get_scores(list(terms))
        if category is not None:
            passes = (self.categories == category) & (self.received_days >= since_day)
            scores = np.where(passes, scores, -np.inf)
        best = np.argpartition(-scores, min(TOP, len(scores) - 1))[:TOP]
        best = best[np.argsort(-scores[best])]
        return [int(self.case_ids[i]) for i in best if scores[i] > 0]


class SqliteFts5:
    """An FTS5 table of space-joined tokens (unicode61 splits only on spaces here), ranked by bm25()."""

    def __init__(self, documents: Iterable[Document], path: Path):
        path.unlink(missing_ok=True)
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("CREATE VIRTUAL TABLE docs USING fts5(tokens)")
            db.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY, category TEXT, received_day INTEGER)")
            for case_id, category, day, terms in documents:
                db.execute("INSERT INTO docs (rowid, tokens) VALUES (?, ?)", (case_id, " ".join(terms)))
                db.execute("INSERT INTO meta VALUES (?, ?, ?)", (case_id, category, day))
            db.execute("CREATE INDEX meta_filter ON meta (category, received_day)")
            db.execute("INSERT INTO docs (docs) VALUES ('optimize')")
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        if not hasattr(self._local, "db"):
            self._local.db = sqlite3.connect(self.path, check_same_thread=False)
        return self._local.db

    def search(self, terms: tuple[str, ...], category: str | None, since_day: int | None) -> list[int]:
        if not terms:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        if category is None:
            sql, args = "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?", (match, TOP)
        else:
            sql = ("SELECT docs.rowid FROM docs JOIN meta ON meta.id = docs.rowid WHERE docs MATCH ? "
                   "AND meta.category = ? AND meta.received_day >= ? ORDER BY bm25(docs) LIMIT ?")
            args = (match, category, since_day, TOP)
        return [row[0] for row in self._db().execute(sql, args)]
