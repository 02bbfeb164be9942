"""Import case files into the case library: validate every row, then write one file atomically."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from casekb.config import Settings
from corpus.readers import RowProblem, read_rows
from corpus.schema import CaseRow
from kb.db import Database
from kb.duplicates import duplicates_among
from kb.models import DisputeCase

#: Rows looked up, written and then let go of together (the whole file is still one transaction).
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class RowError:
    file: Path
    row: int
    field: str
    reason: str
    #: the row as read, for the rejects file
    data: dict | None = None

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}, field {self.field}: {self.reason}"


@dataclass
class ImportReport:
    file: Path
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    rejects_file: Path | None = None
    #: (external id, external id of the earlier record with the same text) for each duplicate imported
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    @property
    def imported(self) -> bool:
        return self.created + self.updated + self.unchanged > 0


class ImportRejected(Exception):
    """A file had invalid rows and was imported all-or-nothing: nothing was written."""

    def __init__(self, report: ImportReport):
        super().__init__(f"{report.file}: {len(report.rejected)} invalid row(s); nothing imported")
        self.report = report


def _errors_of(path: Path, row: int, exc: ValidationError, raw: dict) -> list[RowError]:
    return [RowError(path, row, ".".join(str(p) for p in err["loc"]) or "-",
                     err["msg"].removeprefix("Value error, "), raw) for err in exc.errors()]


def validate_file(path: Path, settings: Settings, encoding: str = "utf-8-sig",
                  progress: bool = False) -> tuple[list[CaseRow], ImportReport]:
    """Parse and validate every row; returns the valid ones and a report listing every reject."""
    report = ImportReport(path)
    context = {"categories": settings.categories, "max_text_chars": settings.max_text_chars}
    valid, first_row_of = [], {}
    for number, raw in tqdm(read_rows(path, encoding), desc=f"checking {path.name}", unit=" rows",
                            disable=not progress):
        report.rows += 1
        if isinstance(raw, RowProblem):
            report.rejected.append(RowError(path, raw.row, raw.field, raw.reason))
            continue
        try:
            row = CaseRow.model_validate(raw, context=context)
        except ValidationError as exc:
            report.rejected.extend(_errors_of(path, number, exc, raw))
            continue
        if row.id in first_row_of:
            report.rejected.append(RowError(path, number, "id", f"duplicate id {row.id!r} "
                                            f"(first seen at row {first_row_of[row.id]})", raw))
            continue
        first_row_of[row.id] = number
        valid.append(row)
    return valid, report


def _write_rejects(path: Path, report: ImportReport) -> Path:
    target = path.with_name(path.name + ".rejects.jsonl")
    with target.open("w", encoding="utf-8") as out:
        for error in report.rejected:
            out.write(json.dumps({"row": error.row, "field": error.field, "reason": error.reason,
                                  "data": error.data}, ensure_ascii=False, default=str) + "\n")
    return target


def _upsert(session: Session, rows: list[CaseRow], report: ImportReport) -> None:
    """Add new cases and update existing ones (by external id), counting each in the report."""
    existing = {case.external_id: case for case in session.scalars(
        select(DisputeCase).where(DisputeCase.external_id.in_([row.id for row in rows])))}
    for row in rows:
        case = existing.get(row.id)
        if case is None:
            session.add(DisputeCase(**row.case_fields()))
            report.created += 1
            continue
        for name, value in row.case_fields().items():
            setattr(case, name, value)
        if session.is_modified(case):
            report.updated += 1
        else:
            report.unchanged += 1


def import_file(db: Database, settings: Settings, path: Path, skip_invalid: bool = False,
                encoding: str = "utf-8-sig", progress: bool = False) -> ImportReport:
    """Upsert a file's cases by external id, in one transaction.

    Invalid rows reject the whole file unless `skip_invalid`, which imports the valid rows and
    writes the rejects to `<file>.rejects.jsonl` beside the input.
    """
    path = Path(path)
    rows, report = validate_file(path, settings, encoding, progress)
    if report.rejected and not skip_invalid:
        raise ImportRejected(report)
    with db.transaction() as session, tqdm(total=len(rows), desc=f"importing {path.name}", unit=" cases",
                                            disable=not progress) as bar:
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start:start + CHUNK_ROWS]
            _upsert(session, chunk, report)
            # Still one transaction; flushing chunk by chunk keeps memory flat for large files.
            session.flush()
            session.expunge_all()
            bar.update(len(chunk))
        report.duplicates = duplicates_among(session, [row.id for row in rows])
    if report.rejected:
        report.rejects_file = _write_rejects(path, report)
    return report
