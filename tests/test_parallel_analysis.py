"""Token fields worked out in worker processes are the ones the indexing process would work out."""
from __future__ import annotations

import json

from conftest import SHARED_DATA
from indexer.backend_common import analysed_fields
from indexer.documents import IndexDocument
from indexer.parallel_analysis import PARALLEL_MIN_DOCS, Analyser
from indexer.text import segmenter_for


def test_workers_give_the_same_fields_in_the_same_order():
    rows = [json.loads(line) for line in (SHARED_DATA / "cases_demo.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [IndexDocument(case_id=i, external_id=row["id"], version=1, title=row["title"], text=row["text"],
                          category=row["category"], cause=row.get("cause") or "", region="", organisation_ids=(),
                          outcome="", exemplar=False, received_on=None, amount=None)
            for i, row in enumerate(rows[:PARALLEL_MIN_DOCS + 50])]
    segmenter = segmenter_for(SHARED_DATA / "legal_terms.txt")
    analyser = Analyser(segmenter, workers=2)
    try:
        in_workers = list(analyser.fields(docs))
        assert analyser._pool is not None  # the workers did the work
    finally:
        analyser.close()
    assert in_workers == [analysed_fields(doc, segmenter) for doc in docs]
