"""Early warning (异动指标): configured indicators watched per week or month; a surge raises an alert.

An indicator counts the cases received in a window that match its filter (or their share of all
cases in the same regions), compares the value with a baseline (the mean of the previous N
windows, or of the same window in the previous N years) under a rule (ratio to the baseline,
z-score, or an absolute threshold), and stays quiet below a minimum count. An alert keeps its
evidence and is raised once per indicator and window.
"""
from __future__ import annotations

import datetime as dt
import statistics
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Date, DateTime, ForeignKey, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from kb.models import Base, DisputeCase, Organisation

WINDOWS = ("week", "month")
BASELINES = ("moving_average", "last_year")
RULES = ("ratio", "zscore", "absolute")
METRICS = ("count", "rate")


class IndicatorSpec(BaseModel):
    """An indicator as a manager writes it (file or API)."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    enabled: bool = True
    categories: list[str] = []
    causes: list[str] = []
    regions: list[str] = []
    organisation_id: int | None = Field(None, ge=1)
    #: count: cases received; rate: their share of all cases received in the same regions/organisation
    metric: Literal[METRICS] = "count"
    window: Literal[WINDOWS] = "month"
    baseline: Literal[BASELINES] = "moving_average"
    #: previous windows (moving_average) or previous years (last_year) the baseline averages
    baseline_windows: int = Field(6, ge=1, le=60)
    rule: Literal[RULES] = "ratio"
    #: ratio: value ≥ threshold × baseline; zscore: z ≥ threshold; absolute: value ≥ threshold
    threshold: float = Field(gt=0)
    #: fewer matching cases than this in the window never alarm
    min_count: int = Field(5, ge=0)


class SurgeIndicator(Base):
    """A configured indicator (see IndicatorSpec for the meaning of each field)."""
    __tablename__ = "surge_indicators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    causes: Mapped[list] = mapped_column(JSON, default=list)
    regions: Mapped[list] = mapped_column(JSON, default=list)
    organisation_id: Mapped[int | None]
    metric: Mapped[str] = mapped_column(String(10), default="count")
    window: Mapped[str] = mapped_column(String(10), default="month")
    baseline: Mapped[str] = mapped_column(String(20), default="moving_average")
    baseline_windows: Mapped[int] = mapped_column(default=6)
    rule: Mapped[str] = mapped_column(String(10), default="ratio")
    threshold: Mapped[float]
    min_count: Mapped[int] = mapped_column(default=5)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    alerts: Mapped[list[SurgeAlert]] = relationship(back_populates="indicator", cascade="all, delete-orphan")

    def spec(self) -> IndicatorSpec:
        return IndicatorSpec.model_validate({name: getattr(self, name) for name in IndicatorSpec.model_fields})


class SurgeAlert(Base):
    """A raised warning with the figures that raised it."""
    __tablename__ = "surge_alerts"
    __table_args__ = (UniqueConstraint("indicator_id", "window_start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("surge_indicators.id", ondelete="CASCADE"))
    window_start: Mapped[dt.date] = mapped_column(Date)
    #: the last day of the window
    window_end: Mapped[dt.date] = mapped_column(Date)
    value: Mapped[float]
    baseline: Mapped[float | None]
    #: values, baseline series, rule, threshold and score at evaluation time
    evidence: Mapped[dict] = mapped_column(JSON, default=dict)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))

    indicator: Mapped[SurgeIndicator] = relationship(back_populates="alerts")

    def as_dict(self) -> dict:
        return {"id": self.id, "indicator": self.indicator.name, "indicator_id": self.indicator_id,
                "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
                "value": self.value, "baseline": self.baseline, "evidence": self.evidence,
                "raised_at": self.raised_at.isoformat(timespec="seconds"),
                "acknowledged_at": self.acknowledged_at.isoformat(timespec="seconds") if self.acknowledged_at else None,
                "acknowledged_by": self.acknowledged_by}


# --- windows --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Days start ≤ day < end."""
    start: dt.date
    end: dt.date

    def shifted(self, kind: str, back: int) -> Window:
        """The window `back` windows earlier."""
        window = self
        for _ in range(back):
            window = window_containing(kind, window.start - dt.timedelta(days=1))
        return window

    def year_earlier(self, kind: str, years: int) -> Window:
        """The same month, or the same ISO week number, `years` years earlier."""
        if kind == "month":
            return window_containing(kind, self.start.replace(year=self.start.year - years))
        iso = self.start.isocalendar()
        week = min(iso.week, dt.date(iso.year - years, 12, 28).isocalendar().week)
        return window_containing(kind, dt.date.fromisocalendar(iso.year - years, week, 1))


