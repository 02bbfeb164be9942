"""More like this (similar cases for a case) and hybrid as the default mode, with the real model."""
from __future__ import annotations

import dataclasses
from urllib.parse import quote

import pytest
from logins import add_user_with_token, use_token
from sqlalchemy import select

from conftest import SHARED_DATA, short_demo_cases, write_jsonl
from corpus.importer import import_file
from indexer.api import Indexer
from indexer.more_like_this import LikeCase, more_like_this
from indexer.query import Filters
from indexer.similarity import load_element_table
from kb.models import DisputeCase
from search_api.app import create_app

CAUSES = {"民间借贷纠纷": 6, "离婚纠纷": 6, "劳动争议": 4, "买卖合同纠纷": 3}
LOAN = "民间借贷纠纷"
DIVORCE = "离婚纠纷"


def corpus() -> list[dict]:
    """Short demo cases of a few causes, and the first loan case again under another id."""
    rows = short_demo_cases(CAUSES, 600)
    first_loan = next(row for row in rows if row["cause"] == LOAN)
    return rows + [{**first_loan, "id": "again-" + first_loan["id"]}]


@pytest.fixture(scope="module")
def library(model_dir, tmp_path_factory):
    """An app over an indexed library, embedded with the installed model (SQLite: the database is not
    what is tested here)."""
    from casekb.config import load_settings
    from kb.db import Database, migrate

    home = tmp_path_factory.mktemp("home")
    settings = load_settings(home=home, shared_data=SHARED_DATA, embedding_model=model_dir)
    db = Database(settings.database_url)
    migrate(db.engine)
    rows = corpus()
    import_file(db, settings, write_jsonl(home / "cases.jsonl", rows))
    app = create_app(settings)
    backend = app.extensions["casekb"].backend
    indexer = Indexer(db, backend)
    indexer.drain()
    keyword_only = {}
    with db.sessions() as session:
        ids = dict(session.execute(select(DisputeCase.external_id, DisputeCase.id)).all())
    loan, again = ids[rows[-1]["id"].removeprefix("again-")], ids[rows[-1]["id"]]
    keyword_only["similar"] = backend.similar(loan, size=5, exclude=(again,))
    assert indexer.embed(backend.encoder()) == len(rows) - 1  # a duplicate record needs no vectors
    client = use_token(app.test_client(), add_user_with_token(db, "mlt-mediator", "manager"))
    yield dataclasses.make_dataclass("Library", ["client", "backend", "loan", "again", "keyword_only"])(
        client, backend, loan, again, keyword_only)
    db.dispose()


def test_similar_cases_share_the_dispute_and_say_why(library):
    body = library.client.get(f"/api/v1/cases/{library.loan}/similar").get_json()
    ids = [hit["case_id"] for hit in body["hits"]]
    assert len(ids) == 5 and library.loan not in ids and library.again not in ids
    assert [hit["cause"] for hit in body["hits"]].count(LOAN) >= 4  # 5 other loan cases among 19
    # why each matched: the distinctive terms it shares, or the passage nearest the case's meaning
    assert all(hit["matched_terms"] or hit["best_passage"] for hit in body["hits"])
    assert sum(bool(hit["matched_terms"]) for hit in body["hits"]) >= 3
    assert sum(bool(hit["best_passage"]) for hit in body["hits"]) >= 3
    # the duplicate record needs no vectors and is never shown: every case search shows is embedded
    assert body["semantic_coverage"] == [len(corpus()) - 1] * 2
    assert library.backend.document_count() == len(corpus()) == library.backend.shown_case_count() + 1
    health = library.client.get("/api/v1/health").get_json()
    assert (health["documents"], health["shown_cases"], health["embedded_cases"]) == (len(corpus()), len(corpus()) - 1,
                                                                                       len(corpus()) - 1)


