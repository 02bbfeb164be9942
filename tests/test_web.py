"""The search API and web UI against a real SQLite library and a real tantivy index."""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from logins import add_user_with_token, use_token

from casekb.config import PROJECT_ROOT, Settings, load_settings
from indexer.api import Indexer, open_backend
from kb.db import Database, migrate
from kb.models import DisputeCase, ExemplarMark, Organisation, Party, UnsuccessfulCaseTracking
from search_api.app import create_app
from search_api.params import MAX_QUERY_CHARS

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
PROBLEM_JSON = "application/problem+json"

# Personal data that appears in case texts and party rows, and must never be shown.
ID_NUMBER = "330302198503127716"
PHONES = ("13812345678", "13987654321", "13700001111")
NAMES = ("张伟明", "李建国", "陈美玲")
ADDRESS = "温州市鹿城区五马街88号"
SECRETS = (ID_NUMBER, *PHONES, *NAMES, ADDRESS)

CASES = [
    dict(title="张伟明与李建国民间借贷纠纷", category="合同", cause="民间借贷纠纷", region="鹿城区", organisation_id=2,
         outcome="成功", received_on=dt.date(2024, 3, 5), agreed_amount=50000, case_number="（2024）温鹿人调字第12号",
         intake="申请调解",
         facts=f"申请人张伟明（身份证号{ID_NUMBER}，电话{PHONES[0]}）称，2022年借给被申请人李建国人民币5万元用于经营，"
               "约定一年归还，到期后李建国未还款。",
         process=f"调解员电话联系李建国（{PHONES[1]}），释明法律后果，双方同意分期还款。",
         agreement_terms="李建国分五期归还借款5万元。",
         parties=[dict(role="申请人", name="张伟明", id_number=ID_NUMBER, phone=PHONES[0], address=ADDRESS),
                  dict(role="被申请人", name="李建国", phone=PHONES[1])],
         exemplar=dict(note="调解员对李建国释法析理，促成分期还款。", techniques=["释法析理", "分期履行"])),
    dict(title="朋友之间借款不还", category="合同", cause="民间借贷纠纷", region="瓯海区", organisation_id=3,
         outcome="不成功", received_on=dt.date(2023, 11, 20), agreed_amount=20000,
         facts="双方系朋友，被申请人向申请人借款2万元并出具借条，后以资金困难为由拒不还款。",
         tracking=dict(destination="court", referred_on=dt.date(2023, 12, 5),
                       later_result="申请人已起诉，法院审理中（联系电话13600002222）")),
    dict(title="离婚后子女抚养费纠纷", category="婚姻家庭", cause="离婚纠纷", region="瓯海区", organisation_id=3,
         outcome="成功", received_on=dt.date(2024, 1, 10), agreed_amount=36000,
         facts=f"申请人陈美玲（手机{PHONES[2]}）称，双方协议离婚，婚生子随其生活，男方每月支付抚养费1500元，后停止支付抚养费。",
         parties=[dict(role="申请人", name="陈美玲", phone=PHONES[2])]),
    dict(title="楼上漏水引发邻里纠纷", category="邻里", cause="相邻关系纠纷", region="鹿城区", organisation_id=2,
         outcome="成功", received_on=dt.date(2024, 6, 1), agreed_amount=3000,
         facts="邻居楼上卫生间漏水，导致楼下天花板霉变，双方多次争吵。调解员上门查看漏水情况。",
         exemplar=dict(note="上门勘查，现场调解。", techniques=["现场调解"])),
    dict(title="拖欠工资劳动争议", category="劳动争议", cause="劳动报酬纠纷", region="龙湾区", outcome="不成功",
         received_on=dt.date(2024, 2, 15), facts="十二名工人被拖欠工资三个月，老板失联，工人要求支付工资。"),
    dict(title="物业费纠纷", category="物业", cause="物业服务合同纠纷", region="鹿城区", organisation_id=2, outcome="成功",
         received_on=dt.date(2023, 8, 8), agreed_amount=2400,
         facts="物业公司张贴<催缴通知>，业主认为电梯长期故障，拒交物业费。"),
    dict(title="电动车与轿车交通事故赔偿", category="道路交通事故", cause="机动车交通事故责任纠纷", region="龙湾区",
         outcome="成功", received_on=dt.date(2024, 4, 20), agreed_amount=80000,
         facts="电动车与轿车相撞，电动车驾驶人受伤住院，双方就医疗费、误工费赔偿发生争议。"),
    dict(title="变更抚养关系纠纷", category="婚姻家庭", cause="抚养纠纷", region="鹿城区", organisation_id=2, outcome="终止",
         received_on=dt.date(2022, 12, 1), facts="离婚后孩子随父亲生活，母亲要求变更抚养关系，并由父亲支付抚养费。"),
]


