"""Colloquial query expansion: the legal terms case files use for what a mediator typed in everyday
words (借钱不还 -> 借款 借贷 还款), from `dictionaries/colloquial_expansions.tsv`."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "dictionaries" / "colloquial_expansions.tsv"


@lru_cache(maxsize=2)
def load_table(path: Path = TABLE) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(colloquial wording, legal terms) pairs in the table's order (written as normalised text)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        wording, _, terms = line.partition("\t")
        if not wording.strip() or not terms.split():
            raise ValueError(f"{path}:{number}: expected 'wording<TAB>terms', got {line!r}")
        entries.append((wording.strip(), tuple(terms.split())))
    return tuple(entries)


def legal_terms_for(norm_text: str, path: Path = TABLE) -> tuple[str, ...]:
    """The legal terms for every colloquial wording found in normalised text, each once, in table order."""
    found = (term for wording, terms in load_table(path) if wording in norm_text for term in terms)
    return tuple(dict.fromkeys(found))
