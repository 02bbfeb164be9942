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
from itertools import chain
from pathlib import Path

import jieba
import numpy as np
import opencc
import rjieba

from indexer.expansions import legal_terms_for

jieba.setLogLevel(logging.WARNING)

PROJECT_DICTIONARY = Path(__file__).resolve().parent / "dictionaries" / "mediation_terms.txt"

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space map onto their half-width forms,
# ASCII capitals (full-width ones too) onto small letters.
_HALF_WIDTH_LOWER = {"\u3000": " ", **{chr(code): chr(code - 0xFEE0).lower() for code in range(0xFF01, 0xFF5F)},
                     **{chr(code): chr(code + 32) for code in range(ord("A"), ord("Z") + 1)}}
_TO_HALF_WIDTH_LOWER = re.compile("[\u3000\uFF01-\uFF5EA-Z]")
_T2S = opencc.OpenCC("t2s")

STOPWORDS = frozenset(
    "的 了 在 是 和 与 及 等 也 就 都 而 并 把 对 从 向 给 将 之 其 或 又 但 还 则 即 因 "
    "于 以 为 由 该 此 这 那 有 无 不 没 我 你 他 她 它 们 我们 你们 他们 一个 什么 怎么 "
    "吗 呢 吧 啊 呀 着 过 个 被 "
    # Auxiliaries, directions and connectives people type ("工地上摔伤了", "对方要赔"): as single
    # characters they matched nearly every case and filled "why it matched"; 上诉, 要求, 到期 stay words.
    "上 下 要 会 能 去 来 到 让 再 很 才 已 已经 可以 所以 因为 如果 但是 然后 就是 还是 "
    # Calendar units jieba cuts from every date ("2015年3月20日", "三个月"): in nearly every case
    # text, so as query terms they only highlight dates; the numbers and 每月, 月息, 日期 stay.
    "年 月 日".split())

#: Queries up to this long (unquoted part) get colloquial expansion; longer ones are case texts,
#: which already use the case files' words.
EXPANDED_QUERY_CHARS = 64

_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」|『([^』]+)』')
_CHAR_TOKENS = re.compile(r"[a-z0-9]+|[^\W_]")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]")


def normalise(text: str) -> str:
    """Traditional to simplified, full-width to half-width, ASCII lower case; same length."""
    half = text
    # One replace per such character present: several times faster than str.translate on Chinese text
    # (no character maps onto one that is itself mapped, so the order does not matter).
    for char in set(_TO_HALF_WIDTH_LOWER.findall(text)):
        half = half.replace(char, _HALF_WIDTH_LOWER[char])
    simplified = _T2S.convert(half)
    if len(simplified) != len(half):
        # OpenCC's phrase tables may change length; fall back to character by character.
        simplified = "".join(_T2S.convert(ch) if len(_T2S.convert(ch)) == 1 else ch for ch in half)
    return simplified


def is_term(token: str) -> bool:
    """Whether a segmented word is searchable: it has a letter or digit and is no stopword."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in token) and token not in STOPWORDS


class _Jieba:
    """jieba itself (pure Python)."""

    def __init__(self):
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()

    def add_word(self, word: str, freq: int | None, tag: str | None) -> None:
        self._tokenizer.add_word(word, freq, tag)

    def cut(self, block: str) -> list[str]:
        return self._tokenizer.lcut(block, HMM=True)

    def has_word(self, word: str) -> bool:
        return bool(self._tokenizer.FREQ.get(word))


class _RJieba:
    """rjieba, the Rust port (jieba-rs): same dictionary, same algorithm, about ten times faster."""

    def __init__(self):
        self._tokenizer = rjieba.Jieba()

    def add_word(self, word: str, freq: int | None, tag: str | None) -> None:
        self._tokenizer.add_word(word, freq, tag)

    def cut(self, block: str) -> list[str]:
        return self._tokenizer.cut(block, True)

    def has_word(self, word: str) -> bool:
        return self._tokenizer.has_word(word)


ENGINES = {"jieba": _Jieba, "rjieba": _RJieba}
# jieba segments runs of these characters and yields every other character on its own.
_BLOCK = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&._%\-]+|\S")
# Code points jieba-rs also counts as Chinese (CJK extensions, compatibility ideographs); a text
# with any of them is cut block by block, so both engines see jieba's blocks.
_WIDER_CHINESE = re.compile(r"[\u3400-\u4DBF\u9FD6-\u9FFF\uF900-\uFAFF\U00020000-\U0003FFFF]")
_CHINESE = re.compile(r"[\u4E00-\u9FD5]")
# How jieba splits what is not Chinese (numbers, Latin words); jieba-rs keeps e.g. "7-10" whole.
_NOT_CHINESE_PIECE = re.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|[^a-zA-Z0-9]+")
#: Distinct words whose search terms a segmenter remembers.
KNOWN_WORDS = 200_000


class _Memo(dict):
    """A dict that computes a missing value on lookup (C-speed hits), and starts afresh when full."""

    def __init__(self, compute, limit: int):
        super().__init__()
        self._compute, self._limit = compute, limit

    def __missing__(self, key):
        if len(self) >= self._limit:
            self.clear()
        value = self[key] = self._compute(key)
        return value


class Segmenter:
    """jieba's search mode (long words also yield their dictionary parts) with the legal dictionary
    and the project's mediation terms, run by jieba or by rjieba with identical results."""

    def __init__(self, dictionaries: tuple[Path, ...], engine: str = "rjieba"):
        if engine not in ENGINES:
            raise ValueError(f"unknown segmenter {engine!r}; choose one of {', '.join(ENGINES)}")
        self.engine = engine
        self._engine = ENGINES[engine]()
        for path in dictionaries:
            if path.exists():
                for word, freq, tag in _dictionary_entries(path):
                    self._engine.add_word(word, freq, tag)
        self.dictionaries = dictionaries
        #: segmented word -> the terms it contributes, worked out once per word (most words recur)
        self._known = _Memo(self._search_terms, KNOWN_WORDS)
        #: the same, space-joined
        self._known_joined = _Memo(lambda word: " ".join(self._known[word]), KNOWN_WORDS)

    def terms(self, text: str) -> list[str]:
        """Search-mode words of already normalised text."""
        return list(chain.from_iterable(map(self._known.__getitem__, self._words(text))))

    def joined_terms(self, text: str) -> str:
        """terms(text) for a whitespace analyser, faster: split on whitespace, it gives the same list."""
        return " ".join(map(self._known_joined.__getitem__, self._words(text)))

    def _words(self, text: str) -> list[str]:
        if _WIDER_CHINESE.search(text):
            return [word for block in _BLOCK.findall(text) for word in self._engine.cut(block)]
        return self._engine.cut(text)

    def _search_terms(self, word: str) -> tuple[str, ...]:
        """The terms one segmented word contributes."""
        return tuple(term for piece in self._pieces(word) for term in self._search_words(piece) if is_term(term))

    def _pieces(self, word: str) -> list[str]:
        """A non-dictionary word without Chinese split as jieba splits numbers and Latin words."""
        if len(word) == 1 or _CHINESE.search(word) or self._engine.has_word(word):
            return [word]
        return _NOT_CHINESE_PIECE.findall(word)

    def _search_words(self, word: str) -> list[str]:
        """jieba's search mode: the dictionary's 2- and 3-character parts of a long word, then the word."""
        if len(word) <= 2:
            return [word]
        has_word = self._engine.has_word
        parts = [word[i:i + 2] for i in range(len(word) - 1) if has_word(word[i:i + 2])]
        if len(word) > 3:
            parts += [word[i:i + 3] for i in range(len(word) - 2) if has_word(word[i:i + 3])]
        return [*parts, word]


