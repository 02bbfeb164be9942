"""Long case texts split into passages that fit the embedding model, on sentence boundaries."""
from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")


@dataclass(frozen=True)
class Passage:
    number: int
    start: int
    end: int
    text: str


def _sentences(text: str, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of each sentence; a sentence longer than max_chars is cut into pieces."""
    spans, start = [], 0
    for piece in _SENTENCE_END.split(text):
        for offset in range(0, len(piece), max_chars):
            chunk = piece[offset:offset + max_chars]
            if chunk.strip():
                spans.append((start + offset, start + offset + len(chunk)))
        start += len(piece)
    return spans


def split_passages(text: str, max_chars: int = 400, overlap_chars: int = 80) -> list[Passage]:
    """Greedy packing of whole sentences up to max_chars; each passage after the first repeats
    the previous passage's last sentences (up to overlap_chars) so no fact is cut in half."""
    sentences = _sentences(text, max_chars)
    passages: list[Passage] = []
    i = 0
    while i < len(sentences):
        first = i
        end = i
        while end + 1 < len(sentences) and sentences[end + 1][1] - sentences[first][0] <= max_chars:
            end += 1
        start_char, end_char = sentences[first][0], sentences[end][1]
        passages.append(Passage(len(passages), start_char, end_char, text[start_char:end_char]))
        if end + 1 >= len(sentences):
            break
        # step back over trailing sentences that fit in the overlap, but always move forward
        i = end + 1
        while i - 1 > first and sentences[end][1] - sentences[i - 1][0] <= overlap_chars:
            i -= 1
    return passages
