"""Statistics over the case library: case measures sliced by region, category, cause and time,
the case-linked databases (exemplars, tracking, reviews, learning material) sliced by their cases,
personnel structure, and the size of each of the nine databases.

Case measures come from one of two sources with the same columns: the raw case rows, or the
monthly summary that `refresh_summary` rebuilds (organisations rolled up to the units right
below the root, so the summary stays small at Wenzhou's scale). A query uses the summary only
when it is current and can answer exactly; otherwise it reads the raw rows.

The summary is current while the change counter in `stats_state` still holds the value the last
rebuild recorded: every flush that writes a case, exemplar mark, quality review, tracking row or
organisation bumps the counter in the same transaction, so an edit can never leave stale figures.
A current summary is held in memory as numpy columns (percentiles need a per-day histogram that
is too large to scan in SQL for every dashboard query).
"""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlalchemy import (Connection, DateTime, Index, Integer, String, and_, case, delete, event, func, insert,
                        literal, select, update)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.functions import FunctionElement

from kb.filters import Filters
from kb.models import (Base, DisputeCase, ExemplarMark, Expert, LearningMaterial, Mediator, Organisation,
                       Party, QualityReview, UnsuccessfulCaseTracking, material_cases)

DEFAULT_TIME_LIMIT_DAYS = 30
#: organisations deeper than this are counted under their ancestor at this depth in the summary
UNIT_DEPTH = 2
TIME_DIMENSIONS = ("day", "month", "quarter", "year")
DIMENSIONS = TIME_DIMENSIONS + ("category", "cause", "region", "organisation", "outcome")
#: dimensions only the raw rows can answer (so can the cause, exemplar and amount filters)
RAW_ONLY = {"day", "cause"}
AGE_BANDS = ((0, 30, "30岁以下"), (30, 40, "30-39岁"), (40, 50, "40-49岁"), (50, 60, "50-59岁"),
             (60, 200, "60岁及以上"))
SUCCESS = "成功"
UNRESOLVED = ("不成功", "终止")
UNTRACKED = "untracked"
DIRECT = "（本级）"
#: what people read for the codes stored as a row's kind (where unsuccessful cases went, kinds of parties
#: and of learning material); a kind not listed (materials take any) is shown as stored
KIND_LABELS = {"court": "诉讼", "arbitration": "仲裁", "petition": "信访", "administrative": "行政处理",
               "other": "其他", UNTRACKED: "未跟踪", "person": "自然人", "organisation": "单位",
               "law": "法律法规", "guide": "工作指引", "training-note": "培训笔记", "case-analysis": "案例评析"}


def kind_label(kind: str) -> str:
    """What people read for a stored kind (KIND_LABELS), else the kind as stored."""
    return KIND_LABELS.get(kind, str(kind))

# Open cases are few: this index makes the overdue count a short range scan.
Index("ix_dispute_cases_closed_received", DisputeCase.closed_on, DisputeCase.received_on)
#: every case column the raw-row measures read, so day ranges and causes never touch the wide case rows
STATS_COLUMNS = ("category", "region", "organisation_id", "outcome", "closed_on", "satisfaction")
Index("ix_dispute_cases_stats_received", DisputeCase.received_on, DisputeCase.cause,
      *(getattr(DisputeCase, name) for name in STATS_COLUMNS))
Index("ix_dispute_cases_stats_cause", DisputeCase.cause, DisputeCase.received_on,
      *(getattr(DisputeCase, name) for name in STATS_COLUMNS))
# Partial covering indexes: amount ranges read only the cases with an amount, open-case counts only open cases.
Index("ix_dispute_cases_stats_amount", DisputeCase.agreed_amount, DisputeCase.received_on, DisputeCase.cause,
      *(getattr(DisputeCase, name) for name in STATS_COLUMNS),
      sqlite_where=DisputeCase.agreed_amount.is_not(None), postgresql_where=DisputeCase.agreed_amount.is_not(None))
Index("ix_dispute_cases_stats_open", DisputeCase.closed_on, DisputeCase.received_on, DisputeCase.organisation_id,
      DisputeCase.category, DisputeCase.region, DisputeCase.cause, DisputeCase.outcome, DisputeCase.agreed_amount,
      sqlite_where=DisputeCase.closed_on.is_(None), postgresql_where=DisputeCase.closed_on.is_(None))


# --- portable SQL: dates, index hints ------------------------------------------------------

class month_of(FunctionElement):
    """'YYYY-MM' of a date."""
    type = String()
    inherit_cache = True


@compiles(month_of, "sqlite")
def _month_sqlite(element, compiler, **kw):
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"


@compiles(month_of)
def _month_default(element, compiler, **kw):
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM')"


class days_between(FunctionElement):
    """Whole days from the first date to the second."""
    type = Integer()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_sqlite(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"


@compiles(days_between)
def _days_default(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"({end} - {start})"


class unindexed(FunctionElement):
    """A column that SQLite may read but not search an index for (a unary plus, SQLite's documented way)."""
    inherit_cache = True

    def __init__(self, column):
        super().__init__(column)
        self.type = column.type


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return f"+{compiler.process(element.clauses, **kw)}"


@compiles(unindexed)
def _unindexed_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


# --- the summary tables ---------------------------------------------------------------------

class _Grain:
    month: Mapped[str | None] = mapped_column(String(7), index=True)
    #: the case's committee rolled up to UNIT_DEPTH
    organisation_id: Mapped[int | None] = mapped_column(Integer)
    region: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50))
    outcome: Mapped[str | None] = mapped_column(String(10))


