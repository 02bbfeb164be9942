"""Importing case files: formats, precise errors, atomicity, idempotence."""
from __future__ import annotations

import csv
import json

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from casekb.cli import main
import corpus.importer
from conftest import case_row, write_jsonl
from corpus.importer import ImportRejected, import_file
from corpus.readers import ImportFileError
from kb.models import DisputeCase, IndexTask


def count(db, model) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def snapshot(db) -> list[tuple]:
    with db.sessions() as session:
        return [(c.external_id, c.title, c.facts, c.version) for c in
                session.scalars(select(DisputeCase).order_by(DisputeCase.external_id))]


def test_jsonl_in_demo_format_imports_as_it_is(db, settings, tmp_path):
    rows = [json.loads(line) for line in settings.demo_cases.read_text(encoding="utf-8").splitlines()[:20]]
    report = import_file(db, settings, write_jsonl(tmp_path / "demo.jsonl", rows))
    assert (report.rows, report.created, report.rejected) == (20, 20, [])
    with db.sessions() as session:
        case = session.scalar(select(DisputeCase).where(DisputeCase.external_id == rows[0]["id"]))
        assert (case.facts, case.cause, case.category, case.dataset) == (
            rows[0]["text"], rows[0]["cause"], rows[0]["category"], rows[0]["source"])
        assert case.elements == rows[0]["elements"]


def test_csv_and_xlsx_with_mediation_metadata(db, settings, tmp_path):
    header = ["id", "title", "category", "cause", "text", "received_on", "closed_on", "outcome",
              "agreed_amount", "intake", "elements"]
    values = [["c-1", "借款纠纷", "合同", "民间借贷纠纷", "借款五万元未还", "2024-03-01", "2024-03-20", "成功",
               "50000", "申请", "借款;未还"]]
    csv_path = tmp_path / "cases.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows([header, *values])
    xlsx_path = tmp_path / "cases.xlsx"
    book = openpyxl.Workbook()
    book.active.append(header)
    book.active.append(["x-1", *values[0][1:]])
    book.save(xlsx_path)

    assert import_file(db, settings, csv_path).created == 1
    assert import_file(db, settings, xlsx_path).created == 1
    with db.sessions() as session:
        for external_id in ("c-1", "x-1"):
            case = session.scalar(select(DisputeCase).where(DisputeCase.external_id == external_id))
            assert case.outcome == "成功" and case.intake == "申请调解"
            assert str(case.received_on) == "2024-03-01" and float(case.agreed_amount) == 50000
            assert case.elements == ["借款", "未还"]


def test_a_bad_row_leaves_the_database_unchanged(db, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "first.jsonl", [case_row(1), case_row(2)]))
    before, tasks_before = snapshot(db), count(db, IndexTask)
    bad = [case_row(1, title="改过的标题"), case_row(3), case_row(4, category="不存在的类别"), case_row(5, text="")]
    with pytest.raises(ImportRejected) as info:
        import_file(db, settings, write_jsonl(tmp_path / "bad.jsonl", bad))
    errors = [(e.row, e.field) for e in info.value.report.rejected]
    assert errors == [(3, "category"), (4, "text")]
    assert "不存在的类别" in info.value.report.rejected[0].reason
    assert snapshot(db) == before and count(db, IndexTask) == tasks_before


def test_skip_invalid_imports_valid_rows_and_writes_rejects_beside_input(db, settings, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [case_row(1), case_row(2, outcome="和解"), case_row(3)])
    report = import_file(db, settings, path, skip_invalid=True)
    assert report.created == 2
    assert report.rejects_file == tmp_path / "mixed.jsonl.rejects.jsonl"
    rejects = [json.loads(line) for line in report.rejects_file.read_text(encoding="utf-8").splitlines()]
    assert [(r["row"], r["field"]) for r in rejects] == [(2, "outcome")]
    assert rejects[0]["data"]["id"] == "t-2"


