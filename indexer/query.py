"""The one query object that goes into a search backend and the one result object that comes out."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kb.filters import Filters  # noqa: F401  (re-exported: the query's filters)

MODES = ("keyword", "semantic", "hybrid")
SORTS = ("relevance", "date_desc", "date_asc")
FACET_FIELDS = ("category", "cause", "region", "outcome")


def default_mode(available: tuple[str, ...]) -> str:
    """Hybrid where a backend can do it (the embedding model is installed), else keyword."""
    return "hybrid" if "hybrid" in available else "keyword"


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    mode: str = "keyword"
    filters: Filters = field(default_factory=Filters)
    facets: tuple[str, ...] = FACET_FIELDS
    sort: str = "relevance"
    page: int = 1
    size: int = 10

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")
        unknown = set(self.facets) - set(FACET_FIELDS)
        if unknown:
            raise ValueError(f"unknown facet {sorted(unknown)[0]!r}; facets: {', '.join(FACET_FIELDS)}")
        if self.page < 1 or self.size < 1:
            raise ValueError("page and size must be at least 1")


@dataclass(frozen=True)
class Hit:
    case_id: int
    external_id: str
    title: str
    score: float
    #: HTML: masked original text, escaped, with matches wrapped in <mark>
    snippet: str
    #: the query terms found in this case: why it matched
    matched_terms: tuple[str, ...]
    category: str
    cause: str
    region: str
    outcome: str
    received_on: dt.date | None
    exemplar: bool
    #: HTML of the passage that matched by meaning (semantic and hybrid modes)
    best_passage: str = ""
    #: other records with the same text, collapsed into this hit
    duplicates: int = 0
    #: more like this: key facts (elements of indexer/dictionaries/loan_elements.tsv) both cases mention
    shared_facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FacetBucket:
    value: str
    count: int


@dataclass(frozen=True)
class Suggestion:
    """A way to get results when a query has none, and how many it would give."""
    message: str
    drop_filter: str | None
    total: int


@dataclass(frozen=True)
class LikelyCause:
    """A cause a case description likely has, by the library's cause model (indexer/cause_model.py)."""
    cause: str
    likelihood: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, list[FacetBucket]]
    took_ms: float
    query_terms: tuple[str, ...] = ()
    suggestions: list[Suggestion] = field(default_factory=list)
    #: semantic and hybrid: (cases embedded so far, cases search shows: duplicates collapsed into another need no vectors)
    semantic_coverage: tuple[int, int] | None = None
    #: case-file terms searched besides the query's own words (colloquial expansion)
    also_searched: tuple[str, ...] = ()
    #: a case description searched as a case: the causes it most likely has, likeliest first
    likely_causes: tuple[LikelyCause, ...] = ()
    #: the query was typed but has no word to search by (only stopwords or punctuation): the hits
    #: are the library browsed by date, and the user is told so
    no_search_words: bool = False


@dataclass(frozen=True)
class Candidates(SearchResult):
    """More like this, first stage (a backend's `similar_candidates`): the candidates, and the best
    passage by meaning of those the vector search found, for showing the reranked hits of a page
    (indexer/more_like_this.py). Never an answer itself."""
    #: case id -> PassageMatch
    passages: dict = field(default_factory=dict)
