"""Statistics against plain SQL counts, on the raw rows and on the monthly summary; API, export, bench."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections import Counter, defaultdict

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from casekb.cli import main
from corpus.synthetic_records import generate
from kb.filters import Filters
from kb.models import (DisputeCase, ExemplarMark, LearningMaterial, Mediator, Organisation, Party, QualityReview,
                       UnsuccessfulCaseTracking)
from kb.statistics import (KIND_LABELS, LINKED_DATABASES, case_measures, linked_counts, organisation_structure, percentile,
                           refresh_if_stale, refresh_summary, summary_is_current)
from logins import add_user_with_token, use_token
from search_api.app import create_app

AS_OF = dt.date(2026, 11, 1)
RECORDS = 2000


@pytest.fixture
def library(db):
    generate(db.engine, RECORDS, seed=7)
    return db


def _plain_cases(db) -> list[dict]:
    """Every case with its exemplar flag and destination, read with plain SQL."""
    query = text("""
        SELECT c.id, c.category, c.region, c.outcome, c.received_on, c.closed_on, c.satisfaction, o.path,
               e.id IS NOT NULL AS exemplar, t.destination
        FROM dispute_cases c JOIN organisations o ON o.id = c.organisation_id
        LEFT JOIN exemplar_marks e ON e.case_id = c.id
        LEFT JOIN unsuccessful_case_tracking t ON t.case_id = c.id""")
    with db.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        for name in ("received_on", "closed_on"):
            if isinstance(row[name], str):
                row[name] = dt.date.fromisoformat(row[name])
    return rows


def _expected(rows: list[dict]) -> dict:
    closed = [r for r in rows if r["closed_on"]]
    days = sorted((r["closed_on"] - r["received_on"]).days for r in closed)
    satisfaction = [r["satisfaction"] for r in rows if r["satisfaction"] is not None]
    unresolved = Counter(r["destination"] or "untracked" for r in rows if r["outcome"] in ("不成功", "终止"))
    return {
        "received": len(rows), "closed": len(closed), "succeeded": sum(r["outcome"] == "成功" for r in rows),
        "unsuccessful_by_destination": dict(unresolved),
        "average_duration_days": round(sum(days) / len(days), 1) if days else None,
        "p90_duration_days": days[math.ceil(0.9 * len(days)) - 1] if days else None,
        "overdue": sum(1 for r in rows if r["closed_on"] is None
                       and r["received_on"] < AS_OF - dt.timedelta(days=30)),
        "exemplars": sum(bool(r["exemplar"]) for r in rows),
        "average_satisfaction": round(sum(satisfaction) / len(satisfaction), 2) if satisfaction else None,
    }


def _shown(measures) -> dict:
    data = measures.as_dict()
    return {key: data[key] for key in ("received", "closed", "succeeded", "unsuccessful_by_destination",
                                       "average_duration_days", "p90_duration_days", "overdue", "exemplars",
                                       "average_satisfaction")}


def _measures(db, filters=Filters(), by=(), parent=None):
    with db.sessions() as session:
        return case_measures(session, filters, by, parent=parent, as_of=AS_OF)


def test_percentile_is_nearest_rank():
    assert percentile({1: 9, 50: 1}, 0.9) == 1
    assert percentile({1: 8, 50: 2}, 0.9) == 50
    assert percentile({}, 0.9) is None


@pytest.mark.parametrize("use_summary", [False, True], ids=["raw", "summary"])
def test_totals_and_category_breakdown_match_plain_sql(library, use_summary):
    if use_summary:
        with library.transaction() as session:
            refresh_summary(session)
    with library.sessions() as session:
        assert summary_is_current(session) is use_summary
    rows = _plain_cases(library)
    [total] = _measures(library)
    assert _shown(total) == _expected(rows)
    by_category = {m.key[0]: _shown(m) for m in _measures(library, by=("category",))}
    groups = defaultdict(list)
    for row in rows:
        groups[row["category"]].append(row)
    assert by_category == {category: _expected(members) for category, members in groups.items()}


def test_summary_and_raw_rows_agree_on_every_dashboard_slice(library):
    slices = [((), Filters()), (("month",), Filters()), (("year",), Filters()),
              (("region", "category"), Filters()), (("organisation",), Filters()),
              (("quarter",), Filters(categories=("医疗",), received_from=dt.date(2025, 1, 1),
                                         received_to=dt.date(2025, 12, 31))),
              (("outcome",), Filters(regions=("第3区县",)))]
    raw = [[m.as_dict() for m in _measures(library, f, by)] for by, f in slices]
    with library.transaction() as session:
        refresh_summary(session)
    assert [[m.as_dict() for m in _measures(library, f, by)] for by, f in slices] == raw


def test_stale_summary_is_not_used(library):
    with library.transaction() as session:
        refresh_summary(session)
        session.add(DisputeCase(external_id="late", title="迟到的案件", category="邻里", facts="邻里纠纷",
                                received_on=dt.date(2025, 3, 3), region="第1区县"))
    with library.sessions() as session:
        assert not summary_is_current(session)
    [total] = _measures(library)
    assert total.received == RECORDS + 1


def _recategorise_a_case(session):
    case = session.scalar(select(DisputeCase).where(DisputeCase.category == "邻里", DisputeCase.outcome == "成功")
                          .order_by(DisputeCase.id).limit(1))
    case.category, case.outcome = "医疗", "不成功"


def _unmark_an_exemplar(session):
    session.delete(session.scalar(select(ExemplarMark).order_by(ExemplarMark.id).limit(1)))


def _redirect_a_tracked_case(session):
    tracking = session.scalar(select(UnsuccessfulCaseTracking).where(UnsuccessfulCaseTracking.destination != "court")
                              .order_by(UnsuccessfulCaseTracking.id).limit(1))
    tracking.destination = "court"


def _review_a_case(session):
    session.add(QualityReview(case_id=1, reviewer="复核", total_score=70, scores={}, verdict="合格",
                              reviewed_on=dt.date(2025, 1, 1)))


@pytest.mark.parametrize("edit", [_recategorise_a_case, _unmark_an_exemplar, _redirect_a_tracked_case,
                                  _review_a_case])
def test_edits_in_place_show_at_once_and_mark_the_summary_stale(library, edit):
    with library.transaction() as session:
        refresh_summary(session)
    with library.transaction() as session:
        edit(session)
    with library.sessions() as session:
        assert not summary_is_current(session)
    rows = _plain_cases(library)
    expected = {category: _expected([r for r in rows if r["category"] == category])
                for category in {r["category"] for r in rows}}
    assert {m.key[0]: _shown(m) for m in _measures(library, by=("category",))} == expected
    with library.transaction() as session:
        assert refresh_if_stale(session) > 0
        assert refresh_if_stale(session) is None
    with library.sessions() as session:
        assert summary_is_current(session)
    assert {m.key[0]: _shown(m) for m in _measures(library, by=("category",))} == expected


def test_web_requests_rebuild_a_stale_summary_in_the_background(library):
    from search_api.stats import rebuild_in_background
    rebuild_in_background(library).join()
    with library.sessions() as session:
        assert summary_is_current(session)


def test_organisation_drill_down_rolls_up_the_tree(library):
    rows = _plain_cases(library)
    with library.sessions() as session:
        root, root_path = session.execute(select(Organisation.id, Organisation.path)
                                          .where(Organisation.parent_id.is_(None))).one()
        children = dict(session.execute(select(Organisation.id, Organisation.path)
                                        .where(Organisation.parent_id == root)).all())
        township, township_path = session.execute(select(Organisation.id, Organisation.path)
                                                  .where(Organisation.level == "township")
                                                  .order_by(Organisation.id).limit(1)).one()
        villages = dict(session.execute(select(Organisation.id, Organisation.path)
                                        .where(Organisation.parent_id == township)).all())
    counties = {m.key[0]: m.received for m in _measures(library, by=("organisation",))}
    expected = {org: sum(r["path"].startswith(path) for r in rows) for org, path in children.items()}
    assert counties == {org: n for org, n in expected.items() if n}
    assert sum(counties.values()) == RECORDS

    below = _measures(library, Filters(organisation_id=township), ("organisation",), township)
    expected = {org: sum(r["path"].startswith(path) for r in rows) for org, path in villages.items()}
    expected[township] = sum(r["path"] == township_path for r in rows)
    assert {m.key[0]: m.received for m in below} == {k: n for k, n in expected.items() if n}
    assert all(m.label[0].startswith("（本级）") for m in below if m.key[0] == township)


def test_day_ranges_not_on_month_boundaries_count_exact_days(library):
    with library.transaction() as session:
        refresh_summary(session)
    start, end = dt.date(2025, 1, 15), dt.date(2025, 2, 9)
    rows = [r for r in _plain_cases(library) if start <= r["received_on"] <= end]
    [total] = _measures(library, Filters(received_from=start, received_to=end))
    assert _shown(total) == _expected(rows)
    days = _measures(library, Filters(received_from=start, received_to=end), ("day",))
    assert sum(m.received for m in days) == len(rows)
    assert {m.key[0] for m in days} <= {(start + dt.timedelta(days=i)).isoformat() for i in range(26)}


def test_cause_filter_uses_the_raw_rows(library):
    with library.transaction() as session:
        refresh_summary(session)
        expected = session.scalar(select(func.count()).where(DisputeCase.cause == "离婚纠纷"))
    [total] = _measures(library, Filters(causes=("离婚纠纷",)))
    assert total.received == expected


def test_personnel_structure(library):
    from kb.statistics import personnel
    with library.sessions() as session:
        result = personnel(session, as_of=AS_OF)
        full_time = session.scalar(select(func.count()).where(Mediator.full_time))
        total = session.scalar(select(func.count()).select_from(Mediator))
    assert (result.mediators, result.full_time, result.part_time) == (total, full_time, total - full_time)
    assert sum(result.by_age_band.values()) == total
    assert sum(result.experts_by_field.values()) == 300


def test_stats_api_export_and_problems(library, settings):
    client = use_token(create_app(settings).test_client(), add_user_with_token(library, "leader", "manager"))
    body = client.get("/api/v1/stats/cases?by=category&from=2025-01-01&to=2025-12-31").get_json()
    year = [r for r in _plain_cases(library) if dt.date(2025, 1, 1) <= r["received_on"] <= dt.date(2025, 12, 31)]
    assert sum(row["received"] for row in body["rows"]) == len(year)
    assert {row["key"][0]: row["received"] for row in body["rows"]} == dict(Counter(r["category"] for r in year))

    response = client.get("/api/v1/stats/cases.csv?by=region")
    assert response.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert sum(int(row["received"]) for row in table) == RECORDS

    response = client.get("/api/v1/stats/cases.xlsx?by=category")
    sheet = load_workbook(io.BytesIO(response.data)).active
    header = [cell.value for cell in sheet[1]]
    assert sum(row[header.index("received")] for row in sheet.iter_rows(min_row=2, values_only=True)) == RECORDS

    bad = client.get("/api/v1/stats/cases?by=colour&from=2025-13-01")
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"
    assert {e["field"] for e in bad.get_json()["errors"]} == {"by", "from"}

    databases = client.get("/api/v1/stats/databases").get_json()
    assert {d["key"]: d["rows"] for d in databases["databases"]}["dispute_records"] == RECORDS

    page = client.get("/stats?category=医疗")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "vendor/chart.umd.min.js" in html and "category=%E5%8C%BB%E7%96%97" in html
    assert all(f'id="chart-{name}"' in html for name in ("employment", "specialities", "ages", "experts"))


def test_bench_smoke(tmp_path):
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "stats", "bench", "--records", "2000",
                                       "--repeats", "2"])
    assert result.exit_code == 0, result.output
    assert "generated 2000 records" in result.output
    for name in ("totals", "region x category", "organisation drill-down", "personnel", "nine databases"):
        assert name in result.output


LINKED_SQL = {
    "exemplar_cases": "SELECT x.id AS row_id, NULL AS kind, NULL AS role, x.case_id FROM exemplar_marks x",
    "unsuccessful_cases": "SELECT x.id AS row_id, x.destination AS kind, NULL AS role, x.case_id "
                          "FROM unsuccessful_case_tracking x",
    "quality_reviews": "SELECT x.id AS row_id, x.verdict AS kind, NULL AS role, x.case_id FROM quality_reviews x",
    "learning_materials": "SELECT m.id AS row_id, m.kind, NULL AS role, l.case_id FROM learning_materials m "
                          "JOIN learning_material_cases l ON l.material_id = m.id",
    "parties": "SELECT p.id AS row_id, p.kind, p.role, p.case_id FROM parties p",
}


def _plain_linked(db, database: str) -> list[dict]:
    """Each row of a case-linked database with its case's category, region and year, read with plain SQL."""
    query = text(f"""SELECT r.row_id, r.kind, r.role, c.category, c.region, c.received_on, c.agreed_amount, o.path
                     FROM ({LINKED_SQL[database]}) r JOIN dispute_cases c ON c.id = r.case_id
                     JOIN organisations o ON o.id = c.organisation_id""")
    with db.engine.connect() as conn:
        return [dict(row._mapping) | {"year": str(row.received_on)[:4]} for row in conn.execute(query)]


