"""Case measures as flat tables: CSV and XLSX for spreadsheets, rows for the terminal."""
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


def to_csv(rows: Sequence[CaseMeasures], by: Sequence[str]) -> str:
    """UTF-8 CSV text (the caller adds a BOM where Excel must open it)."""
    header, body = table(rows, by)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in body)
    return out.getvalue()


def to_xlsx(rows: Sequence[CaseMeasures], by: Sequence[str], title: str = "统计") -> bytes:
    header, body = table(rows, by)
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(header)
    for row in body:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