def window_containing(kind: str, day: dt.date) -> Window:
    if kind == "week":
        start = day - dt.timedelta(days=day.weekday())
        return Window(start, start + dt.timedelta(days=7))
    start = day.replace(day=1)
    return Window(start, (start + dt.timedelta(days=32)).replace(day=1))


def last_complete_window(kind: str, as_of: dt.date) -> Window:
    """The latest window that ended on or before `as_of`."""
    return window_containing(kind, window_containing(kind, as_of).start - dt.timedelta(days=1))


def baseline_windows(spec: IndicatorSpec, window: Window) -> list[Window]:
    if spec.baseline == "last_year":
        return [window.year_earlier(spec.window, n) for n in range(1, spec.baseline_windows + 1)]
    return [window.shifted(spec.window, n) for n in range(1, spec.baseline_windows + 1)]


# --- evaluation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """How one window compares with its baseline."""
    fired: bool
    value: float
    count: int
    baseline: float | None
    score: float | None
    reason: str


def judge(spec: IndicatorSpec, value: float, count: int, history: list[float]) -> Verdict:
    """Apply the indicator's rule to a window's value and the baseline values (pure)."""
    baseline = statistics.fmean(history) if history else None
    if count < spec.min_count:
        return Verdict(False, value, count, baseline, None, f"count {count} below minimum {spec.min_count}")
    if spec.rule == "absolute":
        score = value
    elif baseline is None:
        return Verdict(False, value, count, None, None, "no baseline")
    elif spec.rule == "ratio":
        score = value / baseline if baseline else float("inf")
    else:
        spread = statistics.pstdev(history)
        score = (value - baseline) / spread if spread else (float("inf") if value > baseline else 0.0)
    fired = score >= spec.threshold
    return Verdict(fired, value, count, baseline, score,
                   f"{spec.rule} {_show(score)} {'≥' if fired else '<'} {spec.threshold:g}")


def _show(score: float) -> str:
    return "∞" if score == float("inf") else f"{score:.3g}"


def _received_per_day(session: Session, spec: IndicatorSpec, start: dt.date, end: dt.date,
                      whole_scope: bool) -> Counter:
    """Cases received per day in [start, end) matching the indicator (only its place when whole_scope)."""
    conditions = [DisputeCase.received_on >= start, DisputeCase.received_on < end]
    if spec.regions:
        conditions.append(DisputeCase.region.in_(spec.regions))
    if spec.organisation_id is not None:
        path = session.scalar(select(Organisation.path).where(Organisation.id == spec.organisation_id)) or "-"
        below = select(Organisation.id).where(Organisation.path.startswith(path, autoescape=True))
        conditions.append(DisputeCase.organisation_id.in_(below))
    if not whole_scope:
        if spec.categories:
            conditions.append(DisputeCase.category.in_(spec.categories))
        if spec.causes:
            conditions.append(DisputeCase.cause.in_(spec.causes))
    query = select(DisputeCase.received_on, func.count()).where(*conditions).group_by(DisputeCase.received_on)
    return Counter({day: n for day, n in session.execute(query)})


