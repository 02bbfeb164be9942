"""The pure text functions: normalisation, query parsing, masking, snippets."""
from __future__ import annotations

import json
import re

import jieba
import pytest

from casekb.config import SEGMENTERS, load_settings
from conftest import SHARED_DATA
from indexer.api import open_backend
from indexer.expansions import load_table
from indexer.masking import mask_personal_data
from indexer.snippets import matched_terms, snippet
from indexer.text import (ENGINES, PROJECT_DICTIONARY, char_tokens, is_term, joined_char_tokens, normalise,
                          parse_query, segmenter_for)

LEGAL_TERMS = SHARED_DATA / "legal_terms.txt"


@pytest.fixture(scope="module", params=["rjieba", "jieba"])
def segmenter(request):
    return segmenter_for(LEGAL_TERMS, request.param)


@pytest.fixture(scope="module")
def jieba_search_terms():
    """The reference: jieba itself, given the dictionaries by its own load_userdict, search mode."""
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for path in (LEGAL_TERMS, PROJECT_DICTIONARY):
        tokenizer.load_userdict(str(path))
    return lambda text: [word for word in tokenizer.cut_for_search(text) if is_term(word)]


def test_normalise_traditional_and_full_width_keeps_length():
    text = "離婚後撫養費ＡＢＣ１２３，　借款"
    assert normalise(text) == "离婚后抚养费abc123, 借款"
    assert len(normalise(text)) == len(text)


def test_legal_terms_stay_whole(segmenter):
    assert "民间借贷纠纷" in segmenter.terms("原告提起民间借贷纠纷诉讼")
    assert "不当得利" in segmenter.terms("被告构成不当得利")


def test_query_and_document_share_one_pipeline(segmenter):
    traditional = parse_query("離婚 撫養費", segmenter)
    simplified = parse_query("离婚 抚养费", segmenter)
    assert traditional.terms == simplified.terms
    assert set(traditional.terms) <= set(segmenter.terms(normalise("双方离婚后抚养费由原告承担")))


def test_quoted_parts_become_phrases(segmenter):
    parsed = parse_query('“楼上漏水” 十年 "借款"', segmenter)
    assert parsed.phrases == ("楼上漏水", "借款")
    assert "十年" in parsed.terms and "楼上" not in parsed.terms
    assert parse_query("的 了 ，。", segmenter).is_empty


def test_calendar_units_are_no_terms(segmenter):
    assert segmenter.terms("2015年3月20日借款，说好三个月还") == ["2015", "3", "20", "借款", "说好", "三个"]
    assert {"每月", "月息", "日期"} <= set(segmenter.terms("每月支付月息，日期另定"))
    assert parse_query("年 月 日", segmenter).is_empty


def test_auxiliaries_and_directions_are_no_terms(segmenter):
    terms = set(segmenter.terms("在工地上摔伤了，对方要赔，可以去法院"))
    assert {"工地", "摔伤", "法院"} <= terms and not terms & {"上", "要", "可以", "去"}
    assert {"上诉", "要求", "到期"} <= set(segmenter.terms("要求上诉，到期未还"))


def test_colloquial_wording_adds_the_case_files_terms(segmenter):
    parsed = parse_query("借钱不还 打了欠条", segmenter)
    assert {"借钱", "欠条"} <= set(parsed.terms)
    assert {"借款", "借贷", "还款", "借条"} <= set(parsed.expansions) <= set(parsed.terms)
    own = parsed.terms[:len(parsed.terms) - len(parsed.expansions)]
    assert parsed.terms[len(own):] == parsed.expansions and not set(own) & set(parsed.expansions)
    assert "借款" in parsed.highlight_terms()
    for lent in ("去年借给邻居五万块钱", "朋友向我借了五万块"):  # lending said in everyday words
        assert {"借款", "借贷"} <= set(parse_query(lent, segmenter).expansion_words)
    assert parse_query('"借钱不还"', segmenter).expansions == ()  # quoted: exactly these characters
    case_text = "原告向被告借钱五万元，被告出具欠条，约定一年内还清，到期后被告一直不还，原告多次催讨未果，" * 2
    assert parse_query(case_text, segmenter).expansions == ()  # a pasted case text already says it


