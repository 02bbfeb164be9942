"""The JSON API under /api/v1: search, cases as the caller may see them, exemplars, health and OpenAPI."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import TypeAdapter, ValidationError

from indexer.query import SearchResult
from kb.duplicates import duplicates_of
from kb.models import DisputeCase
from search_api.auth import audit, public, roles, viewer
from search_api.cases import CASE_OPTIONS, load_case, similar_cases
from search_api.exemplars import ExemplarIn, ExemplarParams, list_exemplars, mark_exemplar
from search_api.ext import casekb
from search_api.listing import Page, parse_args
from search_api.openapi import openapi_document
from search_api.params import parse_search
from search_api.problems import ProblemError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
RESULT = TypeAdapter(SearchResult)


def _result(result: SearchResult) -> dict:
    body = RESULT.dump_python(result, mode="json")
    body["took_ms"] = round(body["took_ms"], 2)
    return body


@bp.route("/search", methods=["GET", "POST"])
def search():
    kb = casekb()
    params = parse_search(request, kb.settings.max_page_size, kb.backend.modes())
    query = params.search_query()
    result = kb.backend.search(query)
    audit("search", params.q, **params.model_dump(mode="json", exclude_defaults=True), total=result.total)
    return jsonify(**_result(result), mode=query.mode, page=query.page, size=query.size)


def _case_or_404(case_id: int):
    with casekb().db.sessions() as session:
        detail = load_case(session, case_id, viewer())
    if detail is None:
        raise ProblemError(404, f"There is no case with id {case_id}.")
    return detail


@bp.get("/cases/<id:case_id>")
def case(case_id: int):
    detail = _case_or_404(case_id)
    audit("view", f"case:{case_id}", personal_data=detail.personal_data_shown)
    return jsonify(detail.model_dump(mode="json"))


@bp.get("/cases/<id:case_id>/similar")
def similar(case_id: int):
    """More like this: precedents for the case, itself left out (always masked, from the index)."""
    with casekb().db.sessions() as session:
        case = session.get(DisputeCase, case_id)
        if case is None:
            raise ProblemError(404, f"There is no case with id {case_id}.")
        return jsonify(_result(similar_cases(casekb().backend, case, duplicates_of(session, case))))


@bp.get("/exemplars")
def exemplars():
    params = parse_args(ExemplarParams, request)
    with casekb().db.sessions() as session:
        items, total, techniques = list_exemplars(session, params)
    page = Page(items=items, total=total, page=params.page, size=params.size).model_dump(mode="json")
    return jsonify(**page, techniques=dict(techniques.most_common()))


@bp.route("/cases/<id:case_id>/exemplar", methods=["PUT", "DELETE"])
@roles("trainer", "admin")
def exemplar(case_id: int):
    """Mark (PUT, with a curator note) or unmark (DELETE) an exemplar."""
    data = None
    if request.method == "PUT":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ProblemError(400, "The request body must be a JSON object (Content-Type: application/json).")
        try:
            data = ExemplarIn.model_validate_json(request.get_data(), strict=True)
        except ValidationError as error:
            raise ProblemError.from_validation(error, 422) from None
    with casekb().db.transaction() as session:
        found = session.get(DisputeCase, case_id, options=CASE_OPTIONS)
        if found is None:
            raise ProblemError(404, f"There is no case with id {case_id}.")
        if data is not None:
            mark_exemplar(session, found, viewer().username, data)
        elif found.exemplar is not None:
            session.delete(found.exemplar)
    audit("exemplar", f"case:{case_id}", marked=data is not None)
    return "", 204


@bp.get("/health")
@public
def health():
    kb = casekb()
    embedded = kb.backend.embedded_case_count() if "semantic" in kb.backend.modes() else 0
    return jsonify(status="ok", documents=kb.backend.document_count(), shown_cases=kb.backend.shown_case_count(),
                   pending_index_tasks=kb.indexer().pending(), modes=list(kb.backend.modes()), embedded_cases=embedded)


@bp.get("/openapi.json")
@public
def openapi():
    kb = casekb()
    return jsonify(openapi_document(kb.settings.max_page_size, kb.backend.modes()))
