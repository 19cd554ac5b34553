"""SMS text and recipients (docs/domain.md §7): Vietnamese without diacritics, GSM-7 or UCS-2 parts, E.164 numbers.

Pure: no I/O.
"""

import functools
import unicodedata
from dataclasses import dataclass

from anyascii import anyascii

# GSM 03.38 basic character set, and the extension table (each costs two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

# Letters that do not decompose into a base letter and combining marks.
_LETTERS = {"đ": "d", "Đ": "D", "ơ": "o", "Ơ": "O", "ư": "u", "Ư": "U"}


PLACEHOLDER = "_"  # what stands, visibly, for a character nothing can spell in GSM-7


def transliterate(text: str) -> str:
    """Text any citizen or official may have typed, as GSM-7, never raising (docs/domain.md §7).

    Vietnamese first, complete: every letter without its diacritics (ệ → e, đ → d, Đ → D), never
    '?'. Then any other character outside GSM-7 by its closest ASCII (anyascii: '•' → '*',
    '≥' → '>=', '中文' → 'ZhongWen', an emoji → ':name:'); invisible ones (format and control
    characters, lone combining marks) are dropped; what is still outside GSM-7 becomes PLACEHOLDER.
    Character by character, each one's spelling remembered (`_spelt`): every message's text comes here."""
    return "".join(map(_spelt, text))


@functools.lru_cache(maxsize=4096)  # bounded: a reason may hold any of Unicode's characters
def _spelt(ch: str) -> str:
    """One character as `transliterate` spells it."""
    ch = _LETTERS.get(ch, ch)
    base = unicodedata.normalize("NFD", ch)
    stripped = "".join(c for c in base if not unicodedata.combining(c))
    stripped = _LETTERS.get(stripped, stripped)
    return stripped if is_gsm7(stripped) else _fallback(ch)


def _fallback(ch: str) -> str:
    if ch.isspace():
        return " "
    if unicodedata.category(ch)[0] in "CM":
        return ""
    ascii_ = anyascii(ch)
    return "".join(c if is_gsm7(c) else PLACEHOLDER for c in ascii_) or PLACEHOLDER


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def septets(text: str) -> int:
    """GSM-7 length: an extension character costs two septets."""
    return sum(2 if c in GSM7_EXTENSION else 1 for c in text)


def cut(text: str, limit: int, ucs2: bool = False) -> str:
    """The longest start of `text` as sent that takes at most `limit` septets (GSM-7, transliterated)
    or UTF-16 code units (UCS-2): a field cut so, in a template, never takes more parts than checked."""
    if not ucs2:
        text = transliterate(text)
    size, out = 0, []
    for ch in text:
        size += len(ch.encode("utf-16-be")) // 2 if ucs2 else septets(ch)
        if size > limit:
            break
        out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Encoded:
    text: str
    coding: str  # "gsm7" or "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int


def encode(text: str, ucs2: bool = False) -> Encoded:
    """The text as sent: GSM-7 (transliterated) unless the template asks for UCS-2 with diacritics.
    Parts: GSM-7 160 septets in one part, 153 a part when concatenated; UCS-2 70, then 67."""
    if not ucs2:
        text = transliterate(text)
        if not is_gsm7(text):
            raise ValueError(f"characters outside GSM-7 after transliteration: {sorted(set(text) - GSM7_BASIC)}")
        units = septets(text)
        single, multi, coding = 160, 153, "gsm7"
    else:
        units = len(text.encode("utf-16-be")) // 2
        single, multi, coding = 70, 67, "ucs2"
    parts = 1 if units <= single else -(-units // multi)
    return Encoded(text, coding, units, parts)


# Numbers of the 11-digit mobile plan, moved to 10 digits in 2018 (MIC Decision 798/QĐ-BTTTT).
