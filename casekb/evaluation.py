"""`casekb eval`: search quality per mode, measured through the library's own search backend.

The keyword, semantic and hybrid figures come from `EmbeddedBackend.search` on an index built the
way `casekb index` builds one (same segmenter, BM25 field boosts, passages, vectors and fusion),
with a case's whole text as the query. A hybrid query that long is searched as a case description
(indexer/case_query.py): the two stages of more like this (the backend's candidates, reranked by
`indexer.similarity.CaseSimilarity`), so the hybrid figures of the triplets and leave-one-out measure
that path, each query case judged by its text alone (its cause is what leave-one-out asks for).
Each query is put in a dev or a held-out half by a hash of its key, so a tuning choice made on one
half can be checked on the other.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from rich.table import Table
from sklearn.model_selection import KFold, StratifiedKFold

from indexer.cause_model import CauseModel, CauseScores, cause_names, cause_text
from indexer.documents import IndexDocument
from indexer.embedded import SEMANTIC_DEPTH, EmbeddedBackend
from indexer.embeddings import Encoder
from indexer.masking import mask_personal_data
from indexer.more_like_this import CANDIDATES
from indexer.query import Hit, SearchQuery
from indexer.semantic import document_hash, passage_inputs
from indexer.text import Segmenter
from indexer.vectors import VectorIndex

K = 10
#: How deep the triplets read each mode's ranking for a case text: keyword and semantic as deep as
#: semantic search ranks; hybrid as deep as a case description's candidates (indexer/case_query.py).
RANKING_DEPTH = {"keyword": SEMANTIC_DEPTH, "semantic": SEMANTIC_DEPTH, "hybrid": CANDIDATES}
HALVES = ("dev", "held-out")
#: The leave-one-out corpus: the demo's CJRC rows (188 causes), as in shared/data's baseline.
LOO_SOURCE = "CAIL2019-CJRC"
# Quotes in a case text would turn its quoted parts into required exact phrases.
_QUOTES = re.compile(r'["“”「」『』]')

Scores = list[tuple[str, dict[str, float]]]
Ranker = Callable[[str], list[int]]
"""A case text -> the numbers (from 1) of the indexed cases, best first."""


# -- metrics -------------------------------------------------------------------------------
def triplet_accuracy(pairs: Iterable[tuple[float, float]]) -> float:
    """Share of (score of B, score of C) pairs where B scores higher; a tie counts half."""
    outcomes = [1.0 if b > c else 0.5 if b == c else 0.0 for b, c in pairs]
    return sum(outcomes) / len(outcomes) if outcomes else 0.0


def precision_at_k(ranked: Sequence, relevant: set, k: int = K) -> float:
    return sum(1 for item in ranked[:k] if item in relevant) / k


def reciprocal_rank_at_k(ranked: Sequence, relevant: set, k: int = K) -> float:
    return next((1.0 / rank for rank, item in enumerate(ranked[:k], 1) if item in relevant), 0.0)


def ndcg_at_k(ranked: Sequence, relevant: set, k: int = K) -> float:
    """Binary-relevance nDCG: DCG of the ranking over DCG of the best possible one."""
    dcg = sum(1 / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], 1) if item in relevant)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal if ideal else 0.0


def average_precision(ranked: Sequence, relevant: set) -> float:
    """Mean of the precision at each relevant item's rank; relevant items never ranked count zero."""
    found, total = 0, 0.0
    for rank, item in enumerate(ranked, 1):
        if item in relevant:
            found += 1
            total += found / rank
    return total / len(relevant) if relevant else 0.0


def half_of(key: str) -> str:
    """The dev or held-out half a query belongs to, fixed by a hash of its key."""
    return HALVES[hashlib.sha256(key.encode()).digest()[0] % 2]