def test_the_user_is_told_the_legal_wordings_searched_not_their_pieces(segmenter):
    parsed = parse_query("老板一直拖欠工资", segmenter)
    assert parsed.expansion_words == ("劳动报酬", "用人单位", "雇主")
    assert {"劳动报酬", "报酬", "用人单位"} <= set(parsed.expansions)  # searched as documents are indexed
    assert set(parsed.expansions) - set(parsed.expansion_words)  # pieces like 劳动报 are searched, not shown
    assert parse_query("老板 用人单位 雇主 劳动报酬", segmenter).expansion_words == ()  # said already


def test_expansion_table_is_written_as_normalised_searchable_text(segmenter):
    table = load_table()
    assert len(table) > 30
    for wording, terms in table:
        assert normalise(wording) == wording and all(normalise(term) == term for term in terms), wording
        assert all(segmenter.terms(term) for term in terms), wording


def test_a_malformed_expansion_line_names_file_and_line(tmp_path):
    bad = tmp_path / "table.tsv"
    bad.write_text("# comment\n借钱\t借款\n欠钱\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"table.tsv:3: expected"):
        load_table(bad)


def test_char_tokens_split_chinese_by_character_and_keep_ascii_words():
    assert char_tokens("借款5万元abc") == ["借", "款", "5", "万", "元", "abc"]
    assert joined_char_tokens("\ud800借a1").split() == char_tokens("\ud800借a1") == ["借", "a1"]


# Mixed scripts, widths, separators and characters regexes and whitespace treat differently.
ODD_TEXTS = ["", "借款5万元abc", "ab12 借款a，。x_y-z", "Ａ１２３ＡＢ離婚後\u3000撫養費", "\x00a\x00b\u200b c\u00a0d",
             "①㎡℃ é α Ω ٣ 12.5% 7-10 c++ #tag", "𠀀𠀁丽\U0002F800 漏水", "\n\t 只有 空白 \r\n"]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_joined_forms_split_into_the_same_tokens(segmenter, text):
    assert joined_char_tokens(text).split() == char_tokens(text)
    folded = normalise(text)
    assert segmenter.joined_terms(folded).split() == segmenter.terms(folded)


def test_normalise_folds_like_a_translation_table():
    table = {0x3000: 0x20, **{code: ord(chr(code - 0xFEE0).lower()) for code in range(0xFF01, 0xFF5F)},
             **{code: code + 32 for code in range(ord("A"), ord("Z") + 1)}}
    every_wide_char = "".join(map(chr, [0x3000, *range(0xFF00, 0xFF70), *range(0x40, 0x60)]))
    assert normalise(every_wide_char) == every_wide_char.translate(table)


@pytest.mark.parametrize("secret", [
    "330302199001011234", "33030219900101123X", "330302900101123",
    "13812345678", "138-1234-5678", "+86 13812345678", "0577-88881234", "6222021234567890128",
])
def test_masking_removes_ids_phones_and_cards(secret):
    masked = mask_personal_data(f"联系方式：{secret}。")
    assert re.sub(r"\D", "", secret)[-6:] not in masked


def test_masking_finds_what_the_full_patterns_find():
    from indexer.masking import CARD_CANDIDATE, ID_CARD, LANDLINE, MOBILE
    texts = ["身份证330302199001011234，电话(0577)88881234、（0577）8888123，手机+86-138 1234 5678，"
             "卡号6222-0212-3456-7890128", "x13812345678", "电话0577-88881234。"]
    for text in texts:
        assert mask_personal_data(text) != text
        assert not any(pattern.search(mask_personal_data(text)) for pattern in (ID_CARD, MOBILE, LANDLINE))
    assert "7890128" not in mask_personal_data(texts[0])
    assert CARD_CANDIDATE.search(texts[0])


def test_masking_keeps_amounts_dates_and_non_luhn_numbers():
    text = "2019年3月借款50000元，合同编号20190101123456，账号1234567812345678"
    assert mask_personal_data(text) == text


def test_masking_party_names_longest_first():
    masked = mask_personal_data("原告张三丰与被告张三、李四发生纠纷", ["张三", "张三丰", "李四"])
    assert masked == "原告张某与被告张某、李某发生纠纷"


def test_snippet_marks_the_original_characters_without_stray_spaces():
    text = "双方於二〇一五年協議離婚，撫養費每月八百元。" * 20
    html = snippet(text, ("离婚", "抚养费"), width=30)
    assert "<mark>離婚</mark>" in html and "<mark>撫養費</mark>" in html
    plain = html.replace("<mark>", "").replace("</mark>", "").strip("…")
    assert plain in text and " " not in plain


def test_snippet_escapes_html_and_picks_the_densest_window():
    text = "无关内容。" * 50 + "<b>借款</b>到期后借款人未还借款" + "无关内容。" * 50
    html = snippet(text, ("借款",), width=40)
    assert html.count("<mark>") == 3 and "&lt;b&gt;" in html


def test_matched_terms_look_at_title_cause_and_text():
    assert matched_terms(("民间借贷", "离婚"), "民间借贷纠纷", "", "借款五万元") == ("民间借贷",)


def test_matched_terms_leave_out_pieces_seen_only_inside_a_longer_match():
    needles = ("交通事故", "机动车", "事故", "交通", "动车", "通事")  # 交通事故 and its search-mode pieces
    assert matched_terms(needles, "机动车交通事故责任纠纷", "", "驾驶机动车发生交通事故") == ("交通事故", "机动车")
    # a piece that also stands on its own somewhere is a match of its own
    assert matched_terms(needles, "", "", "交通事故发生后，事故车辆被拖走") == ("交通事故", "事故")
    assert matched_terms(("事故", "交通事故"), "", "", "交通事故") == ("交通事故",)  # whatever the needles' order
    assert snippet("交通事故", ("事故", "交通事故")) == "<mark>交通事故</mark>"  # and the snippet marks the same


def _demo_texts() -> list[str]:
    """Every demo case's title, text and cause, normalised and masked as the indexer does."""
    rows = [json.loads(line) for line in (SHARED_DATA / "cases_demo.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1694
    return [text for row in rows for text in (
        normalise(mask_personal_data(row["title"])) + "\n" + normalise(mask_personal_data(row["text"])),
        normalise(row.get("cause") or ""))]


def test_rjieba_and_jieba_give_jiebas_own_search_words_on_the_demo_corpus(jieba_search_terms):
    rust, python = segmenter_for(LEGAL_TERMS, "rjieba"), segmenter_for(LEGAL_TERMS, "jieba")
    for text in _demo_texts():
        expected = jieba_search_terms(text)
        assert rust.terms(text) == expected, text[:80]
        assert python.terms(text) == expected, text[:80]


def test_segmentation_never_crosses_a_line_break(segmenter):
    # analysed_fields relies on it to segment a title once for the title and the whole-text fields.
    for text in _demo_texts()[:400:2]:
        title, body = text.split("\n", 1)
        assert segmenter.terms(text) == segmenter.terms(title) + segmenter.terms(body)


@pytest.mark.parametrize("text", [
    "7-10天内还清", "网址www.163.com，见music.163.com", "利率3.5%，50%的份额", "c#与c++工程师", "4s店维修",
    "并于2016年起诉", "㐀𠀀鿖字é①ⅲ混排", "a.5.6号楼a1-305室", "2019年3月5日\r\n借款\t五万元",
])
def test_numbers_latin_and_rare_characters_split_as_jieba_splits_them(segmenter, jieba_search_terms, text):
    assert segmenter.terms(normalise(text)) == jieba_search_terms(normalise(text))


@pytest.mark.parametrize("term", ["担保物权纠纷", "婚约财产纠纷", "调解协议", "司法确认"])
def test_dictionary_words_stay_whole_in_both_engines(segmenter, term):
    # jieba's own dictionary splits these; only the loaded legal and mediation dictionaries keep them.
    assert term in segmenter.terms(f"双方就{term}达成一致")


def test_the_configured_segmenter_serves_documents_and_queries(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEKB_SEGMENTER", "jieba")
    settings = load_settings(home=tmp_path, shared_data=SHARED_DATA)
    assert settings.segmenter == "jieba"
    assert open_backend(settings).segmenter.engine == "jieba"
    assert open_backend(load_settings(home=tmp_path, shared_data=SHARED_DATA, segmenter="rjieba")).segmenter.engine \
        == "rjieba"
    assert set(SEGMENTERS) == set(ENGINES)
    monkeypatch.setenv("CASEKB_SEGMENTER", "hanlp")
    with pytest.raises(ValueError, match="CASEKB_SEGMENTER"):
        load_settings(home=tmp_path, shared_data=SHARED_DATA)
