"""Statistics against plain SQL counts, on the raw rows and on the monthly summary; API, export, bench."""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import Counter, defaultdict

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from casekb.cli import main
from corpus.synthetic_records import generate
from kb.models import (DisputeCase, ExemplarMark, LearningMaterial, Mediator, Organisation, QualityReview,
                       UnsuccessfulCaseTracking)
from kb.statistics import (StatsFilter, case_measures, linked_counts, percentile, refresh_if_stale, refresh_summary,
                           summary_is_current)
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


def _measures(db, filters=StatsFilter(), by=(), parent=None):
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
    slices = [((), StatsFilter()), (("month",), StatsFilter()), (("year",), StatsFilter()),
              (("region", "category"), StatsFilter()), (("organisation",), StatsFilter()),
              (("quarter",), StatsFilter(categories=("医疗",), received_from=dt.date(2025, 1, 1),
                                         received_to=dt.date(2025, 12, 31))),
              (("outcome",), StatsFilter(regions=("第3区县",)))]
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

    below = _measures(library, StatsFilter(organisation_id=township), ("organisation",), township)
    expected = {org: sum(r["path"].startswith(path) for r in rows) for org, path in villages.items()}
    expected[township] = sum(r["path"] == township_path for r in rows)
    assert {m.key[0]: m.received for m in below} == {k: n for k, n in expected.items() if n}
    assert all(m.label[0].startswith("（本级）") for m in below if m.key[0] == township)


def test_day_ranges_not_on_month_boundaries_count_exact_days(library):
    with library.transaction() as session:
        refresh_summary(session)
    start, end = dt.date(2025, 1, 15), dt.date(2025, 2, 9)
    rows = [r for r in _plain_cases(library) if start <= r["received_on"] <= end]
    [total] = _measures(library, StatsFilter(received_from=start, received_to=end))
    assert _shown(total) == _expected(rows)
    days = _measures(library, StatsFilter(received_from=start, received_to=end), ("day",))
    assert sum(m.received for m in days) == len(rows)
    assert {m.key[0] for m in days} <= {(start + dt.timedelta(days=i)).isoformat() for i in range(26)}


def test_cause_filter_uses_the_raw_rows(library):
    with library.transaction() as session:
        refresh_summary(session)
        expected = session.scalar(select(func.count()).where(DisputeCase.cause == "离婚纠纷"))
    [total] = _measures(library, StatsFilter(causes=("离婚纠纷",)))
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
    "exemplar_cases": "SELECT x.id AS row_id, NULL AS kind, x.case_id FROM exemplar_marks x",
    "unsuccessful_cases": "SELECT x.id AS row_id, x.destination AS kind, x.case_id FROM unsuccessful_case_tracking x",
    "quality_reviews": "SELECT x.id AS row_id, x.verdict AS kind, x.case_id FROM quality_reviews x",
    "learning_materials": "SELECT m.id AS row_id, m.kind, l.case_id FROM learning_materials m "
                          "JOIN learning_material_cases l ON l.material_id = m.id",
}


def _plain_linked(db, database: str) -> list[dict]:
    """Each row of a case-linked database with its case's category, region and year, read with plain SQL."""
    query = text(f"""SELECT r.row_id, r.kind, c.category, c.region, c.received_on, o.path
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


@pytest.mark.parametrize("database", list(LINKED_SQL))
def test_case_linked_databases_slice_like_plain_sql(library, database):
    _link_materials(library)
    rows = _plain_linked(library, database)

    def counted(keys) -> dict:
        groups = defaultdict(set)
        for row in rows:
            groups[tuple(row[k] for k in keys)].add(row["row_id"])
        return {key: len(ids) for key, ids in groups.items()}

    def measured(by, filters=StatsFilter()) -> dict:
        with library.sessions() as session:
            return {tuple(r["key"]): r["rows"] for r in linked_counts(session, database, filters, by)}

    assert measured(()) == {(): len({r["row_id"] for r in rows})} and rows
    assert measured(("category",)) == counted(("category",))
    assert measured(("year", "region")) == counted(("year", "region"))
    assert measured(("kind",)) == counted(("kind",))
    rows = [r for r in rows if r["category"] == "医疗" and r["year"] == "2025"]
    filters = StatsFilter(categories=("医疗",), received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 12, 31))
    assert measured(("kind",), filters) == counted(("kind",))


def test_linked_database_api(library, settings):
    _link_materials(library)
    client = use_token(create_app(settings).test_client(), add_user_with_token(library, "leader", "manager"))
    body = client.get("/api/v1/stats/databases/unsuccessful_cases?by=kind&category=医疗").get_json()
    expected = Counter(r["kind"] for r in _plain_linked(library, "unsuccessful_cases") if r["category"] == "医疗")
    assert {row["key"][0]: row["rows"] for row in body["rows"]} == expected
    materials = client.get("/api/v1/stats/databases/learning_materials?by=category").get_json()
    assert {row["key"][0]: row["rows"] for row in materials["rows"]} == {"医疗": 2, "邻里": 2}
    assert client.get("/api/v1/stats/databases/learning_materials?by=colour").status_code == 400
    assert client.get("/api/v1/stats/databases/parties").status_code == 404
