"""The same case text imported twice: flagged at import, one record shown in search."""
from __future__ import annotations

import unicodedata

from alembic import command
from logins import PASSWORD, sign_in
from sqlalchemy import select, text

from conftest import case_row, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer, open_backend
from indexer.embedded import FORMAT_FILE
from indexer.query import SearchQuery
from kb.accounts import add_user
from kb.db import Database, alembic_config, migrate
from kb.duplicates import duplicate_groups, duplicates_of
from kb.fingerprints import nfkc, text_fingerprint
from kb.models import DisputeCase, IndexTask
from search_api.app import create_app

TEXT = "原告诉称，2015年3月被告向其借款七万元，出具欠条一张，至今未还。"


def test_fingerprint_ignores_spacing_punctuation_width_and_case():
    same = ["原告诉称 2015年3月被告向其借款七万元 出具欠条一张 至今未还",
            "原告诉称，２０１５年３月被告向其借款七万元，出具欠条一张，至今未还！",
            "原告诉称,2015年3月被告向其借款七万元,\n出具欠条一张,至今未还."]
    assert {text_fingerprint(t) for t in same} == {text_fingerprint(TEXT)}
    assert text_fingerprint(TEXT.replace("七万", "八万")) != text_fingerprint(TEXT)
    assert text_fingerprint("Ab1") == text_fingerprint("ａｂ１")


def test_fast_nfkc_is_nfkc():
    every_wide_char = "".join(map(chr, [0x3000, *range(0xFF01, 0xFFF0)]))
    # full-width forms next to combining marks, jamo and compatibility characters that compose across them
    texts = [every_wide_char, TEXT, "Ａ\u0301ｅ\u0308\uFFA1\uFFC2\u1100\u1161㎡℃①…", "ｶﾞｷﾞ\uFF9E\u3099ﾊﾟ", "ﬁ\u0327ｃ\u0327"]
    for text in texts:
        assert nfkc(text) == unicodedata.normalize("NFKC", text)


def queued(db) -> list[int]:
    with db.sessions() as session:
        return list(session.scalars(select(IndexTask.entity_id)))


def test_changing_one_record_of_a_group_queues_the_whole_group(db):
    with db.transaction() as session:
        first = DisputeCase(external_id="d-1", title="借款", category="合同", facts=TEXT)
        other = DisputeCase(external_id="d-3", title="借款", category="合同", facts="另一个案件的事实。")
        session.add_all([first, other])
    with db.transaction() as session:
        session.query(IndexTask).delete()
        second = DisputeCase(external_id="d-2", title="借款（重复）", category="合同", facts=TEXT + " ")
        session.add(second)
    # The new record and the one it duplicates (whose duplicate count changed); not the unrelated one.
    assert sorted(set(queued(db))) == sorted([first.id, second.id])

    with db.transaction() as session:
        session.query(IndexTask).delete()
        session.delete(session.get(DisputeCase, first.id))
    # The remaining record becomes the one shown, so it is re-indexed.
    assert sorted(set(queued(db))) == sorted([first.id, second.id])

    with db.transaction() as session:
        session.query(IndexTask).delete()
        back = DisputeCase(external_id="d-1", title="借款", category="合同", facts=TEXT)
        session.add(back)
    with db.transaction() as session:
        session.query(IndexTask).delete()
        session.get(DisputeCase, second.id).facts = "改写后的事实，不再重复。"
    # A record whose facts changed leaves its old group: the group's other record is re-indexed too.
    assert sorted(set(queued(db))) == sorted([second.id, back.id])


def test_import_flags_a_text_imported_again_under_another_id(db, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1, text=TEXT), case_row(2)]))
    report = import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [
        case_row(7, text=TEXT.replace("，", ", ")), case_row(8, text=TEXT), case_row(9)]))
    assert report.duplicates == [("t-7", "t-1"), ("t-8", "t-1")]
    with db.sessions() as session:
        first = session.scalar(select(DisputeCase).where(DisputeCase.external_id == "t-1"))
        assert [c.external_id for c in duplicates_of(session, first)] == ["t-7", "t-8"]
        groups = duplicate_groups(session, {first.fingerprint, text_fingerprint("无关")})
        assert list(groups.values())[0].canonical_id == first.id
        assert list(groups.values())[0].size == 3


def test_migration_fingerprints_the_cases_already_stored(settings):
    database = Database(settings.database_url)
    try:
        command.upgrade(alembic_config(database.engine), "0003")
        with database.engine.begin() as conn:
            for i, facts in enumerate([TEXT, TEXT + "。", "别的事实"]):
                conn.execute(text("INSERT INTO dispute_cases (external_id, title, category, facts, elements, "
                                  "synthetic_fields, version) VALUES (:e, '借款', '合同', :f, '[]', '[]', 1)"),
                             {"e": f"m-{i}", "f": facts})
        migrate(database.engine)
        with database.sessions() as session:
            found = dict(session.execute(select(DisputeCase.external_id, DisputeCase.fingerprint)).all())
        assert found["m-0"] == found["m-1"] == text_fingerprint(TEXT)
        assert found["m-2"] == text_fingerprint("别的事实")
    finally:
        database.dispose()


def test_search_collapses_duplicates_into_the_earliest_record(db, settings, tmp_path, backend):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1, text=TEXT), case_row(2)]))
    import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [case_row(7, text=TEXT + "！")]))
    indexer = Indexer(db, backend)
    indexer.drain()
    hits = backend.search(SearchQuery(text="欠条", facets=())).hits
    assert [(h.external_id, h.duplicates) for h in hits] == [("t-1", 1)]
    assert backend.search(SearchQuery(text="", facets=())).total == 2
    assert backend.document_count() == 3 and backend.shown_case_count() == 2

    with db.transaction() as session:
        session.delete(session.scalar(select(DisputeCase).where(DisputeCase.external_id == "t-1")))
    indexer.drain()
    hits = backend.search(SearchQuery(text="欠条", facets=())).hits
    assert [(h.external_id, h.duplicates) for h in hits] == [("t-7", 0)]


def test_the_web_ui_shows_the_collapsed_copies(db, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1, text=TEXT), case_row(2)]))
    import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [case_row(7, text=TEXT + "！")]))
    with db.transaction() as session:
        add_user(session, "dup-manager", PASSWORD, "manager")
        first, copy = (session.scalar(select(DisputeCase.id).where(DisputeCase.external_id == e)) for e in ("t-1", "t-7"))
    app = create_app(settings)
    Indexer(db, app.extensions["casekb"].backend).drain()
    client = app.test_client()
    sign_in(client, "dup-manager")
    page = client.get("/", query_string={"q": "欠条"}).get_data(as_text=True)
    assert "另有 1 条相同记录" in page and "测试案件7" not in page
    page = client.get(f"/cases/{first}").get_data(as_text=True)
    assert "文字相同的记录" in page and f'href="/cases/{copy}"' in page


def test_an_index_of_an_older_format_is_rebuilt_not_written_to(db, settings, tmp_path):
    backend = open_backend(settings)
    indexer = Indexer(db, backend)
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1), case_row(2)]))
    indexer.drain()
    old = (backend.root / "CURRENT").read_text()
    (backend.root / old / FORMAT_FILE).unlink()  # as written by casekb before formats were recorded
    assert backend.outdated()
    assert indexer.drain() == 2  # everything, although nothing was queued
    assert (backend.root / "CURRENT").read_text() != old and not backend.outdated()
    assert backend.search(SearchQuery(text="借款", facets=())).total == 2
