"""Errors as RFC 9457 problem+json on /api/ routes and as plain HTML pages on the UI."""
from __future__ import annotations

from http import HTTPStatus

from flask import Flask, jsonify, render_template, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from indexer.semantic import SemanticUnavailable

PROBLEM_JSON = "application/problem+json"
INVALID_PARAMETERS = "tag:casekb,2025:problems/invalid-parameters"

#: what the UI says for each status: a heading and a hint (the API's English detail is for developers)
UI_MESSAGES = {
    400: ("请求参数有误", "请检查下面列出的参数后重新搜索。"),
    401: ("请先登录", "登录后才能查看这个页面。"),
    403: ("没有权限", "您的角色不能进行这个操作。如有需要，请联系管理员。"),
    404: ("找不到这个页面", "地址可能有误，或者这个案例已被删除。"),
    405: ("不支持这种请求方式", "请从搜索页面进入。"),
    422: ("请求参数有误", "请检查下面列出的参数后重新搜索。"),
    500: ("服务器出错了", "错误已记录，请稍后再试。"),
}


class ProblemError(Exception):
    """A request that cannot be served, with what the client should fix."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None,
                 type_: str = "about:blank"):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.type = type_

    @classmethod
    def from_validation(cls, error: ValidationError, status: int) -> ProblemError:
        """One {field, reason} per invalid parameter (the parameters are flat, so the first loc part)."""
        errors = [{"field": str(e["loc"][0]) if e["loc"] else None, "reason": e["msg"]}
                  for e in error.errors(include_url=False)]
        return cls(status, "Some request parameters are invalid; see errors.", errors, INVALID_PARAMETERS)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _respond(problem: ProblemError, headers: list[tuple[str, str]] = ()):
    if _is_api():
        body = {"type": problem.type, "title": HTTPStatus(problem.status).phrase,
                "status": problem.status, "detail": problem.detail}
        if problem.errors:
            body["errors"] = problem.errors
        response = jsonify(body)
        response.content_type = PROBLEM_JSON
    else:
        title, hint = UI_MESSAGES.get(problem.status, (HTTPStatus(problem.status).phrase, ""))
        # A 500 page names no user: finding the user may be what failed.
        response = render_template("error.html", status=problem.status, title=title, hint=hint,
                                   errors=problem.errors, public_page=problem.status >= 500)
    return response, problem.status, list(headers)


def register_error_handlers(app: Flask) -> None:
    """Every error ends as a problem document or an error page, never as a stack trace."""

    @app.errorhandler(ProblemError)
    def _problem(problem: ProblemError):
        return _respond(problem)

    @app.errorhandler(SemanticUnavailable)
    def _no_model(error: SemanticUnavailable):
        return _respond(ProblemError(503, f"Semantic search is not available here: {error}. "
                                          "Use mode=keyword."))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        # Keep headers such as Allow on 405; the body is ours.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return _respond(ProblemError(error.code, error.description), headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(ProblemError(500, "An internal error occurred; it has been logged."))
