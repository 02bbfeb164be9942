"""The library's cause model: likely causes of a case description, learnt from the indexed cases."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import SHARED_DATA, short_demo_cases, write_jsonl
from casekb.evaluation import LOO_SOURCE, read_jsonl
from corpus.importer import import_file
from indexer.cause_model import (CHAR_WEIGHT, MIN_LIKELIHOOD, NAME_MEANING_CALIBRATED_TEMPERATURE, CauseModel,
                                 CauseScores, cause_names, cause_text, first_of_each)
from indexer.embeddings import Encoder
from indexer.similarity import whole_text_vectors
from indexer.text import segmenter_for

CAUSES = {"民间借贷纠纷": 15, "离婚纠纷": 15, "劳动争议": 15}
WAGES_DESCRIPTION = "公司拖欠我三个月工资，还不给交社保，我想申请劳动仲裁。"
LOAN_DESCRIPTION = "他向我借钱三万块，打了欠条，说好半年还，现在一分钱都不还，电话也不接。"
DIVORCE_DESCRIPTION = "我和丈夫感情不和，分居两年了，想离婚，孩子想跟我，房子怎么分也谈不拢。"


@pytest.fixture(scope="module")
def segmenter():
    return segmenter_for(SHARED_DATA / "legal_terms.txt")


def first(scores: CauseScores) -> str:
    """The cause with the highest score."""
    return scores.causes[int(np.argmax(scores.decision))]


def named_right(model: CauseModel, questions) -> int:
    """How many of the (cause_text, cause) questions the model gives their cause the highest score."""
    return sum(first(model.scores(question)) == cause for question, cause in questions)


def test_a_model_learnt_from_demo_cases_names_the_cause_of_a_colloquial_description(segmenter):
    rows = short_demo_cases(CAUSES, 1500)
    model = CauseModel.train([cause_text(segmenter, row["text"]) for row in rows], [row["cause"] for row in rows])
    for text, cause in ((LOAN_DESCRIPTION, "民间借贷纠纷"), (DIVORCE_DESCRIPTION, "离婚纠纷"),
                        (WAGES_DESCRIPTION, "劳动争议")):
        likely = model.scores(cause_text(segmenter, text)).likelihoods()
        assert max(likely, key=likely.get) == cause
        assert set(likely) <= set(CAUSES) and sum(likely.values()) == pytest.approx(1, abs=0.01)


def test_the_first_cases_of_each_cause_are_kept_in_order():
    labelled = [("a1", "A"), ("b1", "B"), ("x", ""), ("a2", "A"), ("a3", "A"), ("b2", "B"), ("a4", "A")]
    assert first_of_each(labelled, 2) == [("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B")]
    assert first_of_each(iter(labelled), 9) == [pair for pair in labelled if pair[1]]


def test_two_causes_are_told_apart_and_one_cause_gives_no_model(segmenter):
    rows = short_demo_cases({"民间借贷纠纷": 10, "离婚纠纷": 10}, 1500)
    terms, causes = [cause_text(segmenter, row["text"]) for row in rows], [row["cause"] for row in rows]
    likely = CauseModel.train(terms, causes).scores(cause_text(segmenter, DIVORCE_DESCRIPTION)).likelihoods()
    assert max(likely, key=likely.get) == "离婚纠纷"
    loans = [t for t, c in zip(terms, causes) if c == "民间借贷纠纷"]
    assert CauseModel.train(loans, ["民间借贷纠纷"] * len(loans)) is None  # nothing to tell apart
    assert CauseModel.train(terms, [""] * len(terms)) is None  # cases without a cause teach nothing


def test_a_backend_learns_the_causes_it_indexes_and_relearns_after_a_change(db, indexer, backend, settings,
                                                                           tmp_path):
    assert backend.cause_scores(LOAN_DESCRIPTION) is None  # nothing indexed
    rows = short_demo_cases({"民间借贷纠纷": 10, "劳动争议": 10}, 1500)
    import_file(db, settings, write_jsonl(tmp_path / "a.jsonl", rows))
    indexer.drain()
    likely = backend.cause_scores(LOAN_DESCRIPTION).likelihoods()
    assert set(likely) <= {"民间借贷纠纷", "劳动争议"} and max(likely, key=likely.get) == "民间借贷纠纷"
    assert "离婚纠纷" not in backend.cause_scores(DIVORCE_DESCRIPTION).likelihoods()
    # it learns from at most so many cases of each cause
    assert Counter(cause for _, cause in backend.labelled_texts(3)) == {"民间借贷纠纷": 3, "劳动争议": 3}
    import_file(db, settings, write_jsonl(tmp_path / "b.jsonl", short_demo_cases({"离婚纠纷": 10}, 1500)))
    indexer.drain()
    likely = backend.cause_scores(DIVORCE_DESCRIPTION).likelihoods()
    assert max(likely, key=likely.get) == "离婚纠纷"


def test_the_names_of_the_causes_teach_the_rare_ones(segmenter):
    """Most causes of a library have a case or two: with each cause's name as one more example, the
    model names the right cause for the second case of more of them (both models weigh the causes alike)."""
    rows = [row for row in read_jsonl(SHARED_DATA / "cases_demo.jsonl") if row["source"].startswith(LOO_SOURCE)]
    pairs: dict[str, list[dict]] = {}
    for row in rows:
        pairs.setdefault(row["cause"], []).append(row)
    pairs = {cause: cases for cause, cases in pairs.items() if len(cases) == 2}
    library = short_demo_cases(CAUSES, 1500) + [cases[0] for cases in pairs.values()]
    terms, causes = [cause_text(segmenter, row["text"]) for row in library], [row["cause"] for row in library]
    asked = [(cause_text(segmenter, cases[1]["text"]), cause) for cause, cases in pairs.items()]
    names = cause_names(segmenter, causes)
    assert set(names) == set(causes) and names["民间借贷纠纷"].terms == segmenter.terms("民间借贷纠纷")
    assert named_right(CauseModel.train(terms, causes, names), asked) > named_right(CauseModel.train(terms, causes), asked)


def test_the_causes_named_are_the_three_likeliest_of_at_least_a_tenth():
    scores = CauseScores(("借贷", "离婚", "劳动", "买卖", "继承"), np.array([1.0, 0.99, 0.98, 0.97, 0.0]))
    calibrated = scores.likelihoods(calibrated=True)
    assert calibrated["买卖"] >= MIN_LIKELIHOOD  # likely too, but fourth
    assert [cause for cause, _ in scores.likeliest()] == ["借贷", "离婚", "劳动"]
    assert all(p == calibrated[cause] >= MIN_LIKELIHOOD for cause, p in scores.likeliest())
    sure = CauseScores(("借贷", "离婚", "劳动"), np.array([1.0, 0.4, 0.3]))
    assert sure.likeliest() == [("借贷", pytest.approx(1.0, abs=1e-3))] and len(sure.likelihoods()) == 3
    # a lower bound lets less likely causes in (the ones whose best case more like this moves up), still three at most
    unsure = CauseScores(("借贷", "离婚", "劳动", "买卖"), np.array([0.2, 0.02, -0.04, -0.5]))
    shares = unsure.likelihoods(calibrated=True)
    assert 0.05 < shares["离婚"] < MIN_LIKELIHOOD and shares["劳动"] < 0.05
    assert [cause for cause, _ in unsure.likeliest()] == ["借贷"]
    assert [cause for cause, _ in unsure.likeliest(0.05)] == ["借贷", "离婚"]
    assert [cause for cause, _ in unsure.likeliest(0.0)] == ["借贷", "离婚", "劳动"]


def test_the_characters_teach_what_the_terms_miss(segmenter):
    """Read beside the jieba terms, the characters and character pairs name the right cause first for
    more cases: learnt from the CJRC dev cases, asked for the test cases (each of the 188 causes is in both)."""
    rows = [row for row in read_jsonl(SHARED_DATA / "cases_demo.jsonl") if row["source"].startswith(LOO_SOURCE)]
    library = [row for row in rows if row["source"].endswith("dev")]
    asked = [row for row in rows if row["source"].endswith("test")]
    texts, causes = [cause_text(segmenter, row["text"]) for row in library], [row["cause"] for row in library]
    names = cause_names(segmenter, causes)
    questions = [(cause_text(segmenter, row["text"]), row["cause"]) for row in asked]
    with_chars, terms_only = (named_right(CauseModel.train(texts, causes, names, char_weight=weight), questions)
                              for weight in (CHAR_WEIGHT, 0.0))
    print(f"right cause first for {with_chars} of {len(questions)} cases with characters, {terms_only} without")
    assert with_chars > terms_only


def test_the_meaning_of_the_causes_names_makes_the_likelihoods_truer(segmenter, model_dir, tmp_path):
    """Learnt from the CJRC dev cases, asked for the test cases of the causes that have one case in each:
    read with the closeness in meaning of each text to each cause's name (multilingual-e5), the right
    cause is on average likelier (calibrated), and named first no less often."""
    rows = [row for row in read_jsonl(SHARED_DATA / "cases_demo.jsonl") if row["source"].startswith(LOO_SOURCE)]
    library = [row for row in rows if row["source"].endswith("dev")]
    rare = {cause for cause, count in Counter(row["cause"] for row in rows).items() if count == 2}
    asked = [row for row in rows if row["source"].endswith("test") and row["cause"] in rare]
    causes = [row["cause"] for row in library]
    model = CauseModel.train([cause_text(segmenter, row["text"]) for row in library], causes, cause_names(segmenter, causes))
    encoder = Encoder(model_dir, tmp_path / "embeddings.sqlite3")
    names = encoder.cached(list(model.classifier.classes_), "query")
    texts = whole_text_vectors(encoder, [row["text"] for row in asked])
    plain = [model.scores(cause_text(segmenter, row["text"])) for row in asked]
    read = [scores.with_name_meaning(vector, names) for scores, vector in zip(plain, texts)]
    assert {scores.calibrated_temperature for scores in read} == {NAME_MEANING_CALIBRATED_TEMPERATURE}

    def log_likelihood(scores: CauseScores, cause: str) -> float:
        return float(np.log(max(scores.likelihoods(calibrated=True).get(cause, 0.0), 1e-3)))

    with_names, without = (np.mean([log_likelihood(s, row["cause"]) for s, row in zip(each, asked)]) for each in (read, plain))
    right = [sum(first(s) == row["cause"] for s, row in zip(each, asked)) for each in (read, plain)]
    print(f"{len(asked)} cases: mean log likelihood of the right cause {with_names:.3f} with the names' meaning, "
          f"{without:.3f} without; named first {right[0]} and {right[1]}")
    assert with_names > without and right[0] >= right[1]
