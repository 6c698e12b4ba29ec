"""Curated term lists matched on word boundaries after normalisation, for what lists do best: names."""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import groupby
from pathlib import Path

from kinema.safety.normalize import normalise

LEXICON_DIR = Path(__file__).resolve().parents[1] / "data" / "safety" / "lexicon"

# List file -> the group its matches count towards. `minors` only refuses together with sexual content.
LIST_GROUPS = {
    "people": "ip",
    "characters": "ip",
    "hate": "hate",
    "sexual": "sexual",
    "violence": "violence",
    "self_harm": "self_harm",
    "minors": "minors",
    "minors_sexual": "minors_sexual",
}


def _term_units(term: str) -> tuple[str, ...]:
    """Regex pieces of one list entry: letter runs may be stretched ("kiiill"), words joined or split."""
    prefix = term.endswith("*")
    units: list[str] = []
    for i, word in enumerate(normalise(term.rstrip("*")).split()):
        if i:
            units.append(" ?")
        for ch, run in groupby(word):
            count = len(list(run))
            units.append(re.escape(ch) + ("+" if count == 1 else f"{{{count},}}"))
    units.append("[a-z]*" if prefix else "(?:s|es)?")
    return tuple(units)


def _trie_pattern(node: dict) -> str:
    """One regex for a trie of pieces: shared prefixes are matched once, so thousands of names stay fast.

    Every entry ends in its own ending piece, so an entry never ends inside another; which branch
    matches first can change the reported text of a hit, never whether a group is hit.
    """
    alternatives = [unit + _trie_pattern(child) for unit, child in node.items()]
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")" if alternatives else ""


def _read_terms(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _compile(terms: list[str]) -> re.Pattern:
    trie: dict = {}
    for term in terms:
        node = trie
        for unit in _term_units(term):
            node = node.setdefault(unit, {})
    return re.compile(r"(?<![a-z0-9])(?:" + _trie_pattern(trie) + r")(?![a-z0-9])")


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, dict[str, re.Pattern]]:
    allow = _compile(_read_terms(LEXICON_DIR / "allow.txt"))
    groups: dict[str, list[str]] = {}
    for name, group in LIST_GROUPS.items():
        groups.setdefault(group, []).extend(_read_terms(LEXICON_DIR / f"{name}.txt"))
    return allow, {group: _compile(terms) for group, terms in groups.items()}


def find_terms(normalised: str) -> dict[str, list[str]]:
    """Listed terms found in already-normalised text, by group; allow-listed phrases are masked first."""
    allow, groups = _patterns()
    text = allow.sub(" ", normalised)
    found = {}
    for group, pattern in groups.items():
        hits = [match.group(0) for match in pattern.finditer(text)]
        if hits:
            found[group] = hits
    return found