class CaseMonthSummary(_Grain, Base):
    """Case measures per month × unit × region × category × outcome × destination."""
    __tablename__ = "stats_case_months"
    id: Mapped[int] = mapped_column(primary_key=True)
    destination: Mapped[str | None] = mapped_column(String(20))
    cases: Mapped[int]
    closed: Mapped[int]
    timed: Mapped[int]
    duration_sum: Mapped[int]
    satisfaction_n: Mapped[int]
    satisfaction_sum: Mapped[int]
    exemplars: Mapped[int]
    review_n: Mapped[int]
    review_sum: Mapped[int]


class CaseDurationSummary(_Grain, Base):
    """Closed cases per month × unit × region × category × outcome × days taken (for percentiles)."""
    __tablename__ = "stats_case_durations"
    id: Mapped[int] = mapped_column(primary_key=True)
    days: Mapped[int]
    cases: Mapped[int]


class SummaryRefresh(Base):
    """When the summary was rebuilt, and the change counter it was built at."""
    __tablename__ = "stats_refreshes"
    id: Mapped[int] = mapped_column(primary_key=True)
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    changes: Mapped[int]


class StatsState(Base):
    """One row (id 1): how many transactions have changed the rows statistics read."""
    __tablename__ = "stats_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    changes: Mapped[int] = mapped_column(default=0)


#: rows whose insert, update or delete changes some statistic (organisations: the roll-up)
WATCHED = (DisputeCase, ExemplarMark, QualityReview, UnsuccessfulCaseTracking, Organisation)
STATE_ID = 1
SUMS = ("cases", "closed", "timed", "duration_sum", "satisfaction_n", "satisfaction_sum", "exemplars",
        "review_n", "review_sum")
GRAIN = ("month", "organisation_id", "region", "category", "outcome")


# --- results --------------------------------------------------------------------------------

@dataclass
class CaseMeasures:
    """The case measures of one group."""
    key: tuple = ()
    label: tuple[str, ...] = ()
    received: int = 0
    closed: int = 0
    succeeded: int = 0
    unsuccessful_by_destination: dict[str, int] = field(default_factory=dict)
    timed: int = 0
    duration_sum: int = 0
    duration_p90: int | None = None
    overdue: int = 0
    exemplars: int = 0
    review_n: int = 0
    review_sum: int = 0
    satisfaction_n: int = 0
    satisfaction_sum: int = 0

    @property
    def success_rate(self) -> float | None:
        return _ratio(self.succeeded, self.closed)

    @property
    def average_duration(self) -> float | None:
        return _ratio(self.duration_sum, self.timed)

    @property
    def average_review_score(self) -> float | None:
        return _ratio(self.review_sum, self.review_n)

    @property
    def average_satisfaction(self) -> float | None:
        return _ratio(self.satisfaction_sum, self.satisfaction_n)

    def as_dict(self) -> dict:
        """The measures a report shows, rates rounded."""
        return {
            "key": list(self.key), "label": list(self.label), "received": self.received,
            "closed": self.closed, "succeeded": self.succeeded, "success_rate": _round(self.success_rate, 4),
            "unsuccessful": sum(self.unsuccessful_by_destination.values()),
            "unsuccessful_by_destination": dict(sorted(self.unsuccessful_by_destination.items())),
            "average_duration_days": _round(self.average_duration, 1), "p90_duration_days": self.duration_p90,
            "overdue": self.overdue, "exemplars": self.exemplars, "reviews": self.review_n,
            "average_review_score": _round(self.average_review_score, 1),
            "satisfaction_responses": self.satisfaction_n,
            "average_satisfaction": _round(self.average_satisfaction, 2),
        }


def _ratio(top: int, bottom: int) -> float | None:
    return top / bottom if bottom else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --- sources --------------------------------------------------------------------------------

#: the case columns filters and dimensions read
CASE_COLUMNS = ("received_on", "closed_on", "organisation_id", "region", "category", "cause", "outcome",
                "agreed_amount")


def _case_columns(*measures):
    """One row per case: its id, the raw columns filters and dimensions need (and `measures`, labelled
    columns of the case row), without joins."""
    exemplar = select(ExemplarMark.id).where(ExemplarMark.case_id == DisputeCase.id).exists()
    return (select(DisputeCase.id, month_of(DisputeCase.received_on).label("month"),
                   *(getattr(DisputeCase, name) for name in CASE_COLUMNS),
                   case((exemplar, 1), else_=0).label("exemplars"), *measures)
            .subquery("open_cases"))


#: looking up the linked rows of this many matching cases costs about as much as reading one (wide) case row
#: by id (measured on SQLite with 400,000 cases)
CASE_LOOKUP_COST = 4
#: the sums a case row holds itself; the rest (exemplars, reviews) and destinations are in linked rows
OWN_SUMS = ("cases", "closed", "timed", "duration_sum", "satisfaction_n", "satisfaction_sum")


