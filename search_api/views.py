"""The web UI: the search page, the case page and the exemplar browser, server-rendered in Chinese."""
from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from indexer.backend_common import FILTER_LABELS
from indexer.query import MODES, Filters, Suggestion
from kb.duplicates import duplicates_of
from kb.models import DisputeCase
from search_api.auth import audit, roles, viewer
from search_api.cases import CASE_OPTIONS, load_case, similar_cases
from search_api.exemplars import ExemplarIn, ExemplarParams, list_exemplars, mark_exemplar
from search_api.ext import casekb
from search_api.listing import parse_args
from search_api.params import FILTER_PARAMS, MAX_PAGES, MAX_WINDOW, parse_search
from search_api.sessions import RUNS_SESSIONS, ConfirmForm, PinForm, my_sessions

bp = Blueprint("views", __name__)

FACET_LABELS = {"category": "类别", "cause": "案由", "region": "地区", "outcome": "调解结果"}
SORT_LABELS = {"relevance": "相关度", "date_desc": "受理日期：新→旧", "date_asc": "受理日期：旧→新"}
EXAMPLES = ("民间借贷", "邻居 楼上 漏水", "離婚 撫養費", "拖欠工资 仲裁", "“交通事故”")
QUOTES = str.maketrans("", "", "\"“”「」『』")
PAGE_LINKS = 2  # page numbers shown either side of the current one
#: parameters the search form shows as fields; the others ride along as hidden inputs
FORM_FIELDS = {"q", "mode", "sort", "exemplar", "from", "to", "page"}
#: labels of the search modes; the switch offers whichever modes the backend has (indexer.query.MODES)
MODE_LABELS = {"keyword": "关键词", "semantic": "语义", "hybrid": "混合"}
NO_SEARCH_WORDS = ("检索词里没有可以检索的词语（“的”“了”“年”这类常用字和标点不参与检索），"
                   "下面按受理日期列出全部案例。请输入案情里的词，例如“借款”“漏水”。")


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
    params = parse_search(request, kb.settings.max_page_size, served=kb.backend.modes())
    query = params.search_query()
    notices = []
    if query.mode != "keyword" and kb.backend.encoder_factory is None:
        notices.append("本机尚未安装语义模型（casekb model install），已改用关键词检索。")
        query = replace(query, mode="keyword")
    result = kb.backend.search(query)
    if result.no_search_words:
        notices.append(NO_SEARCH_WORDS)
    audit("search", params.q, **params.model_dump(mode="json", exclude_defaults=True), total=result.total)
    last_page = min(math.ceil(result.total / query.size), MAX_WINDOW // query.size, MAX_PAGES)
    return render_template(
        "search.html", params=params, query=query, result=result, notices=notices,
        pages=_page_numbers(query.page, last_page), last_page=last_page,
        chips=_active_filters(query.filters, request.args),
        clear_url=_url(request.args, **dict.fromkeys(FILTER_PARAMS.values())),
        hidden=[(k, v) for k, v in request.args.items(multi=True) if k not in FORM_FIELDS],
        suggestions=[(s.message, _suggestion_url(request.args, s)) for s in result.suggestions],
        facet_labels=FACET_LABELS, sort_labels=SORT_LABELS, examples=EXAMPLES,
        modes=[(mode, MODE_LABELS.get(mode, mode)) for mode in MODES])


class ExemplarForm(FlaskForm):
    note = TextAreaField("点评（为什么是优秀案例）", validators=[Length(max=2000)])
    techniques = StringField("调解技巧（用逗号或顿号分隔）", validators=[Length(max=500)])


@bp.get("/cases/<id:case_id>")
def case(case_id: int):
    kb = casekb()
    with kb.db.sessions() as session:
        detail = load_case(session, case_id, viewer())
        sessions = my_sessions(session) if viewer().role in RUNS_SESSIONS else []
        case_row = session.get(DisputeCase, case_id)  # loaded by load_case: from the session, no query
        copies = duplicates_of(session, case_row) if case_row is not None else []
        similar = similar_cases(kb.backend, case_row, copies).hits if case_row is not None else []
    if detail is None:
        abort(404)
    audit("view", f"case:{case_id}", personal_data=detail.personal_data_shown)
    pin_form = PinForm(case_id=case_id)
    pin_form.session_id.choices = [SelectChoice(s.id, s.title) for s in sessions]
    exemplar_form = None
    if viewer().role in CURATORS:
        exemplar_form = ExemplarForm(note=detail.exemplar.note if detail.exemplar else "",
                                     techniques="，".join(detail.exemplar.techniques) if detail.exemplar else "")
    return render_template("case.html", case=detail, similar=similar,
                           duplicates=[(c.id, c.external_id) for c in copies],
                           pin_form=pin_form if sessions else None, exemplar_form=exemplar_form,
                           confirm=ConfirmForm(), personal_data_shown=detail.personal_data_shown)


CURATORS = ("trainer", "admin")
TAG_SEPARATORS = str.maketrans({"，": ",", "、": ",", "；": ",", ";": ",", " ": ","})


@bp.post("/cases/<id:case_id>/exemplar")
@roles(*CURATORS)
def mark(case_id: int):
    form = ExemplarForm()
    if not form.validate_on_submit():
        abort(400)
    data = ExemplarIn(note=form.note.data or "",
                      techniques=[t.strip() for t in (form.techniques.data or "").translate(TAG_SEPARATORS).split(",")])
    with casekb().db.transaction() as session:
        found = session.get(DisputeCase, case_id, options=CASE_OPTIONS)
        if found is None:
            abort(404)
        mark_exemplar(session, found, viewer().username, data)
    audit("exemplar", f"case:{case_id}", marked=True)
    flash("已标记为优秀案例。")
    return redirect(url_for("views.case", case_id=case_id))


@bp.post("/cases/<id:case_id>/exemplar/delete")
@roles(*CURATORS)
def unmark(case_id: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with casekb().db.transaction() as session:
        found = session.get(DisputeCase, case_id, options=CASE_OPTIONS)
        if found is None:
            abort(404)
        if found.exemplar is not None:
            session.delete(found.exemplar)
    audit("exemplar", f"case:{case_id}", marked=False)
    flash("已取消优秀案例标记。")
    return redirect(url_for("views.case", case_id=case_id))


@bp.get("/exemplars")
def exemplars():
    params = parse_args(ExemplarParams, request)
    with casekb().db.sessions() as session:
        items, total, techniques = list_exemplars(session, params)
    last_page = min(max(1, math.ceil(total / params.size)), MAX_PAGES)
    return render_template("exemplars.html", params=params, items=items, total=total, techniques=techniques,
                           pages=_page_numbers(params.page, last_page), last_page=last_page,
                           categories=casekb().settings.categories)
