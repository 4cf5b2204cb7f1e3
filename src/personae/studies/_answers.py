"""What a multiple-choice study reports about the answers themselves, beside accuracy (issue 7):

- accuracy with unparseable answers counted as wrong, as the MMLU-Pro authors score, beside the
  accuracy over parsed answers (personae's default), so a number is comparable with published ones;
- the answer-letter distribution per model, with a position-bias flag when one letter is given far
  more often than the answer key holds it (an exact binomial test, scipy);
- a note for a confidence interval that collapsed to a point (e.g. [0, 0]).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import binomtest

from ..items import MCItem
from ..parsing import parse_choice

BIAS_SHARE = 0.5
"""A letter given in at least this share of parsed answers..."""
BIAS_ALPHA = 0.001
"""...and more often than the key holds it (exact binomial p below this) is flagged."""


def sample_answer(model: str, condition: str, item: MCItem, replicate: int, text: str | None, *, ok: bool
                  ) -> dict[str, Any]:
    """The answer record of one sample: the letter parsed from a reply's text (None: a parse failure,
    or `ok` False: a failed request), and whether it is the key's."""
    letter = parse_choice(text, item.letters, item.choices) if ok else None
    return dict(model=model, condition=condition, item=item.id, replicate=replicate, answer=letter,
                correct=None if letter is None else letter == item.answer_letter, error=not ok)


def accuracy_parse_wrong(samples: Sequence[Mapping[str, Any]]) -> float | None:
    """Share correct among answered samples, an unparseable answer counting as wrong (MMLU-Pro's rule)."""
    answered = [a for a in samples if not a["error"]]
    return sum(bool(a["correct"]) for a in answered) / len(answered) if answered else None


def letter_distribution(answers: Sequence[Mapping[str, Any]], keys: Mapping[str, str],
                        model: str) -> dict[str, Any] | None:
    """Parsed answer letters of one model, the key's letters for the same samples, and a bias flag."""
    given = [a for a in answers if a["model"] == model and a["answer"] is not None]
    if not given:
        return None
    counts = Counter(str(a["answer"]) for a in given)
    key_counts = Counter(keys[a["item"]] for a in given if a["item"] in keys)
    top, n_top = counts.most_common(1)[0]
    expected = key_counts.get(top, 0) / len(given)
    test = binomtest(n_top, len(given), max(expected, 1e-9), alternative="greater")
    biased = n_top / len(given) >= BIAS_SHARE and n_top / len(given) > expected and test.pvalue < BIAS_ALPHA
    return {"answers": dict(sorted(counts.items())), "key": dict(sorted(key_counts.items())), "top": top,
            "top_share": n_top / len(given), "key_share_of_top": expected, "p_value": float(test.pvalue),
            "test": "exact binomial test of the top letter's count against its share in the key (scipy)",
            "position_bias": bool(biased)}


def bias_note(model: str, dist: Mapping[str, Any]) -> str:
    n = sum(dist["answers"].values())
    return (f"{model} shows a position bias: it answered '{dist['top']}' in {dist['answers'][dist['top']]} of {n} "
            f"parsed answers ({dist['top_share']:.0%}), where the key has '{dist['top']}' for "
            f"{dist['key_share_of_top']:.0%} (binomial p = {dist['p_value']:.2g}); accuracy partly measures that habit.")


def point_ci_notes(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note for every CI that collapsed to one value: not certainty, but resamples that never vary."""
    notes = []
    for row in table:
        for lo, hi, what in (("ci_low", "ci_high", "accuracy"), ("diff_ci_low", "diff_ci_high", "difference")):
            a, b = row.get(lo), row.get(hi)
            if a is not None and b is not None and a == b:
                notes.append(f"{row['model']} {row['condition']}: the 95% CI of the {what} is [{a:g}, {b:g}]: every "
                             "resample gave the same value (e.g. all items alike in both arms); it is not certainty, "
                             "and more items would widen it.")
    return notes
