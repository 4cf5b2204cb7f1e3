"""The bias study's count-table vignettes: correct answers from the counts, congruence flips with the framing."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.bias.instruments import expand, load_vignettes
from personae.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_builtin_vignettes_expand_into_balanced_items() -> None:
    vignettes = load_vignettes("builtin", ROOT)
    assert [v.id for v in vignettes] == ["gun-control", "minimum-wage", "school-prayer", "college-degree",
                                        "women-leaders"]
    assert {v.axis for v in vignettes} == {"politics", "religion", "education", "gender"}
    items = expand(vignettes)
    assert len(items) == 5 * 2 * 2 * 2  # vignette x frame x framing x option order
    # the correct letter is A in exactly half the items: a model that always says 'A' is at 50% everywhere
    assert sum(i.answer == "A" for i in items) == len(items) // 2
    for v in vignettes:
        mine = {(i.frame, i.framing, i.order): i for i in items if i.vignette == v.id}
        for frame in ("identity", "neutral"):
            a, b = mine[(frame, "original", "good-first")], mine[(frame, "swapped", "good-first")]
            # swapping the good and bad numbers flips which identity the correct reading fits
            assert (a.favoured, a.disfavoured) == (b.disfavoured, b.favoured)
            assert a.answer != b.answer
            assert mine[(frame, "original", "bad-first")].answer != a.answer  # options exchanged
        assert {mine[("identity", "original", "good-first")].favoured} == {v.favours_bad}  # share, not count, decides


def test_gun_control_reading_is_computed_from_the_shares() -> None:
    v = load_vignettes("builtin", ROOT)[0]
    (a, b), (c, d) = v.counts  # 212/300 = 0.707 of banning cities saw crime fall, 96/120 = 0.80 of the others
    assert a / (a + b) < c / (c + d) and a > c
    item = next(i for i in expand([v]) if i.id == "gun-control.identity.original.good-first")
    assert "| Cities that passed the ban | 212 | 88 |" in item.text
    assert item.answer == "B" and "B. Cities that passed the ban were more likely than cities that did not pass " \
        "the ban to see that crime rose." in item.text
    assert item.congruence("republican") is True and item.congruence("democrat") is False
    assert item.congruence("atheist") is None and item.congruence(None) is None
    neutral = next(i for i in expand([v]) if i.id == "gun-control.neutral.original.good-first")
    assert "| Patients who used the cream | 212 | 88 |" in neutral.text and neutral.answer == "B"


def test_a_user_file_with_equal_shares_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("vignettes:\n- id: tie\n  axis: politics\n  favours_good: democrat\n  favours_bad: republican\n"
                    "  counts: [[10, 10], [5, 5]]\n  identity: {intro: x, treatment: t, control: c, good: g, "
                    "bad: b}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="same share of good outcomes"):
        load_vignettes("v.yaml", tmp_path)
    with pytest.raises(ConfigError, match="was not found"):
        load_vignettes("missing.yaml", tmp_path)
