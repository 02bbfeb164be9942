"""The Elasticsearch backend: the same answers as the embedded one, versioned writes, failures kept queued."""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
from sqlalchemy import select

from casekb.config import load_settings
from conftest import SEARCH_BACKENDS, backend_settings, case_row, write_jsonl
from corpus.importer import import_file
from indexer import api as indexer_api
from indexer.api import Indexer, open_backend
from indexer.backend_common import IndexWriteError
from indexer.documents import IndexDocument
from indexer.elasticsearch_backend import ElasticsearchBackend
from indexer.query import Filters, SearchQuery
from kb.models import DisputeCase, IndexTask, Organisation

#: Keyword and filter queries over the demo corpus, each compared between the two backends.
AGREEMENT_QUERIES = [
    ("民间借贷", {}), ("离婚", {}), ("继承", {}), ("买卖合同", {}), ("邻居 楼上 漏水", {}), ("借款 利息", {}),
    ("工伤", {}), ("離婚 撫養費", {}), ("宅基地", {}), ("物业费", {}), ("交通事故 赔偿", {}), ("拖欠工资", {}),
    ("医疗纠纷", {}), ("噪音", {}), ("土地承包", {}), ("拆迁 补偿", {}), ("装修 质量", {}), ("赡养 老人", {}),
    ("彩礼", {}), ('"借款合同"', {}), ('"交通事故" 保险', {}),
    ("借款", {"filters": Filters(categories=("合同",))}),
    ("离婚", {"filters": Filters(outcomes=("成功",))}),
    ("赔偿", {"filters": Filters(received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 6, 30))}),
    ("纠纷", {"filters": Filters(exemplar_only=True)}),
    ("借款", {"filters": Filters(amount_min=10000)}),
    ("借款", {"sort": "date_desc"}), ("借款", {"page": 2}),
    ("", {"filters": Filters(categories=("邻里",))}), ("", {}),
]


def ranked(result) -> list[tuple[float, tuple[int, ...]]]:
    """Hits as groups of equal sort key, each group's ids sorted, the last group left out: equal
    scores (or dates) may come in any order, and a page may end inside a group."""
    groups: list[tuple[float, list[int]]] = []
    for hit in result.hits:
        key = hit.score or (hit.received_on.toordinal() if hit.received_on else -1)
        if groups and abs(groups[-1][0] - key) <= 1e-6 * max(1.0, abs(key)):  # float32 rounding
            groups[-1][1].append(hit.case_id)
        else:
            groups.append((key, [hit.case_id]))
    return [tuple(sorted(ids)) for _key, ids in groups[:-1]]


def facet_counts(result) -> dict[str, dict[str, int]]:
    return {name: {bucket.value: bucket.count for bucket in buckets} for name, buckets in result.facets.items()}


@pytest.fixture
def es_backend(request, settings):
    return open_backend(backend_settings(settings, "elasticsearch", request))


def test_keyword_and_filter_queries_agree_with_the_embedded_backend(demo_index, demo_database):
    _, database = demo_database
    embedded, elastic = demo_index("embedded"), demo_index("elasticsearch")
    with database.sessions() as session:
        county = session.scalar(select(Organisation.id).where(Organisation.level == "county").order_by(Organisation.id))
    queries = AGREEMENT_QUERIES + [("借款", {"filters": Filters(organisation_id=county)})]
    for text, options in queries:
        query = SearchQuery(text=text, size=20, **options)
        a, b = embedded.search(query), elastic.search(query)
        assert (a.total, facet_counts(a), ranked(a)) == (b.total, facet_counts(b), ranked(b)), (text, options)
        shown_b = {hit.case_id: (hit.snippet, hit.matched_terms) for hit in b.hits}
        for hit in a.hits:
            if hit.case_id in shown_b:
                assert (hit.snippet, hit.matched_terms) == shown_b[hit.case_id]


def document(case_id: int, version: int, title: str, **fields) -> IndexDocument:
    values = dict(case_id=case_id, external_id=f"e-{case_id}", version=version, title=title, text=title + "的经过",
                  category="合同", cause="", region="", organisation_ids=(), outcome="", exemplar=False,
                  received_on=None, amount=None)
    return IndexDocument(**{**values, **fields})


def titles(backend, text: str) -> list[str]:
    return [hit.title for hit in backend.search(SearchQuery(text=text)).hits]


def test_a_stale_write_never_overwrites_a_newer_version(es_backend):
    with es_backend.writer() as writer:
        writer.upsert([document(1, 5, "宅基地纠纷")])
    with es_backend.writer() as writer:
        writer.upsert([document(1, 4, "借款纠纷")])  # an older row version arriving late
    assert titles(es_backend, "纠纷") == ["宅基地纠纷"]
    with es_backend.writer() as writer:
        writer.upsert([document(1, 6, "借款纠纷")])
    assert titles(es_backend, "纠纷") == ["借款纠纷"]


