"""Case-to-case similarity: the element rule table, and ranking with the real multilingual-e5-small."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA
from indexer.embeddings import Encoder
from indexer.similarity import CaseSimilarity, CaseText, load_element_table
from indexer.text import segmenter_for

LOAN_GUARANTEED = ("原告诉称，被告向原告借款五万元，出具借条一张，约定月利率2%，由第三人提供连带责任保证，"
                   "原告通过银行转账交付借款。到期后被告未归还，原告多次催要未果，请求判令被告归还借款及利息，"
                   "保证人承担连带清偿责任。")
LOAN_GUARANTEED_TOO = ("原告向被告出借三万元，被告出具借条，约定年利率12%，担保人对借款承担连带保证责任，"
                       "款项以转账方式支付。借款到期后被告仅归还部分款项，保证人亦未履行保证责任。")
DIVORCE = "原告与被告婚后感情不和，长期分居，原告请求判决离婚，婚生子由原告抚养，并依法分割夫妻共同财产。"


def write_rules(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_shipped_table_finds_the_key_facts_of_a_loan():
    table = load_element_table()
    found = table.elements(LOAN_GUARANTEED)
    assert {"借条", "约定利息", "保证担保", "转账交付", "催收"} <= found
    assert not {"现金交付", "夫妻共同债务", "抵押质押"} & found
    assert table.applies_to(LOAN_GUARANTEED) and not table.applies_to(DIVORCE)


def test_elements_are_matched_on_normalised_text(tmp_path):
    # traditional characters and full-width digits, as some case texts have them
    table = load_element_table(write_rules(tmp_path / "rules.tsv", [
        "@domain\t借款", "借条\t借条", "高利息\t月利率\\s*[2-9]%"]))
    assert table.elements("被告出具借條，約定月利率３%") == {"借条", "高利息"}


@pytest.mark.parametrize("line, problem", [
    ("借条 借条", "expected an element name, a tab"),
    ("欠条\t(欠条", "bad regular expression"),
    ("借条\t借据", "'借条' is defined twice"),
    ("@domain\t借贷", "'@domain' is defined twice"),
])
def test_a_bad_rule_line_is_reported_with_its_line_number(tmp_path, line, problem):
    path = write_rules(tmp_path / "rules.tsv", ["# comment", "@domain\t借款", "借条\t借条", line])
    with pytest.raises(ValueError, match=rf"rules\.tsv:4: {problem}"):
        load_element_table(path)


@pytest.mark.parametrize("lines", [["# only a comment"], ["借条\t借条"], ["@domain\t借款"]])
def test_a_table_needs_a_domain_and_an_element(tmp_path, lines):
    with pytest.raises(ValueError, match="needs a @domain line and at least one element"):
        load_element_table(write_rules(tmp_path / "rules.tsv", lines))


def test_element_agreement_counts_shared_presence_and_shared_absence(tmp_path):
    table = load_element_table(write_rules(tmp_path / "rules.tsv", ["@domain\t.", "x\tx", "y\ty", "z\tz", "w\tw"]))
    # agree on x (both) and w (neither), disagree on y and z
    assert table.agreement(frozenset("xy"), frozenset("xz")) == 0.5
    assert table.agreement(frozenset(), frozenset()) == 1.0


@pytest.fixture(scope="module")
def similarity(model_dir, tmp_path_factory):
    encoder = Encoder(model_dir, tmp_path_factory.mktemp("cache") / "embeddings.sqlite3")
    return CaseSimilarity(encoder, segmenter_for(SHARED_DATA / "legal_terms.txt"))


def test_a_loan_case_ranks_the_other_loan_case_above_a_divorce(similarity):
    candidates = [CaseText(DIVORCE), CaseText(LOAN_GUARANTEED_TOO), CaseText(LOAN_GUARANTEED)]
    ranked = similarity.rank_similar(LOAN_GUARANTEED, candidates)
    assert [index for index, _ in ranked] == [2, 1, 0]  # itself first, then the other loan
    assert ranked[0][1] > ranked[1][1] > ranked[2][1]
    # the case itself (or its duplicates) left out; limit cuts the list
    assert [index for index, _ in similarity.rank_similar(LOAN_GUARANTEED, candidates, limit=1, exclude=[2])] == [1]
    assert similarity.rank_similar(LOAN_GUARANTEED, []) == []


def test_a_pool_ranks_like_the_candidates_it_was_built_from(similarity):
    candidates = [CaseText(DIVORCE, "离婚纠纷"), CaseText(LOAN_GUARANTEED_TOO, "民间借贷纠纷")]
    pool = similarity.pool(candidates)
    encoded = similarity.encoder.encoded
    assert similarity.rank_similar(LOAN_GUARANTEED, pool) == similarity.rank_similar(LOAN_GUARANTEED, candidates)
    assert similarity.encoder.encoded == encoded  # every vector came from the cache
    assert similarity.case_similarity(LOAN_GUARANTEED, candidates[1]) == \
        pytest.approx(similarity.rank_similar(LOAN_GUARANTEED, candidates[1:])[0][1])


def test_pools_rank_alike_when_the_memo_of_character_counts_fills_up(similarity, monkeypatch):
    from indexer import similarity as module
    candidates = [CaseText(DIVORCE, "离婚纠纷"), CaseText(LOAN_GUARANTEED_TOO, "民间借贷纠纷")]
    expected = similarity.rank_similar(LOAN_GUARANTEED, candidates)
    monkeypatch.setattr(module, "CHAR_MEMO_SIZE", 2)  # the second text of each pool starts the memo afresh
    fresh = CaseSimilarity(similarity.encoder, similarity.segmenter, similarity.table)
    assert fresh.rank_similar(LOAN_GUARANTEED, candidates[:1] + [CaseText(LOAN_GUARANTEED)])  # memo holds two
    assert fresh.rank_similar(LOAN_GUARANTEED, candidates) == expected


def test_elements_count_only_between_two_cases_of_the_tables_kind(similarity):
    without_elements = CaseSimilarity(similarity.encoder, similarity.segmenter, similarity.table, element_weight=0.0)
    # two loan cases: the element agreement is added; a loan and a divorce: nothing is added
    gain = similarity.case_similarity(LOAN_GUARANTEED, LOAN_GUARANTEED_TOO) - \
        without_elements.case_similarity(LOAN_GUARANTEED, LOAN_GUARANTEED_TOO)
    agreement = similarity.table.agreement(similarity.table.elements(LOAN_GUARANTEED),
                                           similarity.table.elements(LOAN_GUARANTEED_TOO))
    assert gain == pytest.approx(similarity.element_weight * agreement, abs=1e-5) and gain > 0
    assert similarity.case_similarity(LOAN_GUARANTEED, DIVORCE) == \
        pytest.approx(without_elements.case_similarity(LOAN_GUARANTEED, DIVORCE), abs=1e-6)


def test_a_candidates_title_counts_and_a_text_without_words_is_scored(similarity):
    untitled = similarity.case_similarity(LOAN_GUARANTEED, CaseText(LOAN_GUARANTEED_TOO))
    titled = similarity.case_similarity(LOAN_GUARANTEED, CaseText(LOAN_GUARANTEED_TOO, "民间借贷纠纷"))
    assert titled != pytest.approx(untitled)
    assert np.isfinite(similarity.case_similarity(LOAN_GUARANTEED, "。。。"))


def test_stored_passage_means_rank_as_encoded_ones_and_a_case_not_embedded_is_still_scored(similarity):
    candidates = [CaseText(DIVORCE, "离婚纠纷"), CaseText(LOAN_GUARANTEED_TOO, "民间借贷纠纷")]
    means = similarity.passage_means(candidates)
    assert np.allclose(np.linalg.norm(means, axis=1), 1.0)
    assert similarity.rank_similar(LOAN_GUARANTEED, similarity.pool(candidates, means)) == \
        similarity.rank_similar(LOAN_GUARANTEED, candidates)
    not_embedded = similarity.pool(candidates, np.vstack([means[0], np.zeros(similarity.encoder.dim)]))
    ranked = dict(similarity.rank_similar(LOAN_GUARANTEED, not_embedded))
    assert ranked[1] < dict(similarity.rank_similar(LOAN_GUARANTEED, candidates))[1] and np.isfinite(ranked[1])


def test_shared_key_facts_are_those_both_loan_cases_mention(similarity):
    shared = similarity.shared_elements(LOAN_GUARANTEED, LOAN_GUARANTEED_TOO)
    assert {"借条", "约定利息", "保证担保", "转账交付"} <= set(shared)
    assert set(shared) == similarity.table.elements(LOAN_GUARANTEED) & similarity.table.elements(LOAN_GUARANTEED_TOO)
    assert similarity.shared_elements(LOAN_GUARANTEED, DIVORCE) == ()


def test_the_same_cause_counts_only_where_the_query_case_has_one(similarity):
    candidates = [CaseText(DIVORCE, "离婚纠纷", "离婚纠纷"), CaseText(LOAN_GUARANTEED_TOO, "民间借贷纠纷", "民间借贷纠纷")]
    pool = similarity.pool(candidates)
    untold = similarity.scores(LOAN_GUARANTEED, pool)
    told = similarity.scores(CaseText(LOAN_GUARANTEED, cause="离婚纠纷"), pool)
    assert told[0] - untold[0] == pytest.approx(similarity.cause_weight) and told[1] == pytest.approx(untold[1])


def test_term_weights_are_sklearns_tfidf_on_demo_texts():
    # sklearn's TfidfVectorizer (sublinear TF, smoothed IDF, unit rows) fitted on the candidates' texts, as
    # the reranker used it: titles' terms count only where some text has them, an empty text stays zero
    import json

    from sklearn.feature_extraction.text import TfidfVectorizer

    from indexer.similarity import TITLE_REPEAT, TermCounts, TermWeights
    from indexer.text import normalise
    segmenter = segmenter_for(SHARED_DATA / "legal_terms.txt")
    with open(SHARED_DATA / "cases_demo.jsonl", encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(120), lines)]
    texts = [segmenter.terms(normalise(row["text"])) for row in rows] + [[], ["潮", "no", "潮"]]
    titled = [terms + segmenter.terms(normalise(row["title"] + " 仅见于标题")) * TITLE_REPEAT
              for terms, row in zip(texts, rows)] + [[], ["no"]]
    query = segmenter.terms(normalise(LOAN_GUARANTEED)) + ["潮"]
    reference = TfidfVectorizer(analyzer=lambda terms: terms, sublinear_tf=True).fit(texts)
    expected = (reference.transform(titled) @ reference.transform([query]).T).toarray()[:, 0]
    weights = TermWeights.fit([TermCounts.of(terms) for terms in texts])
    found = (weights.transform([TermCounts.of(terms) for terms in titled])
             @ weights.transform([TermCounts.of(query)]).T).toarray()[:, 0]
    assert len(weights.vocabulary) == len(reference.vocabulary_)  # '潮' and 'no' are two terms
    assert np.allclose(found, expected, rtol=0, atol=1e-12) and expected[:-2].max() > 0.1
    assert found[-2] == 0 and found[-1] == 0  # "no" is not "潮" (their Python str hashes are equal)
    nothing = TermWeights.fit([TermCounts.of([])])  # candidates without a term: no vocabulary, zero rows
    assert nothing.transform([TermCounts.of(["借款"]), TermCounts.of([])]).shape == (2, 0)
    assert weights.transform([]).shape == (0, len(weights.vocabulary))
