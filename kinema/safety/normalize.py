"""Text normalisation that undoes common obfuscations before prompts are matched or embedded."""

from __future__ import annotations

import re
import unicodedata

# Digits and symbols read as letters, but only inside tokens that already hold a letter ("s3x", "k1ll"),
# so "3 red balls" and "1940s" are left alone.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_NUMBER_WITH_UNIT = re.compile(r"\d+[a-z]{0,3}")
# Cyrillic and Greek letters that look like Latin ones; NFKC leaves them as they are.
_CONFUSABLES = str.maketrans(
    {"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "к": "k",
     "м": "m", "т": "t", "н": "h", "в": "b", "ѕ": "s", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k",
     "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x"}
)
# Punctuation that people put inside a word to hide it: "n.u.d.e", "k*i*l*l", "mcdonald's".
_INNER_PUNCTUATION = re.compile(r"(?<=[a-z])[.*_~|'`’‘•·+^\"]+(?=[a-z])")
_SPACED_LETTERS = re.compile(r"(?<![a-z0-9])[a-z](?: +[a-z](?![a-z0-9])){2,}")
_LONG_REPEATS = re.compile(r"([a-z])\1{2,}")


def _unleet(match: re.Match) -> str:
    token = match.group(0)
    if not any(ch.isalpha() for ch in token) or _NUMBER_WITH_UNIT.fullmatch(token.strip(".,;:!?()\"'")):
        return token
    return token.translate(_LEET)


def _join_spaced(match: re.Match) -> str:
    letters = match.group(0).split()
    # "a n u d e" is the article "a" and a spaced word, not "anude".
    if letters[0] in ("a", "i") and len(letters) >= 4:
        return letters[0] + " " + "".join(letters[1:])
    return "".join(letters)


def normalise(text: str) -> str:
    """Lower-case ASCII words separated by single spaces, with leetspeak, spacing and accents undone."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width characters
    text = text.casefold().translate(_CONFUSABLES)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = re.sub(r"\S+", _unleet, text)
    text = _INNER_PUNCTUATION.sub("", text)
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return _SPACED_LETTERS.sub(_join_spaced, text)


def squeeze(text: str) -> str:
    """Collapse runs of three or more of one letter ("nuuuude" -> "nude"), for the embedding model."""
    return _LONG_REPEATS.sub(r"\1", text)
