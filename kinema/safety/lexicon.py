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


def _term_pattern(term: str) -> str:
    """Regex for one list entry: letter runs may be stretched ("kiiill"), words may be joined or split."""
    prefix = term.endswith("*")
    words = normalise(term.rstrip("*")).split()
    word_patterns = [
        "".join(re.escape(ch) + ("+" if len(run) == 1 else f"{{{len(run)},}}") for ch, run in
                ((ch, list(run)) for ch, run in groupby(word)))
        for word in words
    ]
    ending = "[a-z]*" if prefix else "(?:s|es)?"
    return r" ?".join(word_patterns) + ending


def _read_terms(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _compile(terms: list[str]) -> re.Pattern:
    patterns = sorted({_term_pattern(term) for term in terms}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(patterns) + r")(?![a-z0-9])")


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
