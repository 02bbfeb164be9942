"""Likely causes of a case description, learnt from the library's own cases.

Similar cases are first of all cases of the same cause, and a case description a mediator pastes in
comes without one. The reranker of similarities alone confuses small, near-synonymous causes
(不当得利 and 借款合同, 名誉权 and 一般人格权: README "Measuring quality"), so it is told which causes
the description most likely has: a linear SVM over the sublinear TF-IDF of the cases' jieba terms,
trained on every case of the library that has a cause, its decision values turned into likelihoods
by a softmax. indexer/similarity.py adds a candidate's cause likelihood to its score.

Most causes of a library are rare (in the demo's CJRC cases, 114 of 188 causes have two cases), so
the model also learns each cause from its name (民间借贷纠纷 is itself an example of a loan dispute)
and weighs the causes alike, however many cases each has. Beside the jieba terms it reads the text's
characters and character pairs (TF-IDF, as much weight as the terms): they catch the names of things
jieba cuts differently from case to case (抚养费 / 抚养 费, 工伤 in 工伤保险待遇). Measured by `casekb
eval`'s 5-fold cross-fitting (README "Measuring quality"): the right cause first for 59.1 % of the
CJRC cases, against 56.5 % with the terms alone and 52.6 % without the names. Where an embedding
model is installed, the text's closeness in meaning to each cause's name is added to the SVM's
decision values (NAME_MEANING_WEIGHT), which makes its likelihoods truer (held-out log loss 2.17 ->
2.03) and leave-one-out's hybrid MRR@10 0.640 -> 0.650 (held-out 0.622 -> 0.625).
"""
from __future__ import annotations

import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from indexer.expansions import legal_terms_for
from indexer.similarity import whole_text_vectors
from indexer.text import Segmenter, normalise

#: The temperature at which the likelihoods are calibrated, for showing them to people: it minimises
#: the log loss of the cross-fitted models on the demo's CJRC cases, where the likeliest cause has on
#: average a likelihood of 0.62 and is right for 59.1 % of the cases (0.07 before the model read
#: characters: 0.56 and 56.5 %).
CALIBRATED_TEMPERATURE = 0.075
#: The reranker reads the likelihoods at this many times the calibrated temperature (0.15 for the SVM
#: alone; chosen on the dev half of leave-one-out, together with the weight of covering the likely
#: causes: README "Measuring quality"): a flatter spread than calibrated, which ranks better there.
RERANK_FLATTENING = 2.0
#: Where an embedding model is installed, the text's closeness in meaning to each cause's name (the
#: cosine of their multilingual-e5 `query: ` vectors) is added to the SVM's decision values at this
#: weight: the model knows what 民间借贷纠纷 means before the library has many cases of it. Chosen on the
#: dev half of leave-one-out (3 to 6 tried), with the calibrated temperature of the sum found again by
#: least log loss on that half: the held-out half's log loss falls from 2.17 to 2.03.
NAME_MEANING_WEIGHT = 5.0
NAME_MEANING_CALIBRATED_TEMPERATURE = 0.09
#: Likelihoods below this are left out: they move no ranking.
FLOOR = 1e-3
#: The causes named to people: at most SHOWN_CAUSES, each at least MIN_LIKELIHOOD likely (calibrated).
#: The best cases of these and of somewhat less likely ones move up (indexer/more_like_this.py).
SHOWN_CAUSES = 3
MIN_LIKELIHOOD = 0.1
#: The most cases of one cause the library's model learns from (the first the index yields): more
#: than any cause of the demo but 离婚纠纷 has, and a bound on the time and memory that learning a
#: large library takes (it happens in the server's background after every change).
MAX_CASES_PER_CAUSE = 200
#: The character n-grams the model reads beside the terms, and their weight against the terms' (both
#: TF-IDF rows of unit length). Cross-fitted on the demo's CJRC cases: 1-2-grams at weight 1 name the
#: right cause first for 58.7 %; 1-3-grams 58.7 % (twice the time to learn), weight 0.5 58.0 %, 2 57.3 %.
CHAR_NGRAMS = (1, 2)
CHAR_WEIGHT = 1.0
#: Only the most frequent character n-grams: the SVM keeps a dense weight per cause and feature, and all
#: of the demo's 137,031 character 1-2-grams took its weights from 56 to 262 MB. The 20,000 most frequent
#: name the right cause as often (59.1 %; 10,000: 58.8 %) for 86 MB.
CHAR_FEATURES = 20_000