def _link_materials(db) -> None:
    """Learning materials are not generated: link three to cases, one of them to cases of two categories."""
    with db.transaction() as session:
        cases = {category: session.scalars(select(DisputeCase).where(DisputeCase.category == category)
                                           .order_by(DisputeCase.id).limit(3)).all()
                 for category in ("医疗", "邻里")}
        session.add_all([LearningMaterial(title="医疗纠纷要点", kind="guide", body="…", cases=cases["医疗"]),
                         LearningMaterial(title="邻里纠纷案例", kind="casebook", body="…", cases=cases["邻里"][:1]),
                         LearningMaterial(title="综合培训", kind="guide", body="…",
                                          cases=cases["医疗"][:2] + cases["邻里"][1:])])


def _add_parties(db) -> None:
    """Parties are not generated: two or three per case for the first 60 cases, persons and organisations."""
    with db.transaction() as session:
        for case_id in session.scalars(select(DisputeCase.id).order_by(DisputeCase.id).limit(60)):
            session.add_all([Party(case_id=case_id, role="申请人", kind="person", name=f"甲{case_id}"),
                             Party(case_id=case_id, role="被申请人", kind="organisation" if case_id % 4 else "person",
                                   name=f"乙{case_id}")])
            if case_id % 5 == 0:
                session.add(Party(case_id=case_id, role="第三人", kind="person", name=f"丙{case_id}"))