def summarise(scores: Scores) -> dict[str, dict[str, float]]:
    """Mean of each metric over all queries and over each half, with the number of queries."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for key, values in scores:
        groups["all"].append(values)
        groups[half_of(key)].append(values)
    return {name: {"n": len(rows), **{metric: round(sum(r[metric] for r in rows) / len(rows), 4)
                                      for metric in rows[0]}}
            for name, rows in groups.items()}


# -- indexes built like the library's -------------------------------------------------------
@dataclass(frozen=True)
class EvalCase:
    key: str
    text: str
    title: str = ""
    cause: str = ""
    category: str = ""


class CachedQueries:
    """The encoder as the backend uses it, with query vectors cached: eval queries are whole case
    texts, asked once per mode and again on every run."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)

    def query(self, text: str) -> np.ndarray:
        return self.encoder.cached([text], "query")[0]


class RankingBackend(EmbeddedBackend):
    """The embedded backend with hits cut down to what a ranking needs, whatever `display` asks:
    snippets of whole-case queries take most of an eval's time and change no order."""

    @staticmethod
    def _hit(stored: dict, score: float, needles, passage=None, display: bool = True) -> Hit:
        return Hit(stored["case_id"][0], stored["external_id"][0], "", float(score), "", (),
                   stored["category"][0], stored["cause"][0], "", "", None, False)


    #: set for leave-one-out (see CrossFittedCauses)
    cross_fitted_causes: CrossFittedCauses | None = None
    #: set for leave-one-out: a query case's text -> its id, which a case-description search leaves out
    #: of its candidates (as for a description not in the library: the reranker's term weights and the
    #: causes it covers first do not count the query case)
    left_out: dict[str, int] = {}

    def model_cause_scores(self, text: str) -> CauseScores | None:
        folds = self.cross_fitted_causes
        return folds.scores(text) if folds is not None and text in folds else super().model_cause_scores(text)

    def similar_candidates(self, case, depth: int, skip: tuple[int, ...], filters, vector=None, display: bool = True):
        own = self.left_out.get(case.text)
        return super().similar_candidates(case, depth, (*skip, own) if own else skip, filters, vector, display)


class CrossFittedCauses:
    """Cause models for leave-one-out, which asks for each query case's cause: a model that helps rank a
    case's candidates must not have learnt that case. FOLDS models, each trained on the cases outside
    one fold (stratified by cause), and a case's text is judged by the model of its own fold. The
    product trains on the whole library instead, so these figures are, if anything, lower."""

    FOLDS = 5

    def __init__(self, cases: Sequence[EvalCase], segmenter: Segmenter):
        self.segmenter = segmenter
        texts = [cause_text(segmenter, case.text) for case in cases]
        causes = np.array([case.cause for case in cases])
        names = cause_names(segmenter, causes.tolist())
        self.fold_of: dict[str, int] = {}
        self.models: list[CauseModel | None] = []
        with warnings.catch_warnings():  # causes seen fewer than FOLDS times: stratified as far as they go
            warnings.simplefilter("ignore", UserWarning)
            count = min(self.FOLDS, len(cases))  # a small slice has fewer cases than folds
            if count < 2:
                return
            splitter = StratifiedKFold if max(Counter(causes.tolist()).values()) >= count else KFold
            folds = splitter(count, shuffle=True, random_state=0).split(texts, causes)
            for number, (train, test) in enumerate(folds):
                self.models.append(CauseModel.train([texts[i] for i in train], causes[train].tolist(), names))
                self.fold_of.update((_QUOTES.sub("", cases[i].text), number) for i in test)

    def __contains__(self, text: str) -> bool:
        return text in self.fold_of

    def scores(self, text: str) -> CauseScores | None:
        """The scores of the model of the text's fold; None where that fold has no model."""
        model = self.models[self.fold_of[text]]
        return model.scores(cause_text(self.segmenter, text)) if model is not None else None