@dataclass(frozen=True)
class CauseScores:
    """The model's decision value for each of its causes, for one text: read once, turned into
    likelihoods at the reranker's temperature and at the calibrated one."""
    causes: tuple[str, ...]
    decision: np.ndarray
    calibrated_temperature: float = CALIBRATED_TEMPERATURE

    def likelihoods(self, calibrated: bool = False) -> dict[str, float]:
        """cause -> likelihood that the text has it, calibrated or at the reranker's flatter temperature
        (they sum to one over the model's causes; those under FLOOR are left out)."""
        temperature = self.calibrated_temperature * (1.0 if calibrated else RERANK_FLATTENING)
        weights = np.exp((self.decision - self.decision.max()) / temperature)
        weights /= weights.sum()
        return {cause: float(w) for cause, w in zip(self.causes, weights) if w >= FLOOR}

    def likeliest(self, at_least: float = MIN_LIKELIHOOD) -> list[tuple[str, float]]:
        """The SHOWN_CAUSES likeliest causes at or above `at_least`, calibrated, likeliest first."""
        ranked = sorted(self.likelihoods(calibrated=True).items(), key=lambda item: (-item[1], item[0]))
        return [(cause, p) for cause, p in ranked[:SHOWN_CAUSES] if p >= at_least]

    def with_name_meaning(self, text_vector: np.ndarray, name_vectors: np.ndarray) -> CauseScores:
        """These scores read with the text's closeness in meaning to each cause's name (`name_vectors`:
        a row per cause, in the order of `causes`; all vectors of unit length): NAME_MEANING_WEIGHT."""
        return CauseScores(self.causes, self.decision + NAME_MEANING_WEIGHT * (name_vectors @ text_vector),
                           NAME_MEANING_CALIBRATED_TEMPERATURE)


@dataclass(frozen=True)
class CauseText:
    """What the model reads of a case (cause_text): its terms and its normalised characters."""
    terms: list[str]
    chars: str


@dataclass(frozen=True)
class CauseModel:
    terms: TfidfVectorizer
    chars: TfidfVectorizer
    char_weight: float
    classifier: LinearSVC

    @classmethod
    def train(cls, texts: Sequence[CauseText], causes: Sequence[str], names: Mapping[str, CauseText] | None = None,
              char_weight: float = CHAR_WEIGHT) -> CauseModel | None:
        """A model of the causes of the cases given as cause_text; None with fewer than two causes
        (there is nothing to tell apart). `names`: cause -> its name read the same way (cause_names),
        each one more example of its cause. `char_weight`: of the characters against the terms."""
        labelled = [(t, c) for t, c in zip(texts, causes) if c and t.terms]
        seen = {c for _, c in labelled}
        if len(seen) < 2:
            return None
        labelled += [(t, c) for c, t in (names or {}).items() if c in seen and t.terms]
        model = cls(TfidfVectorizer(analyzer=_as_given, sublinear_tf=True),
                    TfidfVectorizer(analyzer="char", ngram_range=CHAR_NGRAMS, sublinear_tf=True, lowercase=False,
                                    max_features=CHAR_FEATURES),
                    char_weight, LinearSVC(C=1.0, class_weight="balanced"))
        features = model._features([t for t, _ in labelled], learn=True)
        with warnings.catch_warnings():  # a library of rare causes has nearly as many causes as cases
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            model.classifier.fit(features, [c for _, c in labelled])
        return model

    def _features(self, texts: Sequence[CauseText], learn: bool = False) -> sparse.csr_matrix:
        """Each text's term and character TF-IDF rows side by side, the characters at char_weight;
        `learn`: fit the vectorizers on these texts first."""
        terms, chars = [t.terms for t in texts], [t.chars for t in texts]
        if learn:
            term_rows, char_rows = self.terms.fit_transform(terms), self.chars.fit_transform(chars)
        else:
            term_rows, char_rows = self.terms.transform(terms), self.chars.transform(chars)
        return sparse.hstack([term_rows, self.char_weight * char_rows]).tocsr()

    def scores(self, text: CauseText) -> CauseScores:
        """The decision value of each cause for a case read as `text` (cause_text)."""
        decision = self.classifier.decision_function(self._features([text]))[0]
        classes = self.classifier.classes_
        if len(classes) == 2:  # a binary SVM gives one value: positive for the second class
            decision = np.array([-decision, decision]).ravel()
        return CauseScores(tuple(str(cause) for cause in classes), decision)


