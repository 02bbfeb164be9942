"""Synthetic demo metadata: deterministic, idempotent, consistent, and marked as synthetic."""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from conftest import SHARED_DATA
from corpus.demo import (COUNTIES, PERIOD_END, PERIOD_START, DemoSummary, add_demo_metadata,
                         extract_parties, first_amount)
from indexer.masking import ID_CARD
from kb.db import Database, migrate
from kb.models import (Base, DisputeCase, ExemplarMark, Expert, LearningMaterial, Mediator,
                       Organisation, QualityReview)

ROLE_WORDS = {"原告", "被告", "申请人", "被申请人", "上诉人", "被上诉人", "第三人"}
CASE_FIELDS = ("case_number", "region", "intake", "received_on", "closed_on", "outcome",
               "agreement_terms", "agreed_amount", "performance", "satisfaction", "synthetic_fields",
               "version")


def demo_rows(n: int = 60) -> list[dict]:
    with (SHARED_DATA / "cases_demo.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(next(lines)) for _ in range(n)]


def case_of(row: dict) -> DisputeCase:
    return DisputeCase(external_id=row["id"], title=row["title"], facts=row["text"],
                       category=row["category"], cause=row["cause"], dataset=row["source"],
                       elements=row["elements"])


def database_with(path, rows: list[dict]) -> Database:
    db = Database(f"sqlite:///{path}")
    migrate(db.engine)
    with db.transaction() as session:
        session.add_all(case_of(row) for row in rows)
    return db


def add_metadata(db: Database, seed: int = 20241) -> DemoSummary:
    with db.transaction() as session:
        return add_demo_metadata(session, seed)


def row_counts(db: Database) -> dict[str, int]:
    with db.sessions() as session:
        return {table.name: session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


def snapshot(db: Database) -> dict[str, tuple]:
    """Everything generated for each case, by external id, without database ids."""
    with db.sessions() as session:
        return {case.external_id: (
            tuple(getattr(case, field) for field in CASE_FIELDS),
            case.organisation.name,
            sorted(m.name for m in case.mediators),
            sorted((p.role, p.kind, p.name, p.sex, p.age, p.id_number, p.phone, p.address)
                   for p in case.parties),
            case.tracking and (case.tracking.destination, case.tracking.referred_on,
                               case.tracking.later_result),
            case.exemplar and (case.exemplar.curator, case.exemplar.note, case.exemplar.techniques),
            sorted((r.reviewer, r.total_score, r.verdict, r.reviewed_on) for r in case.reviews),
        ) for case in session.scalars(select(DisputeCase))}


def materials(db: Database) -> list[tuple]:
    with db.sessions() as session:
        return sorted((m.title, m.kind, m.body, sorted(c.external_id for c in m.cases))
                      for m in session.scalars(select(LearningMaterial)))


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Sixty demo cases with their synthetic metadata."""
    db = database_with(tmp_path_factory.mktemp("demo") / "t.sqlite3", demo_rows())
    summary = add_metadata(db)
    yield db, summary
    db.dispose()


def test_a_second_run_adds_nothing_and_changes_nothing(filled):
    db, first = filled
    assert first.cases == 60 and first.organisations > 0 and first.parties >= 60
    counts, before = row_counts(db), snapshot(db)

    assert add_metadata(db) == DemoSummary()
    assert row_counts(db) == counts
    assert snapshot(db) == before


def test_same_seed_same_metadata_whatever_the_row_order(filled, tmp_path):
    db, _ = filled
    reversed_db = database_with(tmp_path / "reversed.sqlite3", demo_rows()[::-1])
    other_seed_db = database_with(tmp_path / "other.sqlite3", demo_rows())
    add_metadata(reversed_db)
    add_metadata(other_seed_db, seed=7)

    assert snapshot(reversed_db) == snapshot(db)
    assert materials(reversed_db) == materials(db)
    assert snapshot(other_seed_db) != snapshot(db)


def test_imported_mediation_records_are_left_alone(tmp_path):
    db = database_with(tmp_path / "t.sqlite3", demo_rows(3))
    with db.transaction() as session:
        real = session.scalar(select(DisputeCase).order_by(DisputeCase.id))
        real.outcome, real.received_on = "成功", dt.date(2024, 5, 6)

    assert add_metadata(db).cases == 2
    with db.sessions() as session:
        real = session.scalar(select(DisputeCase).order_by(DisputeCase.id))
        assert (real.synthetic_fields, real.outcome, real.received_on, real.organisation_id,
                real.parties) == ([], "成功", dt.date(2024, 5, 6), None, [])


def test_organisation_tree_paths_follow_parent_ids(filled):
    db, summary = filled
    with db.sessions() as session:
        orgs = {org.id: org for org in session.scalars(select(Organisation))}
        experts = session.scalars(select(Expert)).all()
        mediators = session.scalars(select(Mediator)).all()

    assert summary.organisations == len(orgs) and all(org.synthetic for org in orgs.values())
    for org in orgs.values():
        parent_path = orgs[org.parent_id].path if org.parent_id else "/"
        assert org.path == f"{parent_path}{org.id}/"
    children = Counter((org.parent_id and orgs[org.parent_id].level, org.level) for org in orgs.values())
    assert children[(None, "city")] == 1
    assert children[("city", "county")] == len(COUNTIES) and children[("city", "industry")] == 4
    for parent_level, level in (("county", "township"), ("township", "village")):
        per_parent = Counter(org.parent_id for org in orgs.values() if org.level == level)
        assert set(per_parent.values()) <= {2, 3}
        assert len(per_parent) == sum(1 for org in orgs.values() if org.level == parent_level)
    assert len(mediators) == 40 and {m.organisation_id for m in mediators} <= set(orgs)
    assert len(experts) == 12
    assert {e.field for e in experts} == {"律师", "医生", "工程师", "会计师", "心理咨询师"}


def test_case_records_are_plausible_and_list_their_synthetic_fields(filled):
    db, _ = filled
    with db.sessions() as session:
        cases = session.scalars(select(DisputeCase)).all()
        for case in cases:
            listed = set(case.synthetic_fields)
            for field in ("organisation", "region", "intake", "received_on", "closed_on", "outcome",
                          "agreement_terms", "agreed_amount", "performance", "satisfaction",
                          "case_number"):
                assert (field in listed) == (getattr(case, field) is not None), (case.external_id, field)
            assert "party_details" in listed and case.mediators and "mediators" in listed
            assert case.organisation.level in ("village", "township", "industry")
            if case.organisation.level != "industry":
                county = session.get(Organisation, case.organisation.ancestor_ids()[1])
                assert case.region + "人民调解委员会" == county.name
            assert PERIOD_START <= case.received_on <= PERIOD_END
            if case.closed_on is None:
                assert case.outcome is None and case.satisfaction is None
            else:
                assert 1 <= (case.closed_on - case.received_on).days <= 45
                assert 1 <= case.satisfaction <= 5
            year = re.fullmatch(r"（(\d{4})）瓯\w+人调字第\d+号", case.case_number).group(1)
            assert int(year) == case.received_on.year
            if case.outcome == "成功":
                assert case.agreed_amount == first_amount(case.facts)
                assert case.agreement_terms and case.performance in ("已履行", "分期履行中", "未履行")
            else:
                assert case.agreed_amount is None and case.performance is None

    assert len({case.case_number for case in cases}) == len(cases)
    outcomes = Counter(case.outcome for case in cases)
    assert outcomes["成功"] >= 0.8 * len(cases) and outcomes["不成功"] + outcomes["终止"] >= 1


def test_every_unresolved_case_is_tracked(filled):
    db, summary = filled
    with db.sessions() as session:
        cases = session.scalars(select(DisputeCase)).all()
        unresolved = [case for case in cases if case.outcome in ("不成功", "终止")]
        assert unresolved and summary.unsuccessful == len(unresolved)
        for case in cases:
            assert (case.tracking is not None) == (case in unresolved)
        for case in unresolved:
            assert case.tracking.synthetic and case.tracking.referred_on >= case.closed_on
            assert case.tracking.destination in (
                "court", "arbitration", "petition", "administrative", "other")


def test_party_names_found_in_a_text_occur_in_it(filled):
    db, _ = filled
    with db.sessions() as session:
        cases = session.scalars(select(DisputeCase)).all()
        found = [case for case in cases if "parties" not in case.synthetic_fields]
        assert len(found) >= len(cases) // 2
        for case in found:
            for party in case.parties:
                assert party.name in case.facts and party.name not in ROLE_WORDS
                assert party.role in ROLE_WORDS
        for party in (p for case in cases for p in case.parties):
            assert party.phone and party.address
            assert (party.kind == "person") == (party.id_number is not None)
            assert party.id_number is None or ID_CARD.fullmatch(party.id_number)


@pytest.mark.parametrize("text, expected", [
    ("经审理查明:原告曹0与被告张x1原系夫妻关系", [("原告", "person", "曹0")]),
    ("原告张某甲诉称，被告宽某某因琐事与其争吵", [("原告", "person", "张某甲"), ("被告", "person", "宽某某")]),
    ("原告黄宁丽向本院提出诉讼请求，被告五金公司于同日答辩", [("原告", "person", "黄宁丽"),
                                               ("被告", "organisation", "五金公司")]),
    ("原告诉称，原、被告经人介绍相识，被告陈述其未借款，原告通过银行转账", []),
])
def test_party_extraction_is_conservative(text, expected):
    assert [tuple(p) for p in extract_parties(text)] == expected


@pytest.mark.parametrize("text, expected", [
    ("借款3万元，另付利息1000元", Decimal("30000")), ("工资1,279.55元", Decimal("1279.55")),
    ("每月支付抚养费800元", Decimal("800")), ("双方协议离婚", None),
])
def test_first_amount(text, expected):
    assert first_amount(text) == expected


def test_exemplars_reviews_and_materials(filled):
    db, summary = filled
    with db.sessions() as session:
        marks = session.scalars(select(ExemplarMark)).all()
        reviews = session.scalars(select(QualityReview)).all()
        learning = session.scalars(select(LearningMaterial)).all()
        settled_categories = {case.category for case in session.scalars(select(DisputeCase))
                              if case.outcome == "成功"}

        assert len(marks) == summary.exemplars == round(60 * 0.18)
        assert all(m.synthetic and m.case.outcome == "成功" and m.techniques and m.curator for m in marks)
        assert len({m.case.category for m in marks}) == min(len(marks), len(settled_categories))
        assert len(reviews) == summary.reviews == round(60 * 0.12)
        for review in reviews:
            assert review.total_score == sum(review.scores.values()) and len(review.scores) in (4, 5)
            total = review.total_score
            assert review.verdict == ("优秀" if total >= 90 else "合格" if total >= 60 else "不合格")
            assert review.reviewed_on >= review.case.closed_on
        assert len(learning) == summary.materials == 20
        assert {m.kind for m in learning} == {"law", "guide", "training-note", "case-analysis"}
        for material in learning:
            assert material.cases and all(c.exemplar and material.title.startswith(c.category)
                                          for c in material.cases)
