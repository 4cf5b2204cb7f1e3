"""Parsing model answers. A failure returns None and is counted by the study, never scored wrong."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

# (pattern, case-insensitive?) in the order tried; a lowercase "a" is only a letter when alone
_PATTERNS = (
    (r"^\s*\**\(?([{L}])\)?\**\.?\s*$", True),                                # "B", "(b)", "**B**"
    (r"(?i:answer|option|choice)\s*(?i:is|:)?\s*\**\(?([{L}])\)?(?![A-Za-z])", False),  # "The answer is B"
    (r"^\s*\**\(?([{L}])\)?\**\s*[\.\):\-,]", False),                        # "B. Paris", "C) ..."
    (r"^\s*\**\(?([{L}])\)?\**\s+\S", False),                                # "B Paris"
)


def parse_choice(text: str | None, letters: str, choices: Sequence[str] = ()) -> str | None:
    """The option letter a reply gives, or None if it names none (or several) unambiguously.

    Tries, in order: a bare letter, 'the answer is X', a leading 'X.' or 'X)', a leading letter
    followed by text, and finally the exact text of exactly one option.
    """
    if not text:
        return None
    cleaned = text.strip()
    for pattern, nocase in _PATTERNS:
        flags = re.MULTILINE | (re.IGNORECASE if nocase else 0)
        found = re.findall(pattern.replace("{L}", letters), cleaned, flags=flags)
        hits = {f.upper() for f in found}
        if len(hits) == 1:
            letter = hits.pop()
            if letter in letters:
                return letter
        elif len(hits) > 1:
            return None
    lowered = cleaned.lower()
    # the option's text as a whole word or phrase: an option 'e' must not match the 'e' of 'really'
    named = [letters[i] for i, c in enumerate(choices)
             if c.strip() and re.search(rf"(?<!\w){re.escape(c.strip().lower())}(?!\w)", lowered)]
    return named[0] if len(named) == 1 else None


def parse_json_field(text: str | None, field: str, allowed: Sequence[str] | None = None) -> Any:
    """The value of `field` in a JSON object reply, or None (not JSON, missing, or not allowed)."""
    if not text:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except (json.JSONDecodeError, RecursionError):  # a model's garbage, however deep, is a parse failure
        return None
    if not isinstance(data, dict) or field not in data:
        return None
    value = data[field]
    if allowed is not None:
        if not isinstance(value, str):
            return None
        match = [a for a in allowed if a.lower() == value.strip().lower()]
        return match[0] if match else None
    return value


def letter_grammar(letters: str) -> str:
    """A GBNF grammar that allows exactly one of the option letters (llama.cpp backends)."""
    return "root ::= " + " | ".join(f'"{letter}"' for letter in letters)
