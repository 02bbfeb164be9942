"""Snippets: a window of the original (masked) text around the matches, matches marked."""
from __future__ import annotations

from functools import lru_cache
from html import escape

from indexer.text import normalise

#: A hit's text is normalised once for its matched terms and its snippet (long texts make this a
#: large share of a keyword search), and again only when it shows up in another search.
_normalised = lru_cache(maxsize=512)(normalise)


def find_matches(norm: str, needles: tuple[str, ...]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of the needles in normalised text, longest needle first
    (whatever the needles' order: more like this gives its terms by weight)."""
    taken = bytearray(len(norm))
    spans = []
    for needle in sorted(needles, key=len, reverse=True):
        start = norm.find(needle) if needle else -1
        while start >= 0:
            end = start + len(needle)
            if taken.find(1, start, end) < 0:
                taken[start:end] = b"\x01" * (end - start)
                spans.append((start, end))
            start = norm.find(needle, end)
    return sorted(spans)


def _best_window(spans: list[tuple[int, int]], length: int, width: int) -> tuple[int, int]:
    """The window of `width` characters holding the most distinct-position matches."""
    if not spans:
        return 0, min(length, width)
    best_start, best_count, right = spans[0][0], 0, 0
    for left, (start, _end) in enumerate(spans):
        right = max(right, left)
        while right + 1 < len(spans) and spans[right + 1][1] - start <= width:
            right += 1
        if right - left + 1 > best_count:
            best_start, best_count = start, right - left + 1
    begin = max(0, min(best_start - width // 5, length - width))
    return begin, min(length, begin + width)


def matched_terms(needles: tuple[str, ...], *texts: str) -> tuple[str, ...]:
    """The needles that occur in any of the texts as themselves, not only inside a longer needle
    found there (交通事故, not also its search-mode pieces 交通 通事 事故): why a case matched, as the
    snippet marks it. In the needles' order."""
    found = set()
    for text in texts:
        norm = _normalised(text)
        found.update(norm[start:end] for start, end in find_matches(norm, needles))
    return tuple(n for n in needles if n in found)


def snippet(text: str, needles: tuple[str, ...], width: int = 160) -> str:
    """HTML snippet of the best window of `text`, matches wrapped in <mark>."""
    spans = find_matches(_normalised(text), needles)
    begin, end = _best_window(spans, len(text), width)
    parts, cursor = [], begin
    for start, stop in spans:
        if start < begin or stop > end:
            continue
        parts.append(escape(text[cursor:start]))
        parts.append(f"<mark>{escape(text[start:stop])}</mark>")
        cursor = stop
    parts.append(escape(text[cursor:end]))
    prefix = "…" if begin > 0 else ""
    suffix = "…" if end < len(text) else ""
    return prefix + "".join(parts) + suffix
