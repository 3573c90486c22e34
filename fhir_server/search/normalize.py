"""String normalisation for search: case- and accent-insensitive (``helene`` finds ``Hélène``)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Letters that do not decompose into base + combining mark under NFKD.
_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lower-case, strip accents and collapse white space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())
