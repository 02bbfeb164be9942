"""Search request parameters (query string or JSON body), validated by pydantic into a SearchQuery."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from flask import Request
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError,
                      ValidationInfo, field_validator)
from pydantic_core import PydanticCustomError
from werkzeug.datastructures import MultiDict

from indexer.query import FACET_FIELDS, MODES, SORTS, Filters, SearchQuery, default_mode
from search_api.problems import ProblemError

#: the deepest result a search may page to, so paging never becomes a full scan
MAX_WINDOW = 10_000
#: room for a whole case description pasted into the search box (the demo's longest case has ~8,400)
MAX_QUERY_CHARS = 10_000
#: the last page a list may ask for; a plain bound that the OpenAPI document can state, unlike the window
MAX_PAGES = 100

#: which request parameters set each Filters field (to drop a filter from a URL)
FILTER_PARAMS = {
    "categories": "category", "causes": "cause", "regions": "region", "organisation_id": "organisation",
    "outcomes": "outcome", "exemplar_only": "exemplar", "received_from": "from", "received_to": "to",
    "amount_min": "amount_min", "amount_max": "amount_max",
}


def _one_or_many(value):
    return [value] if isinstance(value, str) else value


def _given_values(value, info: ValidationInfo):
    """One value or several in a query string, a list in JSON; blank ones (an empty form field) are left out
    rather than refused."""
    # `info` must be a required parameter: pydantic passes it only to validators that demand it.
    values = value if info.mode == "json" else _one_or_many(value)
    if isinstance(values, list) and all(isinstance(v, str) for v in values):
        return [v for v in values if v.strip()]
    return values  # pydantic reports the wrong type


def comma_separated(value, info: ValidationInfo):
    """'a,b' and ['a', 'b,c'] alike become ['a', 'b', 'c'] in a query string (JSON has real lists)."""
    # `info` must be a required parameter: pydantic passes it only to validators that demand it.
    if info.mode == "json":
        return value
    values = _one_or_many(value)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return values  # pydantic reports the wrong type
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


#: each value is stripped after its length is checked, so the limit is the documented one
Repeated = Annotated[list[Annotated[str, StringConstraints(max_length=100, strip_whitespace=False),
                                    AfterValidator(str.strip)]], BeforeValidator(_given_values)]


class FilterParams(BaseModel):
    """The case filters that searches and statistics share, named as in the query string."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: Repeated = Field([], description="Dispute category; repeat for any of several.")
    cause: Repeated = Field([], description="Cause of action (案由); repeatable.")
    region: Repeated = Field([], description="Region; repeatable.")
    organisation: int | None = Field(None, ge=1, le=2**31 - 1, description="Organisation id: it and everything below it.")
    outcome: Repeated = Field([], description="成功 / 不成功 / 终止; repeatable.")
    exemplar: bool = Field(False, description="Only exemplar cases (优秀案例).")
    from_: dt.date | None = Field(None, alias="from", description="Received on or after (YYYY-MM-DD).")
    to: dt.date | None = Field(None, description="Received on or before (YYYY-MM-DD).")
    amount_min: float | None = Field(None, ge=0, description="Smallest agreed amount (yuan).")
    amount_max: float | None = Field(None, ge=0, description="Largest agreed amount (yuan).")

    @field_validator("to")
    @classmethod
    def _range_in_order(cls, to: dt.date | None, info: ValidationInfo):
        start = info.data.get("from_")
        if to and start and to < start:
            raise PydanticCustomError("date_range", "'to' must not be before 'from'")
        return to

    @field_validator("amount_max")
    @classmethod
    def _amounts_in_order(cls, top: float | None, info: ValidationInfo):
        bottom = info.data.get("amount_min")
        if top is not None and bottom is not None and top < bottom:
            raise PydanticCustomError("amount_range", "amount_max must not be below amount_min")
        return top

    def filters(self) -> Filters:
        """These parameters as the filter object of the search backends and kb.statistics."""
        return Filters(
            categories=tuple(self.category), causes=tuple(self.cause), regions=tuple(self.region),
            organisation_id=self.organisation, outcomes=tuple(self.outcome), exemplar_only=self.exemplar,
            received_from=self.from_, received_to=self.to, amount_min=self.amount_min, amount_max=self.amount_max)


