"""Case-to-case similarity, for "more like this" (similar cases for a case) and `casekb eval`.

A candidate case is scored for a query case by six things:

- meaning: the query's multilingual-e5 `query: ` vector of its whole text (the model reads the
  first 512 tokens) against the normalised mean of the candidate's passage vectors (the passages
  semantic search indexes, title in front: the vectors the index already stores, so a candidate
  costs no model run; only the query's whole text is encoded, once, through the cache);
- key facts: the share of elements of a small rule table (``dictionaries/loan_elements.tsv``:
  借条, 担保, 利息, 转账/现金交付, 夫妻共同债务, 还款 ...) on which the two agree (both mention the
  element or neither does), counted only when both cases are in the table's domain (loans);
- distinctive terms: cosine of sublinear TF-IDF vectors over jieba terms, IDF from the candidates,
  the candidate's title terms repeated TITLE_REPEAT times (a title is the cause in the demo);
- wording: cosine of sublinear TF-IDF vectors of the texts' character 2-3-grams (hashed), IDF from
  the candidates: it catches shared names of things and phrasings that jieba splits differently;
- title: the query's whole-text vector against the `query: ` vector of the candidate's title
  (zero for a candidate without one);
- cause: 1 where the query case has a cause and the candidate has the same one (the first thing a
  mediator looks for in a precedent); for a query case without one (a pasted description, and every
  query of `casekb eval`, where the cause is the answer), the likelihood of the candidate's cause
  by the library's cause model (indexer/cause_model.py).

score = meaning + ELEMENT_WEIGHT × agreement + TERM_WEIGHT × terms + CHAR_WEIGHT × wording
+ TITLE_WEIGHT × title + (CAUSE_WEIGHT × same cause, or LIKELY_CAUSE_WEIGHT × cause likelihood).
The form and the weights (but CAUSE_WEIGHT) were chosen on the dev halves of `casekb eval`'s SCM
triplets and leave-one-out set; more like this (indexer/more_like_this.py) ranks its candidates with
it, and `casekb eval` measures that path. README "Measuring quality" gives both halves.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sparse
from sklearn.feature_extraction.text import HashingVectorizer

from indexer.embeddings import Encoder
from indexer.semantic import passage_inputs
from indexer.text import Segmenter, normalise

ELEMENT_RULES = Path(__file__).resolve().parent / "dictionaries" / "loan_elements.tsv"
ELEMENT_WEIGHT = 0.5
TERM_WEIGHT = 0.25
TITLE_REPEAT = 5
TITLE_WEIGHT = 0.5
CHAR_WEIGHT = 0.25
CAUSE_WEIGHT = 0.5
LIKELY_CAUSE_WEIGHT = 2.0
_DOMAIN = "@domain"
#: cases whose terms and elements a CaseSimilarity keeps (it starts afresh when full)
MEMO_SIZE = 20_000
#: cases whose character n-gram counts it keeps (~16 KB each for a case of 1,000 characters)
CHAR_MEMO_SIZE = 4_000
CHAR_FEATURES = 2 ** 20
_CHAR_GRAMS = HashingVectorizer(analyzer="char", ngram_range=(2, 3), n_features=CHAR_FEATURES,
                                alternate_sign=False, norm=None, dtype=np.float32)
# Quote marks carry no meaning for the model; without them a case's whole-text vector is the one a
# search with its text (as `casekb eval` runs) already computed and cached.
_QUOTES = re.compile(r'["“”「」『』]')


def whole_text_vectors(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """The `query: ` vector of each case's whole text (quote marks removed): one model run, then the cache's."""
    return encoder.cached([_QUOTES.sub("", text) for text in texts], "query")


def _memo(store: dict, key, compute, size: int = MEMO_SIZE):
    """store[key], computed and kept on first use; the store is emptied when it holds `size`."""
    value = store.get(key)
    if value is None:
        if len(store) >= size:
            store.clear()
        value = store[key] = compute(key)
    return value


@dataclass(frozen=True)
class TermCounts:
    """A text's jieba terms as (sorted term keys, how often each occurs). A key is a 64-bit BLAKE2
    digest of the term's UTF-8 (Python's str hash reads a string's raw storage, and '潮', U+6F6E,
    is stored as the same two bytes as 'no': the two always share a hash, whatever the seed), so
    numpy does the rest of the weighting: a pool's vocabulary and document frequencies are unions and
    counts of keys."""
    keys: np.ndarray  # int64, sorted, unique
    counts: np.ndarray  # float64, same length

    @classmethod
    def of(cls, terms: list[str]) -> TermCounts:
        counted = Counter(terms)
        keys = np.fromiter((_term_key(term) for term in counted), np.int64, len(counted))
        order = np.argsort(keys)
        return cls(keys[order], np.fromiter(counted.values(), np.float64, len(counted))[order])


def _term_key(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True)
class TermWeights:
    """Sublinear TF-IDF over terms, the vocabulary and the (smoothed) IDF from the candidates' texts:
    what sklearn's TfidfVectorizer(sublinear_tf=True) fitted on those texts computes, without a Python
    pass over every term of every candidate per query."""
    vocabulary: np.ndarray  # sorted keys of the terms some candidate's text has
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[TermCounts]) -> TermWeights:
        keys = np.concatenate([text.keys for text in texts]) if texts else np.empty(0, np.int64)
        vocabulary, frequency = np.unique(keys, return_counts=True)
        return cls(vocabulary, np.log((1 + len(texts)) / (1 + frequency)) + 1)

    def transform(self, texts: Sequence[TermCounts]) -> sparse.csr_matrix:
        """(texts, vocabulary) rows of unit length (zero for a text with no term of the vocabulary);
        terms outside the vocabulary are dropped."""
        shape = (len(texts), len(self.vocabulary))
        if not texts or not len(self.vocabulary):
            return sparse.csr_matrix(shape)
        keys = np.concatenate([text.keys for text in texts])
        counts = np.concatenate([text.counts for text in texts])
        rows = np.repeat(np.arange(len(texts)), [len(text.keys) for text in texts])
        at = np.minimum(np.searchsorted(self.vocabulary, keys), len(self.vocabulary) - 1)
        known = self.vocabulary[at] == keys
        rows, columns = rows[known], at[known]
        weight = (1 + np.log(counts[known])) * self.idf[columns]
        lengths = np.sqrt(np.bincount(rows, weight * weight, minlength=len(texts)))
        # a text's keys are distinct, so no entry is summed with another
        return sparse.csr_matrix((weight / np.maximum(lengths[rows], 1e-12), (rows, columns)), shape=shape)


def _char_tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear TF × IDF of character n-gram counts, each row of unit length."""
    weighted = counts.copy()
    weighted.data = 1 + np.log(weighted.data)
    weighted = weighted.multiply(idf).tocsr()
    lengths = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))[:, 0])
    return (sparse.diags(1 / np.maximum(lengths, 1e-12)) @ weighted).tocsr()


