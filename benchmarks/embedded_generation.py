"""embedded_generation: personae's LocalBackend through the Runner vs llama_cpp.Llama directly.

The same 30 short chats (max_tokens 16, temperature 0) through
- direct: `Llama(model_path, n_ctx=2048, n_threads=2, n_batch=512).create_chat_completion(...)`
  in a loop, with exactly the arguments LocalBackend passes;
- personae: Runner + LocalBackend (same n_ctx, n_threads, n_batch) with a fresh temporary store
  per round, so every request misses the cache and the whole per-request path is timed
  (Request objects, cache look-up, asyncio lock and worker thread, the call, committing the
  result to SQLite).

Each side has its own model instance, loaded and warmed up (one other prompt) before timing.
The 30 chats are run in 4 rounds; each round goes through them in 6 blocks of 5, and each block
runs on both sides back to back, in alternating order (direct first, personae first, ...). Both
instances see the same prompt sequence, so llama.cpp's reuse of the previous prompt's prefix is
the same for both.

The ratio is the median over the 24 blocks of (direct seconds / personae seconds): llama.cpp
with 2 threads on 2 cores slows down by a large factor whenever another process takes a core,
and adjacent blocks (about 1.5 s each) see the same load where whole passes do not. The ratio of
median round throughputs is printed too.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from ._common import N_CTX, N_THREADS, BenchResult, chat_prompts, median, say

N_PROMPTS = 30
MAX_TOKENS = 16
ROUNDS = 4
BLOCK = 5
TARGET = 0.95
WARMUP = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Say hello."}]


def run() -> BenchResult:
    from llama_cpp import Llama

    from personae.backends import create_backend
    from personae.backends.base import Message, Request, Sampling, Tags
    from personae.backends.local import smollm2_path
    from personae.runner import Runner
    from personae.store import Store

    path = smollm2_path()
    chats = chat_prompts(N_PROMPTS)
    model_id = "local/smollm2-135m"
    sampling = Sampling(temperature=0.0, max_tokens=MAX_TOKENS)

    # Direct: the same constructor and call arguments as LocalBackend uses.
    direct = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=N_THREADS, n_batch=512, logits_all=False,
                   verbose=False)
    call_kwargs = dict(max_tokens=MAX_TOKENS, temperature=0.0, top_p=1.0, stop=None)
    backend = create_backend(model_id, {"n_ctx": N_CTX, "n_threads": N_THREADS, "n_batch": 512})

    def direct_block(block: list[list[dict[str, str]]]) -> list[str | None]:
        return [direct.create_chat_completion(messages=c, **call_kwargs)["choices"][0]["message"]["content"] or ""
                for c in block]

    async def personae_block(runner: Runner, block: list[list[dict[str, str]]], start: int) -> list[str | None]:
        reqs = [Request(model=model_id, messages=tuple(Message(**m) for m in c), sampling=sampling,
                        tags=Tags(item=f"r{start + j}")) for j, c in enumerate(block)]
        return [r.text if r.ok else None for r in await runner.run(reqs)]

    async def main(tmp: Path) -> tuple[dict[str, list[float]], dict[str, list[str | None]], list[int]]:
        # warm-up, untimed: load both models and run one other prompt through each
        direct.create_chat_completion(messages=WARMUP, **call_kwargs)
        with Store(tmp / "warmup.sqlite") as store:
            await Runner({model_id: backend}, store).run(
                [Request(model=model_id, messages=tuple(Message(**m) for m in WARMUP), sampling=sampling)])
        blocks: dict[str, list[float]] = {"direct": [], "personae": []}
        texts: dict[str, list[str | None]] = {"direct": [], "personae": []}
        calls: list[int] = []
        b = 0
        for rnd in range(ROUNDS):
            with Store(tmp / f"round{rnd}.sqlite") as store:
                runner = Runner({model_id: backend}, store, concurrency=4)
                for start in range(0, N_PROMPTS, BLOCK):
                    block = chats[start : start + BLOCK]
                    for side in (("direct", "personae") if b % 2 == 0 else ("personae", "direct")):
                        t0 = time.perf_counter()
                        out = direct_block(block) if side == "direct" else await personae_block(runner, block, start)
                        blocks[side].append(time.perf_counter() - t0)
                        if rnd == 0:
                            texts[side].extend(out)
                    b += 1
                calls.append(runner.stats.backend_calls)
            per = N_PROMPTS // BLOCK
            d, p = sum(blocks["direct"][-per:]), sum(blocks["personae"][-per:])
            say(f"  round {rnd + 1}/{ROUNDS}: direct {d:.2f} s ({N_PROMPTS / d:.2f} req/s), "
                f"personae {p:.2f} s ({N_PROMPTS / p:.2f} req/s)")
        return blocks, texts, calls

    try:
        with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
            blocks, texts, calls = asyncio.run(main(Path(tmp)))
    finally:
        asyncio.run(backend.aclose())
        direct.close()

    per = N_PROMPTS // BLOCK
    rounds = {s: [sum(v[i : i + per]) for i in range(0, len(v), per)] for s, v in blocks.items()}
    paired = [d / p for d, p in zip(blocks["direct"], blocks["personae"])]
    ratio = median(paired)
    t_direct, t_pers = median(rounds["direct"]), median(rounds["personae"])
    same = sum(a == b for a, b in zip(texts["direct"], texts["personae"]))
    raw = {
        "prompts": N_PROMPTS, "max_tokens": MAX_TOKENS, "n_threads": N_THREADS, "rounds": ROUNDS, "block": BLOCK,
        "direct_round_seconds": [round(x, 3) for x in rounds["direct"]],
        "personae_round_seconds": [round(x, 3) for x in rounds["personae"]],
        "direct_req_per_s_median": round(N_PROMPTS / t_direct, 3),
        "personae_req_per_s_median": round(N_PROMPTS / t_pers, 3),
        "median_round_throughput_ratio": round(t_direct / t_pers, 3),
        "paired_block_ratios": [round(x, 3) for x in paired],
        "personae_backend_calls_per_round": calls,
        "personae_errors": sum(t is None for t in texts["personae"]),
        "identical_replies": f"{same}/{N_PROMPTS}",
    }
    notes = [f"separate model instances, both warmed up; {ROUNDS} rounds x {per} blocks of {BLOCK}, side order "
             "alternating per block; ratio = median of paired block ratios"]
    return BenchResult("embedded_generation", ratio, TARGET, "throughput personae/direct (median of blocks)", raw,
                       notes)
