"""The measurement shared by `listener_vs_s0` and `listener_vs_naive` (run once, used by both).

k = 2 distractors, the embedded model (n_threads 2), 5 chats (a persona x a question, the two
distractors the next personas of the list), max_tokens 10, on three sides block by block:
- S0: greedy decoding of the true world alone (`LocalBackend.generate_sync`, temperature 0);
- S1: listener decoding (`Request.decoding`, alpha 2, beta 0.5): the multi-sequence decoder, the
  common prefix evaluated once, one batched step for the 3 worlds per token;
- naive: the same S1 step, but each world's whole prompt plus the reply so far re-evaluated from
  scratch at every token (3 evaluations of the full text per token, same `Llama` context).
Every block is one chat on the three sides back to back, the first side rotating block by block;
the ratios are medians of the per-block ratios of seconds per generated token (a slow period of
the shared machine hits the three runs of a block alike).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import N_THREADS, PERSONAS, QUESTIONS, median, persona_system, say

K = 2
N_CHATS = 5
MAX_TOKENS = 10
ALPHA, BETA = 2.0, 0.5


class NaiveDecoder:
    """The S1 loop's decoder interface, re-evaluating each world's full text at every step."""

    def __init__(self, llm: Any, prompts: Sequence[Sequence[int]]) -> None:
        import llama_cpp  # noqa: PLC0415

        self._lib, self.llm, self.prompts = llama_cpp, llm, [list(p) for p in prompts]
        self.n_seq = len(prompts)
        self.generated: list[int] = []
        self.forward_passes = self.tokens_evaluated = 0

    def _all(self) -> np.ndarray:
        from personae.backends._multiseq import _log_softmax  # noqa: PLC0415

        rows = []
        for p in self.prompts:
            full = p + self.generated
            self.llm.reset()  # nothing reused: the whole text again
            self.llm.eval(full)
            self.forward_passes += 1
            self.tokens_evaluated += len(full)
            ptr = self._lib.llama_get_logits_ith(self.llm._ctx.ctx, -1)
            rows.append(_log_softmax(np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).astype(np.float64)))
        return np.stack(rows)

    def start(self) -> np.ndarray:
        return self._all()

    def step(self, tokens: Sequence[int]) -> np.ndarray:
        self.generated.append(int(tokens[0]))
        return self._all()

    def is_end(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.llm._model.vocab, token))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", errors="ignore")

    def close(self) -> None:
        pass


@functools.cache
def measure() -> dict[str, Any]:
    from personae.backends import create_backend  # noqa: PLC0415
    from personae.backends._s1 import decode_s1, listener_worlds  # noqa: PLC0415
    from personae.backends.base import ListenerDecoding, Message, Request, Sampling  # noqa: PLC0415

    backend: Any = create_backend("local/smollm2-135m", {"n_threads": N_THREADS})
    systems = [persona_system(d, n) for d, n in PERSONAS]
    requests = []
    for c in range(N_CHATS):
        msgs = (Message(role="system", content=systems[c]), Message(role="user", content=QUESTIONS[c]))
        dis = ListenerDecoding(distractors=tuple(systems[c + 1 : c + 1 + K]), alpha=ALPHA, beta=BETA)
        requests.append(Request(model=backend.model_id, messages=msgs, sampling=Sampling(max_tokens=MAX_TOKENS),
                                decoding=dis))
    llm = backend.llm

    def s0(r: Request) -> tuple[int, int]:
        g = backend.generate_sync(r.model_copy(update={"decoding": None}))
        return g.completion_tokens, g.completion_tokens  # one single-sequence pass per token

    def s1(r: Request) -> tuple[int, int]:
        g = backend.generate_sync(r)
        return g.completion_tokens, g.forward_passes or 0

    def naive(r: Request) -> tuple[int, int]:
        assert r.decoding is not None
        dec = NaiveDecoder(llm, [backend.chat_tokens(w) for w in listener_worlds(r)])
        reply = decode_s1(dec, r.decoding, max_tokens=MAX_TOKENS, stop=r.sampling.stop)
        return len(reply.tokens), reply.forward_passes

    sides = {"s0": s0, "s1": s1, "naive": naive}
    warm = requests[0].model_copy(update={"messages": (Message(role="user", content="Say hello."),)})
    for fn in sides.values():
        fn(warm)
    per_token: dict[str, list[float]] = {k: [] for k in sides}
    passes: dict[str, list[float]] = {k: [] for k in sides}
    order = list(sides)
    for b, r in enumerate(requests):
        for name in order[b % 3 :] + order[: b % 3]:
            t0 = time.perf_counter()
            n, fp = sides[name](r)
            dt = time.perf_counter() - t0
            per_token[name].append(dt / max(n, 1))
            passes[name].append(fp / max(n, 1))
        say(f"   block {b}: s/token s0 {per_token['s0'][-1]:.4f}  s1 {per_token['s1'][-1]:.4f}  "
            f"naive {per_token['naive'][-1]:.4f}")
    vs_s0 = [s0_ / s1_ for s0_, s1_ in zip(per_token["s0"], per_token["s1"])]
    vs_naive = [nv / s1_ for nv, s1_ in zip(per_token["naive"], per_token["s1"])]
    return {
        "s1_over_s0_median": median([1 / x for x in vs_s0]),
        "naive_over_s1_median": median(vs_naive),
        "raw": {
            "k": K, "chats": N_CHATS, "max_tokens": MAX_TOKENS,
            "s0_seconds_per_token_median": median(per_token["s0"]),
            "s1_seconds_per_token_median": median(per_token["s1"]),
            "naive_seconds_per_token_median": median(per_token["naive"]),
            "s0_forward_passes_per_token": median(passes["s0"]),
            "s1_forward_passes_per_token (batched, each k+1 sequences)": median(passes["s1"]),
            "naive_forward_passes_per_token (each a whole world's text)": median(passes["naive"]),
        },
    }