@dataclass(frozen=True)
class ElementRule:
    name: str
    pattern: re.Pattern


@dataclass(frozen=True)
class ElementTable:
    """Key-fact elements of one kind of case, and the pattern that says a case is of that kind."""
    domain: re.Pattern
    rules: tuple[ElementRule, ...]

    def elements(self, text: str) -> frozenset[str]:
        """The elements whose pattern occurs in the (normalised) text."""
        normalised = normalise(text)
        return frozenset(rule.name for rule in self.rules if rule.pattern.search(normalised))

    def applies_to(self, text: str) -> bool:
        return self.domain.search(normalise(text)) is not None

    def agreement(self, a: frozenset[str], b: frozenset[str]) -> float:
        """Share of the elements on which two cases agree: both mention it, or neither does."""
        return 1 - sum((rule.name in a) != (rule.name in b) for rule in self.rules) / len(self.rules)


def load_element_table(path: Path = ELEMENT_RULES) -> ElementTable:
    """`name<TAB>regular expression` a line, one `@domain<TAB>regular expression` line; blank lines
    and `#` comments skipped."""
    rules: dict[str, ElementRule] = {}
    domain = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, tab, pattern = line.partition("\t")
        name, pattern = name.strip(), pattern.strip()
        if not (tab and name and pattern):
            raise ValueError(f"{path}:{number}: expected an element name, a tab and a regular expression")
        if name in rules or (name == _DOMAIN and domain is not None):
            raise ValueError(f"{path}:{number}: {name!r} is defined twice")
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{path}:{number}: bad regular expression for {name!r}: {error}") from None
        if name == _DOMAIN:
            domain = compiled
        else:
            rules[name] = ElementRule(name, compiled)
    if domain is None or not rules:
        raise ValueError(f"{path}: needs a {_DOMAIN} line and at least one element")
    return ElementTable(domain, tuple(rules.values()))


