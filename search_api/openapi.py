"""A minimal OpenAPI 3.1 description of /api/v1, built from the same models that validate and serialise."""
from __future__ import annotations

from pydantic import TypeAdapter

from indexer.query import SearchResult, default_mode
from search_api.cases import CaseDetail
from search_api.exemplars import ExemplarIn, ExemplarOut, ExemplarParams
from search_api.params import MAX_PAGES, MAX_WINDOW, SearchParams
from search_api.listing import MAX_ID
from search_api.records import LISTS, OrganisationOut, MaterialOut
from search_api.stats import DATABASES, LinkedStatsParams, StatsParams

REF = "#/components/schemas/{model}"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": ["string", "null"]}, "reason": {"type": "string"}}}},
    },
}
HEALTH = {"type": "object", "properties": {
    "status": {"type": "string"}, "documents": {"type": "integer", "description": "Indexed records"},
    "shown_cases": {"type": "integer", "description": (
        "Indexed cases search shows: records that repeat another's text are collapsed into it and need no vectors")},
    "pending_index_tasks": {"type": "integer"},
    "modes": {"type": "array", "items": {"type": "string"}},
    "embedded_cases": {"type": "integer", "description": (
        "Cases with passage vectors (semantic search coverage); equals shown_cases once embedding is done")}}}


def _json(schema: dict, media: str = "application/json") -> dict:
    return {"content": {media: {"schema": schema}}}


def _problems(*statuses: int) -> dict:
    return {str(s): {"description": "Problem", **_json({"$ref": REF.format(model="Problem")},
                                                        "application/problem+json")} for s in statuses}


def _id_parameter(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}