def _dictionary_entries(path: Path):
    """`word [frequency] [tag]` lines, parsed as jieba's load_userdict parses them."""
    for line in path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines():
        if line.strip():
            word, freq, tag = jieba.re_userdict.match(line.strip()).groups()
            yield word, int(freq) if freq else None, tag.strip() if tag else None


@lru_cache(maxsize=4)
def segmenter_for(legal_terms: Path, engine: str = "rjieba") -> Segmenter:
    """One segmenter per process, engine and dictionary set (jieba takes about a second to load)."""
    return Segmenter((legal_terms, PROJECT_DICTIONARY), engine)


def char_tokens(text: str) -> list[str]:
    """One token per Chinese character, one per ASCII word: phrase matching independent of jieba."""
    return _CHAR_TOKENS.findall(text)


def joined_char_tokens(text: str) -> str:
    """char_tokens(text) for a whitespace analyser, several times faster: split on whitespace, it gives
    the same list. Everything but letters and digits becomes a space, then every character is followed
    by a space except inside an ASCII word (done on code points, as a regex would do it per character)."""
    codes = np.frombuffer(_NOT_LETTER_OR_DIGIT.sub(" ", text).encode("utf-32-le"), dtype=np.uint32)
    in_word = ((codes >= ord("a")) & (codes <= ord("z"))) | ((codes >= ord("0")) & (codes <= ord("9")))
    spaced = np.empty(2 * len(codes), dtype=np.uint32)
    spaced[0::2] = codes
    spaced[1::2] = ord(" ")
    spaced[1:-1:2][in_word[:-1] & in_word[1:]] = 0  # no NUL is left in the text: it is no letter or digit
    return spaced[spaced != 0].tobytes().decode("utf-32-le")


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    #: normalised free-text words, search mode
    terms: tuple[str, ...]
    #: normalised quoted parts, matched as exact character sequences
    phrases: tuple[str, ...]
    #: the terms colloquial expansion added to `terms` (also searched; see indexer/expansions.py)
    expansions: tuple[str, ...] = ()
    #: the legal wordings those terms come from, as people read them (劳动报酬, not its search-mode
    #: pieces 劳动 报酬 劳动报): what the user is told was also searched
    expansion_words: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.terms and not self.phrases

    @property
    def has_no_search_words(self) -> bool:
        """Typed, yet nothing to search by: only stopwords (的, 年) or punctuation."""
        return self.is_empty and bool((self.text or "").strip())

    def highlight_terms(self) -> tuple[str, ...]:
        """Strings to mark in snippets: phrases and words, longest first (ties in a fixed order)."""
        return tuple(sorted(set(self.phrases) | set(self.terms), key=lambda term: (-len(term), term)))


def has_quoted_part(text: str) -> bool:
    """Whether a query quotes a part, which parse_query makes a phrase to be matched exactly."""
    return _QUOTED.search(normalise(text or "")) is not None


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
    expansions, words = (), ()
    if len(rest.strip()) <= EXPANDED_QUERY_CHARS:
        pieces = {word: segmenter.terms(word) for word in legal_terms_for(rest)}
        expansions = tuple(term for term in dict.fromkeys(sum(pieces.values(), [])) if term not in terms)
        added = set(expansions)
        words = tuple(word for word, its in pieces.items() if added.intersection(its))
    return ParsedQuery(text=text, terms=terms + expansions, phrases=tuple(phrases), expansions=expansions,
                       expansion_words=words)