@dataclass(frozen=True)
class CaseText:
    """A case as similarity sees it. The title (as indexed: in the demo, the cause) goes in front of
    each passage and into the terms of a candidate; a query case is judged by its text and cause."""
    text: str
    title: str = ""
    cause: str = ""
    #: (cause, likelihood) pairs for a query case without a cause (indexer/cause_model.py)
    likely_causes: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class CandidatePool:
    """Candidate cases profiled once, to rank any number of query cases against."""
    meaning: np.ndarray  # (cases, dim): normalised mean of passage vectors (zeros for a case without)
    elements: np.ndarray  # (cases, elements): 1.0 where the case mentions the element
    in_domain: np.ndarray  # (cases,): 1.0 for cases of the element table's kind
    term_weights: TermWeights  # fitted on the candidates' texts
    terms: sparse.csr_matrix  # (cases, vocabulary) TF-IDF rows of the texts' terms and the titles' repeated
    titles: np.ndarray  # (cases, dim): vector of the title, zeros where there is none
    causes: np.ndarray  # (cases,): the cause of each case, "" where it has none
    chars: object  # sparse (cases, CHAR_FEATURES): normalised TF-IDF of the texts' character n-grams
    char_idf: np.ndarray  # (CHAR_FEATURES,): their IDF over the candidates

    def __len__(self) -> int:
        return len(self.meaning)