def build_backend(cases: Sequence[EvalCase], folder: Path, segmenter: Segmenter,
                  encoder: Encoder | None) -> RankingBackend:
    """Keyword index and passage vectors of `cases`; case i (from 1) is `cases[i - 1]`."""
    backend = RankingBackend(folder, segmenter, (lambda: CachedQueries(encoder)) if encoder else None)
    docs = [IndexDocument(i, case.key, 1, case.title, case.text, case.category, case.cause, "", (), "",
                          False, None, None) for i, case in enumerate(cases, 1)]
    with backend.rebuild() as writer:
        writer.upsert(docs)
    if encoder is not None:
        inputs = [passage_inputs(doc.title, doc.text) for doc in docs]
        flat = encoder.passages([p for passages in inputs for p in passages])
        vectors, offset = VectorIndex.create(encoder.dim, encoder.name), 0
        for doc, passages in zip(docs, inputs):
            vectors.add_case(doc.case_id, flat[offset:offset + len(passages)], document_hash(doc.title, doc.text))
            offset += len(passages)
        vectors.save(backend.vectors_path())
    return backend


def search_hits(backend: EmbeddedBackend, text: str, mode: str, size: int) -> list[Hit]:
    return backend.search(SearchQuery(text=_QUOTES.sub("", text), mode=mode, facets=(), size=size)).hits


def search_ranker(backend: EmbeddedBackend, mode: str, size: int) -> Ranker:
    return lambda text: [hit.case_id for hit in search_hits(backend, text, mode, size)]


# -- the four evaluations --------------------------------------------------------------------
def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit]


def triplet_scores(rows: list[dict], rank: Ranker, texts: list[str]) -> Scores:
    """Per triplet, 1 when B ranks above C in a ranking for A's text over all the triplets' texts."""
    case_of = {text: i for i, text in enumerate(texts, 1)}
    positions: dict[str, dict[int, int]] = {}
    scores = []
    for row in rows:
        if row["A"] not in positions:
            positions[row["A"]] = {case_id: place for place, case_id in enumerate(rank(row["A"]))}
        # a text missing from the ranking ranks below every text in it
        position = positions[row["A"]]
        b, c = (-position.get(case_of[row[name]], math.inf) for name in ("B", "C"))
        scores.append((str(row["id"]), {"accuracy": triplet_accuracy([(b, c)])}))
    return scores


def triplet_cases(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(row[name] for row in rows for name in ("A", "B", "C")))


def loo_cases(demo_file: Path, limit: int | None = None) -> list[EvalCase]:
    """The demo's CJRC cases, masked as indexing masks them, titled with their cause as the demo is."""
    rows = [row for row in read_jsonl(demo_file) if row["source"].startswith(LOO_SOURCE)][:limit]
    return [EvalCase(row["id"], mask_personal_data(row["text"]), mask_personal_data(row["title"]), row["cause"],
                     row["category"]) for row in rows]


def leave_one_out_scores(cases: Sequence[EvalCase], rank: Ranker) -> Scores:
    """Each case's text as the query, itself left out; relevant: the other cases of its cause."""
    by_cause: dict[str, set[int]] = defaultdict(set)
    for i, case in enumerate(cases, 1):
        by_cause[case.cause].add(i)
    scores = []
    for i, case in enumerate(cases, 1):
        relevant = by_cause[case.cause] - {i}
        if not relevant:
            continue  # a cause seen once has nothing to find
        ranked = [case_id for case_id in rank(case.text) if case_id != i][:K]
        scores.append((case.key, {"P@10": precision_at_k(ranked, relevant), "MRR@10": reciprocal_rank_at_k(
            ranked, relevant), "nDCG@10": ndcg_at_k(ranked, relevant)}))
    return scores


def rerank_scores(rows: list[dict], work: Path, segmenter: Segmenter, encoder: Encoder | None,
                  modes: Sequence[str]) -> dict[str, Scores]:
    """Per set, its candidates ordered by a search with its query: nDCG@10 and average precision."""
    scores: dict[str, Scores] = defaultdict(list)
    for number, row in enumerate(rows):
        candidates = [EvalCase(str(c["id"]), c["text"], c.get("cause", ""), c.get("cause", ""))
                      for c in row["candidates"]]
        backend = build_backend(candidates, work / f"rerank-{number}", segmenter, encoder)
        relevant = {str(r) for r in row["relevant"]}
        for mode in modes:
            ranked = [candidates[hit.case_id - 1].key
                      for hit in search_hits(backend, row["query"], mode, len(candidates))]
            # candidates a mode does not rank at all keep their given order, below the ranked ones
            ranked += [c.key for c in candidates if c.key not in ranked]
            scores[mode].append((row["query"], {"nDCG@10": ndcg_at_k(ranked, relevant),
                                                "MAP": average_precision(ranked, relevant)}))
    return scores