def _case_rows(cutoff: dt.date | None = None):
    """`_case_columns` with days taken, each of OWN_SUMS as this case's own value (exemplars: 1 for an
    exemplar), and overdue: 1 when the case is still open and was received before `cutoff`."""
    days = days_between(DisputeCase.received_on, DisputeCase.closed_on)
    timed = and_(DisputeCase.closed_on.is_not(None), DisputeCase.received_on.is_not(None))
    return _case_columns(
        days.label("days"), literal(1).label("cases"),
        case((DisputeCase.closed_on.is_not(None), 1), else_=0).label("closed"),
        case((timed, 1), else_=0).label("timed"),
        case((timed, days), else_=0).label("duration_sum"),
        case((DisputeCase.satisfaction.is_not(None), 1), else_=0).label("satisfaction_n"),
        func.coalesce(DisputeCase.satisfaction, 0).label("satisfaction_sum"),
        case((and_(DisputeCase.closed_on.is_(None), DisputeCase.received_on < cutoff), 1), else_=0).label("overdue")
        if cutoff else literal(0).label("overdue"))


def _joined_source():
    """`_case_rows` with each case's tracking destination and its reviews' count and score sum (a case has
    at most one tracking row): every column of the summary, for the rebuild that reads every case."""
    cases = _case_rows()
    reviews = (select(QualityReview.case_id, func.count().label("n"),
                      func.sum(QualityReview.total_score).label("total"))
               .group_by(QualityReview.case_id).subquery())
    return (select(cases, UnsuccessfulCaseTracking.destination, func.coalesce(reviews.c.n, 0).label("review_n"),
                   func.coalesce(reviews.c.total, 0).label("review_sum"))
            .select_from(cases)
            .outerjoin(UnsuccessfulCaseTracking, UnsuccessfulCaseTracking.case_id == cases.c.id)
            .outerjoin(reviews, reviews.c.case_id == cases.c.id)
            .subquery("cases"))


class _Tree:
    """Organisations by id with their depth, for subtree filters and roll-ups."""

    def __init__(self, session: Session):
        self.orgs = {org_id: (name, path) for org_id, name, path in
                     session.execute(select(Organisation.id, Organisation.name, Organisation.path))}

    def depth(self, org_id: int) -> int:
        return len(self.ancestors(org_id))

    def ancestors(self, org_id: int) -> list[int]:
        return [int(p) for p in self.orgs[org_id][1].strip("/").split("/") if p]

    def name(self, org_id: int | None) -> str:
        return self.orgs[org_id][0] if org_id in self.orgs else "（未指定组织）"

    def below(self, org_id: int) -> list[int]:
        """The organisation and all its descendants."""
        path = self.orgs[org_id][1]
        return [i for i, (_, p) in self.orgs.items() if p.startswith(path)]

    def bucket(self, org_id: int | None, parent: int | None) -> int | None:
        """The child of `parent` (the top units when None) holding org_id; parent itself for its own cases."""
        if org_id not in self.orgs or parent is not None and parent not in self.orgs:
            return None  # no such organisation (or none below an unknown parent): the unassigned group
        chain = self.ancestors(org_id)
        level = self.depth(parent) if parent else UNIT_DEPTH - 1
        return chain[level] if len(chain) > level else chain[-1]

    def unit(self, org_id: int | None) -> int | None:
        return self.ancestors(org_id)[:UNIT_DEPTH][-1] if org_id in self.orgs else None


# --- the change counter ---------------------------------------------------------------------

def note_change(connection: Connection) -> None:
    """Bump the change counter in the connection's transaction (writers that bypass the ORM call this)."""
    bumped = connection.execute(update(StatsState).where(StatsState.id == STATE_ID)
                                .values(changes=StatsState.changes + 1))
    if bumped.rowcount == 0:  # a schema made without the migration, which inserts the row
        connection.execute(insert(StatsState).values(id=STATE_ID, changes=1))


def _changes_statistics(session: Session) -> bool:
    dirty = (obj for obj in session.dirty if session.is_modified(obj, include_collections=False))
    return any(isinstance(obj, WATCHED) for group in (session.new, dirty, session.deleted) for obj in group)


@event.listens_for(Session, "after_flush")
def _count_changes(session: Session, _flush_context) -> None:
    if _changes_statistics(session):
        note_change(session.connection())


def _change_count(session: Session) -> int:
    return session.scalar(select(StatsState.changes).where(StatsState.id == STATE_ID)) or 0


def _current_refresh(session: Session) -> SummaryRefresh | None:
    """The last rebuild, when nothing the statistics read has changed since."""
    last = session.scalar(select(SummaryRefresh).order_by(SummaryRefresh.id.desc()).limit(1))
    return last if last is not None and last.changes == _change_count(session) else None


def summary_is_current(session: Session) -> bool:
    """Whether the summary was built from the rows as they are now."""
    return _current_refresh(session) is not None


def refresh_if_stale(session: Session) -> int | None:
    """Rebuild the summary when it is stale (in the caller's transaction); its rows, or None when current."""
    return None if summary_is_current(session) else refresh_summary(session)


def _month_aligned(filters: Filters) -> bool:
    start, end = filters.received_from, filters.received_to
    return (start is None or start.day == 1) and (end is None or (end + dt.timedelta(days=1)).day == 1)


