"""Passage splitting for embeddings."""
from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA
from indexer.passages import split_passages


def test_short_text_is_one_passage():
    assert [p.text for p in split_passages("借款五万元。到期未还。")] == ["借款五万元。到期未还。"]


def test_passages_cover_the_text_on_sentence_boundaries_with_overlap():
    text = "".join(f"第{i}句话说明了一个事实，内容稍长一些。" for i in range(60))
    passages = split_passages(text, max_chars=100, overlap_chars=40)
    assert len(passages) > 5
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for before, after in zip(passages, passages[1:]):
        assert after.start <= before.end  # no gap
        assert after.start > before.start  # always forward
        assert text[after.start - 1] == "。"  # starts at a sentence boundary
    assert all(len(p.text) <= 100 and p.text == text[p.start:p.end] for p in passages)


def test_an_overlong_sentence_is_cut_to_fit():
    passages = split_passages("长" * 950, max_chars=400)
    assert [len(p.text) for p in passages] == [400, 400, 150]


@pytest.mark.parametrize("max_chars", [200, 400])
def test_every_demo_text_is_fully_covered(max_chars):
    with (SHARED_DATA / "cases_demo.jsonl").open(encoding="utf-8") as rows:
        texts = [json.loads(line)["text"] for line in rows][:300]
    for text in texts:
        passages = split_passages(text, max_chars=max_chars)
        covered = set()
        for p in passages:
            assert len(p.text) <= max_chars
            covered.update(range(p.start, p.end))
        assert covered >= {i for i, ch in enumerate(text) if not ch.isspace()}