def _query_parameters(schema: dict, components: dict) -> list[dict]:
    """Each property of a (referenced) parameters model as a query parameter."""
    model = components[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
    return [{"name": name, "in": "query", "schema": field} for name, field in model["properties"].items()]


def _page_of(item: dict, extra: dict | None = None) -> dict:
    return {"type": "object", "required": ["items", "total", "page", "size"], "properties": {
        "items": {"type": "array", "items": item}, "total": {"type": "integer"}, "page": {"type": "integer"},
        "size": {"type": "integer"}, **(extra or {})}}


ROWS = {"type": "object", "description": "Statistics rows (see README: dimensions and measures)"}


def _statistics_paths(schemas: dict, components: dict) -> dict:
    """The read side of /api/v1/stats (writes are for managers and documented in the README)."""
    stats = _query_parameters(schemas[("stats", "validation")], components)
    linked = _query_parameters(schemas[("linked_stats", "validation")], components)
    database = {"name": "database", "in": "path", "required": True,
                "schema": {"type": "string", "enum": list(DATABASES)}}
    files = {"description": "The rows as a file", "content": {
        "text/csv": {"schema": {"type": "string"}}, XLSX: {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "/api/v1/stats/cases": {"get": {"summary": "Case measures sliced by up to two dimensions", "parameters": stats,
                                        "responses": {"200": {"description": "Rows", **_json(ROWS)}, **_problems(400)}}},
        "/api/v1/stats/cases.csv": {"get": {"summary": "The same rows as CSV", "parameters": stats,
                                            "responses": {"200": files, **_problems(400)}}},
        "/api/v1/stats/cases.xlsx": {"get": {"summary": "The same rows as XLSX", "parameters": stats,
                                             "responses": {"200": files, **_problems(400)}}},
        "/api/v1/stats/databases": {"get": {"summary": "Rows in each of the nine databases, personnel structure",
                                            "responses": {"200": {"description": "Sizes", **_json(ROWS)}}}},
        "/api/v1/stats/databases/{database}": {"get": {
            "summary": "Rows of a database sliced by its cases' dimensions or its own (kind, party role); "
                       "organisations by subtree or level, with their mediators and cases",
            "parameters": [database, *linked],
            "responses": {"200": {"description": "Rows", **_json(ROWS)}, **_problems(400, 404)}}},
        "/api/v1/stats/databases/{database}.csv": {"get": {
            "summary": "The same rows as CSV", "parameters": [database, *linked],
            "responses": {"200": files, **_problems(400, 404)}}},
        "/api/v1/stats/databases/{database}.xlsx": {"get": {
            "summary": "The same rows as XLSX", "parameters": [database, *linked],
            "responses": {"200": files, **_problems(400, 404)}}},
        "/api/v1/stats/alerts": {"get": {
            "summary": "Raised surge alerts with their evidence",
            "parameters": [{"name": "open", "in": "query", "schema": {"type": "boolean"}}],
            "responses": {"200": {"description": "Alerts", **_json(ROWS)}}}},
        "/api/v1/stats/indicators": {"get": {"summary": "Configured surge indicators",
                                             "responses": {"200": {"description": "Indicators", **_json(ROWS)}}}},
    }


def openapi_document(max_page_size: int, modes: tuple[str, ...]) -> dict:
    """The OpenAPI document for a deployment with this page size limit and these search modes."""
    models = [("params", "validation", SearchParams), ("result", "serialization", SearchResult),
              ("case", "serialization", CaseDetail), ("exemplars", "validation", ExemplarParams),
              ("exemplar", "serialization", ExemplarOut), ("exemplar_in", "validation", ExemplarIn),
              ("organisation", "serialization", OrganisationOut), ("material", "serialization", MaterialOut)]
    models += [("stats", "validation", StatsParams), ("linked_stats", "validation", LinkedStatsParams)]
    models += [(path, mode, model) for path, (_, params, item) in LISTS.items()
               for mode, model in (("validation", params), ("serialization", item))]
    schemas, defs = TypeAdapter.json_schemas(
        [(key, mode, TypeAdapter(model)) for key, mode, model in models], ref_template=REF)
    components = {**defs["$defs"], "Problem": PROBLEM, "Health": HEALTH}
    fields = components["SearchParams"]["properties"]
    fields["size"]["maximum"] = max_page_size
    fields["mode"]["enum"] = list(modes)
    fields["mode"]["default"] = default_mode(modes)
    # A larger configured page size shrinks the last page the window allows.
    fields["page"]["maximum"] = min(MAX_PAGES, MAX_WINDOW // max_page_size)
    response = {"allOf": [schemas[("result", "serialization")], {"type": "object", "properties": {
        "mode": {"enum": list(modes), "description": "The mode the search ran in."},
        "page": {"type": "integer"}, "size": {"type": "integer"}}}]}
    ok = {"200": {"description": "Search results", **_json(response)}}
    signed_in = _problems(401)
    paths = {
        "/api/v1/search": {
            "get": {"summary": "Search cases (texts masked)", "parameters": _query_parameters(components["SearchParams"], components),
                    "responses": {**ok, **_problems(400, 401, 503)}},
            "post": {"summary": "Search cases (parameters as a JSON object)",
                     "requestBody": {"required": True, **_json(schemas[("params", "validation")])},
                     "responses": {**ok, **_problems(400, 401, 422, 503)}},
        },
        "/api/v1/cases/{case_id}": {"get": {
            "summary": "One case; parties' personal data only for admins and mediators of its organisation subtree",
            "parameters": [_id_parameter("case_id")],
            "responses": {"200": {"description": "The case", **_json(schemas[("case", "serialization")])},
                          **_problems(401, 404)}}},
        "/api/v1/cases/{case_id}/similar": {"get": {
            "summary": "More like this: precedents for a case (masked)", "parameters": [_id_parameter("case_id")],
            "responses": {"200": {"description": "Similar cases", **_json(schemas[("result", "serialization")])},
                          **_problems(401, 404)}}},
        "/api/v1/cases/{case_id}/exemplar": {
            "put": {"summary": "Mark a case as an exemplar, with a curator note (trainer, admin)",
                    "parameters": [_id_parameter("case_id")],
                    "requestBody": {"required": True, **_json(schemas[("exemplar_in", "validation")])},
                    "responses": {"204": {"description": "Marked"}, **_problems(400, 401, 403, 404, 422)}},
            "delete": {"summary": "Unmark an exemplar (trainer, admin)", "parameters": [_id_parameter("case_id")],
                       "responses": {"204": {"description": "Unmarked"}, **_problems(401, 403, 404)}}},
        "/api/v1/exemplars": {"get": {
            "summary": "Exemplar cases by category, cause and technique (masked)",
            "parameters": _query_parameters(schemas[("exemplars", "validation")], components),
            "responses": {"200": {"description": "A page of exemplars", **_json(_page_of(
                schemas[("exemplar", "serialization")],
                {"techniques": {"type": "object", "additionalProperties": {"type": "integer"}}}))},
                **_problems(400, 401)}}},
        "/api/v1/organisations/{org_id}": {"get": {
            "summary": "One organisation and its children", "parameters": [_id_parameter("org_id")],
            "responses": {"200": {"description": "The organisation", **_json({"allOf": [
                schemas[("organisation", "serialization")], {"type": "object", "properties": {"children": {
                    "type": "array", "items": schemas[("organisation", "serialization")]}}}]})},
                **_problems(401, 404)}}},
        "/api/v1/learning-materials/{material_id}": {"get": {
            "summary": "One learning material (masked)", "parameters": [_id_parameter("material_id")],
            "responses": {"200": {"description": "The material", **_json(schemas[("material", "serialization")])},
                          **_problems(401, 404)}}},
        "/api/v1/health": {"get": {"summary": "Indexed documents and queued index tasks", "security": [],
                                   "responses": {"200": {"description": "Health",
                                                         **_json({"$ref": REF.format(model="Health")})}}}},
    }
    paths.update(_statistics_paths(schemas, components))
    for path, (summary, params, item) in LISTS.items():
        paths[path] = {"get": {"summary": summary, "parameters": _query_parameters(schemas[(path, "validation")], components),
                               "responses": {"200": {"description": "A page", **_json(
                                   _page_of(schemas[(path, "serialization")]))}, **_problems(400, 401)}}}
    paths["/api/v1/audit"]["get"]["responses"].update(_problems(403))
    for operations in paths.values():
        for operation in operations.values():
            operation["responses"] = {**operation["responses"], **(signed_in if operation.get("security") != [] else {})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "casekb search API", "version": "1",
                 "description": "Search mediation cases. Send an API token (`casekb user token NAME`) as a bearer "
                                "token. Parties' personal data is shown only to admins and to mediators of the "
                                "case's organisation subtree; everything else is masked."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