def _usable_refresh(session: Session, tree: _Tree, filters: Filters, by: Sequence[str],
                    parent: int | None) -> SummaryRefresh | None:
    """The current rebuild when the summary can answer the query exactly, else None."""
    if (RAW_ONLY & set(by) or filters.causes or filters.exemplar_only or not _month_aligned(filters)
            or filters.amount_min is not None or filters.amount_max is not None):
        return None
    for org_id in (filters.organisation_id, parent):
        if org_id is not None and org_id in tree.orgs and tree.depth(org_id) >= UNIT_DEPTH:
            return None
    return _current_refresh(session)


def _where(source, tree: _Tree, filters: Filters) -> list:
    """SQL conditions on raw case rows."""
    c = source.c
    conditions = []
    for column, values in ((c.category, filters.categories), (c.region, filters.regions),
                           (c.outcome, filters.outcomes), (c.cause, filters.causes)):
        if values:
            conditions.append(column.in_(values))
    if filters.exemplar_only:
        conditions.append(c.exemplars == 1)
    if filters.organisation_id is not None:
        conditions.append(c.organisation_id.in_(tree.below(filters.organisation_id)
                                                if filters.organisation_id in tree.orgs else []))
    if filters.received_from:
        conditions.append(c.received_on >= filters.received_from)
    if filters.received_to:
        conditions.append(c.received_on <= filters.received_to)
    if filters.amount_min is not None:
        conditions.append(c.agreed_amount >= filters.amount_min)
    if filters.amount_max is not None:
        conditions.append(c.agreed_amount <= filters.amount_max)
    return conditions


def _summary_tests(tree: _Tree, filters: Filters) -> dict[str, Callable[[object], bool]]:
    """The filters as tests on the values of summary columns (month-aligned dates, units)."""
    tests: dict[str, Callable[[object], bool]] = {}
    for name, values in (("category", filters.categories), ("region", filters.regions),
                         ("outcome", filters.outcomes)):
        if values:
            tests[name] = set(values).__contains__
    if filters.organisation_id is not None:
        tests["organisation_id"] = set(tree.below(filters.organisation_id)
                                       if filters.organisation_id in tree.orgs else ()).__contains__
    if filters.received_from or filters.received_to:
        low = f"{filters.received_from:%Y-%m}" if filters.received_from else ""
        high = f"{filters.received_to:%Y-%m}" if filters.received_to else "9999-99"
        tests["month"] = lambda month: month is not None and low <= month <= high
    return tests


SQL_COLUMN = {"day": "received_on", "month": "month", "quarter": "month", "year": "month",
              "organisation": "organisation_id"}


def _column(dim: str) -> str:
    """The column a dimension groups by; coarser time and organisations are folded in Python."""
    return SQL_COLUMN.get(dim, dim)


def _fold_key(tree: _Tree, dim: str, value, parent: int | None):
    if value is None:
        return None
    if dim == "quarter":
        return f"{value[:4]}-Q{(int(value[5:7]) - 1) // 3 + 1}"
    if dim == "year":
        return value[:4]
    if dim == "organisation":
        return tree.bucket(value, parent)
    if dim == "day":
        return value if isinstance(value, str) else value.isoformat()
    return value


def _label(tree: _Tree, dim: str, value, parent: int | None) -> str:
    if value is None:
        return "（未填）"
    if dim == "organisation":
        return DIRECT + tree.name(value) if value == parent else tree.name(value)
    if dim == "kind":
        return kind_label(value)
    return str(value)


# --- the summary in memory ------------------------------------------------------------------

class _Frame:
    """A summary table as numpy columns: key columns as codes into their distinct values, sums as integers."""

    def __init__(self, rows: Sequence[tuple], keys: Sequence[str], sums: Sequence[str]):
        columns = list(zip(*rows)) if rows else [()] * (len(keys) + len(sums))
        self.size = len(rows)
        self.keys = {name: _encode(values) for name, values in zip(keys, columns)}
        self.sums = {name: np.asarray(values, dtype=np.int64) for name, values in zip(sums, columns[len(keys):])}

    def select(self, tests: dict[str, Callable[[object], bool]]) -> np.ndarray:
        """Which rows pass every test (each test runs once per distinct value, not per row)."""
        keep = np.ones(self.size, dtype=bool)
        for name, test in tests.items():
            codes, values = self.keys[name]
            keep &= np.isin(codes, [code for code, value in enumerate(values) if test(value)])
        return keep

    def group_sums(self, keep: np.ndarray, by: Sequence[str], sums: Sequence[str]) -> list[tuple]:
        """(values of `by`..., sums...) per group of the kept rows, like SQL GROUP BY."""
        sizes = [len(self.keys[name][1]) for name in by]
        codes = [self.keys[name][0][keep] for name in by]
        flat = np.ravel_multi_index(codes, sizes) if by else np.zeros(int(keep.sum()), dtype=np.int64)
        groups, index = np.unique(flat, return_inverse=True)
        totals = [np.bincount(index, weights=self.sums[name][keep], minlength=len(groups)) for name in sums]
        group_codes = np.unravel_index(groups, sizes) if by else ()
        values = [[self.keys[name][1][code] for code in column] for name, column in zip(by, group_codes)]
        return [tuple(column[g] for column in values) + tuple(int(total[g]) for total in totals)
                for g in range(len(groups))]


