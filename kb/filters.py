"""Which cases a search or a statistic covers: one filter object for the search backends and kb.statistics."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    #: an organisation and everything below it in the tree
    organisation_id: int | None = None
    outcomes: tuple[str, ...] = ()
    exemplar_only: bool = False
    received_from: dt.date | None = None
    received_to: dt.date | None = None
    #: agreed amount in yuan, both bounds included; a case without an amount matches no bound
    amount_min: float | None = None
    amount_max: float | None = None

    def active(self) -> list[str]:
        """Names of the filters that restrict the result."""
        return [f.name for f in fields(self) if getattr(self, f.name) not in (None, (), False)]

    def without(self, name: str) -> Filters:
        return replace(self, **{name: next(f.default for f in fields(self) if f.name == name)})
