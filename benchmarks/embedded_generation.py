"""embedded_generation: personae's LocalBackend through the Runner vs llama_cpp.Llama directly.

The same 30 short chats (max_tokens 16, temperature 0) through
- direct: `Llama(model_path, n_ctx=2048, n_threads=2, n_batch=512).create_chat_completion(...)`
  in a loop, with exactly the arguments LocalBackend passes;
- personae: Runner + LocalBackend (same n_ctx, n_threads) with a fresh temporary store per
  pass, so every request misses the cache and the whole path is timed (Request objects, cache
  look-up, asyncio lock and worker thread, the call, committing the result to SQLite).

Each side has its own model instance, loaded and warmed up (one other prompt) before timing.
Passes run in the order D P P D D P P D (so neither side always goes first and linear drift
cancels) and each side's time is the median of its four passes; the median of the four adjacent
pairs' ratios is printed too, as a check that is robust to load from other processes. Both instances see the
same prompt sequence, so llama.cpp's reuse of the previous prompt's prefix is the same for both.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from ._common import N_CTX, N_THREADS, BenchResult, chat_prompts, median, say

N_PROMPTS = 30
MAX_TOKENS = 16
TARGET = 0.95
ORDER = ("direct", "personae", "personae", "direct", "direct", "personae", "personae", "direct")
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

    def direct_pass() -> list[str]:
        return [direct.create_chat_completion(messages=c, **call_kwargs)["choices"][0]["message"]["content"] or ""
                for c in chats]

    async def personae_pass(tmp: Path, i: int) -> tuple[list[str | None], int]:
        with Store(tmp / f"pass{i}.sqlite") as store:
            runner = Runner({model_id: backend}, store, concurrency=4)
            reqs = [Request(model=model_id, messages=tuple(Message(**m) for m in c), sampling=sampling,
                            tags=Tags(item=f"r{j}")) for j, c in enumerate(chats)]
            results = await runner.run(reqs)
            return [r.text if r.ok else None for r in results], runner.stats.backend_calls

    async def main(tmp: Path) -> tuple[dict[str, list[float]], dict[str, list[str | None]], list[int]]:
        # warm-up, untimed: load both models and run one other prompt through each
        direct.create_chat_completion(messages=WARMUP, **call_kwargs)
        backend.llm  # noqa: B018 (loads the model)
        with Store(tmp / "warmup.sqlite") as store:
            await Runner({model_id: backend}, store).run(
                [Request(model=model_id, messages=tuple(Message(**m) for m in WARMUP), sampling=sampling)])
        times: dict[str, list[float]] = {"direct": [], "personae": []}
        texts: dict[str, list[str | None]] = {}
        calls: list[int] = []
        for i, side in enumerate(ORDER):
            t0 = time.perf_counter()
            if side == "direct":
                out: list[str | None] = list(direct_pass())
            else:
                out, n_calls = await personae_pass(tmp, i)
                calls.append(n_calls)
            times[side].append(time.perf_counter() - t0)
            texts.setdefault(side, out)
            say(f"  pass {i + 1}/{len(ORDER)} {side}: {times[side][-1]:.2f} s "
                f"({N_PROMPTS / times[side][-1]:.2f} req/s)")
        return times, texts, calls

    try:
        with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
            times, texts, calls = asyncio.run(main(Path(tmp)))
    finally:
        asyncio.run(backend.aclose())
        direct.close()

    t_direct, t_pers = median(times["direct"]), median(times["personae"])
    ratio = (N_PROMPTS / t_pers) / (N_PROMPTS / t_direct)
    paired = [times["direct"][k] / times["personae"][k] for k in range(len(times["direct"]))]
    same = sum(a == b for a, b in zip(texts["direct"], texts["personae"]))
    errors = sum(t is None for t in texts["personae"])
    raw = {
        "prompts": N_PROMPTS, "max_tokens": MAX_TOKENS, "n_threads": N_THREADS, "order": list(ORDER),
        "direct_seconds": [round(x, 3) for x in times["direct"]],
        "personae_seconds": [round(x, 3) for x in times["personae"]],
        "direct_req_per_s_median": round(N_PROMPTS / t_direct, 3),
        "personae_req_per_s_median": round(N_PROMPTS / t_pers, 3),
        "paired_ratios": [round(x, 3) for x in paired], "paired_ratio_median": round(median(paired), 3),
        "personae_backend_calls_per_pass": calls, "personae_errors": errors,
        "identical_replies": f"{same}/{N_PROMPTS}",
    }
    notes = ["separate model instances, both warmed up; order D P P D D P P D; medians of 4 passes each"]
    return BenchResult("embedded_generation", ratio, TARGET, "throughput personae/direct", raw, notes)