def _add_cases(db: Database, rows: list[dict]) -> list[int]:
    with db.transaction() as session:
        cases = []
        for i, row in enumerate(rows):
            row = dict(row)
            parties = [Party(kind="person", **p) for p in row.pop("parties", [])]
            exemplar, tracking = row.pop("exemplar", None), row.pop("tracking", None)
            case = DisputeCase(external_id=f"web-{time.monotonic_ns()}-{i}", parties=parties, **row)
            if exemplar:
                case.exemplar = ExemplarMark(curator="培训科", **exemplar)
            if tracking:
                case.tracking = UnsuccessfulCaseTracking(**tracking)
            cases.append(case)
        session.add_all(cases)
        session.flush()
        return [case.id for case in cases]


def _settings(home, **overrides):
    return load_settings(home=home, database_url=f"sqlite:///{home / 'casekb.sqlite3'}", shared_data=SHARED_DATA,
                         **overrides)


#: a city with two counties; tests that need a township add it
ORGANISATIONS = (
    dict(id=1, name="温州市人民调解委员会", level="city", path="/1/"),
    dict(id=2, name="鹿城区人民调解委员会", level="county", parent_id=1, path="/1/2/"),
    dict(id=3, name="瓯海区人民调解委员会", level="county", parent_id=1, path="/1/3/"),
)


