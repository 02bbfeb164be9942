"""A minimal OpenAPI 3.1 description of /api/v1, built from the same models that validate and serialise."""
from __future__ import annotations

from pydantic import TypeAdapter

from indexer.query import SearchResult
from search_api.cases import CaseDetail
from search_api.params import SearchParams

REF = "#/components/schemas/{model}"

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
    "status": {"type": "string"}, "documents": {"type": "integer"}, "pending_index_tasks": {"type": "integer"}}}


def _json(schema: dict, media: str = "application/json") -> dict:
    return {"content": {media: {"schema": schema}}}


def _problems(*statuses: int) -> dict:
    return {str(s): {"description": "Problem", **_json({"$ref": REF.format(model="Problem")},
                                                        "application/problem+json")} for s in statuses}


def openapi_document(max_page_size: int) -> dict:
    """The OpenAPI document for a deployment with this page size limit."""
    schemas, defs = TypeAdapter.json_schemas(
        [("params", "validation", TypeAdapter(SearchParams)), ("result", "serialization", TypeAdapter(SearchResult)),
         ("case", "serialization", TypeAdapter(CaseDetail))], ref_template=REF)
    components = {**defs["$defs"], "Problem": PROBLEM, "Health": HEALTH}
    fields = components["SearchParams"]["properties"]
    fields["size"]["maximum"] = max_page_size
    query_parameters = [{"name": name, "in": "query", "schema": schema} for name, schema in fields.items()]
    response = {"allOf": [schemas[("result", "serialization")], {"type": "object", "properties": {
        "page": {"type": "integer"}, "size": {"type": "integer"}}}]}
    ok = {"200": {"description": "Search results", **_json(response)}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "casekb search API", "version": "1",
                 "description": "Search mediation cases. Case texts are always masked."},
        "paths": {
            "/api/v1/search": {
                "get": {"summary": "Search cases", "parameters": query_parameters,
                        "responses": {**ok, **_problems(400)}},
                "post": {"summary": "Search cases (parameters as a JSON object)",
                         "requestBody": {"required": True, **_json(schemas[("params", "validation")])},
                         "responses": {**ok, **_problems(400, 422)}},
            },
            "/api/v1/cases/{case_id}": {"get": {
                "summary": "One case, personal data masked",
                "parameters": [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "The case", **_json(schemas[("case", "serialization")])},
                              **_problems(404)}}},
            "/api/v1/health": {"get": {"summary": "Indexed documents and queued index tasks", "responses": {
                "200": {"description": "Health", **_json({"$ref": REF.format(model="Health")})}}}},
        },
        "components": {"schemas": components},
    }