class SearchText(BaseModel):
    """What a search looks for and how: the first search parameters."""
    q: str = Field("", max_length=MAX_QUERY_CHARS, description=(
        "Keywords or a colloquial description; quote a phrase to match it exactly. In hybrid mode a whole "
        "case description (40 characters or more; with a quoted part, 200) finds the cases most like it, "
        "the best case of each cause it likely has moved up."))
    mode: Literal[MODES] = Field("keyword", description=(
        "keyword, semantic (by meaning) or hybrid (both, fused). Default: hybrid where the embedding "
        "model is installed, else keyword."))

    @field_validator("mode")
    @classmethod
    def _mode_available(cls, mode: str, info: ValidationInfo):
        available = (info.context or {}).get("modes")
        if available and mode not in available:
            raise PydanticCustomError("mode_unavailable", "mode {mode!r} needs the embedding model, which is not "
                                      "installed here (casekb model install); available: {available}",
                                      {"mode": mode, "available": ", ".join(available)})
        return mode


# pydantic puts the fields of the last base first: the text, then the filters, then paging.
class SearchParams(FilterParams, SearchText):
    """The public search parameters, named as in the query string."""
    sort: Literal[SORTS] = "relevance"
    page: int = Field(1, ge=1, le=MAX_PAGES)
    size: int = Field(10, ge=1, description="Results per page, at most the configured max_page_size.")
    facets: Annotated[list[Literal[FACET_FIELDS]], BeforeValidator(comma_separated)] = Field(
        list(FACET_FIELDS), description="Facets to count (comma-separated or repeated; empty for none).")

    @field_validator("size")
    @classmethod
    def _size_within_limits(cls, size: int, info: ValidationInfo):
        most = (info.context or {}).get("max_page_size")
        if most and size > most:
            raise PydanticCustomError("too_large", "Input should be less than or equal to {most}", {"most": most})
        page = info.data.get("page")
        if page and page * size > MAX_WINDOW:
            raise PydanticCustomError("too_deep", "page × size should be at most {window}", {"window": MAX_WINDOW})
        return size

    def search_query(self) -> SearchQuery:
        """The backend's query object for these parameters."""
        return SearchQuery(text=self.q, mode=self.mode, filters=self.filters(), facets=tuple(self.facets),
                           sort=self.sort, page=self.page, size=self.size)


def from_query_string(args: MultiDict) -> dict:
    """Repeated keys become lists; empty values (an empty form field) count as absent."""
    data = {}
    for key, values in args.lists():
        given = [v for v in values if v != ""]
        if given:
            data[key] = given if len(given) > 1 else given[0]
        elif key == "facets":
            data[key] = []  # `facets=` explicitly asks for no facets
    return data


def parse_search(request: Request, max_page_size: int, modes: tuple[str, ...] = MODES,
                 served: tuple[str, ...] | None = None) -> SearchParams:
    """The validated parameters of a search request; ProblemError (400 or 422) when they are not valid.
    A request that names no mode gets the default of the modes `served` (default: `modes`)."""
    params = _validated_search(request, max_page_size, modes)
    if "mode" in params.model_fields_set:
        return params
    return params.model_copy(update={"mode": default_mode(served or modes)})


def _validated_search(request: Request, max_page_size: int, modes: tuple[str, ...]) -> SearchParams:
    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ProblemError(400, "The request body must be a JSON object (Content-Type: application/json).")
    context = {"max_page_size": max_page_size, "modes": modes}
    try:
        if request.method == "POST":
            status = 422
            # JSON has types: strict, so "5" is no amount and "true" no flag (a query string has only text).
            return SearchParams.model_validate_json(request.get_data(), strict=True, context=context)
        status = 400
        return SearchParams.model_validate(from_query_string(request.args), context=context)
    except ValidationError as error:
        raise ProblemError.from_validation(error, status) from None