def _encode(values: Sequence) -> tuple[np.ndarray, list]:
    """A code per value, and the value of each code."""
    codes: dict = {}
    column = np.fromiter((codes.setdefault(v, len(codes)) for v in values), dtype=np.int64, count=len(values))
    return column, list(codes)


#: (database, rebuild) → (months, durations): a rebuild never changes, so neither does its frame
_frames: dict[tuple, tuple[_Frame, _Frame]] = {}


def _summary_frames(session: Session, refresh: SummaryRefresh) -> tuple[_Frame, _Frame]:
    """The rebuild's summary tables in memory, loaded once per process."""
    key = (session.get_bind().url.render_as_string(), refresh.id, refresh.refreshed_at)
    frames = _frames.get(key)
    if frames is None:
        months, durations = CaseMonthSummary.__table__.c, CaseDurationSummary.__table__.c
        month_keys, duration_keys = GRAIN + ("destination",), GRAIN + ("days",)
        frames = (_Frame(session.execute(select(*(months[n] for n in month_keys + SUMS))).all(), month_keys, SUMS),
                  _Frame(session.execute(select(*(durations[n] for n in duration_keys + ("cases",)))).all(),
                         duration_keys, ("cases",)))
        _frames.clear()  # one library per process: keep only the newest rebuild
        _frames[key] = frames
    return frames


# --- case measures --------------------------------------------------------------------------

class _Groups:
    """Case measures per folded key of the `by` dimensions."""

    def __init__(self, tree: _Tree, by: Sequence[str], parent: int | None):
        self.tree, self.by, self.parent = tree, by, parent
        self.measures: dict[tuple, CaseMeasures] = {}
        self.histograms: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def get(self, values: Iterable) -> CaseMeasures:
        key = tuple(_fold_key(self.tree, dim, value, self.parent) for dim, value in zip(self.by, values))
        if key not in self.measures:
            label = tuple(_label(self.tree, dim, k, self.parent) for dim, k in zip(self.by, key))
            self.measures[key] = CaseMeasures(key=key, label=label)
        return self.measures[key]

    def add(self, values: Sequence, outcome: str | None, destination: str | None,
            sums: Sequence[int]) -> CaseMeasures:
        """Add one row of SUMS for an outcome and destination; the group it went to."""
        measures = self.get(values)
        cases, closed, timed, duration, sat_n, sat_sum, exemplars, review_n, review_sum = (int(s or 0) for s in sums)
        measures.received += cases
        measures.closed += closed
        measures.succeeded += closed if outcome == SUCCESS else 0
        if outcome in UNRESOLVED:
            where = destination or UNTRACKED
            measures.unsuccessful_by_destination[where] = measures.unsuccessful_by_destination.get(where, 0) + cases
        measures.timed += timed
        measures.duration_sum += duration
        measures.satisfaction_n += sat_n
        measures.satisfaction_sum += sat_sum
        measures.exemplars += exemplars
        measures.review_n += review_n
        measures.review_sum += review_sum
        return measures

    def track(self, values: Sequence, destination: str | None, cases: int) -> None:
        """Move unresolved cases of a group, added as untracked, to the destination they were referred to."""
        where = destination or UNTRACKED
        if where == UNTRACKED:
            return
        counts = self.get(values).unsuccessful_by_destination
        counts[UNTRACKED] -= cases
        if not counts[UNTRACKED]:
            del counts[UNTRACKED]
        counts[where] = counts.get(where, 0) + cases

    def add_days(self, key: tuple, days: int, cases: int) -> None:
        self.histograms[key][int(days)] += int(cases)

    def result(self) -> list[CaseMeasures]:
        """The groups sorted by key, with their p90 durations (one empty total when nothing matched)."""
        for key, histogram in self.histograms.items():
            self.measures[key].duration_p90 = percentile(histogram, 0.9)
        if not self.by and not self.measures:
            self.measures[()] = CaseMeasures()
        return sorted(self.measures.values(), key=lambda m: _sort_key(m.key))


def case_measures(session: Session, filters: Filters = Filters(), by: Sequence[str] = (),
                  parent: int | None = None, as_of: dt.date | None = None,
                  time_limit_days: int = DEFAULT_TIME_LIMIT_DAYS) -> list[CaseMeasures]:
    """Case measures per group of the `by` dimensions (one total row when empty), sorted by key.

    `organisation` groups by the children of `parent` (the units below the root when None);
    `overdue` counts cases still open `time_limit_days` after receipt, as of `as_of` (today).
    """
    unknown = set(by) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimension {sorted(unknown)[0]!r}; dimensions: {', '.join(DIMENSIONS)}")
    tree = _Tree(session)
    groups = _Groups(tree, by, parent)
    as_of = as_of or dt.date.today()
    # Near year 1 the limit would run off the calendar; nothing can be overdue before it began.
    cutoff = as_of - dt.timedelta(days=min(time_limit_days, (as_of - dt.date.min).days))
    refresh = _usable_refresh(session, tree, filters, by, parent)
    if refresh is None:
        _add_raw(session, groups, filters, cutoff)
    else:
        _add_summary(session, groups, filters, refresh)
        _add_overdue(session, groups, filters, cutoff)
    return groups.result()


