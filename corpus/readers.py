"""Readers for JSONL, CSV and XLSX case files: rows as dicts with their row numbers.

File-level problems (unknown format, wrong encoding, empty file, missing columns) raise
ImportFileError; a row that cannot be parsed is yielded as a RowProblem for the report.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import openpyxl
from charset_normalizer import from_bytes

from corpus.schema import REQUIRED_COLUMNS

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".xlsx": "xlsx"}


class ImportFileError(Exception):
    """The whole file cannot be read; nothing from it was imported."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    reason: str


Row = tuple[int, dict | RowProblem]


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        guess = from_bytes(data).best()
        hint = f"; it looks like {guess.encoding.upper()}: re-run with --encoding {guess.encoding}" \
            if guess and guess.encoding.replace("_", "").lower() not in ("utf8", encoding.lower()) else ""
        raise ImportFileError(path, f"not valid {encoding} (byte {data[exc.start]:#04x} at offset "
                                    f"{exc.start}){hint}") from None
    except LookupError:
        raise ImportFileError(path, f"unknown encoding {encoding!r}") from None


def _check_columns(path: Path, header: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFileError(path, f"missing column(s) {', '.join(missing)}; the header has: "
                                    f"{', '.join(h for h in header if h) or 'nothing'}")


def _jsonl_rows(path: Path, text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowProblem(number, "-", f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        yield number, value if isinstance(value, dict) else RowProblem(number, "-", "a row must be a JSON object")


def _present(row: dict) -> dict:
    """Empty cells count as 'not given', so they never overwrite stored values."""
    return {k: v for k, v in row.items() if k and v not in (None, "")}


def _csv_rows(path: Path, text: str) -> Iterator[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(path, [h.strip() for h in reader.fieldnames or []])
    reader.fieldnames = [h.strip() for h in reader.fieldnames]
    for row in reader:
        if None in row:
            yield reader.line_num, RowProblem(reader.line_num, "-", "more cells than header columns")
            continue
        yield reader.line_num, _present(row)


def _cell(value):
    return value.date() if isinstance(value, dt.datetime) else value


def _xlsx_rows(path: Path, data: bytes) -> Iterator[Row]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a broken file
        raise ImportFileError(path, f"not a readable XLSX workbook ({exc})") from None
    rows = book.worksheets[0].iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
    if not any(header):
        raise ImportFileError(path, "the first sheet is empty")
    _check_columns(path, header)
    for number, values in enumerate(rows, start=2):
        if all(v is None for v in values):
            continue
        yield number, _present({h: _cell(v) for h, v in zip(header, values)})


def read_rows(path: Path, encoding: str = "utf-8-sig") -> Iterator[Row]:
    """Rows of a case file, numbered as a spreadsheet or editor shows them."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImportFileError(path, f"unknown file type {path.suffix!r}; use {', '.join(FORMATS)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(path, exc.strerror or str(exc)) from None
    if not data.strip():
        raise ImportFileError(path, "the file is empty")
    if fmt == "xlsx":
        return _xlsx_rows(path, data)
    text = _decode(path, data, encoding)
    return _jsonl_rows(path, text) if fmt == "jsonl" else _csv_rows(path, text)
