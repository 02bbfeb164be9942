"""Latency of every statistics dashboard query on a synthetic library (`casekb stats bench`)."""
from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kb.db import Database
from kb.models import DisputeCase, Organisation
from kb.filters import Filters
from kb.statistics import case_measures, database_sizes, linked_counts, organisation_structure, personnel

AS_OF = dt.date(2026, 11, 1)


def dashboard_queries(session: Session) -> dict[str, Callable[[], object]]:
    """The queries the statistics page runs, plus the raw-row fallbacks a user can trigger."""
    township = session.scalar(select(Organisation.id).where(Organisation.level == "township").order_by(Organisation.id))
    region = session.scalar(select(Organisation.name).where(Organisation.level == "county").order_by(Organisation.id))
    region = region.removesuffix("人民调解委员会") if region else ""
    year = Filters(received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 12, 31))

    def measures(filters=Filters(), by=(), parent=None):
        return lambda: case_measures(session, filters, by, parent=parent, as_of=AS_OF)

    return {
        "totals": measures(),
        "months": measures(by=("month",)),
        "quarters, 2025": measures(year, ("quarter",)),
        "categories": measures(by=("category",)),
        "region x category": measures(by=("region", "category")),
        "organisation drill-down (root)": measures(by=("organisation",)),
        "organisation drill-down (township, raw)": measures(Filters(organisation_id=township),
                                                           ("organisation",), township),
        "医疗 in one region, by month": measures(Filters(categories=("医疗",), regions=(region,)), ("month",)),
        "cause 民间借贷纠纷 by category (raw)": measures(Filters(causes=("民间借贷纠纷",)), ("category",)),
        "days, last 90 (raw)": measures(Filters(received_from=AS_OF - dt.timedelta(days=90)), ("day",)),
        "amount 1,000-50,000 yuan by category (raw)": measures(Filters(amount_min=1000, amount_max=50_000),
                                                               ("category",)),
        "unsuccessful cases by destination": lambda: linked_counts(session, "unsuccessful_cases", by=("kind",)),
        "organisation tree (root)": lambda: organisation_structure(session),
        "personnel": lambda: personnel(session, as_of=AS_OF),
        "nine databases": lambda: database_sizes(session),
    }


def give_amounts(db: Database) -> int:
    """The synthetic generator leaves agreed amounts empty: give each successful case a deterministic one
    (100 to 99,900 yuan) so the amount filter selects real rows; the cases changed (0 when amounts exist)."""
    cases = DisputeCase.__table__
    with db.transaction() as session:
        if session.scalar(select(func.count()).where(cases.c.agreed_amount.is_not(None))):
            return 0
        return session.execute(update(cases).where(cases.c.outcome == "成功")
                               .values(agreed_amount=cases.c.id * 7919 % 1000 * 100 + 100)).rowcount


def measure(db: Database, repeats: int) -> list[tuple[str, float, float]]:
    """(query, p50 ms, p95 ms) for each dashboard query, each run `repeats` times."""
    figures = []
    with db.sessions() as session:
        for name, query in dashboard_queries(session).items():
            query()  # warm the page cache, as a live server would be
            timings = []
            for _ in range(repeats):
                start = time.perf_counter()
                query()
                timings.append((time.perf_counter() - start) * 1000)
            timings.sort()
            p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
            figures.append((name, statistics.median(timings), p95))
    return figures