def test_similar_cases_are_reranked_case_to_case_and_name_the_key_facts_they_share(library):
    hits = library.backend.similar(library.loan, size=5, exclude=(library.again,)).hits
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    facts = {rule.name for rule in load_element_table().rules}
    assert all(set(hit.shared_facts) <= facts for hit in hits)
    assert any(hit.shared_facts for hit in hits if hit.cause == LOAN)
    body = library.client.get(f"/api/v1/cases/{library.loan}/similar").get_json()
    assert [hit["shared_facts"] for hit in body["hits"]] == [list(hit.shared_facts) for hit in hits]


def test_similar_cases_keep_to_the_filters(library):
    hits = library.backend.similar(library.loan, size=5, filters=Filters(causes=(DIVORCE,))).hits
    assert hits and all(hit.cause == DIVORCE for hit in hits)


def test_a_case_judged_by_its_text_alone_first_finds_one_of_its_cause(library):
    # what `casekb eval` measures: the same two stages, the query's title and cause withheld
    title, text = library.backend.stored_texts([library.loan])[library.loan]
    hits = more_like_this(library.backend, LikeCase(library.loan, text), size=5, exclude=(library.again,)).hits
    assert library.loan not in [hit.case_id for hit in hits] and library.again not in [hit.case_id for hit in hits]
    assert hits[0].cause == LOAN


def test_similar_cases_by_terms_alone_before_anything_is_embedded(library):
    result = library.keyword_only["similar"]
    assert result.hits and library.loan not in [h.case_id for h in result.hits]
    assert library.again not in [h.case_id for h in result.hits]
    assert [hit.cause for hit in result.hits].count(LOAN) >= 3
    assert not any(hit.best_passage for hit in result.hits)


def test_similar_for_an_unknown_case_is_a_404_problem(library):
    response = library.client.get("/api/v1/cases/999999/similar")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_search_without_a_mode_is_hybrid_where_the_model_is_installed(library):
    body = library.client.get("/api/v1/search", query_string={"q": "借钱不还 打了欠条"}).get_json()
    assert body["mode"] == "hybrid" and body["likely_causes"] == []  # typed words are not a case description
    assert [hit["cause"] for hit in body["hits"][:5]].count(LOAN) >= 3
    assert any(hit["best_passage"] for hit in body["hits"])
    page = library.client.get("/", query_string={"q": "借钱不还"}).get_data(as_text=True)
    assert 'value="hybrid" checked' in page


def test_a_pasted_case_description_is_searched_like_a_case_in_the_api_and_the_page(library):
    _title, text = library.backend.stored_texts([library.loan])[library.loan]
    body = library.client.post("/api/v1/search", json={"q": text, "size": 5}).get_json()
    assert body["mode"] == "hybrid" and body["hits"][0]["case_id"] in (library.loan, library.again)
    assert [hit["cause"] for hit in body["hits"]].count(LOAN) >= 3  # 6 loan cases among 19, by the text alone
    assert any(hit["shared_facts"] for hit in body["hits"])
    page = library.client.get("/", query_string={"q": text}).get_data(as_text=True)
    assert "共同要素：" in page
    summary = page.split('id="summary"', 1)[1].split("</p>", 1)[0]
    assert f"「{text[:39]}…」" in summary and text[:60] not in summary  # the summary quotes only its start
    # the causes it likely has: the likeliest first, each a link that filters by it
    likely = body["likely_causes"]
    assert likely[0]["cause"] == LOAN and 0 < likely[0]["likelihood"] <= 1
    assert [c["likelihood"] for c in likely] == sorted((c["likelihood"] for c in likely), reverse=True)
    causes_line = page.split('class="likely-causes"', 1)[1].split("</p>", 1)[0]
    assert f"cause={quote(LOAN)}" in causes_line and f"{LOAN} <span" in causes_line
    filtered = library.client.get("/api/v1/search", query_string={"q": text, "cause": LOAN}).get_json()
    assert {hit["cause"] for hit in filtered["hits"]} == {LOAN}
