"""The outbox keeps the index in step with the database, through crashes and rebuilds."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
from sqlalchemy import func, select

from conftest import case_row, write_jsonl
import indexer.api
from corpus.importer import import_file
from indexer.api import Indexer
from indexer.query import SearchQuery
from kb.models import DisputeCase, ExemplarMark, IndexTask, Party


def pending(db) -> list[int]:
    with db.sessions() as session:
        return list(session.scalars(select(IndexTask.entity_id).order_by(IndexTask.id)))


def total(backend, text: str = "") -> int:
    return backend.search(SearchQuery(text=text, facets=())).total


def live_generation(backend) -> str:
    if backend.name == "elasticsearch":
        return backend.live_generation()
    return (backend.root / "CURRENT").read_text()


def generation_exists(backend, generation: str) -> bool:
    if backend.name == "elasticsearch":
        return generation in backend.generations()
    return (backend.root / generation).exists()


def test_every_change_to_a_searchable_record_is_queued_in_the_same_transaction(db):
    with db.transaction() as session:
        case = DisputeCase(external_id="o-1", title="借款", category="合同", facts="借款未还")
        session.add(case)
    assert pending(db) == [case.id]
    with db.transaction() as session:
        session.add(Party(case_id=case.id, role="原告", name="王小明"))
        session.add(ExemplarMark(case_id=case.id, curator="培训组"))
    assert pending(db) == [case.id, case.id]


def test_a_rolled_back_change_queues_nothing(db):
    session = db.sessions()
    session.add(DisputeCase(external_id="o-2", title="借款", category="合同", facts="借款未还"))
    session.flush()
    session.rollback()
    session.close()
    assert pending(db) == []


def test_index_catches_up_after_a_crash_between_commit_and_indexing(db, indexer, backend, settings):
    script = textwrap.dedent(f"""
        import os
        from kb.db import Database
        from kb.models import DisputeCase
        db = Database({settings.database_url!r})
        with db.transaction() as session:
            session.add(DisputeCase(external_id="crash-1", title="宅基地纠纷", category="房屋宅基地",
                                    facts="两家因宅基地界址发生争执，邻居砌墙占用通道"))
        os._exit(9)  # dies before anything is indexed
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert total(backend, "宅基地") == 0
    assert len(pending(db)) == 1
    assert indexer.drain() == 1
    assert total(backend, "宅基地") == 1 and pending(db) == []


def test_replaying_tasks_is_harmless(db, indexer, backend, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(6)]))
    indexer.drain()
    # As if the process died after the index committed but before the tasks were deleted.
    with db.transaction() as session:
        for case_id in session.scalars(select(DisputeCase.id)):
            session.add(IndexTask(entity="case", entity_id=case_id))
    assert indexer.drain() == 6
    assert total(backend) == 6


def test_an_idle_drain_leaves_the_index_as_it_was(db, indexer, backend, settings, tmp_path):
    """The server drains the outbox every few seconds: with nothing queued, the index state (which
    the filter caches and the cause model are keyed by) must not change."""
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(3)]))
    assert indexer.drain() == 3
    before = backend.cause_state()
    assert indexer.drain() == 0 and indexer.drain() == 0
    assert backend.cause_state() == before and total(backend) == 3


def test_the_cause_state_follows_causes_and_texts_but_not_vectors(db, indexer, backend, settings, tmp_path):
    """The cause model retrains when the cause state changes: after a new cause, text or deletion,
    but not while cases are being embedded (each batch of vectors would cost a retraining)."""
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(3)]))
    indexer.drain()
    before = backend.cause_state()
    vectors = {case_id: (np.full((1, 384), 0.05, "float32"), digest) for case_id, digest in backend.text_hashes().items()}
    backend.store_vectors("test-model", 384, vectors, [])
    assert backend.embedded_case_count() == 3 and backend.cause_state() == before
    states = {before}
    for change in ({"cause": "劳动争议"}, {"facts": "申请人称被申请人拖欠工资三个月，请求支付。"}):
        with db.transaction() as session:
            case = session.scalars(select(DisputeCase).where(DisputeCase.external_id == "t-1")).one()
            for field, value in change.items():
                setattr(case, field, value)
        indexer.drain()
        assert backend.cause_state() not in states
        states.add(backend.cause_state())
    with db.transaction() as session:
        session.delete(session.scalars(select(DisputeCase).where(DisputeCase.external_id == "t-2")).one())
    indexer.drain()
    assert backend.cause_state() not in states and total(backend) == 2


def test_deleting_a_case_removes_it_from_the_index(db, indexer, backend, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1), case_row(2)]))
    indexer.drain()
    with db.transaction() as session:
        session.delete(session.scalar(select(DisputeCase).where(DisputeCase.external_id == "t-1")))
    indexer.drain()
    assert total(backend) == 1


def test_reindex_swaps_atomically_while_searches_keep_working(db, indexer, backend, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(120)]))
    indexer.drain()
    before = live_generation(backend)
    seen, errors, stop = set(), [], threading.Event()

    def search_loop():
        while not stop.is_set():
            try:
                seen.add(total(backend, "借款"))
            except Exception as exc:  # any failure during the swap is what this test looks for
                errors.append(exc)

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        assert indexer.reindex() == 120
        assert indexer.reindex() == 120
    finally:
        stop.set()
        thread.join()
    assert errors == [] and seen == {120}
    assert live_generation(backend) != before
    assert not generation_exists(backend, before)  # two swaps later, the first generation is cleaned up
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IndexTask)) == 0


def test_changes_queued_during_a_rebuild_are_not_lost(db, indexer, backend, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(3)]))
    with backend.rebuild() as writer:
        # a change committed while the new index is being written stays queued ...
        import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [case_row(9, title="宅基地纠纷")]))
        writer.upsert([])
    assert total(backend, "宅基地") == 0
    indexer.drain()  # ... and reaches the new index on the next drain
    assert total(backend, "宅基地") == 1


def test_drain_commits_in_several_batches_and_empties_the_outbox(db, backend, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(indexer.api, "COMMIT_CASES", 3)
    import_file(db, settings, write_jsonl(tmp_path / "cases.jsonl", [case_row(i) for i in range(10)]))
    with db.transaction() as session:  # a case deleted before indexing is taken out, not written
        session.delete(session.scalar(select(DisputeCase).where(DisputeCase.external_id == "t-4")))
    assert Indexer(db, backend, batch_size=2).drain() == 10
    assert pending(db) == [] and total(backend) == 9
    assert total(backend, "借款") == 9