def _give_amounts(db) -> None:
    """The generator leaves agreed amounts empty: set some, with plain SQL (every 3rd case has none)."""
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE dispute_cases SET agreed_amount = (id * 37) % 5000 * 10 WHERE id % 3 != 0"))


@pytest.mark.parametrize("database", list(LINKED_SQL))
def test_case_linked_databases_slice_like_plain_sql(library, database):
    assert set(LINKED_SQL) == set(LINKED_DATABASES)
    _link_materials(library)
    _add_parties(library)
    _give_amounts(library)
    rows = _plain_linked(library, database)

    def counted(keys) -> dict:
        groups = defaultdict(set)
        for row in rows:
            groups[tuple(row[k] for k in keys)].add(row["row_id"])
        return {key: len(ids) for key, ids in groups.items()}

    def measured(by, filters=Filters()) -> dict:
        with library.sessions() as session:
            return {tuple(r["key"]): r["rows"] for r in linked_counts(session, database, filters, by)}

    assert measured(()) == {(): len({r["row_id"] for r in rows})} and rows
    assert measured(("category",)) == counted(("category",))
    assert measured(("year", "region")) == counted(("year", "region"))
    own = tuple(LINKED_DATABASES[database][2])
    for dim in own:
        assert measured((dim,)) == counted((dim,))
    assert measured(("category",) + own[:1]) == counted(("category",) + own[:1])
    in_2025 = [r for r in rows if r["category"] == "医疗" and r["year"] == "2025"]
    filters = Filters(categories=("医疗",), received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 12, 31))
    rows = in_2025
    assert measured(("region",) + own[:1], filters) == counted(("region",) + own[:1])
    rows = [r for r in _plain_linked(library, database) if r["agreed_amount"] is not None
            and 1000 <= float(r["agreed_amount"]) <= 20_000]
    assert measured(("category",), Filters(amount_min=1000, amount_max=20_000)) == counted(("category",))