def test_a_document_the_cluster_rejects_is_reported_by_id(es_backend):
    with es_backend.writer() as writer, pytest.raises(IndexWriteError) as failure:
        writer.upsert([document(1, 1, "借款纠纷"), document(2, 1, "借款纠纷", amount="很多")])
    assert failure.value.case_ids == [2]
    assert titles(es_backend, "借款") == ["借款纠纷"]


def test_failed_cases_stay_in_the_outbox_and_the_others_leave(db, es_backend, settings, tmp_path, monkeypatch):
    indexer = Indexer(db, es_backend)
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(3)]))
    with db.sessions() as session:
        bad = max(session.scalars(select(IndexTask.entity_id)))
    good_document_for = indexer_api.document_for

    def document_for(case, *group):
        doc = good_document_for(case, *group)
        return dataclasses.replace(doc, amount="很多") if doc.case_id == bad else doc

    monkeypatch.setattr(indexer_api, "document_for", document_for)  # data the cluster refuses, for one case
    with pytest.raises(IndexWriteError):
        indexer.drain()
    with db.sessions() as session:
        assert set(session.scalars(select(IndexTask.entity_id))) == {bad}
    assert es_backend.document_count() == 2
    monkeypatch.undo()
    assert indexer.drain() == 1 and es_backend.document_count() == 3


def test_writes_during_a_rebuild_reach_the_new_index_too(db, es_backend, settings, tmp_path):
    indexer = Indexer(db, es_backend)
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(3)]))
    indexer.drain()
    with es_backend.rebuild() as writer:
        writer.upsert([])
        import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [case_row(9, title="宅基地纠纷")]))
        indexer.drain()  # another process's indexer, while the rebuild runs
    assert [hit.title for hit in es_backend.search(SearchQuery(text="宅基地")).hits] == ["宅基地纠纷"]


def test_settings_choose_the_backend_and_its_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEKB_BACKEND", "elasticsearch")
    monkeypatch.setenv("CASEKB_ES_URL", "https://search.example:9200")
    monkeypatch.setenv("CASEKB_ES_API_KEY", "a2V5")
    monkeypatch.setenv("CASEKB_ES_INDEX", "county-cases")
    settings = load_settings(home=tmp_path)
    backend = open_backend(settings)
    assert isinstance(backend, ElasticsearchBackend) and backend.alias == "county-cases"
    node = backend.client.transport.node_pool.get()
    assert node.config.verify_certs and backend.client._headers["authorization"] == "ApiKey a2V5"
    monkeypatch.setenv("CASEKB_BACKEND", "solr")
    with pytest.raises(ValueError, match="CASEKB_BACKEND"):
        load_settings(home=tmp_path)


def test_a_case_deleted_while_a_rebuild_runs_stays_deleted_after_the_swap(db, backend, settings, tmp_path,
                                                                          monkeypatch):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(4)]))
    Indexer(db, backend).drain()
    read_documents, deleted = indexer_api._load_documents, []

    def read_then_delete(session, case_ids):
        """The rebuild reads a chunk; then another process deletes one of its cases and indexes that."""
        docs = read_documents(session, case_ids)
        if not deleted:
            deleted.append(case_ids[0])
            with db.transaction() as other:
                other.delete(other.get(DisputeCase, case_ids[0]))
            indexing = threading.Thread(target=Indexer(db, backend).drain)
            indexing.start()
            # The embedded backend's rebuild holds its write lock, so there that indexer waits for the swap.
            indexing.join(timeout=None if backend.name == "elasticsearch" else 1)
            threads.append(indexing)
        return docs

    threads: list[threading.Thread] = []
    monkeypatch.setattr(indexer_api, "_load_documents", read_then_delete)
    Indexer(db, backend, batch_size=2).reindex()
    threads[0].join()
    assert backend.document_count() == 3
    assert deleted[0] not in {hit.case_id for hit in backend.search(SearchQuery(text="借款", size=10)).hits}


@pytest.mark.parametrize("kind", SEARCH_BACKENDS)
def test_processes_creating_the_first_index_at_once_share_one(kind, settings, request):
    kind_settings = backend_settings(settings, kind, request)
    # Each with its own client (or file handles), as in separate processes.
    starters = [open_backend(kind_settings) for _ in range(4)]
    ready = threading.Barrier(len(starters))
    failures = []

    def write_first(number: int) -> None:
        ready.wait()
        try:
            with starters[number].writer() as writer:
                writer.upsert([document(number + 1, 1, f"第{number + 1}件借款纠纷")])
        except Exception as error:  # noqa: BLE001  (asserted below)
            failures.append(error)

    threads = [threading.Thread(target=write_first, args=(n,)) for n in range(len(starters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert starters[0].document_count() == len(starters)
    if kind == "elasticsearch":
        assert len(starters[0].generations()) == 1
