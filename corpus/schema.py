"""What a valid case row is, as a pydantic model; errors name the field and the reason."""
from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

INTAKE_ALIASES = {"主动": "主动调解", "申请": "申请调解", "委托": "委托移送", "移送": "委托移送"}
Outcome = Literal["成功", "不成功", "终止"]
ShortText = Annotated[str, Field(max_length=500)]


class CaseRow(BaseModel):
    """One imported case. Only id, title, text and category are required: the demo corpus has no
    mediation metadata. `context={"categories": ..., "max_text_chars": ...}` comes from settings."""
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: Annotated[str, Field(min_length=1, max_length=100)]
    title: Annotated[str, Field(min_length=1, max_length=500)]
    text: Annotated[str, Field(min_length=1)]
    category: str
    cause: Annotated[str, Field(max_length=100)] | None = None
    source: Annotated[str, Field(max_length=200)] | None = None
    elements: list[Annotated[str, Field(max_length=100)]] = []
    case_number: Annotated[str, Field(max_length=100)] | None = None
    intake: Literal["主动调解", "申请调解", "委托移送"] | None = None
    region: Annotated[str, Field(max_length=100)] | None = None
    received_on: dt.date | None = None
    closed_on: dt.date | None = None
    process: str | None = None
    outcome: Outcome | None = None
    agreement_terms: str | None = None
    agreed_amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    performance: ShortText | None = None
    satisfaction: Annotated[int, Field(ge=1, le=5)] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value):
        return str(value) if isinstance(value, int) else value

    @field_validator("title", "text", "process", "agreement_terms", mode="before")
    @classmethod
    def _decode_html_entities(cls, value):
        # Texts exported from web pages carry entities (&ldquo;, &times;): store the characters.
        return html.unescape(value) if isinstance(value, str) and "&" in value else value

    @field_validator("text", "process", "agreement_terms")
    @classmethod
    def _not_oversize(cls, value, info: ValidationInfo):
        limit = (info.context or {}).get("max_text_chars")
        if value is not None and limit and len(value) > limit:
            raise ValueError(f"text has {len(value)} characters; at most {limit} are accepted")
        return value

    @field_validator("category")
    @classmethod
    def _known_category(cls, value, info: ValidationInfo):
        categories = (info.context or {}).get("categories")
        if categories and value not in categories:
            raise ValueError(f"unknown category {value!r}; configured categories: {'、'.join(categories)}")
        return value

    @field_validator("intake", mode="before")
    @classmethod
    def _intake_alias(cls, value):
        return INTAKE_ALIASES.get(value, value)

    @field_validator("elements", mode="before")
    @classmethod
    def _split_elements(cls, value):
        if isinstance(value, str):
            return [part for part in re.split(r"[;；、|]", value) if part.strip()]
        return value

    @model_validator(mode="after")
    def _closed_after_received(self):
        if self.received_on and self.closed_on and self.closed_on < self.received_on:
            raise ValueError(f"closed_on {self.closed_on} is before received_on {self.received_on}")
        return self

    def case_fields(self) -> dict:
        """The row as DisputeCase attributes, only the fields the file gave."""
        given = self.model_dump(exclude_unset=True)
        renamed = {"id": "external_id", "text": "facts", "source": "dataset"}
        return {renamed.get(key, key): value for key, value in given.items()}


REQUIRED_COLUMNS = tuple(name for name, f in CaseRow.model_fields.items() if f.is_required())