def test_linked_database_api(library, settings):
    _link_materials(library)
    client = use_token(create_app(settings).test_client(), add_user_with_token(library, "leader", "manager"))
    body = client.get("/api/v1/stats/databases/unsuccessful_cases?by=kind&category=医疗").get_json()
    expected = Counter(r["kind"] for r in _plain_linked(library, "unsuccessful_cases") if r["category"] == "医疗")
    assert {row["key"][0]: row["rows"] for row in body["rows"]} == expected
    assert all(not row["label"][0].isascii() for row in body["rows"])  # 诉讼, 仲裁 …: codes stay in "key"
    materials = client.get("/api/v1/stats/databases/learning_materials?by=category").get_json()
    assert {row["key"][0]: row["rows"] for row in materials["rows"]} == {"医疗": 2, "邻里": 2}
    assert client.get("/api/v1/stats/databases/learning_materials?by=colour").status_code == 400
    assert client.get("/api/v1/stats/databases/clients").status_code == 404


@pytest.mark.parametrize("window", [None, (dt.date(2025, 3, 1), dt.date(2025, 3, 31))],
                         ids=["more cases than linked rows", "fewer cases than linked rows"])
def test_linked_measures_on_the_raw_rows_match_plain_sql(library, window):
    """Exemplars, reviews and destinations are joined to the matching cases from the smaller side:
    either way, per category, they are what plain SQL counts."""
    filters = Filters(received_from=window[0], received_to=window[1]) if window else Filters()
    chosen = [r for r in _plain_cases(library)
              if not window or window[0] <= r["received_on"] <= window[1]]
    reviews = {row.case_id: (row.n, row.total) for row in _sql(
        library, "SELECT case_id, count(*) AS n, sum(total_score) AS total FROM quality_reviews GROUP BY case_id")}
    [review_rows] = _sql(library, "SELECT count(*) FROM quality_reviews")[0]
    assert (len(chosen) > review_rows) is (window is None)
    expected = defaultdict(lambda: {"exemplars": 0, "reviews": 0, "review_sum": 0, "unresolved": Counter()})
    for row in chosen:
        group = expected[row["category"]]
        group["exemplars"] += bool(row["exemplar"])
        n, total = reviews.get(row["id"], (0, 0))
        group["reviews"] += n
        group["review_sum"] += total
        if row["outcome"] in ("不成功", "终止"):
            group["unresolved"][row["destination"] or "untracked"] += 1
    assert any(group["reviews"] for group in expected.values())
    measured = {m.key[0]: {"exemplars": m.exemplars, "reviews": m.review_n, "review_sum": m.review_sum,
                           "unresolved": Counter(m.unsuccessful_by_destination)}
                for m in _measures(library, filters, ("category",))}
    assert measured == dict(expected)


