"""The text pipeline shared by documents and queries: normalise, segment, split phrases.

Normalisation keeps every character in place (one character in, one out), so offsets found in
normalised text are offsets in the original and snippets can highlight the original text.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jieba
import opencc

jieba.setLogLevel(logging.WARNING)

PROJECT_DICTIONARY = Path(__file__).resolve().parent / "dictionaries" / "mediation_terms.txt"

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space map onto their half-width forms.
_HALF_WIDTH = {0x3000: 0x20, **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}}
_T2S = opencc.OpenCC("t2s")

STOPWORDS = frozenset(
    "的 了 在 是 和 与 及 等 也 就 都 而 并 把 对 从 向 给 将 之 其 或 又 但 还 则 即 因 "
    "于 以 为 由 该 此 这 那 有 无 不 没 我 你 他 她 它 们 我们 你们 他们 一个 什么 怎么 "
    "吗 呢 吧 啊 呀 着 过 个 被".split())

_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」|『([^』]+)』')
_CHAR_TOKENS = re.compile(r"[a-z0-9]+|[^\W_]")


def normalise(text: str) -> str:
    """Traditional to simplified, full-width to half-width, ASCII lower case; same length."""
    half = text.translate(_HALF_WIDTH)
    simplified = _T2S.convert(half)
    if len(simplified) != len(half):
        # OpenCC's phrase tables may change length; fall back to character by character.
        simplified = "".join(_T2S.convert(ch) if len(_T2S.convert(ch)) == 1 else ch for ch in half)
    return "".join(ch.lower() if ch.isascii() else ch for ch in simplified)


def _is_word(token: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in token) and token not in STOPWORDS


class Segmenter:
    """jieba with the legal dictionary and the project's mediation terms."""

    def __init__(self, dictionaries: tuple[Path, ...]):
        self._jieba = jieba.Tokenizer()
        self._jieba.initialize()
        for path in dictionaries:
            if path.exists():
                self._jieba.load_userdict(str(path))
        self.dictionaries = dictionaries

    def terms(self, text: str) -> list[str]:
        """Search-mode words of already normalised text (long words also yield their parts)."""
        return [tok for tok in self._jieba.cut_for_search(text) if _is_word(tok)]


@lru_cache(maxsize=4)
def segmenter_for(legal_terms: Path) -> Segmenter:
    """One segmenter per process and dictionary set (jieba takes about a second to load)."""
    return Segmenter((legal_terms, PROJECT_DICTIONARY))


def char_tokens(text: str) -> list[str]:
    """One token per Chinese character, one per ASCII word: phrase matching independent of jieba."""
    return _CHAR_TOKENS.findall(text)


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    #: normalised free-text words, search mode
    terms: tuple[str, ...]
    #: normalised quoted parts, matched as exact character sequences
    phrases: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not self.terms and not self.phrases

    def highlight_terms(self) -> tuple[str, ...]:
        """Strings to mark in snippets: phrases and words, longest first."""
        return tuple(sorted(set(self.phrases) | set(self.terms), key=len, reverse=True))


def parse_query(text: str, segmenter: Segmenter) -> ParsedQuery:
    """Quoted parts become phrases; the rest is segmented exactly like documents."""
    norm = normalise(text or "").strip()
    phrases = []
    for match in _QUOTED.finditer(norm):
        phrase = next(group for group in match.groups() if group is not None).strip()
        if char_tokens(phrase):
            phrases.append(phrase)
    rest = _QUOTED.sub(" ", norm)
    terms = tuple(dict.fromkeys(segmenter.terms(rest)))
    return ParsedQuery(text=text, terms=terms, phrases=tuple(phrases))