def _add_raw(session: Session, groups: _Groups, filters: Filters, cutoff: dt.date) -> None:
    """Every measure from the raw rows: the case rows' own in one pass over a covering index, then the
    linked rows (exemplar marks, reviews, tracking: few) of the matching cases, each joined by case id."""
    cases = _case_rows(cutoff)
    dims = [getattr(cases.c, _column(dim)) for dim in groups.by]
    where = _where(cases, groups.tree, filters)
    query = (select(*dims, cases.c.outcome, cases.c.days,
                    *(func.sum(getattr(cases.c, name)) for name in OWN_SUMS + ("overdue",)))
             .where(*where).group_by(*dims, cases.c.outcome, cases.c.days))
    width = len(groups.by)
    linked_sums = (0,) * (len(SUMS) - len(OWN_SUMS))  # added below
    for row in session.execute(query):
        values, (outcome, days, *sums, overdue) = row[:width], row[width:]
        measures = groups.add(values, outcome, None, (*sums, *linked_sums))
        measures.overdue += int(overdue or 0)
        if days is not None:
            groups.add_days(measures.key, days, sums[0])

    matched = sum(measures.received for measures in groups.measures.values())

    def per_group(model, *aggregates, by=(), conditions=()):
        """Aggregates of a linked table's rows whose cases match, per group (and `by`). The join starts
        from the cheaper side: when far more cases match than there are linked rows, each linked row looks
        up its (wide) case row by id; SQLite, lacking table statistics, would look up every case's rows."""
        linked_first = matched > CASE_LOOKUP_COST * session.scalar(select(func.count()).select_from(model))
        case_id = unindexed(model.case_id) if linked_first else model.case_id
        return session.execute(select(*dims, *by, *aggregates).select_from(model)
                               .join(cases, cases.c.id == case_id)
                               .where(*where, *conditions).group_by(*dims, *by))

    for *values, marks in per_group(ExemplarMark, func.count()):
        groups.get(values).exemplars += marks
    for *values, reviews, score in per_group(QualityReview, func.count(), func.sum(QualityReview.total_score)):
        measures = groups.get(values)
        measures.review_n += reviews
        measures.review_sum += int(score or 0)
    if not any(measures.unsuccessful_by_destination for measures in groups.measures.values()):
        return  # no unresolved case matched (an amount range, say): nothing was tracked
    destination = UnsuccessfulCaseTracking.destination
    for *values, where_to, tracked in per_group(UnsuccessfulCaseTracking, func.count(), by=(destination,),
                                                conditions=(unindexed(cases.c.outcome).in_(UNRESOLVED),)):
        groups.track(values, where_to, tracked)


def _add_summary(session: Session, groups: _Groups, filters: Filters, refresh: SummaryRefresh) -> None:
    """Every measure but overdue from the summary held in memory."""
    months, durations = _summary_frames(session, refresh)
    tests = _summary_tests(groups.tree, filters)
    dims = [_column(dim) for dim in groups.by]
    width = len(dims)
    for row in months.group_sums(months.select(tests), dims + ["outcome", "destination"], SUMS):
        groups.add(row[:width], row[width], row[width + 1], row[width + 2:])
    for row in durations.group_sums(durations.select(tests), dims + ["days"], ("cases",)):
        groups.add_days(groups.get(row[:width]).key, row[width], row[width + 1])


def _add_overdue(session: Session, groups: _Groups, filters: Filters, cutoff: dt.date) -> None:
    """Overdue depends on the day asked, so it is always counted on the (few) open raw rows."""
    raw = _case_columns()
    dims = [getattr(raw.c, _column(dim)) for dim in groups.by]
    query = (select(*dims, func.count())
             .where(*_where(raw, groups.tree, filters), raw.c.closed_on.is_(None), raw.c.received_on < cutoff)
             .group_by(*dims))
    for row in session.execute(query):
        groups.get(row[:-1]).overdue += int(row[-1])