def test_search_and_statistics_share_one_filter_class():
    from indexer.query import Filters as SearchFilters
    assert SearchFilters is Filters and "amount_min" in Filters().__dataclass_fields__


@pytest.mark.parametrize("use_summary", [False, True], ids=["raw", "summary current"])
def test_amount_range_counts_like_plain_sql(library, use_summary):
    _give_amounts(library)
    if use_summary:
        with library.transaction() as session:
            refresh_summary(session)
    amounts = {row.id: row.agreed_amount for row in _sql(library, "SELECT id, agreed_amount FROM dispute_cases")}
    # Both bounds are amounts some cases have: they must count (search's bounds include them too).
    low, high = 980, 20_000
    assert {float(a) for a in amounts.values() if a is not None} >= {low, high}
    chosen = {i for i, a in amounts.items() if a is not None and low <= float(a) <= high}
    rows = [r for r in _plain_cases(library) if r["id"] in chosen]
    [total] = _measures(library, Filters(amount_min=low, amount_max=high))
    assert _shown(total) == _expected(rows)
    [above] = _measures(library, Filters(amount_min=high))
    assert above.received == sum(a is not None and float(a) >= high for a in amounts.values())
    by_month = _measures(library, Filters(amount_max=low, received_from=dt.date(2025, 1, 1)), ("month",))
    assert sum(m.received for m in by_month) == sum(
        1 for r in _plain_cases(library) if amounts[r["id"]] is not None and float(amounts[r["id"]]) <= low
        and r["received_on"] >= dt.date(2025, 1, 1))


def _sql(db, query: str) -> list:
    with db.engine.connect() as conn:
        return list(conn.execute(text(query)))


