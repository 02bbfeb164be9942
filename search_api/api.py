"""The JSON API under /api/v1: search, one masked case, health and the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import TypeAdapter

from indexer.query import SearchResult
from search_api.cases import load_case
from search_api.ext import casekb
from search_api.openapi import openapi_document
from search_api.params import parse_search
from search_api.problems import ProblemError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
RESULT = TypeAdapter(SearchResult)


@bp.route("/search", methods=["GET", "POST"])
def search():
    kb = casekb()
    query = parse_search(request, kb.settings.max_page_size).search_query()
    result = kb.backend.search(query)
    body = RESULT.dump_python(result, mode="json")
    body["took_ms"] = round(body["took_ms"], 2)
    return jsonify(**body, page=query.page, size=query.size)


@bp.get("/cases/<int:case_id>")
def case(case_id: int):
    with casekb().db.sessions() as session:
        detail = load_case(session, case_id)
    if detail is None:
        raise ProblemError(404, f"There is no case with id {case_id}.")
    return jsonify(detail.model_dump(mode="json"))


@bp.get("/health")
def health():
    kb = casekb()
    return jsonify(status="ok", documents=kb.backend.document_count(), pending_index_tasks=kb.indexer().pending())


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(casekb().settings.max_page_size))
