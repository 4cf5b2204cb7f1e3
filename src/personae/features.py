"""Style features of a text: length, reading level, sentiment, formality, and your own.

- length: words.
- reading_level: Flesch-Kincaid grade (textstat; its syllable dictionary ships with it).
- sentiment: VADER compound score in [-1, 1] (vaderSentiment; its lexicon ships with it).
- formality: a transparent lexical heuristic, (long words - informal markers) per 100 words,
  where long words have 7+ letters and informal markers are contractions, first- and second-
  person pronouns, exclamation marks and a short list of colloquialisms. It is not a trained
  formality classifier; register your own with `register_feature`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from ._loading import suggest
from .errors import ConfigError

Feature = Callable[[str], float]
_FEATURES: dict[str, Feature] = {}

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_INFORMAL = {"i", "me", "my", "you", "your", "yeah", "ok", "okay", "gonna", "wanna", "kinda", "stuff", "lol",
             "hey", "wow", "cool", "awesome", "super", "pretty", "really", "totally", "arr", "yep", "nope"}


def register_feature(name: str, fn: Feature) -> None:
    """Make `fn(text) -> float` usable in a style spec as `features: [name]`."""
    _FEATURES[name] = fn


def length(text: str) -> float:
    return float(len(text.split()))


def reading_level(text: str) -> float:
    import textstat  # noqa: PLC0415

    return float(textstat.flesch_kincaid_grade(text)) if text.strip() else 0.0


@lru_cache(maxsize=1)
def _vader():  # type: ignore[no-untyped-def]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: PLC0415

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


def formality(text: str) -> float:
    words = _WORD.findall(text)
    if not words:
        return 0.0
    long_words = sum(len(w.strip("'-")) >= 7 for w in words)
    informal = sum(("'" in w) or (w.lower() in _INFORMAL) for w in words) + text.count("!")
    return 100.0 * (long_words - informal) / len(words)


for _name, _fn in (("length", length), ("reading_level", reading_level), ("sentiment", sentiment),
                   ("formality", formality)):
    register_feature(_name, _fn)


def get_feature(name: str) -> Feature:
    if name not in _FEATURES:
        raise ConfigError(f"no style feature '{name}'.{suggest(name, _FEATURES)}", field="options.features",
                          fix=f"use {', '.join(_FEATURES)} or register_feature() in Python.")
    return _FEATURES[name]