def test_organisation_structure_rolls_up_like_plain_sql(library):
    orgs = {row.id: row for row in _sql(library, "SELECT id, parent_id, level, path FROM organisations")}
    mediators = _sql(library, "SELECT organisation_id, full_time FROM mediators")
    cases = _plain_cases(library)
    [root] = [o for o in orgs.values() if o.parent_id is None]

    def subtree(path, rows, path_of):
        return [r for r in rows if path_of(r).startswith(path)]

    expected = {}
    for child in (o for o in orgs.values() if o.parent_id == root.id):
        members = subtree(child.path, orgs.values(), lambda o: o.path)
        staff = subtree(child.path, mediators, lambda m: orgs[m.organisation_id].path)
        received = subtree(child.path, cases, lambda c: c["path"])
        expected[child.id] = {"organisations": len(members), "by_level": dict(Counter(o.level for o in members)),
                              "mediators": len(staff), "full_time_mediators": sum(bool(m.full_time) for m in staff),
                              "received": len(received), "closed": sum(bool(c["closed_on"]) for c in received)}
    with library.sessions() as session:
        tree = {row["key"][0]: row for row in organisation_structure(session)}
        levels = {row["key"][0]: row for row in organisation_structure(session, Filters(categories=("医疗",)), "level")}
        with pytest.raises(ValueError, match="no dimension 'kind'"):
            organisation_structure(session, by="kind")
    assert tree.pop(root.id)["organisations"] == 1  # the city committee itself, as （本级）
    assert {key: {k: v for k, v in row.items() if k in expected[key]} for key, row in tree.items()} == expected
    assert {level: row["organisations"] for level, row in levels.items()} == dict(Counter(o.level for o in orgs.values()))
    level_of_case = Counter(orgs[c["organisation_id"]].level for c in _plain_cases_with_org(library)
                            if c["category"] == "医疗")
    assert {level: row["received"] for level, row in levels.items() if row["received"]} == dict(level_of_case)


def _plain_cases_with_org(db) -> list:
    return [row._mapping for row in _sql(db, "SELECT organisation_id, category FROM dispute_cases")]


def test_database_slices_api_exports_and_links(library, settings):
    _add_parties(library)
    _give_amounts(library)
    client = use_token(create_app(settings).test_client(), add_user_with_token(library, "leader", "manager"))
    parties = _plain_linked(library, "parties")
    body = client.get("/api/v1/stats/databases/parties?by=role").get_json()
    assert {row["key"][0]: row["rows"] for row in body["rows"]} == dict(Counter(r["role"] for r in parties))
    assert "甲" not in str(body)  # counts only: no party names

    response = client.get("/api/v1/stats/databases/parties.csv?by=category&by=kind")
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert response.mimetype == "text/csv" and sum(int(row["rows"]) for row in table) == len(parties)
    assert {(row["category"], row["kind"]): int(row["rows"]) for row in table} == dict(  # labelled as on the page
        Counter((r["category"], KIND_LABELS[r["kind"]]) for r in parties))

    response = client.get("/api/v1/stats/databases/organisations.xlsx?by=level")
    sheet = load_workbook(io.BytesIO(response.data)).active
    header = [cell.value for cell in sheet[1]]
    assert header[:2] == ["level", "organisations"]
    assert sum(row[1] for row in sheet.iter_rows(min_row=2, values_only=True)) == len(
        _sql(library, "SELECT id FROM organisations"))

    unsuccessful = client.get("/api/v1/stats/databases/unsuccessful_cases?by=category").get_json()["rows"]
    assert all("outcome=%E4%B8%8D%E6%88%90%E5%8A%9F" in row["search_url"] for row in unsuccessful)
    for bad in ("unsuccessful_cases?by=role", "organisations?by=level,organisation", "organisations?by=kind"):
        response = client.get(f"/api/v1/stats/databases/{bad}")
        assert response.status_code == 400 and response.get_json()["errors"][0]["field"] == "by", bad

    amounts = [row.agreed_amount for row in _sql(library, "SELECT agreed_amount FROM dispute_cases")]
    body = client.get("/api/v1/stats/cases?amount_min=1000&amount_max=20000").get_json()
    assert body["rows"][0]["received"] == sum(a is not None and 1000 <= float(a) <= 20_000 for a in amounts)
    assert "amount_min=1000.0" in body["rows"][0]["search_url"] and "amount_max=20000.0" in body["rows"][0]["search_url"]
    inverted = client.get("/api/v1/stats/cases?amount_min=5&amount_max=1")
    assert inverted.status_code == 400 and inverted.get_json()["errors"][0]["field"] == "amount_max"
    backwards = client.get("/api/v1/stats/databases/parties?from=2025-02-01&to=2025-01-01")
    assert backwards.status_code == 400 and backwards.get_json()["errors"][0]["field"] == "to"


