"""Paged list endpoints: validated paging and filter parameters, and the page envelope they answer with."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from flask import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from werkzeug.routing import IntegerConverter

from search_api.params import MAX_PAGES, from_query_string
from search_api.problems import ProblemError

MAX_LIST_SIZE = 100
#: the largest id a database integer column holds (PostgreSQL INTEGER); a larger one cannot name a row
MAX_ID = 2**31 - 1
Item = TypeVar("Item")
Params = TypeVar("Params", bound="PageParams")


class IdConverter(IntegerConverter):
    """`<id:name>` in a route: a row id, so an out-of-range number is a 404, not a database error."""

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


class PageParams(BaseModel):
    """Paging shared by every list; subclasses add their filters."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    page: int = Field(1, ge=1, le=MAX_PAGES)
    size: int = Field(20, ge=1, le=MAX_LIST_SIZE)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    page: int
    size: int


def parse_args(model: type[Params], request: Request) -> Params:
    """The query string validated by the model; ProblemError 400 when it is not valid."""
    try:
        return model.model_validate(from_query_string(request.args))
    except ValidationError as error:
        raise ProblemError.from_validation(error, 400) from None


def paginate(session: Session, statement: Select, params: PageParams, convert: Callable) -> dict:
    """One page of the statement's rows, converted, in the Page envelope (as JSON-ready data)."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.scalars(statement.offset((params.page - 1) * params.size).limit(params.size)).unique()
    return Page[dict](items=[convert(row).model_dump(mode="json") for row in rows], total=total,
                      page=params.page, size=params.size).model_dump(mode="json")
