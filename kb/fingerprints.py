"""Duplicate records: the same case text imported twice, under different ids or from different files."""
from __future__ import annotations

import hashlib
import re
import unicodedata

# Everything but letters and digits: [^\W_] is exactly the Unicode categories L* and N* (checked over all code points).
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def text_fingerprint(text: str | None) -> str:
    """A digest of the text's letters and digits only (NFKC, lower case): re-spacing, re-punctuating or
    full-width/half-width differences leave it unchanged; any change of wording changes it."""
    folded = unicodedata.normalize("NFKC", text or "").lower()
    kept = _NOT_LETTER_OR_DIGIT.sub("", folded)
    return hashlib.sha256(kept.encode("utf-8")).hexdigest()[:32]
