"""Reward functions with TRL's GRPO signature, on the fake backend: the right sign, cached, None on failure.

The references are hand-computed: a judge that says a completion contradicts the sheet gives 0,
one that says it does not gives 1; the listener posterior with log-probability 0 for the true
sheet and -3 for two distractors is 1 / (1 + 2 e^-3).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from personae.backends.base import Request
from personae.backends.fake import register_responder, register_scorer
from personae.consistency.rewards import ListenerReward, PromptToLineReward

SHEET = "I am Captain Mara Flint. I have sailed for thirty years."


def _judge(request: Request) -> str:
    if "boom" in request.last_user():
        raise RuntimeError("judge down")
    return json.dumps({"contradicts": "never sailed" in request.last_user()})


def _scorer(request: Request) -> float:
    return 0.0 if "Mara Flint" in request.messages[0].content else -3.0


register_responder("rewards-judge", _judge)
register_scorer("rewards-scorer", _scorer)


def test_prompt_to_line_reward_follows_the_verdicts(tmp_path: Path) -> None:
    reward = PromptToLineReward("fake/judge", backend={"responder": "rewards-judge"}, store=tmp_path / "s.sqlite",
                                repeats=2)
    prompts = ["Who are you?"] * 3
    completions = ["Thirty years at sea, friend.", [{"role": "assistant", "content": "I never sailed a day."}],
                   "boom"]
    assert reward(prompts, completions, persona=[SHEET] * 3) == [1.0, 0.0, None]
    assert reward.__name__ == "prompt_to_line"
    with pytest.raises(KeyError, match="persona"):
        reward(prompts, completions)


def test_listener_reward_is_the_posterior_of_the_true_sheet(tmp_path: Path) -> None:
    reward = ListenerReward("fake/scorer", ["I am a chef.", "I am a nurse.", SHEET], k=2,
                            backend={"scorer": "rewards-scorer"}, store=tmp_path / "s.sqlite")
    got = reward([[{"role": "user", "content": "Hi"}]], ["Ahoy."], persona=[SHEET])
    assert got == [pytest.approx(1 / (1 + 2 * math.exp(-3)))]
    other = reward(["Hi"], ["Ahoy."], persona=["I am a chef."])  # the chef's sheet scores -3: low posterior
    assert other[0] < 1 / 3
