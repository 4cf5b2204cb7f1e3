"""Consistency metrics as reward functions for RL (TRL's GRPO trainer).

Each reward takes what `trl.GRPOTrainer` passes a reward function, `(prompts, completions,
**kwargs) -> list[float | None]`, where `kwargs` holds the dataset's other columns: give the
persona sheet in a column (default `persona`). Completions may be strings or conversational
(a list of messages; the last one's content is scored). A verdict that failed or did not parse
gives `None`, which TRL leaves out of that sample's reward instead of scoring it as wrong.

Calls go through personae's cached runner and store (a repeated completion costs nothing),
synchronously: one `asyncio.run` per batch, so call it from ordinary (not async) code.

    from trl import GRPOConfig, GRPOTrainer
    from personae.consistency.rewards import ListenerReward, PromptToLineReward

    judge = PromptToLineReward("openai/Qwen2.5-7B-Instruct", backend={"base_url": "http://127.0.0.1:8000/v1"})
    listener = ListenerReward("local/smollm2-135m", distractors=["I am a chef ...", "I am a nurse ..."])
    trainer = GRPOTrainer(model="HuggingFaceTB/SmolLM2-135M-Instruct", reward_funcs=[judge, listener],
                          args=GRPOConfig(output_dir="out", num_generations=4), train_dataset=dataset)

(The dataset needs a `prompt` column and a `persona` column with each row's sheet. The paper
behind the consistency study, arXiv 2511.00222, trained with PPO on prompt-to-line alone.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Message, Request, Tags
from ..backends.pool import BackendPool
from ..judge import Judge
from ..runner import Result, Runner
from ..store import Store
from . import judging as J

__all__ = ["ListenerReward", "PromptToLineReward", "RewardClient"]


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"a completion must be text or a list of messages, got {type(completion).__name__}")


def _history(prompt: Any) -> list[Message]:
    """A conversational prompt's messages (system ones dropped: the persona comes from its column)."""
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    return [Message(role=m["role"], content=str(m["content"])) for m in prompt if m.get("role") in ("user", "assistant")]


class RewardClient:
    """A small synchronous client over personae's backends, runner and store (cached)."""

    def __init__(self, backend: Mapping[str, Any] | None = None, *, store: str | Path | None = None,
                 concurrency: int = 4) -> None:
        options = dict(backend or {})
        self.pool = BackendPool(options_for=lambda model: options)
        self.store = Store(store)
        self.concurrency = concurrency

    def run(self, requests: Sequence[Request]) -> list[Result]:
        runner = Runner(self.pool, self.store, concurrency=self.concurrency)
        return asyncio.run(runner.run(list(requests), label="reward"))


class PromptToLineReward:
    """1 - share of `repeats` judge verdicts saying the completion contradicts the persona sheet."""

    def __init__(self, judge_model: str, *, backend: Mapping[str, Any] | None = None, persona_column: str = "persona",
                 repeats: int = 1, temperature: float = 0.7, store: str | Path | None = None, seed: int = 0) -> None:
        self.__name__ = "prompt_to_line"  # TRL logs a reward under its function's name
        self.model, self.column, self.seed = judge_model, persona_column, seed
        self.judge = Judge(J.PromptToLine, J.PROMPT_TO_LINE, repeats=repeats, temperature=temperature, max_tokens=64)
        self.client = RewardClient(backend, store=store)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        sheets = kwargs.get(self.column)
        if sheets is None:
            raise KeyError(f"the dataset has no '{self.column}' column with each row's persona sheet; add it or "
                           f"pass persona_column=")
        reqs = []
        for i, (sheet, completion) in enumerate(zip(sheets, completions)):
            content = J.persona_line_content(sheet, _text(completion))
            reqs += self.judge.requests(self.model, content, seed=self.seed, tags=Tags(item=str(i)))
        results = self.client.run(reqs)
        out: list[float | None] = []
        for i in range(len(completions)):
            verdicts = [self.judge.parse(r.text)[0] for r in results if r.request.tags.item == str(i) and r.ok]
            parsed = [v for v in verdicts if v is not None]
            out.append(float(np.mean([not v.contradicts for v in parsed])) if parsed else None)
        return out


class ListenerReward:
    """The listener posterior of the true persona given the completion, against distractor sheets
    (log-probabilities; no judge). Uniform prior: chance is 1 / (1 + number of distractors)."""

    def __init__(self, scorer_model: str, distractors: Sequence[str], *, k: int = 3,
                 backend: Mapping[str, Any] | None = None, persona_column: str = "persona",
                 store: str | Path | None = None, seed: int = 0) -> None:
        if not distractors:
            raise ValueError("ListenerReward needs distractor persona sheets (other characters' sheets)")
        self.__name__ = "listener"
        self.model, self.pool, self.k, self.column, self.seed = scorer_model, list(distractors), k, persona_column, seed
        self.client = RewardClient(backend, store=store)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        sheets = kwargs.get(self.column)
        if sheets is None:
            raise KeyError(f"the dataset has no '{self.column}' column with each row's persona sheet")
        reqs, shapes = [], []
        for i, (sheet, prompt, completion) in enumerate(zip(sheets, prompts, completions)):
            others = [s for s in self.pool if s != sheet]
            picked = random.Random(self.seed + i).sample(others, min(self.k, len(others)))
            history = _history(prompt) or [Message(role="user", content="Hello.")]
            for j, candidate in enumerate([sheet, *picked]):
                reqs.append(Request(kind="score", model=self.model, continuation=_text(completion),
                                    messages=(Message(role="system", content=f"Your persona: {candidate}"), *history),
                                    tags=Tags(item=str(i), extra={"candidate": j})))
            shapes.append(1 + len(picked))
        results = self.client.run(reqs)
        out: list[float | None] = []
        at = 0
        for n in shapes:
            chunk = results[at: at + n]
            at += n
            if any(not r.ok or r.score is None for r in chunk):
                out.append(None)
                continue
            lp = np.array([r.score.logprob for r in chunk])  # type: ignore[union-attr]
            post = np.exp(lp - lp.max())
            out.append(float(post[0] / post.sum()))
        return out