def build_library(home, organisations=ORGANISATIONS) -> tuple[Settings, Database, list[int]]:
    """A migrated SQLite library under `home` with these organisations and CASES, indexed."""
    settings = _settings(home)
    db = Database(settings.database_url)
    migrate(db.engine)
    with db.transaction() as session:
        session.add_all([Organisation(**org) for org in organisations])
    ids = _add_cases(db, CASES)
    Indexer(db, open_backend(settings)).drain()
    return settings, db, ids


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Settings and case ids of a small indexed library."""
    settings, db, ids = build_library(tmp_path_factory.mktemp("web"))
    token = add_user_with_token(db, "manager", "manager")
    db.dispose()
    return settings, ids, token


@pytest.fixture(scope="module")
def client(library):
    """A manager's client: signed in, but not allowed parties' personal data."""
    return use_token(create_app(library[0]).test_client(), library[2])


def search(client, **params) -> dict:
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_no_personal_data(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_search_returns_the_documented_shape(client):
    body = search(client, q="民间借贷")
    assert set(body) == {"total", "took_ms", "hits", "facets", "suggestions", "query_terms", "page", "size", "mode",
                         "semantic_coverage", "also_searched", "likely_causes", "no_search_words"}
    assert body["also_searched"] == [] and body["likely_causes"] == []
    assert body["semantic_coverage"] is None
    assert body["total"] == 2 and body["page"] == 1 and body["size"] == 10
    hit = body["hits"][0]
    assert set(hit) == {"case_id", "external_id", "title", "score", "snippet", "matched_terms", "category", "cause",
                        "region", "outcome", "received_on", "exemplar", "best_passage", "duplicates",
                        "shared_facts"}
    assert hit["cause"] == "民间借贷纠纷" and hit["score"] > 0 and hit["matched_terms"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", hit["received_on"])
    assert set(body["facets"]) == {"category", "cause", "region", "outcome"}
    assert body["facets"]["category"] == [{"value": "合同", "count": 2}]


def test_post_search_takes_the_same_parameters_as_json(client):
    params = {"q": "纠纷", "category": ["合同", "婚姻家庭"], "from": "2024-01-01", "facets": ["region"]}
    posted = client.post("/api/v1/search", json=params).get_json()
    fetched = search(client, q="纠纷", category=["合同", "婚姻家庭"], **{"from": "2024-01-01"}, facets="region")
    assert posted["total"] == fetched["total"] == 2
    assert [h["case_id"] for h in posted["hits"]] == [h["case_id"] for h in fetched["hits"]]
    assert set(posted["facets"]) == {"region"}


def test_filters_narrow_results_and_facet_counts_match(client):
    everything = search(client)
    assert everything["total"] == len(CASES)
    for field, param in (("category", "category"), ("region", "region"), ("outcome", "outcome")):
        for bucket in everything["facets"][field]:
            narrowed = search(client, **{param: bucket["value"]})
            assert narrowed["total"] == bucket["count"]
            assert {hit[field] for hit in narrowed["hits"]} == {bucket["value"]}
    in_lucheng = search(client, region="鹿城区")
    assert sum(b["count"] for b in in_lucheng["facets"]["category"]) == in_lucheng["total"] == 4
    # A facet ignores its own filter, so the other regions stay on offer.
    assert len(in_lucheng["facets"]["region"]) == 3


@pytest.mark.parametrize("params, expected", [
    ({"exemplar": "true"}, 2),
    ({"from": "2024-01-01", "to": "2024-04-30"}, 4),
    ({"amount_min": "10000"}, 4),
    ({"amount_min": "10000", "amount_max": "40000"}, 2),
    ({"organisation": "1"}, 6),
    ({"organisation": "2"}, 4),
    ({"category": ["合同", "邻里"]}, 3),
    ({"q": "借款", "outcome": "成功"}, 1),
])
def test_each_filter_restricts_the_result(client, params, expected):
    assert search(client, **params)["total"] == expected


def test_sorting_and_paging(client):
    newest = search(client, sort="date_desc", size=3, page=1)
    days = [hit["received_on"] for hit in newest["hits"]]
    assert days == sorted(days, reverse=True) and days[0] == "2024-06-01"
    last = search(client, sort="date_asc", size=3, page=3)
    assert len(last["hits"]) == 2 and last["page"] == 3


def test_traditional_characters_find_simplified_text(client):
    titles = [hit["title"] for hit in search(client, q="離婚 撫養費")["hits"]]
    assert "离婚后子女抚养费纠纷" in titles


@pytest.mark.parametrize("params, field", [
    ({"size": "0"}, "size"),
    ({"size": "101"}, "size"),
    ({"page": "101", "size": "10"}, "page"),
    ({"page": "0"}, "page"),
    ({"page": "two"}, "page"),
    ({"sort": "random"}, "sort"),
    ({"mode": "fuzzy"}, "mode"),
    ({"from": "2024-13-01"}, "from"),
    ({"from": "2024-05-01", "to": "2024-01-01"}, "to"),
    ({"amount_min": "500", "amount_max": "100"}, "amount_max"),
    ({"exemplar": "perhaps"}, "exemplar"),
    ({"organisation": "x"}, "organisation"),
    ({"facets": "category,colour"}, "facets"),
    ({"colour": "red"}, "colour"),
])
def test_bad_query_parameters_are_400_problems(client, params, field):
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 400
    assert response.content_type == PROBLEM_JSON
    body = response.get_json()
    assert body["status"] == 400 and body["title"] == "Bad Request" and body["type"] and body["detail"]
    assert field in {error["field"] for error in body["errors"]}
    assert all(error["reason"] for error in body["errors"])


def test_bad_json_bodies(client):
    invalid = client.post("/api/v1/search", json={"q": "借款", "size": "many", "category": [1]})
    assert invalid.status_code == 422 and invalid.content_type == PROBLEM_JSON
    assert {e["field"] for e in invalid.get_json()["errors"]} == {"size", "category"}
    # JSON has real lists: a string where the schema says array is refused, not taken as one value
    not_a_list = client.post("/api/v1/search", json={"q": "借款", "region": "", "cause": "民间借贷纠纷"})
    assert not_a_list.status_code == 422 and not_a_list.content_type == PROBLEM_JSON
    assert {e["field"] for e in not_a_list.get_json()["errors"]} == {"region", "cause"}
    blank_values = client.post("/api/v1/search", json={"q": "借款", "region": [""], "cause": []})
    assert blank_values.status_code == 200
    assert blank_values.get_json()["total"] == client.post("/api/v1/search", json={"q": "借款"}).get_json()["total"]
    for data in ("{not json", json.dumps(["q", "借款"])):
        malformed = client.post("/api/v1/search", data=data, content_type="application/json")
        assert malformed.status_code == 400 and malformed.content_type == PROBLEM_JSON
    pasted = "借款" * (MAX_QUERY_CHARS // 2)
    longest = client.post("/api/v1/search", json={"q": pasted})  # as long as a query may be
    assert longest.status_code == 200 and longest.get_json()["total"] > 0
    too_long = client.post("/api/v1/search", json={"q": pasted + "。"})
    assert too_long.status_code == 422 and too_long.content_type == PROBLEM_JSON
    assert [e["field"] for e in too_long.get_json()["errors"]] == ["q"]


def test_unknown_things_are_404_and_wrong_methods_405(client):
    missing_case = client.get("/api/v1/cases/999999")
    assert missing_case.status_code == 404 and missing_case.content_type == PROBLEM_JSON
    assert missing_case.get_json()["status"] == 404
    assert client.get("/api/v1/nothing-here").content_type == PROBLEM_JSON
    wrong_method = client.delete("/api/v1/search")
    assert wrong_method.status_code == 405 and wrong_method.content_type == PROBLEM_JSON
    assert "GET" in wrong_method.headers["Allow"]
    page = client.get("/cases/999999")
    assert page.status_code == 404 and page.content_type.startswith("text/html")
    assert "找不到这个页面" in page.get_data(as_text=True)


def test_ui_shows_parameter_errors_as_a_page(client):
    page = client.get("/?size=0")
    assert page.status_code == 400 and page.content_type.startswith("text/html")
    assert "size" in page.get_data(as_text=True)


def test_case_api_masks_personal_data(client, library):
    response = client.get(f"/api/v1/cases/{library[1][0]}")
    assert response.status_code == 200
    case = response.get_json()
    raw = response.get_data(as_text=True)
    assert_no_personal_data(raw)
    assert case["personal_data_shown"] is False
    assert case["parties"] == [
        {"role": "申请人", "kind": "person", "name": "张某", "sex": None, "age": None, "occupation": None,
         "id_number": None, "phone": None, "address": None},
        {"role": "被申请人", "kind": "person", "name": "李某", "sex": None, "age": None, "occupation": None,
         "id_number": None, "phone": None, "address": None}]
    assert case["title"] == "张某与李某民间借贷纠纷"
    assert "[身份证号]" in case["facts"] and "[电话]" in case["facts"] and "[电话]" in case["process"]
    assert case["organisation"] == "鹿城区人民调解委员会"
    assert case["agreed_amount"] == 50000 and case["received_on"] == "2024-03-05"
    assert case["exemplar"] == {"note": "调解员对李某释法析理，促成分期还款。", "techniques": ["释法析理", "分期履行"],
                                "curator": "培训科"} and case["referral"] is None


def test_an_unsuccessful_case_says_where_it_went(client, library):
    response = client.get(f"/api/v1/cases/{library[1][1]}")
    assert "13600002222" not in response.get_data(as_text=True)
    assert response.get_json()["referral"] == {
        "destination": "court", "destination_label": "诉讼", "referred_on": "2023-12-05",
        "later_result": "申请人已起诉，法院审理中（联系电话[电话]）", "synthetic": False}
    page = client.get(f"/cases/{library[1][1]}").get_data(as_text=True)
    assert "13600002222" not in page
    assert "后续去向" in page and "诉讼（2023-12-05 转出）：申请人已起诉，法院审理中" in page


def test_case_page_is_masked_and_lists_similar_cases(client, library):
    ids = library[1]
    page = client.get(f"/cases/{ids[0]}").get_data(as_text=True)
    assert_no_personal_data(page)
    assert "张某与李某民间借贷纠纷" in page and "[身份证号]" in page
    assert "（2024）温鹿人调字第12号" in page and "50,000.00 元" in page and "释法析理" in page
    similar = page.split('id="similar"', 1)[1]
    assert f'href="/cases/{ids[1]}"' in similar and f'href="/cases/{ids[0]}"' not in similar


def test_search_page_marks_matches_and_hides_personal_data(client):
    page = client.get("/?q=借款").get_data(as_text=True)
    assert_no_personal_data(page)
    assert "<mark>借款</mark>" in page and "命中词" in page and "张某" in page
    assert "优秀案例" in page
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    assert client.get(stylesheet).status_code == 200


def test_colloquial_search_says_what_else_it_searched(client):
    body = search(client, q="借钱不还")
    assert {"借款", "还款"} <= set(body["also_searched"])
    assert body["total"] == 2 and {h["cause"] for h in body["hits"]} == {"民间借贷纠纷"}
    page = client.get("/?q=借钱不还").get_data(as_text=True)
    assert "同时检索了：" in page and "<mark>借款</mark>" in page
    assert search(client, q="老板拖欠工资")["also_searched"] == ["劳动报酬", "用人单位", "雇主"]  # words, not pieces


def test_a_query_of_stopwords_only_says_it_lists_every_case(client):
    body = search(client, q="的")
    assert body["no_search_words"] is True and body["total"] == search(client)["total"] > 0
    assert search(client, q="借款")["no_search_words"] is False
    assert "没有可以检索的词语" in client.get("/?q=的").get_data(as_text=True)
    assert "没有可以检索的词语" not in client.get("/?q=借款").get_data(as_text=True)


def test_search_page_escapes_case_text(client):
    page = client.get("/?q=物业费").get_data(as_text=True)
    assert "&lt;催缴通知&gt;" in page and "<催缴通知>" not in page


def _links(page: str) -> list[dict]:
    return [parse_qs(urlsplit(unescape(href)).query) for href in re.findall(r'href="(/\?[^"]*)"', page)]


def test_facet_links_keep_the_other_parameters(client):
    page = client.get("/?" + urlencode({"q": "纠纷", "region": "鹿城区", "page": "1"})).get_data(as_text=True)
    adding = [link for link in _links(page) if link.get("category") == ["合同"]]
    assert adding and all(link["q"] == ["纠纷"] and link["region"] == ["鹿城区"] and "page" not in link
                          for link in adding)
    removing = [link for link in _links(page) if link.get("q") == ["纠纷"] and "region" not in link]
    assert removing, "each active filter can be removed"


def test_empty_result_suggests_dropping_a_filter(client):
    body = search(client, q="借款", region="龙湾区")
    assert body["total"] == 0 and body["hits"] == []
    assert {"message": "去掉筛选条件「地区」可找到 2 个案例", "drop_filter": "regions", "total": 2} in body["suggestions"]
    page = client.get("/?" + urlencode({"q": "借款", "region": "龙湾区"})).get_data(as_text=True)
    assert "没有找到符合条件的案例" in page
    assert f'href="/?{urlencode({"q": "借款"})}"' in page


def test_health_and_openapi(client, library):
    assert client.get("/api/v1/health").get_json() == {
        "status": "ok", "documents": len(CASES), "shown_cases": len(CASES), "pending_index_tasks": 0, "modes": ["keyword"],
        "embedded_cases": 0}
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/search", "/api/v1/cases/{case_id}", "/api/v1/health"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["SearchParams"]["properties"]["size"]["maximum"] == library[0].max_page_size
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(schemas)


def test_internal_errors_are_problems_without_stack_traces(tmp_path):
    client = create_app(_settings(tmp_path)).test_client()  # no schema: every database query fails
    api = client.get("/api/v1/health")
    assert api.status_code == 500 and api.content_type == PROBLEM_JSON
    assert "Traceback" not in api.get_data(as_text=True) and "sqlite" not in api.get_data(as_text=True).lower()
    page = client.get("/cases/1", headers={"Authorization": "Bearer any"})  # looking the token up fails
    assert page.status_code == 500 and "服务器出错了" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)


def test_background_indexer_brings_edits_to_search(tmp_path):
    settings = _settings(tmp_path, index_poll_seconds=0.05)
    db = Database(settings.database_url)
    migrate(db.engine)
    app = create_app(settings, start_indexer=True)
    client = use_token(app.test_client(), add_user_with_token(db, "indexer-watcher", "manager"))
    try:
        _add_cases(db, [CASES[4]])  # the one without an organisation
        deadline = time.monotonic() + 15
        while search(client, q="拖欠工资")["total"] == 0:
            assert time.monotonic() < deadline, "the background indexer did not index the new case"
            time.sleep(0.05)
        # and it learns the causes of the changed index, so no search has to wait for that
        backend = app.extensions["casekb"].backend
        while (backend._cause_model or (None,))[0] != backend.cause_state():
            assert time.monotonic() < deadline, "the background indexer did not learn the causes"
            time.sleep(0.05)
    finally:
        app.extensions["casekb"].stop_indexing.set()
        db.dispose()


def test_semantic_mode_without_a_model_is_refused_and_not_advertised(client):
    response = client.get("/api/v1/search", query_string={"q": "借钱不还", "mode": "semantic"})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "casekb model install" in response.get_data(as_text=True)
    schema = client.get("/api/v1/openapi.json").get_json()
    mode = next(p for p in schema["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "mode")
    assert mode["schema"]["enum"] == ["keyword"]


def test_ui_falls_back_to_keyword_search_without_a_model(client):
    page = client.get("/", query_string={"q": "民间借贷", "mode": "hybrid"}).get_data(as_text=True)
    assert "已改用关键词检索" in page and '<mark class="term">' in page


def test_search_without_a_mode_uses_keyword_where_no_model_is_installed(client):
    body = search(client, q="借钱不还")
    assert body["mode"] == "keyword"
    schema = client.get("/api/v1/openapi.json").get_json()
    mode = next(p for p in schema["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "mode")
    assert mode["schema"]["default"] == "keyword"
