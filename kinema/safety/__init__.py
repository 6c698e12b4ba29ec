"""Prompt safety, offline: normalisation, curated lists and a MiniLM classifier head decide together.

Policy (what `check` refuses by default)

- violence: graphic or extreme violence and gore: killing, maiming, torture, mutilation, executions,
  massacres, shootings of people, cruelty to animals. Action and conflict without gore are allowed:
  sports (shooting a basketball, boxing, fencing), stage combat, knights, sword fights and historical
  battles, explosions, demolitions, hunting animals in nature, cooking (tomatoes bursting in a pot).
- sexual: sexual acts, nudity and explicit or pornographic content. Swimwear, kissing, weddings,
  breastfeeding, classical statues and paintings are allowed; so are "naked" animals and phrases
  ("a naked mole-rat", "the naked eye"). Sexual content involving minors (children, teens, school
  pupils, any age under 18) is always refused, whatever the policy says: it cannot be disabled.
- hate: slurs, hate symbols and groups (swastikas, the KKK, "1488"), and content that dehumanises or
  calls for harm against people for their ethnicity, religion, nationality, gender, sexuality or
  disability. Religious buildings, pride parades, flags and protests are allowed.
- ip: real people named (politicians, heads of state, royalty, celebrities, athletes, business people),
  living or of the photographic era (for example Einstein, Hitler); trademarked characters (Mickey
  Mouse, Pikachu, Spider-Man), franchises (Star Wars, Pokemon) and brands (Coca-Cola, Nike, Ferrari).
  Roles and generic figures are allowed ("a president at a podium", "a Roman emperor", "a knight"), as
  are places ("a hotel lobby in Paris") and generic look-alikes ("a cartoon mouse", "a superhero in a
  red cape", "a plumber"). Figures of older history (Cleopatra, Napoleon, Julius Caesar) are allowed.
- self_harm: suicide and self-injury, depicted or encouraged, and pro-eating-disorder content. Sadness,
  grief, medicine, barbers and cliff diving are allowed.

Method: a prompt is normalised (NFKC, case, accents, look-alike letters, leetspeak inside words,
punctuation or spaces inserted between letters, stretched letters). Lists decide where lists are the
right tool: names of people, characters and brands, slurs and hate symbols, explicit sexual words,
minors, and the unambiguous words of gore and self-harm; benign phrases that contain listed words are
masked first. A classifier over all-MiniLM-L6-v2 (its top layer fine-tuned with a head over the mean and
max pooled token states), trained on `kinema/data/safety/train.jsonl` (`python -m kinema.safety train`),
catches what lists cannot: wording with no listed word. Each category's threshold is chosen in training on groups of prompts held apart
from the head, counting what the lists already refuse, and folded into the head so that 0.5 is the
default. Refusals are logged with the category and the prompt's sha256, never its text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kinema.errors import ConfigError, RefusedError
from kinema.safety import classifier
from kinema.safety.classifier import CATEGORIES, train_head
from kinema.safety.lexicon import find_terms
from kinema.safety.normalize import normalise

__all__ = ["CATEGORIES", "Policy", "Verdict", "check", "enforce", "load", "normalise", "train_head"]

# Training folds each category's chosen threshold into the head, so 0.5 is that threshold.
DEFAULT_THRESHOLDS = dict.fromkeys(CATEGORIES, 0.5)
# With a minor named, sexual content is refused at a lower classifier score than the sexual threshold.
MINORS_SEXUAL_THRESHOLD = 0.25
POLICY_ENV = "KINEMA_SAFETY_POLICY"

REASONS = {
    "violence": "graphic or extreme violence",
    "sexual": "sexual or explicit content",
    "hate": "hateful content, slurs or hate symbols",
    "ip": "a real named person or a trademarked character, franchise or brand",
    "self_harm": "suicide or self-harm",
}
MINORS_REASON = "sexual content involving minors is always refused"

logger = logging.getLogger(__name__)


@dataclass
class Policy:
    """Which categories are refused, and the classifier score at which each one is."""

    enabled_categories: set[str] = field(default_factory=lambda: set(CATEGORIES))
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def __post_init__(self):
        self.enabled_categories = set(self.enabled_categories)
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.thresholds}
        unknown = (self.enabled_categories | set(self.thresholds)) - set(CATEGORIES)
        if unknown:
            raise ConfigError(f"unknown safety categories {sorted(unknown)}; use some of {list(CATEGORIES)}")
        for category, threshold in self.thresholds.items():
            if not 0.0 < threshold <= 1.0:
                raise ConfigError(f"safety threshold for {category} is {threshold}; use a value in (0, 1]")

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Read `enabled_categories = [...]` and a `[thresholds]` table, at top level or under `[safety]`."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"safety policy {path}: not a text file; give a TOML file with "
                              "enabled_categories and [thresholds]") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read safety policy {path}: {exc}") from exc
        data = data.get("safety", data)
        return cls(
            enabled_categories=set(data.get("enabled_categories", CATEGORIES)),
            thresholds=dict(data.get("thresholds", {})),
        )

    @classmethod
    def from_env(cls) -> Policy:
        """The policy in the TOML file named by $KINEMA_SAFETY_POLICY, or the default one."""
        path = os.environ.get(POLICY_ENV)
        return cls.from_toml(path) if path else cls()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check; `score` is the deciding category's score (the highest one if allowed)."""

    allowed: bool
    category: str | None
    reason: str
    score: float


def load() -> None:
    """Load the embedding model and head now rather than on the first check."""
    classifier.load()


def check(prompt: str, policy: Policy | None = None) -> Verdict:
    """Decide whether a prompt may be generated under `policy` (default: `Policy.from_env()`)."""
    policy = policy or Policy.from_env()
    text = normalise(prompt)
    terms = find_terms(text)
    if "minors_sexual" in terms or ("minors" in terms and "sexual" in terms):
        return Verdict(False, "sexual", MINORS_REASON, 1.0)
    # The classifier is most of a check's time: skip it when a listed term already refuses the prompt.
    listed_refusal = any(c in terms for c in policy.enabled_categories)
    probs = None if listed_refusal and "minors" not in terms else classifier.probabilities(text)
    if "minors" in terms and probs["sexual"] >= MINORS_SEXUAL_THRESHOLD:
        return Verdict(False, "sexual", MINORS_REASON, probs["sexual"])
    scores = {c: 1.0 if c in terms else probs[c] if probs else 0.0 for c in CATEGORIES}
    refused = [c for c in CATEGORIES if c in policy.enabled_categories and scores[c] >= policy.thresholds[c]]
    if not refused:
        return Verdict(True, None, "no policy category matched", max(scores.values()))
    category = max(refused, key=lambda c: scores[c])
    source = "listed term" if category in terms else f"classifier score {scores[category]:.2f}"
    return Verdict(False, category, f"{REASONS[category]} ({source})", scores[category])


def prompt_hash(prompt: str) -> str:
    """The sha256 of a prompt, so refusals can be counted and matched without keeping the text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def enforce(prompt: str, policy: Policy | None = None) -> Verdict:
    """Return the verdict if allowed; otherwise log the refusal (category and hash) and raise RefusedError."""
    verdict = check(prompt, policy)
    if not verdict.allowed:
        logger.warning("refused prompt sha256=%s category=%s score=%.3f", prompt_hash(prompt),
                       verdict.category, verdict.score)
        raise RefusedError(verdict.category, verdict.reason)
    return verdict
