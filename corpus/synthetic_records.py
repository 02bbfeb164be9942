"""Deterministic synthetic dispute records at Wenzhou's scale, for measuring statistics.

A Wenzhou-shaped organisation tree (city → 11 counties → 185 townships → 5,818 villages, plus
210 industry committees under the counties), mediators, experts, and any number of dispute
records over three years with outcomes, destinations, exemplars and reviews. Rows go in with
SQLAlchemy Core in large batches into an empty database; the same seed gives the same rows.
Nothing here is real: every row is marked synthetic.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, insert, text

from casekb.config import DEFAULT_CATEGORIES
from kb.models import (DisputeCase, ExemplarMark, Expert, Mediator, Organisation, QualityReview,
                       UnsuccessfulCaseTracking)
from kb.statistics import note_change

COUNTIES, TOWNSHIPS, VILLAGES, INDUSTRY = 11, 185, 5818, 210
PERIOD_START, PERIOD_END = dt.date(2023, 11, 1), dt.date(2026, 10, 31)
BATCH = 10_000
#: relative frequency of each default category (neighbour and family disputes dominate)
CATEGORY_WEIGHTS = (14, 16, 6, 12, 5, 8, 4, 2, 2, 9, 5, 4, 6, 4, 3)
CAUSES = ("民间借贷纠纷", "离婚纠纷", "相邻关系纠纷", "买卖合同纠纷", "劳动合同纠纷", "医疗损害责任纠纷",
          "机动车交通事故责任纠纷", "物业服务合同纠纷", "宅基地使用权纠纷", "土地承包经营权纠纷")
OUTCOMES, OUTCOME_WEIGHTS = ("成功", "不成功", "终止"), (95, 3.5, 1.5)
DESTINATIONS = ("court", "arbitration", "petition", "administrative", "other")
INDUSTRY_CATEGORIES = ("医疗", "劳动争议", "道路交通事故", "物业")
EXPERT_FIELDS = ("律师", "医生", "工程师", "会计师", "心理咨询师")


def _tree() -> tuple[list[dict], list[int], dict[int, list[int]], dict[int, str], list[int]]:
    """Organisation rows with explicit ids and paths; local committees per county; county names."""
    rows, next_id = [], iter(range(1, 10 ** 6))

    def add(name: str, level: str, parent: dict | None) -> dict:
        org_id = next(next_id)
        row = {"id": org_id, "name": name, "level": level, "parent_id": parent["id"] if parent else None,
               "path": f"{parent['path'] if parent else '/'}{org_id}/", "synthetic": True}
        rows.append(row)
        return row

    city = add("示范市人民调解委员会", "city", None)
    counties = [add(f"第{c + 1}区县人民调解委员会", "county", city) for c in range(COUNTIES)]
    local, names, industry = {}, {}, []
    for c, county in enumerate(counties):
        names[county["id"]] = f"第{c + 1}区县"
        local[county["id"]] = []
    for t in range(TOWNSHIPS):
        county = counties[t % COUNTIES]
        township = add(f"第{t + 1}乡镇人民调解委员会", "township", county)
        local[county["id"]].append(township["id"])
    townships = [row for row in rows if row["level"] == "township"]
    for v in range(VILLAGES):
        township = townships[v % TOWNSHIPS]
        village = add(f"第{v + 1}村人民调解委员会", "village", township)
        local[township["parent_id"]].append(village["id"])
    for i in range(INDUSTRY):
        industry.append(add(f"第{i + 1}行业人民调解委员会", "industry", counties[i % COUNTIES])["id"])
    return rows, [c["id"] for c in counties], local, names, industry


def generate(engine: Engine, records: int, seed: int = 2024) -> int:
    """Fill an empty case library with `records` synthetic dispute records; returns the count."""
    rng = random.Random(seed)
    orgs, counties, local, county_names, industry = _tree()
    county_of = {org["id"]: int(org["path"].split("/")[2]) for org in orgs if org["level"] != "city"}
    with engine.begin() as conn:
        for batch in _batches(orgs):
            conn.execute(insert(Organisation), batch)
        conn.execute(insert(Mediator), [_mediator(rng, org) for org in orgs if org["level"] != "city"])
        conn.execute(insert(Expert), [
            {"name": f"专家{i}", "field": EXPERT_FIELDS[i % len(EXPERT_FIELDS)], "synthetic": True}
            for i in range(300)])
        for batch in _batches(_cases(rng, records, counties, local, industry, county_of, county_names)):
            conn.execute(insert(DisputeCase), [case for case, _ in batch])
            extras = [extra for _, extra in batch]
            for model, key in ((UnsuccessfulCaseTracking, "tracking"), (ExemplarMark, "exemplar"),
                               (QualityReview, "review")):
                rows = [extra[key] for extra in extras if key in extra]
                if rows:
                    conn.execute(insert(model), rows)
        _advance_sequences(conn)
        note_change(conn)  # Core inserts pass no ORM flush hook
    return records


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL's id sequences know nothing of the explicit ids inserted here: move them past."""
    if conn.dialect.name != "postgresql":
        return
    for table in (Organisation.__tablename__, DisputeCase.__tablename__):
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def _mediator(rng: random.Random, org: dict) -> dict:
    return {"name": f"调解员{org['id']}", "organisation_id": org["id"],
            "full_time": org["level"] in ("county", "industry") or rng.random() < 0.15,
            "specialities": rng.sample(DEFAULT_CATEGORIES, rng.randint(1, 2)),
            "birth_year": rng.randint(1958, 1998), "synthetic": True}


def _cases(rng: random.Random, records: int, counties: list[int], local: dict[int, list[int]],
           industry: list[int], county_of: dict[int, int], county_names: dict[int, str]) -> Iterator[tuple[dict, dict]]:
    span = (PERIOD_END - PERIOD_START).days + 1
    for i in range(1, records + 1):
        category = rng.choices(DEFAULT_CATEGORIES, CATEGORY_WEIGHTS)[0]
        if category in INDUSTRY_CATEGORIES and rng.random() < 0.6:
            org_id = rng.choice(industry)
        else:
            org_id = rng.choice(local[rng.choice(counties)])
        received = PERIOD_START + dt.timedelta(days=rng.randrange(span))
        # A few cases stall far past the time limit; the rest close within 45 days.
        closed = received + dt.timedelta(days=rng.randint(1, 45) if rng.random() > 0.003 else 400)
        closed = closed if closed <= PERIOD_END else None
        outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0] if closed else None
        case = {"id": i, "external_id": f"synthetic-{i}", "title": f"{category}纠纷{i}", "category": category,
                "cause": rng.choice(CAUSES), "region": county_names[county_of[org_id]], "organisation_id": org_id,
                "received_on": received, "closed_on": closed, "outcome": outcome,
                "satisfaction": rng.randint(1, 5) if closed else None, "facts": f"{category}纠纷事实{i}",
                "dataset": "synthetic-records", "synthetic_fields": ["all"]}
        extra = {}
        if outcome in ("不成功", "终止"):
            extra["tracking"] = {"case_id": i, "destination": rng.choice(DESTINATIONS), "synthetic": True}
        if outcome == "成功" and rng.random() < 0.01:
            extra["exemplar"] = {"case_id": i, "curator": "示范", "synthetic": True}
        if closed and rng.random() < 0.03:
            score = rng.randint(50, 100)
            extra["review"] = {"case_id": i, "reviewer": "示范", "total_score": score, "scores": {},
                               "verdict": "优秀" if score >= 90 else "合格" if score >= 60 else "不合格",
                               "reviewed_on": closed, "synthetic": True}
        yield case, extra


def _batches(rows) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
