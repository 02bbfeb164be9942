"""Semantic search pieces: passage text as embedded, reciprocal-rank fusion,
and the worker that keeps a generation's vectors in step with its keyword documents."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Callable

from indexer.passages import Passage, split_passages

PASSAGE_CHARS = 400
OVERLAP_CHARS = 80
#: Semantic and hybrid searches rank this many cases at most (in every backend).
SEMANTIC_DEPTH = 200


class SemanticUnavailable(Exception):
    """Semantic or hybrid search was asked for but no embedding model is installed."""


def document_hash(title: str, text: str) -> int:
    """63-bit hash (fits a signed 64-bit field) of what a case's vectors are computed from."""
    return int.from_bytes(hashlib.sha256(f"{title}\n{text}".encode()).digest()[:8], "big") >> 1


def case_passages(text: str) -> list[Passage]:
    return split_passages(text, PASSAGE_CHARS, OVERLAP_CHARS)


def passage_inputs(title: str, text: str) -> list[str]:
    """What gets embedded: each passage with the case title (usually the cause) in front, if any."""
    return [f"{title}：{p.text}" if title else p.text for p in case_passages(text)] or [title]


def reciprocal_rank_fusion(rankings: list[tuple[list[int], float]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists, each with a weight: score = Σ weight / (k + rank). Ties break by id,
    so the order is stable and paging never repeats a case."""
    scores: dict[int, float] = defaultdict(float)
    for ids, weight in rankings:
        for rank, case_id in enumerate(ids, start=1):
            scores[case_id] += weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


Progress = Callable[[int], None]
