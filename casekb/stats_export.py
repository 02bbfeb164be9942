"""Statistics rows as flat tables: CSV and XLSX for spreadsheets, rows for the terminal."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook

from kb.statistics import CaseMeasures

DESTINATIONS = ("court", "arbitration", "petition", "administrative", "other", "untracked")


def table(rows: Sequence[CaseMeasures], by: Sequence[str]) -> tuple[list[str], list[list]]:
    """Header and rows: one column per dimension, then every measure, destinations spread out."""
    header = list(by)
    body = []
    for measures in rows:
        data = measures.as_dict()
        destinations = data.pop("unsuccessful_by_destination")
        del data["key"], data["label"]
        if len(header) == len(by):
            header += list(data) + [f"unsuccessful_{d}" for d in DESTINATIONS]
        body.append(list(measures.label) + list(data.values()) + [destinations.get(d, 0) for d in DESTINATIONS])
    if len(header) == len(by):
        header += list(CaseMeasures().as_dict())[2:]
    return header, body


def count_table(rows: Sequence[dict], by: Sequence[str]) -> tuple[list[str], list[list]]:
    """Header and rows of count rows ({key, label, counts...}): one column per dimension, then each count;
    a breakdown ({kind: count}) is spread into one column per kind seen in any row."""
    kinds: dict[str, set | None] = {}
    for row in rows:
        for name, value in row.items():
            if name not in ("key", "label", "search_url"):
                kinds.setdefault(name, set() if isinstance(value, dict) else None)
                if isinstance(value, dict):
                    kinds[name].update(value)
    columns = [column for name, seen in kinds.items()
               for column in ([name] if seen is None else [f"{name}_{kind}" for kind in sorted(seen)])]
    body = []
    for row in rows:
        flat = {f"{name}_{sub}": n for name, value in row.items() if isinstance(value, dict)
                for sub, n in value.items()} | {name: value for name, value in row.items() if not isinstance(value, dict)}
        body.append(list(row["label"]) + [flat.get(column, 0) for column in columns])
    return list(by) + columns, body


def to_csv(header: Sequence[str], body: Sequence[Sequence]) -> str:
    """UTF-8 CSV text (the caller adds a BOM where Excel must open it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in body)
    return out.getvalue()


def to_xlsx(header: Sequence[str], body: Sequence[Sequence], title: str = "统计") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for row in body:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
