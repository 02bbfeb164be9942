"""Roles and personal data: who may see parties, on every endpoint that returns case text; the audit log."""
from __future__ import annotations

import datetime as dt

import pytest
from logins import add_user_with_token, csrf_token, sign_in, use_token
from sqlalchemy import select
from test_web import NAMES, ORGANISATIONS, SECRETS, build_library

from kb.accounts import AuditEntry
from kb.models import LearningMaterial, UnsuccessfulCaseTracking
from search_api.app import create_app

#: who may see the parties of a case of organisation 2 (鹿城区, under the city 1; 4 is a township of 2)
ALLOWED = {"admin": True, "manager": False, "trainer": False, "mediator-city": True, "mediator-lucheng": True,
           "mediator-township": False, "mediator-ouhai": False}
USERS = {"admin": ("admin", None), "manager": ("manager", None), "trainer": ("trainer", None),
         "mediator-city": ("mediator", 1), "mediator-lucheng": ("mediator", 2),
         "mediator-township": ("mediator", 4), "mediator-ouhai": ("mediator", 3)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A library whose first case (organisation 2) holds personal data in its text, parties, tracking and material."""
    township = dict(id=4, name="五马街道人民调解委员会", level="township", parent_id=2, path="/1/2/4/")
    settings, db, ids = build_library(tmp_path_factory.mktemp("roles"), (*ORGANISATIONS, township))
    with db.transaction() as session:
        session.add(UnsuccessfulCaseTracking(case_id=ids[0], destination="court", referred_on=dt.date(2024, 5, 1),
                                             later_result="法院判决李建国归还张伟明借款。"))
        material = LearningMaterial(title="民间借贷调解要点", kind="guide", body="参考张伟明与李建国一案的分期还款方案。")
        session.add(material)
        session.flush()
        material.cases = [session.get(type(material).cases.property.mapper.class_, ids[0])]
    tokens = {name: add_user_with_token(db, name, role, org) for name, (role, org) in USERS.items()}
    db.dispose()
    app = create_app(settings)
    return app, ids, tokens


def client_of(world, name):
    app, _, tokens = world
    return use_token(app.test_client(), tokens[name])


def secrets_in(text: str) -> set[str]:
    return {secret for secret in SECRETS if secret in text}


@pytest.mark.parametrize("name", USERS)
def test_case_api_and_page_show_parties_only_to_their_organisation_subtree_and_admins(world, name):
    client, case_id = client_of(world, name), world[1][0]
    api = client.get(f"/api/v1/cases/{case_id}")
    page = client.get(f"/cases/{case_id}")
    assert api.status_code == page.status_code == 200
    body = api.get_json()
    assert body["personal_data_shown"] is ALLOWED[name]
    if ALLOWED[name]:
        assert body["title"] == "张伟明与李建国民间借贷纠纷"
        assert body["parties"][0]["id_number"] == "330302198503127716"
        assert {"张伟明", "330302198503127716", "温州市鹿城区五马街88号"} <= secrets_in(page.get_data(as_text=True))
    else:
        assert secrets_in(api.get_data(as_text=True)) == set()
        assert secrets_in(page.get_data(as_text=True)) == set()
        assert body["parties"][0]["name"] == "张某"


@pytest.mark.parametrize("name", USERS)
@pytest.mark.parametrize("path", [
    "/api/v1/search?q=借款", "/?q=借款", "/api/v1/cases/{id}/similar", "/api/v1/exemplars",
    "/exemplars", "/api/v1/learning-materials", "/api/v1/unsuccessful-cases", "/cases/{other}",
])
def test_every_other_view_of_case_text_is_masked_for_everyone(world, name, path):
    ids = world[1]
    response = client_of(world, name).get(path.format(id=ids[0], other=ids[1]))
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert secrets_in(text) == set()
    if "similar" in path:  # other cases than the one with the named parties: their texts, masked
        assert response.get_json()["hits"] and all(hit["snippet"] for hit in response.get_json()["hits"])
    elif "search" in path or "exemplars" in path or "materials" in path:
        assert "张某" in text or "李某" in text, "the masked text is there"


def test_searching_for_a_name_finds_nothing_because_the_index_holds_masked_text(world):
    for name in NAMES:
        assert client_of(world, "admin").get(f"/api/v1/search?q={name}").get_json()["total"] == 0


def test_anonymous_requests_get_401_problems_or_the_login_page(world):
    client = world[0].test_client()
    for path in ("/api/v1/search", f"/api/v1/cases/{world[1][0]}", "/api/v1/exemplars", "/api/v1/mediators"):
        response = client.get(path)
        assert response.status_code == 401 and response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    page = client.get("/?q=借款")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")
    bad_token = client.get("/api/v1/search", headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_login_form_signs_in_and_rejects_bad_passwords(world):
    client = world[0].test_client()
    assert sign_in(client, "trainer", "wrong password").status_code == 401
    response = sign_in(client, "trainer")
    assert response.status_code == 302
    assert "trainer（培训人员）" in client.get("/").get_data(as_text=True)
    # Only paths on this site are followed after login.
    other = world[0].test_client()
    form = {"username": "trainer", "password": "correct horse battery", "next": "//evil.example/x",
            "csrf_token": csrf_token(other)}
    assert other.post("/login", data=form).headers["Location"] == "/"


def test_forms_need_a_csrf_token(world):
    client = world[0].test_client()
    assert client.post("/login", data={"username": "trainer", "password": "correct horse battery"}).status_code == 400
    sign_in(client, "trainer")
    case_id = world[1][2]
    assert client.post(f"/cases/{case_id}/exemplar", data={"note": "好"}).status_code == 400
    # A browser session writing through the API needs the token too; a bearer token does not.
    assert client.put(f"/api/v1/cases/{case_id}/exemplar", json={"note": "好"}).status_code == 400
    token = csrf_token(client, "/")
    assert client.put(f"/api/v1/cases/{case_id}/exemplar", json={"note": "好"},
                      headers={"X-CSRFToken": token}).status_code == 204
    assert client.delete(f"/api/v1/cases/{case_id}/exemplar", headers={"X-CSRFToken": token}).status_code == 204


def test_only_trainers_and_admins_mark_exemplars(world):
    case_id = world[1][2]
    denied = client_of(world, "mediator-lucheng").put(f"/api/v1/cases/{case_id}/exemplar", json={"note": "x"})
    assert denied.status_code == 403 and denied.content_type == "application/problem+json"
    trainer = client_of(world, "trainer")
    marked = trainer.put(f"/api/v1/cases/{case_id}/exemplar", json={"note": "耐心倾听", "techniques": ["情感疏导"]})
    assert marked.status_code == 204
    listed = trainer.get("/api/v1/exemplars", query_string={"technique": "情感疏导"}).get_json()
    assert [item["case_id"] for item in listed["items"]] == [case_id] and listed["items"][0]["curator"] == "trainer"
    assert listed["techniques"]["情感疏导"] == 1
    invalid = trainer.put(f"/api/v1/cases/{case_id}/exemplar", json={"note": 5})
    assert invalid.status_code == 422
    assert trainer.put("/api/v1/cases/999999/exemplar", json={}).status_code == 404
    assert trainer.delete(f"/api/v1/cases/{case_id}/exemplar").status_code == 204
    assert trainer.get("/api/v1/exemplars", query_string={"technique": "情感疏导"}).get_json()["total"] == 0


def test_sessions_are_for_mediators_and_admins(world):
    assert client_of(world, "trainer").get("/sessions").status_code == 403
    assert client_of(world, "manager").get("/sessions").status_code == 403
    assert client_of(world, "mediator-ouhai").get("/sessions").status_code == 200


def test_the_audit_log_records_searches_and_views(world):
    client = client_of(world, "manager")
    client.get("/api/v1/search", query_string={"q": "漏水", "region": "鹿城区"})
    client.get(f"/api/v1/cases/{world[1][3]}")
    db = world[0].extensions["casekb"].db
    with db.sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.actor == "manager")
                                  .order_by(AuditEntry.id.desc()).limit(2)).all()
    view, search = entries
    assert (search.action, search.target, search.detail["region"], search.detail["total"]) == ("search", "漏水", ["鹿城区"], 1)
    assert (view.action, view.target, view.detail) == ("view", f"case:{world[1][3]}", {"personal_data": False})


def test_only_admins_read_the_audit_log(world):
    assert client_of(world, "manager").get("/api/v1/audit").status_code == 403
    client_of(world, "trainer").get("/api/v1/search", query_string={"q": "物业费"})
    page = client_of(world, "admin").get("/api/v1/audit", query_string={"actor": "trainer", "action": "search"})
    entry = page.get_json()["items"][0]
    assert (entry["actor"], entry["action"], entry["target"]) == ("trainer", "search", "物业费")