def test_reimporting_the_same_file_changes_nothing(db, settings, tmp_path):
    path = write_jsonl(tmp_path / "cases.jsonl", [case_row(i) for i in range(5)])
    import_file(db, settings, path)
    before, tasks_before = snapshot(db), count(db, IndexTask)
    report = import_file(db, settings, path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5)
    assert snapshot(db) == before and count(db, IndexTask) == tasks_before


def test_changed_row_updates_the_case_and_queues_it(db, settings, tmp_path):
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(1)]))
    tasks_before = count(db, IndexTask)
    report = import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", [case_row(1, title="新标题")]))
    assert report.updated == 1
    assert snapshot(db)[0][1:] == ("新标题", case_row(1)["text"], 2)
    assert count(db, IndexTask) == tasks_before + 1


def test_a_file_of_several_chunks_upserts_every_row_by_id(db, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.importer, "CHUNK_ROWS", 7)
    first = import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", [case_row(i) for i in range(23)]))
    assert (first.created, count(db, DisputeCase), count(db, IndexTask)) == (23, 23, 23)
    changed = [case_row(i, title="改过的标题") if i in (3, 20) else case_row(i) for i in range(23)]
    second = import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", changed + [case_row(23)]))
    assert (second.created, second.updated, second.unchanged) == (1, 2, 21)
    assert [row[0] for row in snapshot(db) if row[1] == "改过的标题"] == ["t-20", "t-3"]
    assert count(db, IndexTask) == 23 + 3


def test_gbk_file_gets_a_clear_error_and_imports_with_its_encoding(db, settings, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("id,title,category,text\ng-1,借款纠纷,合同,被告借款五万元一直未还钱\n".encode("gbk"))
    with pytest.raises(ImportFileError) as info:
        import_file(db, settings, path)
    assert "not valid utf-8-sig" in str(info.value) and "--encoding" in str(info.value)
    assert count(db, DisputeCase) == 0
    assert import_file(db, settings, path, encoding="gbk").created == 1


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"  \n\n", "empty"),
    ("id,title,text\n1,标题,正文\n".encode(), "missing column(s) category"),
])
def test_file_level_errors(db, settings, tmp_path, content, reason):
    path = tmp_path / "cases.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        import_file(db, settings, path)


def test_oversize_text_duplicate_ids_and_broken_json_are_reported_by_row(db, settings, tmp_path):
    path = tmp_path / "cases.jsonl"
    lines = [json.dumps(case_row(1), ensure_ascii=False),
             json.dumps(case_row(2, text="长" * (settings.max_text_chars + 1)), ensure_ascii=False),
             json.dumps(case_row(1), ensure_ascii=False),
             "{not json",
             json.dumps(case_row(5, title="x" * 501), ensure_ascii=False)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as info:
        import_file(db, settings, path)
    rejected = info.value.report.rejected
    assert [(e.row, e.field) for e in rejected] == [(2, "text"), (3, "id"), (4, "-"), (5, "title")]
    assert "first seen at row 1" in rejected[1].reason
    assert str(rejected[0]).startswith(f"{path}, row 2, field text:")


def test_unknown_file_type(db, settings, tmp_path):
    path = tmp_path / "cases.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ImportFileError, match="unknown file type"):
        import_file(db, settings, path)


def test_cli_import_reports_every_rejected_row_and_fails(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEKB_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CASEKB_SHARED_DATA", str(settings.shared_data))
    path = write_jsonl(tmp_path / "cli.jsonl", [case_row(1), case_row(2, category="?"), case_row(3, outcome="x")])
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(settings.home), "import", str(path)])
    assert result.exit_code == 1
    assert "row 2, field category" in result.output and "row 3, field outcome" in result.output
    result = runner.invoke(main, ["--home", str(settings.home), "import", "--skip-invalid", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output and "2 rejected" in result.output


def test_html_entities_in_texts_are_decoded(db, settings, tmp_path):
    row = case_row(1, title="&ldquo;雅阁&rdquo;车损纠纷", text="保险单&ldquo;特别约定&rdquo;载明：三&times;四")
    import_file(db, settings, write_jsonl(tmp_path / "entities.jsonl", [row]))
    assert snapshot(db)[0][1:3] == ("“雅阁”车损纠纷", "保险单“特别约定”载明：三×四")