def percentile(histogram: dict[int, int], share: float) -> int | None:
    """Nearest-rank percentile of values given as {value: how many}."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(share * total), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return None


def refresh_summary(session: Session, now: dt.datetime | None = None) -> int:
    """Rebuild the monthly summary from the case rows (in the caller's transaction); returns its rows."""
    # Read the counter before the rows: a change committed during the rebuild then marks it stale.
    changes = _change_count(session)
    tree = _Tree(session)
    session.execute(delete(CaseMonthSummary))
    session.execute(delete(CaseDurationSummary))
    raw = _joined_source()
    grain = [getattr(raw.c, name) for name in GRAIN]
    months = _fold_units(tree, session.execute(
        select(*grain, raw.c.destination, *(func.sum(getattr(raw.c, n)) for n in SUMS))
        .group_by(*grain, raw.c.destination)), GRAIN + ("destination",), SUMS)
    durations = _fold_units(tree, session.execute(
        select(*grain, raw.c.days, func.sum(raw.c.cases)).where(raw.c.days.is_not(None))
        .group_by(*grain, raw.c.days)), GRAIN + ("days",), ("cases",))
    for table, rows in ((CaseMonthSummary, months), (CaseDurationSummary, durations)):
        for start in range(0, len(rows), 10_000):
            session.execute(insert(table), rows[start:start + 10_000])
    session.add(SummaryRefresh(refreshed_at=now or dt.datetime.now(), changes=changes))
    session.flush()
    return len(months) + len(durations)


def _fold_units(tree: _Tree, rows, keys: Sequence[str], sums: Sequence[str]) -> list[dict]:
    """Rows grouped by committee, re-added per unit."""
    folded: dict[tuple, list[int]] = {}
    for row in rows:
        key = dict(zip(keys, row[:len(keys)]))
        key["organisation_id"] = tree.unit(key["organisation_id"])
        totals = folded.setdefault(tuple(key.items()), [0] * len(sums))
        for i, value in enumerate(row[len(keys):]):
            totals[i] += int(value or 0)
    return [dict(key) | dict(zip(sums, totals)) for key, totals in folded.items()]


# --- personnel and the nine databases -------------------------------------------------------

@dataclass
class Personnel:
    """Mediators and experts by structure."""
    mediators: int = 0
    full_time: int = 0
    part_time: int = 0
    by_speciality: dict[str, int] = field(default_factory=dict)
    by_age_band: dict[str, int] = field(default_factory=dict)
    by_organisation: dict[str, int] = field(default_factory=dict)
    experts_by_field: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def personnel(session: Session, organisation_id: int | None = None, as_of: dt.date | None = None) -> Personnel:
    """Mediators (in a subtree, rolled up to its children) by employment, speciality and age; experts by field."""
    tree = _Tree(session)
    query = select(Mediator.organisation_id, Mediator.full_time, Mediator.specialities, Mediator.birth_year)
    if organisation_id is not None:
        query = query.where(Mediator.organisation_id.in_(tree.below(organisation_id) if organisation_id in tree.orgs else []))
    year = (as_of or dt.date.today()).year
    result = Personnel()
    counters = (result.by_speciality, result.by_age_band, result.by_organisation)
    for org_id, full_time, specialities, birth_year in session.execute(query):
        result.mediators += 1
        result.full_time += bool(full_time)
        result.part_time += not full_time
        band = next((label for low, high, label in AGE_BANDS if birth_year and low <= year - birth_year < high),
                    "（未填）")
        unit = _label(tree, "organisation", tree.bucket(org_id, organisation_id), organisation_id)
        for counter, keys in zip(counters, (specialities or (), (band,), (unit,))):
            for key in keys:
                counter[key] = counter.get(key, 0) + 1
    result.experts_by_field = dict(session.execute(
        select(Expert.field, func.count()).group_by(Expert.field).order_by(Expert.field)).all())
    for counter in counters:
        ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        counter.clear()
        counter.update(ordered)
    return result


NINE_DATABASES = (
    ("exemplar_cases", "优秀案例库", ExemplarMark), ("dispute_records", "纠纷数据", DisputeCase),
    ("unsuccessful_cases", "不成功案件", UnsuccessfulCaseTracking), ("organisations", "调解组织架构", Organisation),
    ("mediators", "调解员队伍", Mediator), ("experts", "专家人才", Expert), ("parties", "调解对象", Party),
    ("quality_reviews", "质量评估", QualityReview), ("learning_materials", "学习资料", LearningMaterial),
)


def database_sizes(session: Session) -> list[dict]:
    """Row count of each of the nine databases, and its breakdown by its main kind."""
    kinds = {Organisation: Organisation.level, UnsuccessfulCaseTracking: UnsuccessfulCaseTracking.destination,
             Party: Party.kind, QualityReview: QualityReview.verdict, LearningMaterial: LearningMaterial.kind,
             Expert: Expert.field, Mediator: Mediator.full_time}
    sizes = []
    for key, name, model in NINE_DATABASES:
        entry = {"key": key, "name": name, "rows": session.scalar(select(func.count()).select_from(model))}
        if model in kinds:
            column = kinds[model]
            entry["by_kind"] = {str(k): n for k, n in session.execute(
                select(column, func.count()).group_by(column).order_by(column))}
        sizes.append(entry)
    return sizes


#: the databases whose rows belong to dispute cases: (row id, the case it belongs to, the row's own dimensions)
LINKED_DATABASES = {
    "exemplar_cases": (ExemplarMark.id, ExemplarMark.case_id, {}),
    "unsuccessful_cases": (UnsuccessfulCaseTracking.id, UnsuccessfulCaseTracking.case_id,
                           {"kind": UnsuccessfulCaseTracking.destination}),
    "quality_reviews": (QualityReview.id, QualityReview.case_id, {"kind": QualityReview.verdict}),
    "learning_materials": (material_cases.c.material_id, material_cases.c.case_id, {"kind": LearningMaterial.kind}),
    #: counts by role (申请人, 被申请人 …) and kind (person, organisation): never names or other personal data
    "parties": (Party.id, Party.case_id, {"kind": Party.kind, "role": Party.role}),
}
#: every own dimension some linked database has: kind (destination, verdict, kind of material or party) and role
LINKED_DIMENSIONS = DIMENSIONS + ("kind", "role")


def linked_dimensions(database: str) -> tuple[str, ...]:
    """The dimensions a case-linked database slices by: its cases' and its own."""
    return DIMENSIONS + tuple(LINKED_DATABASES[database][2])


def linked_counts(session: Session, database: str, filters: Filters = Filters(), by: Sequence[str] = (),
                  parent: int | None = None) -> list[dict]:
    """Rows of a case-linked database per group of `by` (one total when empty), sorted by key; filters and
    dimensions apply to the rows' cases, so a material linked to cases of two categories counts in both."""
    if database not in LINKED_DATABASES:
        raise ValueError(f"unknown database {database!r}; case-linked databases: {', '.join(LINKED_DATABASES)}")
    unknown = set(by) - set(linked_dimensions(database))
    if unknown:
        raise ValueError(f"{database} has no dimension {sorted(unknown)[0]!r}; "
                         f"dimensions: {', '.join(linked_dimensions(database))}")
    tree = _Tree(session)
    source = _linked_source(database)
    dims = [getattr(source.c, _column(dim)) for dim in by]
    conditions = _where(source, tree, filters)

    def fold(values) -> tuple:
        return tuple(_fold_key(tree, dim, value, parent) for dim, value in zip(by, values))

    counts: dict[tuple, int] = defaultdict(int) if by else {(): 0}
    if LINKED_DATABASES[database][0].table is material_cases:
        # A material has many cases, which may fall in one folded group (a quarter): count distinct materials.
        materials: dict[tuple, set] = defaultdict(set)
        for row_id, *values in session.execute(select(source.c.row_id, *dims).where(*conditions)):
            materials[fold(values)].add(row_id)
        counts.update((key, len(ids)) for key, ids in materials.items())
    else:
        query = select(*dims, func.count()).select_from(source).where(*conditions).group_by(*dims)
        for *values, rows in session.execute(query):
            counts[fold(values)] += rows
    return [{"key": list(key), "label": [_label(tree, dim, k, parent) for dim, k in zip(by, key)], "rows": rows}
            for key, rows in sorted(counts.items(), key=lambda item: _sort_key(item[0]))]


def _sort_key(key: tuple) -> tuple:
    return tuple((k is None, str(k)) for k in key)


def _linked_source(database: str):
    """One row per database row and case, with the case columns `_where` filters on."""
    row_id, case_id, own = LINKED_DATABASES[database]
    cases = _case_columns()
    query = (select(row_id.label("row_id"), *(column.label(name) for name, column in own.items()), cases)
             .select_from(row_id.table).join(cases, cases.c.id == case_id))
    for table in {column.table for column in own.values()} - {row_id.table}:
        query = query.join(table, table.c.id == row_id)
    return query.subquery("linked")


LEVELS = {"city": "市级", "county": "县（市、区）级", "township": "乡镇（街道）级", "village": "村（社区）级",
          "industry": "行业性", "professional": "专业性"}
ORGANISATION_DIMENSIONS = ("organisation", "level")


def organisation_structure(session: Session, filters: Filters = Filters(), by: str = "organisation",
                           parent: int | None = None) -> list[dict]:
    """The organisation tree below `parent` (the whole tree when None), grouped by the child subtree each
    organisation lies in (`organisation`: region rolled up the tree) or by its `level`: organisations per
    level, their mediators, and the cases they received that match `filters` (the tree itself is unfiltered)."""
    if by not in ORGANISATION_DIMENSIONS:
        raise ValueError(f"organisations have no dimension {by!r}; dimensions: {', '.join(ORGANISATION_DIMENSIONS)}")
    tree = _Tree(session)
    levels = dict(session.execute(select(Organisation.id, Organisation.level)).all())
    if parent is None:
        scope = set(tree.orgs)
    else:
        scope = set(tree.below(parent)) if parent in tree.orgs else set()
    rows: dict = {}
    entries: dict[int, dict] = {}  # by organisation id: thousands of organisations share few rows

    def row(org_id: int) -> dict:
        if org_id in entries:
            return entries[org_id]
        key = tree.bucket(org_id, parent) if by == "organisation" else levels[org_id]
        if key not in rows:
            label = _label(tree, "organisation", key, parent) if by == "organisation" else LEVELS.get(key, key)
            rows[key] = {"key": [key], "label": [label], "organisations": 0, "by_level": {},
                         "mediators": 0, "full_time_mediators": 0, "received": 0, "closed": 0}
        entries[org_id] = rows[key]
        return rows[key]

    for org_id in scope:
        entry = row(org_id)
        entry["organisations"] += 1
        entry["by_level"][levels[org_id]] = entry["by_level"].get(levels[org_id], 0) + 1
    for org_id, full_time, count in session.execute(
            select(Mediator.organisation_id, Mediator.full_time, func.count())
            .group_by(Mediator.organisation_id, Mediator.full_time)):
        if org_id in scope:
            entry = row(org_id)
            entry["mediators"] += count
            entry["full_time_mediators"] += count if full_time else 0
    cases = _case_columns()

    def per_organisation(*conditions) -> dict[int | None, int]:
        return dict(session.execute(select(cases.c.organisation_id, func.count())
                                    .where(*_where(cases, tree, filters), *conditions)
                                    .group_by(cases.c.organisation_id)).all())

    # Received, and still open: two scans of narrow indexes, where counting both at once reads every case row.
    still_open = per_organisation(cases.c.closed_on.is_(None))
    for org_id, received in per_organisation().items():
        if org_id in scope:
            entry = row(org_id)
            entry["received"] += received
            entry["closed"] += received - still_open.get(org_id, 0)
    return [entry | {"by_level": dict(sorted(entry["by_level"].items()))}
            for _, entry in sorted(rows.items(), key=lambda item: _sort_key((item[0],)))]


def measure_names() -> list[str]:
    """Column names of a case measures row, for tables and exports."""
    return list(CaseMeasures().as_dict())

