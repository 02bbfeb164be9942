"""Masking of personal data in case text, before anything is indexed or shown.

ID-card numbers, phone numbers and bank-card numbers are found by pattern; parties' names
come from the case record, since no pattern can tell a name from other words reliably.
"""
from __future__ import annotations

import re
from typing import Iterable

ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])(?:[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
    r"|[1-9]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})(?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![\d+])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
LANDLINE = re.compile(r"(?<![\d-])(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3}-)\d{7,8}(?!\d)")
CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d{4}[ -]?){3}\d{4,7}(?!\d)")
# A part of every match of each pattern above, found much faster: the search starts at a character
# class instead of a look-behind. Only texts that have one are searched with the full pattern.
_ID_CARD_PART = re.compile(r"[1-9]\d{14}")
_MOBILE_PART = re.compile(r"1[3-9]\d(?:[- ]?\d{4}){2}")
_LANDLINE_PART = re.compile(r"0\d{2,3}[)）-]\d{7}")
_CARD_PART = re.compile(r"\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}")

ID_MASK = "[身份证号]"
PHONE_MASK = "[电话]"
CARD_MASK = "[银行卡号]"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group())
    return CARD_MASK if 16 <= len(digits) <= 19 and _luhn_ok(digits) else match.group()


def masked_name(name: str) -> str:
    """Surname and 某, the way published judgments anonymise parties (张三 → 张某)."""
    return name[0] + "某" if len(name) > 1 else "某"


def _sub(pattern: re.Pattern, part: re.Pattern, replacement, text: str) -> str:
    return pattern.sub(replacement, text) if part.search(text) else text


def mask_personal_data(text: str, person_names: Iterable[str] = ()) -> str:
    """Text with ID numbers, phones, bank cards and the given person names masked."""
    if not text:
        return text
    text = _sub(ID_CARD, _ID_CARD_PART, ID_MASK, text)
    text = _sub(CARD_CANDIDATE, _CARD_PART, _mask_card, text)
    text = _sub(MOBILE, _MOBILE_PART, PHONE_MASK, text)
    text = _sub(LANDLINE, _LANDLINE_PART, PHONE_MASK, text)
    names = sorted({n.strip() for n in person_names if n and len(n.strip()) > 1}, key=len, reverse=True)
    if names:
        pattern = re.compile("|".join(re.escape(n) for n in names))
        text = pattern.sub(lambda m: masked_name(m.group()), text)
    return text