def labelled_scores(rows: list[dict], backend: EmbeddedBackend, mode: str) -> Scores:
    """Per query, the share of the top 10 of the current library in the query's category."""
    return [(row["query"], {"category P@10": sum(hit.category == row["category"]
                                                  for hit in search_hits(backend, row["query"], mode, K)) / K})
            for row in rows]


# -- the whole run ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    triplets: tuple[Path, ...]
    demo_cases: Path
    rerank: Path | None = None
    labelled_queries: Path | None = None
    limit: int | None = None


Report = dict[str, dict[str, dict[str, dict[str, float]]]]
"""dataset -> mode -> "all" / "dev" / "held-out" -> metric -> value (and "n")."""


def evaluate(request: EvalRequest, work: Path, segmenter: Segmenter, encoder: Encoder | None,
             library: EmbeddedBackend | None = None, say: Callable[[str], None] = lambda _: None) -> Report:
    """Every evaluation the request asks for, in every mode the encoder allows."""
    modes = ("keyword", "semantic", "hybrid") if encoder is not None else ("keyword",)
    report: Report = {}
    for path in request.triplets:
        rows = read_jsonl(path, request.limit)
        say(f"triplets {path.name}: {len(rows)} triplets")
        texts = triplet_cases(rows)
        cases = [EvalCase(str(i), t) for i, t in enumerate(texts, 1)]
        backend = build_backend(cases, work / path.stem, segmenter, encoder)
        rankers = {mode: search_ranker(backend, mode, min(len(texts), RANKING_DEPTH[mode])) for mode in modes}
        report[f"triplets {path.stem}"] = {mode: summarise(triplet_scores(rows, rank, texts))
                                           for mode, rank in rankers.items()}
    cases = loo_cases(request.demo_cases, request.limit)
    say(f"leave-one-out: {len(cases)} demo cases ({LOO_SOURCE})")
    backend = build_backend(cases, work / "leave-one-out", segmenter, encoder)
    backend.cross_fitted_causes = CrossFittedCauses(cases, segmenter)
    backend.left_out = {_QUOTES.sub("", case.text): i for i, case in enumerate(cases, 1)}
    rankers = {mode: search_ranker(backend, mode, K + 1) for mode in modes}
    report["leave-one-out same cause"] = {mode: summarise(leave_one_out_scores(cases, rank))
                                          for mode, rank in rankers.items()}
    if request.rerank:
        say(f"reranking sets {request.rerank.name}")
        scores = rerank_scores(read_jsonl(request.rerank, request.limit), work, segmenter, encoder, modes)
        report[f"rerank {request.rerank.stem}"] = {mode: summarise(scores[mode]) for mode in modes}
    if request.labelled_queries and library is not None:
        rows = read_jsonl(request.labelled_queries, request.limit)
        say(f"labelled queries {request.labelled_queries.name}: {len(rows)} against the current library")
        report[f"labelled {request.labelled_queries.stem}"] = {
            mode: summarise(labelled_scores(rows, library, mode)) for mode in library.modes() if mode in modes}
    return report


def report_tables(report: Report) -> list[Table]:
    """One table per mode: a row per dataset and metric, columns for all queries and each half."""
    tables = {}
    for dataset, per_mode in report.items():
        for mode, halves in per_mode.items():
            if not halves:
                continue  # e.g. a leave-one-out slice where no cause occurs twice
            if mode not in tables:
                tables[mode] = Table(title=mode)
                for column in ("dataset", "metric", "all", *HALVES, "queries"):
                    tables[mode].add_column(column, justify="left" if column in ("dataset", "metric") else "right")
            for metric in (m for m in halves["all"] if m != "n"):
                cells = [f"{halves[h][metric]:.3f}" if h in halves else "-" for h in ("all", *HALVES)]
                tables[mode].add_row(dataset, metric, *cells, str(halves["all"]["n"]))
    return list(tables.values())
