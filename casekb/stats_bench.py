"""Latency of every statistics dashboard query on a synthetic library (`casekb stats bench`)."""
from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.db import Database
from kb.models import Organisation
from kb.statistics import StatsFilter, case_measures, database_sizes, personnel

AS_OF = dt.date(2026, 11, 1)


def dashboard_queries(session: Session) -> dict[str, Callable[[], object]]:
    """The queries the statistics page runs, plus the raw-row fallbacks a user can trigger."""
    township = session.scalar(select(Organisation.id).where(Organisation.level == "township").order_by(Organisation.id))
    region = session.scalar(select(Organisation.name).where(Organisation.level == "county").order_by(Organisation.id))
    region = region.removesuffix("人民调解委员会") if region else ""
    year = StatsFilter(received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 12, 31))

    def measures(filters=StatsFilter(), by=(), parent=None):
        return lambda: case_measures(session, filters, by, parent=parent, as_of=AS_OF)

    return {
        "totals": measures(),
        "months": measures(by=("month",)),
        "quarters, 2025": measures(year, ("quarter",)),
        "categories": measures(by=("category",)),
        "region x category": measures(by=("region", "category")),
        "organisation drill-down (root)": measures(by=("organisation",)),
        "organisation drill-down (township, raw)": measures(StatsFilter(organisation_id=township),
                                                           ("organisation",), township),
        "医疗 in one region, by month": measures(StatsFilter(categories=("医疗",), regions=(region,)), ("month",)),
        "cause 民间借贷纠纷 by category (raw)": measures(StatsFilter(causes=("民间借贷纠纷",)), ("category",)),
        "days, last 90 (raw)": measures(StatsFilter(received_from=AS_OF - dt.timedelta(days=90)), ("day",)),
        "personnel": lambda: personnel(session, as_of=AS_OF),
        "nine databases": lambda: database_sizes(session),
    }


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