class CaseSimilarity:
    """Scores and ranks candidate cases for a query case; every vector goes through the encoder's cache."""

    def __init__(self, encoder: Encoder, segmenter: Segmenter, table: ElementTable | None = None,
                 element_weight: float = ELEMENT_WEIGHT, term_weight: float = TERM_WEIGHT,
                 title_weight: float = TITLE_WEIGHT, cause_weight: float = CAUSE_WEIGHT,
                 likely_cause_weight: float = LIKELY_CAUSE_WEIGHT, char_weight: float = CHAR_WEIGHT):
        self.encoder = encoder
        self.segmenter = segmenter
        self.table = table or load_element_table()
        self.element_weight, self.term_weight = element_weight, term_weight
        self.title_weight, self.cause_weight = title_weight, cause_weight
        self.likely_cause_weight, self.char_weight = likely_cause_weight, char_weight
        #: a library's candidates recur from one query case to the next: their terms and elements are kept
        self._terms_of: dict[tuple[str, str], TermCounts] = {}
        self._elements_of: dict[str, tuple[frozenset[str], bool]] = {}
        self._char_counts_of: dict[str, sparse.csr_matrix] = {}

    def _whole(self, cases: Sequence[CaseText]) -> np.ndarray:
        return whole_text_vectors(self.encoder, [case.text for case in cases])

    def whole_vector(self, text: str) -> np.ndarray:
        """The `query: ` vector of a case's whole text: one model run, then the cache's."""
        return self._whole([CaseText(text)])[0]

    def _titles(self, cases: Sequence[CaseText]) -> np.ndarray:
        titles = np.zeros((len(cases), self.encoder.dim), "float32")
        titled = [i for i, case in enumerate(cases) if case.title.strip()]
        if titled:
            titles[titled] = self.encoder.cached([cases[i].title for i in titled], "query")
        return titles

    def _elements(self, cases: Sequence[CaseText]) -> tuple[np.ndarray, np.ndarray]:
        found = [_memo(self._elements_of, case.text, lambda text: (self.table.elements(text),
                                                                   self.table.applies_to(text))) for case in cases]
        elements = np.array([[rule.name in names for rule in self.table.rules] for names, _ in found], "float32")
        in_domain = np.array([applies for _, applies in found], "float32")
        return elements.reshape(len(cases), len(self.table.rules)), in_domain

    def _terms(self, text: str, title: str = "") -> TermCounts:
        return _memo(self._terms_of, (text, title), lambda key: TermCounts.of(
            self.segmenter.terms(normalise(text)) + self.segmenter.terms(normalise(title)) * TITLE_REPEAT))

    def _char_counts(self, cases: Sequence[CaseText]) -> sparse.csr_matrix:
        """(cases, CHAR_FEATURES) counts of each text's character 2-3-grams (hashed); the texts not
        counted before in one vectorizer call."""
        store = self._char_counts_of
        missing = list(dict.fromkeys(case.text for case in cases if case.text not in store))
        if missing and len(store) + len(missing) > CHAR_MEMO_SIZE:  # start afresh: count all of these
            store.clear()
            missing = list(dict.fromkeys(case.text for case in cases))
        if missing:
            store.update(zip(missing, _CHAR_GRAMS.transform([normalise(text) for text in missing])))
        return sparse.vstack([store[case.text] for case in cases]).tocsr()

    def passage_means(self, candidates: Sequence[CaseText]) -> np.ndarray:
        """Normalised mean passage vector of each case, encoded (through the cache) as the index embeds them."""
        inputs = [passage_inputs(case.title, case.text) for case in candidates]
        flat = self.encoder.passages([p for passages in inputs for p in passages])
        bounds = np.cumsum([0] + [len(passages) for passages in inputs])
        means = np.vstack([flat[start:end].mean(axis=0) for start, end in zip(bounds[:-1], bounds[1:])])
        return means / np.linalg.norm(means, axis=1, keepdims=True)

    def pool(self, candidates: Sequence[CaseText], passage_means: np.ndarray | None = None) -> CandidatePool:
        """Profile candidates. `passage_means`: their stored mean passage vectors (a zero row for a case
        not embedded yet); encoded here when not given."""
        if not candidates:
            empty = np.empty((0, self.encoder.dim), "float32")
            weights = TermWeights.fit([])
            return CandidatePool(empty, np.empty((0, len(self.table.rules))), np.empty(0), weights,
                                 weights.transform([]), empty, np.empty(0, object), None, np.empty(0))
        means = self.passage_means(candidates) if passage_means is None else np.asarray(passage_means, "float32")
        elements, in_domain = self._elements(candidates)
        weights = TermWeights.fit([self._terms(case.text) for case in candidates])
        terms = weights.transform([self._terms(case.text, case.title) for case in candidates])
        counts = self._char_counts(candidates)
        char_idf = (np.log((1 + len(candidates)) / (1 + np.bincount(counts.indices, minlength=CHAR_FEATURES)))
                    + 1).astype("float32")
        return CandidatePool(means, elements, in_domain, weights, terms, self._titles(candidates),
                             np.array([case.cause for case in candidates], object), _char_tfidf(counts, char_idf),
                             char_idf)

    def scores(self, case: CaseText | str, pool: CandidatePool) -> np.ndarray:
        """The score of each candidate in the pool for the case; higher is more alike."""
        if not len(pool):
            return np.empty(0)
        case = CaseText(case) if isinstance(case, str) else case
        whole = self._whole([case])[0]
        elements, in_domain = self._elements([case])
        disagreements = (1 - pool.elements) @ elements[0] + pool.elements @ (1 - elements[0])
        agreement = (1 - disagreements / len(self.table.rules)) * pool.in_domain * in_domain[0]
        terms = (pool.terms @ pool.term_weights.transform([self._terms(case.text)]).T).toarray()[:, 0]
        chars = (pool.chars @ _char_tfidf(self._char_counts([case]), pool.char_idf).T).toarray()[:, 0]
        if case.cause:
            cause = self.cause_weight * (pool.causes == case.cause)
        else:
            likely = dict(case.likely_causes)
            cause = self.likely_cause_weight * np.array([likely.get(c, 0.0) for c in pool.causes])
        return (pool.meaning @ whole + self.element_weight * agreement + self.term_weight * terms
                + self.title_weight * (pool.titles @ whole) + self.char_weight * chars + cause)

    def rank_similar(self, case: CaseText | str, candidates: Sequence[CaseText] | CandidatePool,
                     limit: int | None = None, exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
        """(index into candidates, score), most similar first, without the excluded indexes (e.g.
        the case itself and its duplicates). Build a `pool` once to rank many cases against it."""
        pool = candidates if isinstance(candidates, CandidatePool) else self.pool(candidates)
        row = self.scores(case, pool)
        row[list(exclude)] = -np.inf
        order = [int(i) for i in np.argsort(-row, kind="stable") if np.isfinite(row[i])]
        return [(i, float(row[i])) for i in order[:limit]]

    def shared_elements(self, a: CaseText | str, b: CaseText | str) -> tuple[str, ...]:
        """The key facts both cases mention (in the table's order), when both are of the table's kind."""
        a, b = (CaseText(c) if isinstance(c, str) else c for c in (a, b))
        if not (self.table.applies_to(a.text) and self.table.applies_to(b.text)):
            return ()
        both = self.table.elements(a.text) & self.table.elements(b.text)
        return tuple(rule.name for rule in self.table.rules if rule.name in both)

    def case_similarity(self, a: CaseText | str, b: CaseText | str) -> float:
        """The score of b as a candidate for a, term weights from b alone (rank against a pool for
        weights from a whole library). Not symmetric: a is judged by its whole-text vector."""
        return float(self.scores(a, self.pool([CaseText(b) if isinstance(b, str) else b]))[0])