def _as_given(terms: list[str]) -> list[str]:
    """The vectorizer's analyser: terms come segmented already (a named function, so a model pickles)."""
    return terms


def cause_text(segmenter: Segmenter, text: str) -> CauseText:
    """What the model reads of a case: its jieba terms, and the legal terms of the colloquial wordings
    it uses (借钱不还 -> 借款 借贷 还款: indexer/expansions.py), so a description in everyday words
    is read like the case files the model learnt from; and its normalised characters."""
    normalised = normalise(text)
    return CauseText(segmenter.terms(normalised) + list(legal_terms_for(normalised)), normalised)


def cause_names(segmenter: Segmenter, causes: Iterable[str]) -> dict[str, CauseText]:
    """cause -> its name as the model reads it (its jieba terms and characters), for CauseModel.train."""
    return {cause: CauseText(segmenter.terms(normalise(cause)), normalise(cause)) for cause in set(causes) if cause}


def first_of_each(labelled: Iterable[tuple[str, str]], per_cause: int) -> list[tuple[str, str]]:
    """The first `per_cause` (text, cause) pairs of each cause, in the order given; uncaused ones dropped."""
    taken: Counter[str] = Counter()
    kept = []
    for text, cause in labelled:
        if cause and taken[cause] < per_cause:
            taken[cause] += 1
            kept.append((text, cause))
    return kept


class LearntCauses:
    """A search backend's cause model: trained on first use, and again once the indexed cases have
    changed. A backend provides `segmenter`, `labelled_texts(per_cause)` (the text and cause of the
    cases it shows that have a cause, at most `per_cause` of each: first_of_each), `cause_state()`
    (a value that changes whenever those may have), and `modes()` and `encoder()` (EncoderOnDemand)."""

    _cause_model: tuple[object, CauseModel | None] | None = None
    _cause_lock = threading.Lock()  # training is rare: one lock for every backend will do

    def cause_model(self) -> CauseModel | None:
        """The model of the cases indexed now; None where fewer than two causes are indexed."""
        state = self.cause_state()
        current = self._cause_model
        if current is None or current[0] != state:
            with self._cause_lock:
                current = self._cause_model
                if current is None or current[0] != state:
                    labelled = self.labelled_texts(MAX_CASES_PER_CAUSE)
                    causes = [cause for _, cause in labelled]
                    model = CauseModel.train([cause_text(self.segmenter, text) for text, _ in labelled], causes,
                                             cause_names(self.segmenter, causes))
                    current = self._cause_model = (state, model)
        return current[1]

    def cause_scores(self, text: str) -> CauseScores | None:
        """The library's cause model's scores for a case with this text, read with the text's closeness
        in meaning to the causes' names where the backend has an embedding model; None without a model."""
        scores = self.model_cause_scores(text)
        if scores is None or "semantic" not in self.modes():
            return scores
        encoder = self.encoder()
        return scores.with_name_meaning(whole_text_vectors(encoder, [text])[0],
                                        encoder.cached(list(scores.causes), "query"))

    def model_cause_scores(self, text: str) -> CauseScores | None:
        """The cause model's own scores for a case with this text; None without a model."""
        model = self.cause_model()
        return model.scores(cause_text(self.segmenter, text)) if model is not None else None
