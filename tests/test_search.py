"""Keyword search over the real demo corpus: relevance, filters and facets against the database."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased, selectinload

from casekb.cli import main
from conftest import SHARED_DATA, case_row, write_jsonl
from corpus.importer import import_file
from indexer.documents import document_for
from indexer.masking import masked_name
from indexer.query import Filters, SearchQuery
from kb.models import DisputeCase, ExemplarMark, Organisation, Party


def search(backend, text="", **kwargs):
    return backend.search(SearchQuery(text=text, **kwargs))


def db_counts(database, column, *where) -> dict[str, int]:
    """Counts of the records search shows: all but the later copies of a text already stored."""
    earlier = aliased(DisputeCase)
    shown = ~exists().where(earlier.fingerprint == DisputeCase.fingerprint, earlier.id < DisputeCase.id)
    with database.sessions() as session:
        rows = session.execute(select(column, func.count()).where(shown, *where).group_by(column))
        return {value: n for value, n in rows if value}


def facet(result, name) -> dict[str, int]:
    return {bucket.value: bucket.count for bucket in result.facets[name]}


@pytest.mark.parametrize("query", ["民间借贷", "离婚", "继承", "买卖合同"])
def test_a_cause_term_ranks_cases_of_that_cause_first(demo, query):
    _, _, backend = demo
    hits = search(backend, query, size=10).hits
    assert len(hits) == 10 and all(query in hit.cause for hit in hits)


@pytest.mark.parametrize("query, cause_word, legal_term", [
    ("借钱不还 打了欠条", "借", "借款"), ("老板拖欠工资", "劳动", "劳动报酬"), ("楼上漏水十年没人管", "相邻", "相邻"),
    ("包工头不给工钱", "劳", "劳动报酬"), ("被老公家暴", "离婚", "家庭暴力"), ("楼上掉东西砸坏了车", "物件损害", "物件"),
    ("网上买到假货", "产品", "产品质量"), ("噪音扰民", "相邻", "相邻"), ("在超市摔倒", "安全保障", "保障"),
    ("网贷逾期", "借款", "借款"), ("卖房反悔", "买卖", "房屋买卖"), ("儿女不管老人", "赡养", "赡养"),
    ("保险公司不赔", "保险", "保险人"), ("买的车有质量问题", "产品", "产品质量"), ("树倒了砸到人", "物件损害", "物件")])
def test_colloquial_queries_find_cases_in_the_case_files_words(demo, query, cause_word, legal_term):
    _, _, backend = demo
    hits = search(backend, query, mode="keyword", size=5).hits
    assert len(hits) == 5 and all(cause_word in hit.cause for hit in hits), [hit.cause for hit in hits]
    assert legal_term in hits[0].matched_terms


def test_traditional_characters_find_simplified_cases(demo):
    _, _, backend = demo
    traditional = search(backend, "離婚 撫養費", size=20)
    simplified = search(backend, "离婚 抚养费", size=20)
    assert traditional.total > 0
    assert [h.case_id for h in traditional.hits] == [h.case_id for h in simplified.hits]
    assert "离婚" in traditional.hits[0].matched_terms


def test_facets_over_everything_agree_with_database_counts(demo):
    _, database, backend = demo
    result = search(backend)
    assert result.total == sum(db_counts(database, DisputeCase.category).values())
    assert facet(result, "category") == db_counts(database, DisputeCase.category)
    assert facet(result, "outcome") == db_counts(database, DisputeCase.outcome)
    assert facet(result, "region") == db_counts(database, DisputeCase.region)


def test_filters_narrow_results_and_facets_drill_sideways(demo):
    _, database, backend = demo
    result = search(backend, filters=Filters(categories=("合同",)))
    assert result.total == db_counts(database, DisputeCase.category)["合同"]
    causes, expected = facet(result, "cause"), db_counts(database, DisputeCase.cause, DisputeCase.category == "合同")
    # the facet lists the most frequent values, each with its exact count
    assert causes == {cause: expected[cause] for cause in causes}
    assert min(causes.values()) >= max([n for c, n in expected.items() if c not in causes], default=0)
    # the category facet ignores its own filter, so the user can switch category
    assert facet(result, "category") == db_counts(database, DisputeCase.category)


def test_facet_counts_add_up_to_the_total_of_a_text_query(demo):
    _, _, backend = demo
    result = search(backend, "借款 利息")
    assert 0 < result.total == sum(facet(result, "category").values())


def test_region_outcome_date_and_exemplar_filters_match_the_database(demo):
    _, database, backend = demo
    region = max(db_counts(database, DisputeCase.region).items(), key=lambda kv: kv[1])[0]
    start, end = dt.date(2025, 1, 1), dt.date(2025, 6, 30)
    filters = Filters(regions=(region,), outcomes=("成功",), received_from=start, received_to=end)
    with database.sessions() as session:
        expected = session.scalar(select(func.count()).select_from(DisputeCase).where(
            DisputeCase.region == region, DisputeCase.outcome == "成功",
            DisputeCase.received_on.between(start, end)))
        exemplars = session.scalar(select(func.count()).select_from(ExemplarMark))
    assert expected > 0
    assert search(backend, filters=filters).total == expected
    assert search(backend, filters=Filters(exemplar_only=True)).total == exemplars > 0


def test_organisation_filter_covers_the_whole_subtree(demo):
    _, database, backend = demo
    with database.sessions() as session:
        county = session.scalar(select(Organisation).where(Organisation.level == "county").order_by(Organisation.id))
        expected = session.scalar(select(func.count()).select_from(DisputeCase).join(Organisation).where(
            Organisation.path.like(f"{county.path}%")))
    assert expected > 0
    assert search(backend, filters=Filters(organisation_id=county.id)).total == expected


def test_pagination_and_date_sort(demo):
    _, _, backend = demo
    first, second = search(backend, "借款", size=10), search(backend, "借款", size=10, page=2)
    both = search(backend, "借款", size=20)
    assert [h.case_id for h in first.hits + second.hits] == [h.case_id for h in both.hits]
    dated = search(backend, "借款", sort="date_desc", size=50).hits
    days = [h.received_on for h in dated if h.received_on]
    assert days == sorted(days, reverse=True) and len(days) > 10


def test_quoted_phrase_matches_exact_sequences_only(demo):
    _, _, backend = demo
    phrase = search(backend, '"借款合同"', size=100)
    loose = search(backend, "借款合同", size=100)
    assert 0 < phrase.total < loose.total
    for hit in phrase.hits:
        assert "<mark>借款合同</mark>" in hit.snippet


def test_no_results_come_with_suggestions(demo):
    _, _, backend = demo
    result = search(backend, "工伤", filters=Filters(categories=("物业",)))
    assert result.total == 0 and result.hits == []
    suggestion = next(s for s in result.suggestions if s.drop_filter == "categories")
    assert suggestion.total == search(backend, "工伤").total > 0


def test_a_query_of_stopwords_only_browses_and_says_so(demo):
    _, _, backend = demo
    everything = search(backend, size=5)
    for mode in ("keyword", "hybrid"):
        nothing_to_search = search(backend, "的。", mode=mode, size=5)
        assert nothing_to_search.no_search_words and nothing_to_search.query_terms == ()
        assert nothing_to_search.total == everything.total > 0
        assert [h.case_id for h in nothing_to_search.hits] == [h.case_id for h in everything.hits]
    assert not everything.no_search_words  # a blank query is a browse, asked for
    assert not search(backend, "的借款").no_search_words


def test_no_party_name_id_or_phone_reaches_the_index(demo):
    _, database, backend = demo
    with database.sessions() as session:
        cases = session.scalars(select(DisputeCase).options(
            selectinload(DisputeCase.parties), selectinload(DisputeCase.exemplar),
            selectinload(DisputeCase.organisation)).where(DisputeCase.parties.any(Party.kind == "person")))
        checked = 0
        for case in cases:
            doc = document_for(case)
            for party in case.parties:
                for secret in (party.id_number, party.phone):
                    if secret:
                        assert secret not in doc.text
                if party.kind == "person" and masked_name(party.name) != party.name:
                    assert party.name not in doc.text and party.name not in doc.title
            checked += 1
    assert checked > 100


def test_personal_data_in_a_case_text_never_appears_in_results(db, indexer, backend, settings, tmp_path):
    text = ("申请人王建国（身份证号330302198805061234，手机13957712345）诉称，被申请人刘晓红向其借款"
            "五万元，约定三个月归还，逾期未还。王建国多次催讨，刘晓红电话0577-86661234无人接听。")
    import_file(db, settings, write_jsonl(tmp_path / "p.jsonl", [case_row(1, text=text, title="王建国借款纠纷")]))
    with db.transaction() as session:
        case = session.scalar(select(DisputeCase))
        session.add_all([Party(case_id=case.id, role="申请人", name="王建国"),
                         Party(case_id=case.id, role="被申请人", name="刘晓红")])
    indexer.drain()
    for query in ("借款", "王建国", "330302198805061234", "13957712345", "催讨 电话"):
        for hit in search(backend, query).hits:
            shown = hit.title + hit.snippet
            for secret in ("王建国", "刘晓红", "330302198805061234", "13957712345", "86661234"):
                assert secret not in shown
            assert "王某" in shown or query == "借款"
    assert search(backend, "330302198805061234").total == 0
    assert search(backend, "借款").hits[0].title == "王某借款纠纷"


def test_demo_corpus_categories_match_the_data_readme(demo):
    _, database, backend = demo
    with database.sessions() as session:
        counts = dict(session.execute(select(DisputeCase.category, func.count()).group_by(DisputeCase.category)).all())
    assert counts["婚姻家庭"] == 550 and counts["合同"] == 504 and sum(counts.values()) == 1694
    # One CJRC case is in the file twice (once with HTML character references): search shows it once.
    assert search(backend).total == 1693


def test_cli_search_and_stats_take_the_same_filters(demo_database, demo_index, monkeypatch):
    settings, database = demo_database
    backend = demo_index("embedded")
    for name, value in (("CASEKB_DATABASE_URL", settings.database_url), ("CASEKB_SHARED_DATA", str(SHARED_DATA))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CASEKB_BACKEND", raising=False)
    year = ["--category", "合同", "--from", "2025-01-01", "--to", "2025-12-31"]
    found = CliRunner().invoke(main, ["--home", str(settings.home), "search", "借款", *year,
                                      "--mode", "keyword", "--size", "50", "--json"])
    assert found.exit_code == 0, found.output
    body = json.loads(found.output)
    filters = Filters(categories=("合同",), received_from=dt.date(2025, 1, 1), received_to=dt.date(2025, 12, 31))
    expected = search(backend, "借款", filters=filters, size=50)
    assert body["total"] == expected.total > 0
    assert [hit["case_id"] for hit in body["hits"]] == [hit.case_id for hit in expected.hits]
    browsed = CliRunner().invoke(main, ["--home", str(settings.home), "search", "的", "--mode", "keyword"])
    assert browsed.exit_code == 0 and "no word to search by" in browsed.output, browsed.output
    counted = CliRunner().invoke(main, ["--home", str(settings.home), "stats", *year, "--json"])
    assert counted.exit_code == 0, counted.output
    with database.sessions() as session:
        received = session.scalar(select(func.count()).select_from(DisputeCase).where(
            DisputeCase.category == "合同", DisputeCase.received_on.between(dt.date(2025, 1, 1), dt.date(2025, 12, 31))))
    assert json.loads(counted.stdout)[0]["received"] == received
