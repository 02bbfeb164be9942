"""Statistics and early warning: the JSON API under /api/v1/stats, CSV/XLSX export and the /stats page."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from typing import Annotated, Literal
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from pydantic import BeforeValidator, Field, ValidationError
from sqlalchemy import select

from casekb.stats_export import count_table, table, to_csv, to_xlsx
from kb.early_warning import (BASELINES, METRICS, RULES, WINDOWS, IndicatorSpec, SurgeIndicator, acknowledge,
                              list_alerts, save_indicator)
from kb.db import Database
from kb.statistics import (DEFAULT_TIME_LIMIT_DAYS, DIMENSIONS, LINKED_DATABASES, LINKED_DIMENSIONS,
                           ORGANISATION_DIMENSIONS, TIME_DIMENSIONS, UNRESOLVED, case_measures, database_sizes,
                           linked_counts, linked_dimensions, organisation_structure, personnel, refresh_if_stale,
                           summary_is_current)
from search_api.auth import audit, csrf, roles, viewer
from search_api.ext import casekb
from search_api.params import FilterParams, comma_separated, from_query_string
from search_api.problems import INVALID_PARAMETERS, ProblemError

log = logging.getLogger(__name__)
bp = Blueprint("stats", __name__)
MANAGERS = ("manager", "admin")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: held while a background rebuild runs, so a burst of requests starts one
_rebuilding = threading.Lock()


class StatsParams(FilterParams):
    """Statistics parameters: the search filters, plus how to slice."""
    by: Annotated[list[Literal[DIMENSIONS]], BeforeValidator(comma_separated)] = Field([], max_length=2)
    parent: int | None = Field(None, ge=1, description="With by=organisation: the children of this one.")
    as_of: dt.date | None = None
    time_limit: int = Field(DEFAULT_TIME_LIMIT_DAYS, ge=1, le=3650)


DATABASES = tuple(LINKED_DATABASES) + ("organisations",)
DATABASE_DIMENSIONS = tuple(dict.fromkeys(LINKED_DIMENSIONS + ORGANISATION_DIMENSIONS))


class LinkedStatsParams(StatsParams):
    """Statistics parameters for one of the databases besides the cases: its cases' dimensions and its own
    (kind; role of parties; level of organisations, which slice by organisation or level only, one at a time)."""
    by: Annotated[list[Literal[DATABASE_DIMENSIONS]], BeforeValidator(comma_separated)] = Field([], max_length=2)


class PageParams(StatsParams):
    """The statistics page: the filters, the time series' grain and the database chart's database and slice."""
    grain: Literal[TIME_DIMENSIONS] = "month"
    database: Literal[DATABASES] = "unsuccessful_cases"
    database_by: Literal[DATABASE_DIMENSIONS] = "kind"


def _params(model: type[StatsParams] = StatsParams) -> StatsParams:
    try:
        return model.model_validate(from_query_string(request.args))
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


#: the case search a database's rows lead to: its exemplars, or its unresolved cases
DATABASE_SEARCH = {"exemplar_cases": {"exemplar": "true"}, "unsuccessful_cases": {"outcome": list(UNRESOLVED)}}


def search_link(params: StatsParams, by: list[str], key: tuple, database: str | None = None) -> str:
    """The search page for the cases behind one statistics cell (a database's own dimensions, such as the
    kind of a row, are not case filters: the link covers the cell's cases of every kind)."""
    args = {"category": params.category, "cause": params.cause, "region": params.region,
            "outcome": params.outcome, "organisation": params.organisation,
            "from": params.from_, "to": params.to, "exemplar": "true" if params.exemplar else None,
            "amount_min": params.amount_min, "amount_max": params.amount_max}
    args |= {name: value for name, value in DATABASE_SEARCH.get(database, {}).items() if not args[name]}
    for dim, value in zip(by, key):
        if value is None:
            continue
        if dim in ("category", "cause", "region", "outcome"):
            args[dim] = [value]
        elif dim == "organisation":
            args["organisation"] = value
        elif dim in TIME_DIMENSIONS:
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
    return _file(kind, "stats-" + ("-".join(params.by) or "total"), *table(rows, params.by))


def _file(kind: str, name: str, header: list[str], body: list[list]) -> Response:
    """A table as a CSV (with a BOM, for Excel) or XLSX download."""
    if kind == "csv":
        return Response("\ufeff" + to_csv(header, body), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename={name}.csv"})
    return Response(to_xlsx(header, body), mimetype=XLSX,
                    headers={"Content-Disposition": f"attachment; filename={name}.xlsx"})


@bp.get("/api/v1/stats/databases")
def databases():
    with casekb().db.sessions() as session:
        return jsonify(databases=database_sizes(session), personnel=personnel(session).as_dict())


@bp.get(f"/api/v1/stats/databases/<any({', '.join(DATABASES)}):database>")
def database_rows(database: str):
    """A database besides the cases, sliced: case-linked rows by their cases' region, category, time,
    organisation and their own kind (role of parties); organisations by subtree or level."""
    params = _params(LinkedStatsParams)
    return jsonify(database=database, by=params.by, rows=_database_rows(database, params, params.by))


@bp.get(f"/api/v1/stats/databases/<any({', '.join(DATABASES)}):database>.<any(csv, xlsx):kind>")
def database_export(database: str, kind: str):
    params = _params(LinkedStatsParams)
    by = params.by or (["organisation"] if database == "organisations" else [])
    rows = _database_rows(database, params, params.by)
    return _file(kind, f"stats-{database}-" + ("-".join(by) or "total"), *count_table(rows, by))


def _database_rows(database: str, params: StatsParams, by: list[str]) -> list[dict]:
    """The database's rows per group of `by` (organisations: by subtree when empty), each with
    its case search (none when its group is no set of cases)."""
    parent = params.parent or params.organisation
    with casekb().db.sessions() as session:
        if database == "organisations":
            if len(by) > 1 or not set(by) <= set(ORGANISATION_DIMENSIONS):
                raise ProblemError(400, f"organisations are sliced by one of {', '.join(ORGANISATION_DIMENSIONS)}.",
                                   [{"field": "by", "reason": "not a dimension of organisations"}], INVALID_PARAMETERS)
            by = by or ["organisation"]
            rows = organisation_structure(session, params.filters(), by[0], parent)
        else:
            unknown = set(by) - set(linked_dimensions(database))
            if unknown:
                raise ProblemError(400, f"{database} has no dimension {sorted(unknown)[0]}; it has "
                                   f"{', '.join(linked_dimensions(database))}.",
                                   [{"field": "by", "reason": "not a dimension of this database"}], INVALID_PARAMETERS)
            rows = linked_counts(session, database, params.filters(), by, parent=parent)
    # A row's own kind (destination, role, level) is no case filter: its cases could not be searched alone.
    linkable = set(by) <= set(DIMENSIONS)
    return [row | {"search_url": search_link(params, by, tuple(row["key"]), database) if linkable else None}
            for row in rows]


@bp.get("/api/v1/stats/alerts")
def alerts():
    open_only = request.args.get("open") in ("1", "true")
    with casekb().db.sessions() as session:
        return jsonify(alerts=[alert.as_dict() for alert in list_alerts(session, open_only)])


@bp.post("/api/v1/stats/alerts/<int:alert_id>/ack")
@roles(*MANAGERS)
def ack(alert_id: int):
    body = _acknowledge(alert_id)
    if body is None:
        raise ProblemError(404, f"There is no alert {alert_id}.")
    return jsonify(body)


def _acknowledge(alert_id: int) -> dict | None:
    """Acknowledge as the current user and audit it; the alert, or None when there is none."""
    with casekb().db.transaction() as session:
        alert = acknowledge(session, alert_id, viewer().username)
        body = None if alert is None else alert.as_dict()
    if body is not None:
        audit("alert.ack", alert_id)
    return body


def _indicators() -> list[dict]:
    with casekb().db.sessions() as session:
        found = session.scalars(select(SurgeIndicator).order_by(SurgeIndicator.name))
        return [{"id": i.id, **i.spec().model_dump()} for i in found]


@bp.get("/api/v1/stats/indicators")
def indicators():
    return jsonify(indicators=_indicators())


@bp.put("/api/v1/stats/indicators/<name>")
@roles(*MANAGERS)
def put_indicator(name: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ProblemError(400, "The request body must be a JSON object (Content-Type: application/json).")
    try:
        return jsonify(_save_indicator(body | {"name": name}))
    except ValidationError as error:
        raise ProblemError.from_validation(error, 422) from None


def _save_indicator(body: dict) -> dict:
    """Validate an indicator (ValidationError names the bad fields), create or update it, audit it."""
    spec = IndicatorSpec.model_validate(body)
    with casekb().db.transaction() as session:
        result = {"id": save_indicator(session, spec).id, **spec.model_dump()}
    audit("indicator.save", spec.name)
    return result


@bp.get("/stats")
def page():
    params = _params(PageParams)
    filters = params.filters()
    kb = casekb()
    with kb.db.sessions() as session:
        def measured(by, parent=None):
            return case_measures(session, filters, by, parent=parent, as_of=params.as_of,
                                 time_limit_days=params.time_limit)
        [total] = measured(()) or [None]
        series = measured((params.grain,))
        categories = measured(("category",))
        organisations = measured(("organisation",), params.parent or params.organisation)
        heat = measured(("region", "category"))
        open_alerts = list_alerts(session, open_only=True, limit=20)
        alert_rows = [alert.as_dict() for alert in open_alerts]
        staff = personnel(session, params.parent or params.organisation)
        current = summary_is_current(session)
    if not current:
        rebuild_in_background(kb.db)
    database_by = _database_slice(params.database, params.database_by)
    database_rows = _database_rows(params.database, params, [database_by])

    def chart(rows, by):
        return {"labels": [" / ".join(r.label) for r in rows], "received": [r.received for r in rows],
                "success_rate": [r.as_dict()["success_rate"] for r in rows],
                "links": [search_link(params, by, r.key) for r in rows],
                "drill": [url_for("stats.page", **(request.args.to_dict(flat=False) | {"parent": r.key[0]}))
                          if by == ["organisation"] and r.key[0] not in (None, params.parent) else None
                          for r in rows]}

    regions = sorted({r.key[0] for r in heat}, key=lambda v: (v is None, str(v)))
    columns = sorted({r.key[1] for r in heat}, key=str)
    cells = {r.key: r for r in heat}
    peak = max((r.received for r in heat), default=0)
    count = "organisations" if params.database == "organisations" else "rows"
    charts = {"series": chart(series, [params.grain]), "categories": chart(categories, ["category"]),
              "organisations": chart(organisations, ["organisation"]),
              "database": {"labels": [" / ".join(r["label"]) for r in database_rows],
                           "received": [r[count] for r in database_rows],
                           "links": [r["search_url"] for r in database_rows], "label": DATABASE_NAMES[params.database]},
              "employment": {"专职": staff.full_time, "兼职": staff.part_time}, "specialities": staff.by_speciality,
              "ages": staff.by_age_band, "experts": staff.experts_by_field}
    return render_template(
        "stats.html", params=params, total=total.as_dict() if total else None, charts=json.dumps(charts, ensure_ascii=False),
        regions=regions, columns=columns, cells=cells, peak=peak, alerts=alert_rows, staff=staff,
        may_manage=viewer().role in MANAGERS, grains=GRAIN_LABELS, databases=DATABASE_NAMES,
        database_dimensions={name: _page_dimensions(name) for name in DATABASES}, dimension_labels=DIMENSION_LABELS,
        case_dimensions=DIMENSIONS,
        link=lambda by, key: search_link(params, by, key),
        export=lambda kind, by: url_for("stats.export", kind=kind, **(_filter_args() | {"by": by})),
        database_export=lambda kind: url_for("stats.database_export", database=params.database, kind=kind,
                                             **(_filter_args() | {"by": database_by})), database_by=database_by)


GRAIN_LABELS = dict(zip(TIME_DIMENSIONS, ("日", "月", "季度", "年")))
DATABASE_NAMES = {"exemplar_cases": "优秀案例", "unsuccessful_cases": "不成功案件", "quality_reviews": "质量评估",
                  "learning_materials": "学习资料", "parties": "调解对象", "organisations": "调解组织"}
DIMENSION_LABELS = GRAIN_LABELS | {"category": "类别", "cause": "案由", "region": "地区", "organisation": "组织",
                                   "outcome": "结果", "kind": "类型", "role": "角色", "level": "层级"}


def _page_dimensions(database: str) -> list[str]:
    """The slices the page offers for a database (day and cause give too many bars for a chart)."""
    dims = ORGANISATION_DIMENSIONS if database == "organisations" else linked_dimensions(database)
    return [d for d in dims if d not in ("day", "cause")]


def _database_slice(database: str, asked: str) -> str:
    """The asked slice when the database has it, else its category (organisations: subtree)."""
    offered = _page_dimensions(database)
    return asked if asked in offered else "category" if "category" in offered else offered[0]


def _filter_args() -> dict:
    """The request's arguments less the page's own, which the API refuses."""
    own = PageParams.model_fields.keys() - StatsParams.model_fields.keys()
    return {key: values for key, values in request.args.to_dict(flat=False).items() if key not in own}


@bp.post("/stats/alerts/<int:alert_id>/ack")
@roles(*MANAGERS)
def ack_page(alert_id: int):
    """The dashboard's acknowledge button."""
    csrf.protect()  # the blueprint is exempt for the API's sake: this form checks its token itself
    if _acknowledge(alert_id) is None:
        abort(404)
    flash("已确认该预警。")
    return redirect(url_for("stats.page"))


#: the editor's labels for IndicatorSpec fields and choices
FIELD_LABELS = {"name": "名称", "description": "说明", "enabled": "启用", "categories": "类别", "causes": "案由",
                "regions": "地区", "organisation_id": "组织编号", "metric": "指标", "window": "统计周期",
                "baseline": "基线", "baseline_windows": "基线期数", "rule": "规则", "threshold": "阈值",
                "min_count": "最少案件数"}
CHOICES = {"metric": dict(zip(METRICS, ("案件数", "占同地区案件比例"))),
           "window": dict(zip(WINDOWS, ("按周", "按月"))),
           "baseline": dict(zip(BASELINES, ("前 N 期平均", "往年同期平均"))),
           "rule": dict(zip(RULES, ("本期 ≥ 阈值 × 基线", "z 分数 ≥ 阈值", "本期 ≥ 阈值")))}
LISTS = ("categories", "causes", "regions")


@bp.get("/stats/indicators")
@roles(*MANAGERS)
def indicator_list():
    return render_template("indicators.html", indicators=_indicators(), choices=CHOICES)


@bp.route("/stats/indicators/new", methods=["GET", "POST"], defaults={"name": None})
@bp.route("/stats/indicators/<name>", methods=["GET", "POST"])
@roles(*MANAGERS)
def indicator_editor(name: str | None):
    """Create an indicator, or edit one (its name stays): the same validation and saving as the PUT API."""
    current = next((i for i in _indicators() if i["name"] == name), None)
    if name is not None and current is None:
        abort(404)
    if request.method == "GET":
        return _editor(name, _shown(current or _blank_indicator()), [])
    csrf.protect()
    values = request.form.to_dict() | ({"name": name} if name else {})
    errors = _editor_errors(values, creating=name is None)
    if errors:
        return _editor(name, values, errors), 422
    flash(f"已保存预警指标“{values['name'].strip()}”。")
    return redirect(url_for("stats.indicator_list"))


def _editor_errors(values: dict, creating: bool) -> list[dict]:
    """Save the submitted indicator; the errors, each {field, reason}, when it could not be saved."""
    if creating and any(i["name"] == values.get("name", "").strip() for i in _indicators()):
        return [{"field": "name", "reason": "已有同名指标，请在列表中编辑它。"}]
    try:
        _save_indicator(_spec_body(values))
    except ValidationError as error:
        return ProblemError.from_validation(error, 422).errors
    return []


def _spec_body(values: dict) -> dict:
    """The submitted form as the PUT API's JSON body: lists split on commas, a blank organisation none."""
    body = {key: value for key, value in values.items() if key in IndicatorSpec.model_fields}
    body["enabled"] = "enabled" in values  # an unticked box is not submitted at all
    for key in LISTS:
        body[key] = [item for item in re.split(r"[,，、\s]+", values.get(key, "")) if item]
    if not values.get("organisation_id", "").strip():
        body["organisation_id"] = None
    return body


def _blank_indicator() -> dict:
    """A new indicator's fields: the spec's defaults, required ones empty."""
    return {key: "" if field.is_required() else field.get_default(call_default_factory=True)
            for key, field in IndicatorSpec.model_fields.items()}


def _shown(spec: dict) -> dict:
    """An indicator's values as the form's fields show them."""
    return spec | {key: "，".join(spec[key]) for key in LISTS} | {
        "organisation_id": spec["organisation_id"] or "", "enabled": "on" if spec["enabled"] else None}


def _editor(name: str | None, values: dict, errors: list[dict]) -> str:
    return render_template("indicator.html", name=name, values=values, errors=errors, labels=FIELD_LABELS,
                           choices=CHOICES, by_field={e["field"]: e["reason"] for e in errors})
