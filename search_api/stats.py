"""Statistics and early warning: the JSON API under /api/v1/stats, CSV/XLSX export and the /stats page."""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Annotated, Literal
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy import select

from casekb.stats_export import to_csv, to_xlsx
from kb.early_warning import IndicatorSpec, SurgeIndicator, acknowledge, list_alerts, save_indicator
from kb.db import Database
from kb.statistics import (DEFAULT_TIME_LIMIT_DAYS, DIMENSIONS, StatsFilter, case_measures, database_sizes,
                           personnel, refresh_if_stale, summary_is_current)
from search_api.auth import audit, roles, viewer
from search_api.ext import casekb
from search_api.params import Repeated, comma_separated, from_query_string
from search_api.problems import ProblemError

log = logging.getLogger(__name__)
bp = Blueprint("stats", __name__)
MANAGERS = ("manager", "admin")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: held while a background rebuild runs, so a burst of requests starts one
_rebuilding = threading.Lock()


class StatsParams(BaseModel):
    """Statistics parameters: the search filters, plus how to slice."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: Repeated = []
    cause: Repeated = []
    region: Repeated = []
    organisation: int | None = Field(None, ge=1)
    outcome: Repeated = []
    exemplar: bool = False
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    by: Annotated[list[Literal[DIMENSIONS]], BeforeValidator(comma_separated)] = Field([], max_length=2)
    parent: int | None = Field(None, ge=1, description="With by=organisation: the children of this one.")
    as_of: dt.date | None = None
    time_limit: int = Field(DEFAULT_TIME_LIMIT_DAYS, ge=1, le=3650)

    def filters(self) -> StatsFilter:
        return StatsFilter(categories=tuple(self.category), causes=tuple(self.cause), regions=tuple(self.region),
                           organisation_id=self.organisation, outcomes=tuple(self.outcome),
                           exemplar_only=self.exemplar, received_from=self.from_, received_to=self.to)


def _params() -> StatsParams:
    try:
        return StatsParams.model_validate(from_query_string(request.args))
    except ValidationError as error:
        raise ProblemError.from_validation(error, 400) from None


def _measures(params: StatsParams):
    db = casekb().db
    with db.sessions() as session:
        rows = case_measures(session, params.filters(), params.by, parent=params.parent or params.organisation,
                             as_of=params.as_of, time_limit_days=params.time_limit)
        current = summary_is_current(session)
    if not current:
        rebuild_in_background(db)
    return rows, current


def rebuild_in_background(db: Database) -> threading.Thread | None:
    """Rebuild a stale summary off the request (stale queries read the raw rows meanwhile); the thread, or
    None when a rebuild is already running."""
    if not _rebuilding.acquire(blocking=False):
        return None
    thread = threading.Thread(target=_rebuild, args=(db,), name="casekb-stats-refresh", daemon=True)
    thread.start()
    return thread


def _rebuild(db: Database) -> None:
    try:
        with db.transaction() as session:
            refresh_if_stale(session)
    except Exception:
        # A locked database is temporary: the next stale request tries again.
        log.exception("rebuilding the statistics summary failed")
    finally:
        _rebuilding.release()


def search_link(params: StatsParams, by: list[str], key: tuple) -> str:
    """The search page for the cases behind one statistics cell."""
    args = {"category": params.category, "cause": params.cause, "region": params.region,
            "outcome": params.outcome, "organisation": params.organisation,
            "from": params.from_, "to": params.to, "exemplar": "true" if params.exemplar else None}
    for dim, value in zip(by, key):
        if value is None:
            continue
        if dim in ("category", "cause", "region", "outcome"):
            args[dim] = [value]
        elif dim == "organisation":
            args["organisation"] = value
        else:
            args["from"], args["to"] = _period(dim, value)
    pairs = [(k, v) for k, values in args.items() if values not in (None, [])
             for v in (values if isinstance(values, list) else [values])]
    return url_for("views.search") + "?" + urlencode(pairs)


def _period(dim: str, value: str) -> tuple[dt.date, dt.date]:
    """First and last day of a day, month, quarter or year key."""
    if dim == "day":
        day = dt.date.fromisoformat(value)
        return day, day
    year = int(value[:4])
    if dim == "month":
        first_month, months = int(value[5:7]), 1
    elif dim == "quarter":
        first_month, months = (int(value[-1]) - 1) * 3 + 1, 3
    else:
        first_month, months = 1, 12
    start = dt.date(year, first_month, 1)
    end_month = first_month + months
    end = dt.date(year + (end_month > 12), (end_month - 1) % 12 + 1, 1) - dt.timedelta(days=1)
    return start, end


@bp.get("/api/v1/stats/cases")
def cases():
    params = _params()
    rows, from_summary = _measures(params)
    return jsonify(by=params.by, summary_used=from_summary,
                   rows=[row.as_dict() | {"search_url": search_link(params, params.by, row.key)} for row in rows])


@bp.get("/api/v1/stats/cases.<any(csv, xlsx):kind>")
def export(kind: str):
    params = _params()
    rows, _ = _measures(params)
    name = "stats-" + ("-".join(params.by) or "total")
    if kind == "csv":
        return Response("\ufeff" + to_csv(rows, params.by), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename={name}.csv"})
    return Response(to_xlsx(rows, params.by), mimetype=XLSX,
                    headers={"Content-Disposition": f"attachment; filename={name}.xlsx"})


@bp.get("/api/v1/stats/databases")
def databases():
    with casekb().db.sessions() as session:
        return jsonify(databases=database_sizes(session), personnel=personnel(session).as_dict())


@bp.get("/api/v1/stats/alerts")
def alerts():
    open_only = request.args.get("open") in ("1", "true")
    with casekb().db.sessions() as session:
        return jsonify(alerts=[alert.as_dict() for alert in list_alerts(session, open_only)])


@bp.post("/api/v1/stats/alerts/<int:alert_id>/ack")
@roles(*MANAGERS)
def ack(alert_id: int):
    with casekb().db.transaction() as session:
        alert = acknowledge(session, alert_id, viewer().username)
        if alert is None:
            raise ProblemError(404, f"There is no alert {alert_id}.")
        body = alert.as_dict()
    audit("alert.ack", alert_id)
    return jsonify(body)


@bp.get("/api/v1/stats/indicators")
def indicators():
    with casekb().db.sessions() as session:
        found = session.scalars(select(SurgeIndicator).order_by(SurgeIndicator.name))
        return jsonify(indicators=[{"id": i.id, **i.spec().model_dump()} for i in found])


@bp.put("/api/v1/stats/indicators/<name>")
@roles(*MANAGERS)
def put_indicator(name: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ProblemError(400, "The request body must be a JSON object (Content-Type: application/json).")
    try:
        spec = IndicatorSpec.model_validate(body | {"name": name})
    except ValidationError as error:
        raise ProblemError.from_validation(error, 422) from None
    with casekb().db.transaction() as session:
        indicator = save_indicator(session, spec)
        result = {"id": indicator.id, **spec.model_dump()}
    audit("indicator.save", name)
    return jsonify(result)


@bp.get("/stats")
def page():
    params = _params()
    filters = params.filters()
    kb = casekb()
    with kb.db.sessions() as session:
        def measured(by, parent=None):
            return case_measures(session, filters, by, parent=parent, as_of=params.as_of,
                                 time_limit_days=params.time_limit)
        [total] = measured(()) or [None]
        months = measured(("month",))
        categories = measured(("category",))
        organisations = measured(("organisation",), params.parent or params.organisation)
        heat = measured(("region", "category"))
        open_alerts = list_alerts(session, open_only=True, limit=20)
        alert_rows = [alert.as_dict() for alert in open_alerts]
        current = summary_is_current(session)
    if not current:
        rebuild_in_background(kb.db)

    def chart(rows, by):
        return {"labels": [" / ".join(r.label) for r in rows], "received": [r.received for r in rows],
                "success_rate": [r.as_dict()["success_rate"] for r in rows],
                "links": [search_link(params, by, r.key) for r in rows],
                "drill": [url_for("stats.page", **(request.args.to_dict() | {"parent": r.key[0]}))
                          if by == ["organisation"] and r.key[0] not in (None, params.parent) else None
                          for r in rows]}

    regions = sorted({r.key[0] for r in heat}, key=lambda v: (v is None, str(v)))
    columns = sorted({r.key[1] for r in heat}, key=str)
    cells = {r.key: r for r in heat}
    peak = max((r.received for r in heat), default=0)
    charts = {"months": chart(months, ["month"]), "categories": chart(categories, ["category"]),
              "organisations": chart(organisations, ["organisation"])}
    return render_template(
        "stats.html", params=params, total=total.as_dict() if total else None, charts=json.dumps(charts, ensure_ascii=False),
        regions=regions, columns=columns, cells=cells, peak=peak, alerts=alert_rows,
        link=lambda by, key: search_link(params, by, key),
        export=lambda kind, by: url_for("stats.export", kind=kind, **(request.args.to_dict() | {"by": by})))