def test_stats_page_draws_the_chosen_database_and_time_grain(library, settings):
    _add_parties(library)
    client = use_token(create_app(settings).test_client(), add_user_with_token(library, "leader", "manager"))
    html = client.get("/stats?grain=quarter&database=parties&database_by=role&category=医疗").get_data(as_text=True)
    assert 'id="chart-database"' in html and 'id="chart-series"' in html and "按季度受理量" in html
    roles = Counter(r["role"] for r in _plain_linked(library, "parties") if r["category"] == "医疗")
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert dict(zip(data["database"]["labels"], data["database"]["received"])) == dict(roles)
    assert all(label.endswith("-Q" + label[-1]) for label in data["series"]["labels"])
    # The database chart's export leaves out the page's own parameters, which the API refuses.
    export = re.search(r'href="([^"]*/databases/parties\.csv[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "grain" not in export and client.get(export).status_code == 200
    # A slice the database lacks falls back to one it has.
    page = client.get("/stats?database=organisations&database_by=kind")
    assert page.status_code == 200 and "按组织" in page.get_data(as_text=True)


def test_cli_slices_a_database_and_filters_by_amount(library, settings, tmp_path):
    _add_parties(library)
    _give_amounts(library)
    runner = CliRunner(env={"CASEKB_DATABASE_URL": settings.database_url})
    out = tmp_path / "parties.csv"
    result = runner.invoke(main, ["--home", str(settings.home), "stats", "databases", "parties", "--by", "role",
                                  "--csv", str(out)])
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert {row["role"]: int(row["rows"]) for row in table} == dict(
        Counter(r["role"] for r in _plain_linked(library, "parties")))
    result = runner.invoke(main, ["--home", str(settings.home), "stats", "--amount-min", "1000",
                                  "--amount-max", "20000", "--json"])
    assert result.exit_code == 0, result.output
    amounts = [row.agreed_amount for row in _sql(library, "SELECT agreed_amount FROM dispute_cases")]
    received = json.loads(result.output[result.output.index("["):])[0]["received"]
    assert received == sum(a is not None and 1000 <= float(a) <= 20_000 for a in amounts)
    result = runner.invoke(main, ["--home", str(settings.home), "stats", "--amount-min", "5", "--amount-max", "1"])
    assert result.exit_code == 2 and "--amount-max" in result.output
    result = runner.invoke(main, ["--home", str(settings.home), "stats", "databases", "unsuccessful_cases",
                                  "--by", "role"])
    assert result.exit_code == 2 and "no dimension 'role'" in result.output


def test_amount_and_other_filters_count_what_search_finds(db, settings, indexer, tmp_path):
    """The same Filters select the same cases in search (each backend) and in statistics."""
    from conftest import case_row, write_jsonl
    from corpus.importer import import_file
    from indexer.query import SearchQuery
    amounts = [None, 999.99, 1000, 2500.5, 5000, 5000.01, 20_000, 80_000]
    rows = [case_row(i, category=("合同", "邻里")[i % 2], agreed_amount=amount, outcome="成功",
                     received_on=f"2025-0{1 + i % 3}-1{i % 10}", closed_on="2025-06-30")
            for i, amount in enumerate(amounts * 2)]
    import_file(db, settings, write_jsonl(tmp_path / "amounts.jsonl", rows))
    indexer.drain()
    for filters in (Filters(amount_min=1000, amount_max=5000), Filters(amount_min=5000),
                    Filters(categories=("合同",), amount_max=5000, received_from=dt.date(2025, 2, 1))):
        found = indexer.backend.search(SearchQuery(filters=filters, size=1)).total
        with db.sessions() as session:
            [total] = case_measures(session, filters, as_of=AS_OF)
        assert total.received == found > 0, filters


def test_grouping_below_an_unknown_organisation_puts_everything_in_the_unassigned_group(db):
    with db.transaction() as session:
        org = Organisation(name="温州市", level="city", path="")
        session.add(org)
        session.flush()
        org.path = f"/{org.id}/"
        case = DisputeCase(external_id="u-1", title="借款", category="合同", facts="借款未还", organisation_id=org.id)
        session.add(case)
        session.flush()
        session.add(ExemplarMark(case_id=case.id, curator="t", note="n", techniques=[]))
    with db.sessions() as session:
        rows = linked_counts(session, "exemplar_cases", by=("organisation",), parent=org.id + 1000)
    assert [row["key"] for row in rows] == [[None]] and rows[0]["rows"] == 1
