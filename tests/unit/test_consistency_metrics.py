"""The consistency metrics on hand-built dialogues, against hand-computed values.

References: ROUGE-L F1 by hand (LCS / lengths); line-to-line as METHODS.md section 4 defines it
(1 - conflicts / pairs over each line and the same speaker's earlier lines); the parroting
test is MUDI's trap: an agent that restates its sheet must score lower than one that answers.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from personae.consistency import copy_scores, joint_scores, line_to_line, parroting, qa_score, rouge_l, share_consistent
from personae.dialogue import Speaker, build_dialogue

SHEET = ("I am a night nurse.", "I keep bees on my roof.", "My sister lives in Lisbon.")


def _dialogue(agent_lines: list[str]):  # type: ignore[no-untyped-def]
    user = ["How was your day?", "Any plans for the weekend?", "Do you like travelling?", "What do you eat for lunch?"]
    said = [x for pair in zip([("user", u) for u in user], [("agent", a) for a in agent_lines]) for x in pair]
    return build_dialogue("d", [Speaker(id="agent", persona=SHEET), Speaker(id="user")], said)


def test_line_to_line_counts_only_earlier_own_lines() -> None:
    d = _dialogue(["a", "b", "c", "d"])  # agent speaks at turns 1, 3, 5, 7
    result = line_to_line(d, "agent", {3: [1], 5: [], 7: [1, 3, 4, 9]})
    # pairs: turn 3 has 1 earlier own line, turn 5 two, turn 7 three = 6; conflicts 1 + 0 + 2 = 3
    assert (result.pairs, result.conflicts, result.ignored) == (6, 3, 2)  # 4 is the user's, 9 is later
    assert result.score == pytest.approx(0.5)
    unjudged = line_to_line(d, "agent", {3: [1]})  # turns 5 and 7 failed: no pairs, not zeros
    assert (unjudged.pairs, unjudged.score) == (1, 0.0)
    assert np.isnan(line_to_line(d, "agent", {}).score)


def test_shares_count_what_did_not_parse() -> None:
    assert share_consistent([True, False, None, True]) == (pytest.approx(2 / 3), 1)
    score, missing = qa_score(["a", "C", None, "B"], ["A", "B", "C", "B"])
    assert (score, missing) == (pytest.approx(2 / 3), 1)
    assert np.isnan(share_consistent([None])[0])


def test_rouge_l_worked_example() -> None:
    # LCS('the cat sat', 'the cat sat on the mat') = 3 tokens: P = 3/3, R = 3/6, F1 = 2PR / (P + R) = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert rouge_l("I keep bees on my roof.", SHEET[1]) == pytest.approx(1.0)
    assert copy_scores(["completely unrelated words"], SHEET)[0] == 0.0


def test_joint_score_does_not_reward_restating_the_sheet() -> None:
    parrot = _dialogue(list(SHEET) + ["I am a night nurse."])
    answer = _dialogue(["My day was long: a busy night shift on the ward.", "For the weekend my plans are honey "
                        "from the hive.", "I do like travelling, mostly by train to see family.",
                        "For lunch I eat soup after the shift."])
    texts = [line.text for d in (parrot, answer) for line in d.lines] + list(SHEET)
    bag = CountVectorizer().fit(texts)

    def vectors(d):  # type: ignore[no-untyped-def]
        return {line.turn: bag.transform([line.text]).toarray()[0] for line in d.lines}

    sheet_vecs = bag.transform(list(SHEET)).toarray()
    in_character = {t: 1.0 for t in (1, 3, 5, 7)}  # the judge finds both agents consistent with the sheet
    p = parroting(parrot, "agent", vectors(parrot), sheet_vecs, in_character)
    a = parroting(answer, "agent", vectors(answer), sheet_vecs, in_character)
    assert min(p.copy) > 0.9 > max(a.copy)
    assert np.mean(p.relevance) < np.mean(a.relevance)
    assert p.rate == 1.0 and a.rate == 0.0
    assert p.mean_joint < a.mean_joint
    assert p.mean_joint == pytest.approx(0.0)  # copy = 1 takes the whole penalty


def test_joint_scores_formula() -> None:
    got = joint_scores([1.0, 1.0, 0.0], [0.8, -0.2, 0.9], [0.75, 0.2, 0.1], tau=0.5)
    # line 1: 1 * 0.8 * (1 - (0.75 - 0.5) / 0.5) = 0.4; line 2: relevance below 0 counts 0; line 3: adherence 0
    assert got == pytest.approx([0.4, 0.0, 0.0])
