"""Pure pieces every search backend shares, so backends rank, label and show results alike."""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
from collections import Counter
from typing import TYPE_CHECKING, Callable

from indexer.documents import IndexDocument
from indexer.query import MODES, Filters, Hit, Suggestion
from indexer.semantic import PASSAGE_CHARS, SemanticUnavailable, case_passages
from indexer.snippets import matched_terms, snippet
from indexer.text import ParsedQuery, Segmenter, joined_char_tokens, normalise
from indexer.vectors import PassageMatch

if TYPE_CHECKING:
    from indexer.embeddings import Encoder

TITLE_BOOST = 2.0
CAUSE_BOOST = 3.0
FACET_SIZE = 50
#: terms of a case that make up its "more like this" keyword query
MORE_LIKE_THIS_TERMS = 25

FILTER_LABELS = {
    "categories": "类别", "causes": "案由", "regions": "地区", "organisation_id": "调解组织",
    "outcomes": "调解结果", "exemplar_only": "仅优秀案例", "received_from": "起始日期",
    "received_to": "截止日期", "amount_min": "最低金额", "amount_max": "最高金额",
}
FACET_FILTER = {"category": "categories", "cause": "causes", "region": "regions", "outcome": "outcomes"}


class EncoderOnDemand:
    """A backend's embedding model, loaded on first use; with no model installed, keyword search only."""

    def _init_encoder(self, encoder_factory: Callable[[], Encoder] | None) -> None:
        self.encoder_factory = encoder_factory
        self._encoder_instance: Encoder | None = None
        self._encoder_lock = threading.Lock()

    def modes(self) -> tuple[str, ...]:
        """The search modes this backend can serve: semantic ones need an embedding model."""
        return MODES if self.encoder_factory is not None else ("keyword",)

    def encoder(self) -> Encoder:
        """The embedding model, loaded on first use."""
        if self._encoder_instance is None:
            if self.encoder_factory is None:
                raise SemanticUnavailable("no embedding model is installed: run `casekb model install`")
            with self._encoder_lock:
                if self._encoder_instance is None:
                    self._encoder_instance = self.encoder_factory()
        return self._encoder_instance


class IndexWriteError(Exception):
    """Some documents could not be written; `case_ids` names them so their tasks stay queued."""

    def __init__(self, case_ids: list[int], reasons: list[str]):
        super().__init__(f"{len(case_ids)} case(s) not indexed: {'; '.join(reasons[:3])}")
        self.case_ids, self.reasons = case_ids, reasons


def analysed_fields(doc: IndexDocument, segmenter: Segmenter) -> dict[str, str]:
    """The searchable token fields, space-joined: the backends' whitespace analysers only split them."""
    text, title = normalise(doc.text), normalise(doc.title)
    # Segmentation never crosses a line break, so the title is segmented once for both fields.
    title_terms = segmenter.joined_terms(title)
    return dict(
        terms=f"{title_terms} {segmenter.joined_terms(text)}",
        title_terms=title_terms,
        cause_terms=segmenter.joined_terms(normalise(doc.cause)),
        chars=joined_char_tokens(title + "\n" + text),
    )


def distinctive_terms(terms: list[str], doc_freq: Callable[[str], int], total_docs: int,
                      limit: int = MORE_LIKE_THIS_TERMS) -> list[tuple[str, float]]:
    """A case's terms that say most about it and can find others: frequent in it, rare in the library
    (tf × idf), found in at least one other case, not mere numbers; with weights, best first."""
    counts = Counter(term for term in terms if len(term) > 1 and not term.isdigit())
    weighted = []
    for term, count in counts.items():
        docs = doc_freq(term)
        if 1 < docs < total_docs * 0.5:
            weighted.append((term, count * math.log(1 + total_docs / docs)))
    weighted.sort(key=lambda item: (-item[1], item[0]))
    return weighted[:limit]


def facet_filters(filters: Filters, facet: str) -> Filters:
    """The filters a facet is counted under: all but its own (drill sideways)."""
    own = FACET_FILTER[facet]
    return filters.without(own) if own in filters.active() else filters


def without_quotes(parsed: ParsedQuery, segmenter: Segmenter) -> ParsedQuery:
    """The query with its phrases segmented into loose words."""
    return ParsedQuery(parsed.text, parsed.terms + tuple(
        t for p in parsed.phrases for t in segmenter.terms(p)), ())


def no_result_suggestions(parsed: ParsedQuery, filters: Filters, segmenter: Segmenter,
                count: Callable[[ParsedQuery, Filters], int]) -> list[Suggestion]:
    """Ways to get results for a query that has none: drop one filter, or the quotes."""
    found = []
    for name in filters.active():
        total = count(parsed, filters.without(name))
        if total:
            found.append(Suggestion(f"去掉筛选条件「{FILTER_LABELS[name]}」可找到 {total} 个案例", name, total))
    if parsed.phrases:
        total = count(without_quotes(parsed, segmenter), filters)
        if total:
            found.append(Suggestion(f"去掉引号（不要求词语紧挨着出现）可找到 {total} 个案例", None, total))
    return found


def build_hit(*, case_id: int, external_id: str, title: str, text: str, category: str, cause: str, region: str,
              outcome: str, received_on: dt.date | None, exemplar: bool, score: float, needles: tuple[str, ...],
              passage: PassageMatch | None = None, duplicates: int = 0, display: bool = True) -> Hit:
    """A hit from a case's stored fields: snippet and matched terms computed on the masked text
    (`display`; without it they are left empty, for with_display to fill in for the hits shown)."""
    hit = Hit(case_id=case_id, external_id=external_id, title=title, score=float(score), snippet="",
              matched_terms=(), category=category, cause=cause, region=region, outcome=outcome,
              received_on=received_on, exemplar=exemplar, duplicates=duplicates)
    return with_display(hit, text, needles, passage) if display else hit


def with_display(hit: Hit, text: str, needles: tuple[str, ...], passage: PassageMatch | None = None) -> Hit:
    """The hit with its snippet, matched terms and best passage, from its masked text."""
    matched = matched_terms(needles, hit.title, hit.cause, text)
    best = ""
    if passage is not None:
        passages = case_passages(text)
        if passage.passage < len(passages):
            best = snippet(passages[passage.passage].text, needles, width=PASSAGE_CHARS)
    return dataclasses.replace(hit, snippet=best if best and not matched else snippet(text, needles),
                               matched_terms=matched, best_passage=best)
