"""The web UI: the search page and the case page, server-rendered in Chinese."""
from __future__ import annotations

import math
from functools import partial
from urllib.parse import urlencode

from flask import Blueprint, abort, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from indexer.embedded import FILTER_LABELS
from indexer.query import Filters, SearchQuery, Suggestion
from search_api.cases import load_case
from search_api.ext import casekb
from search_api.params import FILTER_PARAMS, MAX_WINDOW, parse_search

bp = Blueprint("views", __name__)

FACET_LABELS = {"category": "类别", "cause": "案由", "region": "地区", "outcome": "调解结果"}
SORT_LABELS = {"relevance": "相关度", "date_desc": "受理日期：新→旧", "date_asc": "受理日期：旧→新"}
EXAMPLES = ("民间借贷", "邻居 楼上 漏水", "離婚 撫養費", "拖欠工资 仲裁", "“交通事故”")
QUOTES = str.maketrans("", "", "\"“”「」『』")
SIMILAR = 5
PAGE_LINKS = 2  # page numbers shown either side of the current one
#: parameters the search form shows as fields; the others ride along as hidden inputs
FORM_FIELDS = {"q", "sort", "exemplar", "from", "to", "page"}


def _url(args: MultiDict, **changes) -> str:
    """The search page with some parameters replaced (None drops one), back on its first page."""
    merged = MultiDict(args)
    merged.poplist("page")
    for key, value in changes.items():
        merged.poplist(key)
        if value not in (None, []):
            merged.setlist(key, value if isinstance(value, list) else [value])
    query = urlencode(list(merged.items(multi=True)))
    return url_for("views.search") + (f"?{query}" if query else "")


def _toggle(args: MultiDict, param: str, value: str) -> str:
    """The search page with one value of a repeatable filter switched on or off."""
    values = args.getlist(param)
    return _url(args, **{param: [v for v in values if v != value] if value in values else values + [value]})


def _active_filters(filters: Filters, args: MultiDict) -> list[tuple[str, str]]:
    """(label, URL without it) for every active filter value, so each can be removed on its own."""
    chips = []
    for name in filters.active():
        label, param, value = FILTER_LABELS[name], FILTER_PARAMS[name], getattr(filters, name)
        if isinstance(value, tuple):
            chips += [(f"{label}：{v}", _toggle(args, param, v)) for v in value]
        else:
            chips.append((label if value is True else f"{label}：{value}", _url(args, **{param: None})))
    return chips


def _suggestion_url(args: MultiDict, suggestion: Suggestion) -> str:
    """Where a suggestion leads: without the filter it names, or without the quotes."""
    if suggestion.drop_filter:
        return _url(args, **{FILTER_PARAMS[suggestion.drop_filter]: None})
    return _url(args, q=args.get("q", "").translate(QUOTES))


def _page_numbers(page: int, last: int) -> list[int]:
    return list(range(max(1, page - PAGE_LINKS), min(last, page + PAGE_LINKS) + 1))


@bp.context_processor
def _url_helpers():
    args = request.args
    return {"search_url": partial(_url, args), "toggle_url": partial(_toggle, args)}


@bp.get("/")
def search():
    kb = casekb()
    params = parse_search(request, kb.settings.max_page_size)
    query = params.search_query()
    result = kb.backend.search(query)
    last_page = min(math.ceil(result.total / query.size), MAX_WINDOW // query.size)
    return render_template(
        "search.html", params=params, query=query, result=result,
        pages=_page_numbers(query.page, last_page), last_page=last_page,
        chips=_active_filters(query.filters, request.args),
        clear_url=_url(request.args, **dict.fromkeys(FILTER_PARAMS.values())),
        hidden=[(k, v) for k, v in request.args.items(multi=True) if k not in FORM_FIELDS],
        suggestions=[(s.message, _suggestion_url(request.args, s)) for s in result.suggestions],
        facet_labels=FACET_LABELS, sort_labels=SORT_LABELS, examples=EXAMPLES)


@bp.get("/cases/<int:case_id>")
def case(case_id: int):
    kb = casekb()
    with kb.db.sessions() as session:
        detail = load_case(session, case_id)
    if detail is None:
        abort(404)
    # Precedents for this case: its own title and cause as the query, itself left out.
    similar = kb.backend.search(SearchQuery(text=f"{detail.title} {detail.cause or ''}", facets=(), size=SIMILAR + 1))
    hits = [hit for hit in similar.hits if hit.case_id != case_id][:SIMILAR]
    return render_template("case.html", case=detail, similar=hits)