def evaluate(session: Session, spec: IndicatorSpec, window: Window) -> tuple[Verdict, dict]:
    """The verdict for one window and its evidence (the values of the window and of its baseline)."""
    history = baseline_windows(spec, window)
    start, end = min(w.start for w in [window, *history]), window.end
    counts = _received_per_day(session, spec, start, end, whole_scope=False)
    totals = _received_per_day(session, spec, start, end, whole_scope=True) if spec.metric == "rate" else None

    def value(w: Window) -> tuple[float, int]:
        count = sum(n for day, n in counts.items() if w.start <= day < w.end)
        if totals is None:
            return float(count), count
        total = sum(n for day, n in totals.items() if w.start <= day < w.end)
        return (count / total if total else 0.0), count

    current, count = value(window)
    series = [{"window_start": w.start.isoformat(), "value": value(w)[0], "count": value(w)[1]} for w in history]
    verdict = judge(spec, current, count, [point["value"] for point in series])
    evidence = {"metric": spec.metric, "window": spec.window, "count": count, "value": current,
                "baseline_kind": spec.baseline, "baseline": verdict.baseline, "baseline_series": series,
                "rule": spec.rule, "threshold": spec.threshold, "min_count": spec.min_count,
                "score": None if verdict.score is None or verdict.score == float("inf") else verdict.score,
                "reason": verdict.reason}
    return verdict, evidence


def evaluate_all(session: Session, as_of: dt.date, since: dt.date | None = None,
                 now: dt.datetime | None = None) -> list[SurgeAlert]:
    """Evaluate every enabled indicator on its last complete window before `as_of` (and, with
    `since`, every complete window from there on); store and return the new alerts."""
    raised = []
    for indicator in session.scalars(select(SurgeIndicator).where(SurgeIndicator.enabled).order_by(SurgeIndicator.id)):
        spec = indicator.spec()
        taken = set(session.scalars(select(SurgeAlert.window_start).where(SurgeAlert.indicator_id == indicator.id)))
        for window in _windows_to_check(spec.window, as_of, since):
            if window.start in taken:
                continue
            verdict, evidence = evaluate(session, spec, window)
            if verdict.fired:
                alert = SurgeAlert(indicator=indicator, window_start=window.start,
                                   window_end=window.end - dt.timedelta(days=1), value=verdict.value,
                                   baseline=verdict.baseline, evidence=evidence, raised_at=now or dt.datetime.now())
                session.add(alert)
                raised.append(alert)
    session.flush()
    return raised


def _windows_to_check(kind: str, as_of: dt.date, since: dt.date | None) -> list[Window]:
    last = last_complete_window(kind, as_of)
    windows = [last]
    while since is not None and windows[-1].start > since:
        earlier = windows[-1].shifted(kind, 1)
        if earlier.end <= since:
            break
        windows.append(earlier)
    return windows[::-1]


# --- configuration and acknowledgement ------------------------------------------------------

def save_indicator(session: Session, spec: IndicatorSpec) -> SurgeIndicator:
    """Create or update the indicator of that name."""
    indicator = session.scalar(select(SurgeIndicator).where(SurgeIndicator.name == spec.name))
    if indicator is None:
        indicator = SurgeIndicator(name=spec.name)
        session.add(indicator)
    for name, value in spec.model_dump().items():
        setattr(indicator, name, value)
    session.flush()
    return indicator


def read_indicator_file(path: Path) -> list[IndicatorSpec]:
    """Indicators from a TOML file of [[indicator]] tables (pydantic errors name the bad field)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [IndicatorSpec.model_validate(entry) for entry in data.get("indicator", [])]


def acknowledge(session: Session, alert_id: int, by: str, now: dt.datetime | None = None) -> SurgeAlert | None:
    """Mark an alert as seen (the first acknowledgement stands); None when there is no such alert."""
    alert = session.get(SurgeAlert, alert_id)
    if alert is not None and alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = now or dt.datetime.now(), by
    return alert


def list_alerts(session: Session, open_only: bool = False, limit: int = 100) -> list[SurgeAlert]:
    query = select(SurgeAlert).order_by(SurgeAlert.window_start.desc(), SurgeAlert.id.desc()).limit(limit)
    if open_only:
        query = query.where(SurgeAlert.acknowledged_at.is_(None))
    return list(session.scalars(query))
